"""Fixtures for the key-value service: in-process clusters with real HTTP servers."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pykka_raft import Config, TriggerElection
from pykka_raft.kv import HttpSettings
from pykka_raft.kv.launcher import ProcessCluster
from pykka_raft.kv.local import LocalCluster
from pykka_raft.testing import wait_until

# Generous timeouts for a loaded 2-core machine; every wait has a deadline.
RAFT = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
# For tests that isolate a leader and then send it a write: check-quorum makes an isolated
# leader step down after one election timeout, and a write that reaches it after that is
# redirected at once instead of waiting; seconds leave room for a loaded machine. Their
# clusters elect node 1 at once (``cluster_factory(..., elect=1)``) rather than after the
# first of those timeouts.
PATIENT = Config(election_timeout_min=2000, election_timeout_max=3000, heartbeat_interval=50)


class Answer:
    """One raw HTTP answer."""

    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def code(self) -> str:
        return str(self.json["error"]["code"])


def request(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> Answer:
    """Send one request without following redirects."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        conn.close()


def leader_of(cluster: LocalCluster, timeout: float = 15.0) -> int:
    """Wait until every node follows one leader; return its id."""

    def agreed() -> int | None:
        views = [s.node.view.latest() for s in cluster.servers.values()]
        leaders = {m.current_leader for m in views if m is not None}
        terms = {m.current_term for m in views if m is not None}
        if None in views or len(leaders) != 1 or len(terms) != 1:
            return None
        (leader,) = leaders
        if leader is None or leader not in cluster.servers:
            return None
        m = cluster.servers[leader].node.view.latest()
        return leader if m is not None and m.state.value == "leader" else None

    return wait_until(agreed, timeout, "an agreed leader")


def follower_of(cluster: LocalCluster) -> int:
    leader = leader_of(cluster)
    return next(n for n in sorted(cluster.servers) if n != leader)


def make_cluster(ids: list[int], **kwargs: Any) -> LocalCluster:
    return LocalCluster(ids, raft=kwargs.pop("raft", RAFT), **kwargs)


@pytest.fixture
def cluster_factory() -> Iterator[Any]:
    """Build clusters that are closed when the test ends."""
    made: list[LocalCluster] = []

    def make(
        ids: list[int], init: bool = True, elect: int | None = None, **kwargs: Any
    ) -> LocalCluster:
        """``elect``: a node that starts the first election as soon as the cluster is
        formed (``TriggerElection``), instead of after an election timeout."""
        cluster = make_cluster(ids, **kwargs)
        made.append(cluster)
        if init:
            cluster.init()
            if elect is not None:
                cluster.servers[elect].node.raft.ask(TriggerElection(), timeout=10)
            leader_of(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


def secure_processes(
    place: Path, raft: dict[str, Any], http: dict[str, Any]
) -> Iterator[ProcessCluster]:
    """``serve`` processes in ``place`` (TCP with CURVE, ``SqliteStore`` fsync), every one
    killed and reaped when the generator ends (for fixtures: ``yield from ...``)."""
    made = ProcessCluster(place, secure=True, raft=raft, http=http, durability="fsync")
    try:
        yield made
    finally:
        made.close()  # kills and reaps every child, whatever happened
        for node in made.nodes.values():
            assert not node.alive()


def formed(http: HttpSettings) -> Iterator[LocalCluster]:
    """A formed 3-node cluster with a leader, closed when the generator ends (for
    fixtures: ``yield from formed(...)``)."""
    cluster = make_cluster([1, 2, 3], http=http)
    try:
        cluster.init()
        leader_of(cluster)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def kv3() -> Iterator[LocalCluster]:
    """A formed 3-node cluster shared by a module's tests (they use distinct keys and do
    not change the membership)."""
    yield from formed(HttpSettings(max_body_bytes=4096))


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A listening socket that accepts connections and never answers (a hung node)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture
def closed_url() -> str:
    """A loopback port nobody listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


class Served:
    """An ``http.server`` with ``handler`` on 127.0.0.1 and a port the OS chose, served
    by a thread of its own until :meth:`close`."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class LosingProxy:
    """An HTTP proxy on loopback in front of one node that loses answers: it forwards
    every request, and for the first ``lose`` writes sent in a session (a body with
    ``sequence``) it closes the connection instead of relaying the node's answer. The
    node did apply those writes: only their answers are lost, as when a connection
    breaks after the leader committed.

    Attributes:
        writes: every session write forwarded, as ``(client_id, sequence)``.
        lost: the ones whose answer was dropped.
    """

    def __init__(self, upstream: str, lose: int = 1) -> None:
        self.upstream = upstream
        self.lose = lose
        self.writes: list[tuple[int, int]] = []
        self.lost: list[tuple[int, int]] = []
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                body: Any = json.loads(data) if data else None
                answer = request(proxy.upstream, self.command, self.path, raw=data)
                if isinstance(body, dict) and "sequence" in body:
                    ids = (body["client_id"], body["sequence"])
                    with lock:
                        proxy.writes.append(ids)
                        drop = len(proxy.lost) < proxy.lose
                        if drop:
                            proxy.lost.append(ids)
                    if drop:
                        self.close_connection = True
                        return  # the node answered; the client never hears it
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if name not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.data)))
                self.end_headers()
                self.wfile.write(answer.data)

            do_GET = do_PUT = do_POST = do_DELETE = relay

        self.served = Served(Handler)
        self.url = self.served.url

    def close(self) -> None:
        self.served.close()


@pytest.fixture
def losing_proxy() -> Iterator[Any]:
    """Make :class:`LosingProxy` instances, closed when the test ends."""
    made: list[LosingProxy] = []

    def make(upstream: str, lose: int = 1) -> LosingProxy:
        made.append(LosingProxy(upstream, lose))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()
