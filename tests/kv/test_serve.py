"""``pykka-raft-kv serve`` as a real process: it reports its port, serves, logs with node
id, role and term, and stops cleanly on SIGTERM and Ctrl-C. Also clean shutdown of a node
with requests in flight, in-process."""

from __future__ import annotations

import logging
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from pykka_raft import Isolate, MembershipConfig, RaftMetrics, State
from pykka_raft.kv import Client, HttpSettings, KvServer, NodeConfig
from pykka_raft.kv import app as app_module
from pykka_raft.kv.auth import make_token_file
from pykka_raft.kv.errors import EXIT_NODE_STOPPED
from pykka_raft.kv.node import KvNode
from pykka_raft.testing import wait_until
from tests.kv.conftest import PATIENT, leader_of, request

pytestmark = pytest.mark.timeout(120)


class Serve:
    """A ``serve`` child process; killed in teardown whatever happens."""

    def __init__(self, args: list[str], log: Path, **popen: Any) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pykka_raft.kv", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            **popen,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def url(self, timeout: float = 30) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"serve printed no address; log:\n{self.log.read_text()}")
        assert line.startswith("node 1 serving http://127.0.0.1:"), line
        return line.split()[3]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(*args: str, **popen: Any) -> Serve:
        child = Serve(list(args), tmp_path / f"serve-{len(started)}.log", **popen)
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_one_node_then_stop_on_a_signal_and_restart_from_disk(
    serve: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    data = tmp_path / "data"
    args = ("--id", "1", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--insecure")
    child = serve(*args, "--data-dir", str(data))
    url = child.url()
    client = Client([url])
    assert client.init() == [{"node_id": 1, "members": [1]}]
    client.put("greeting", "hello")
    assert client.get("greeting") == "hello"
    child.proc.send_signal(sig)
    assert child.proc.wait(30) == 0
    log = child.log.read_text()
    assert "node=1 role=leader term=" in log
    assert "serving the HTTP API" in log and "stopping" in log and log.rstrip().endswith("stopped")
    assert "Traceback" not in log
    assert "INSECURE" in log  # the insecure network is logged loudly
    # The store was closed and its lock released: a new process opens the same directory
    # and has the data.
    again = serve(*args, "--data-dir", str(data))
    client = Client([again.url()])
    assert client.get("greeting") == "hello"
    assert client.status()["term"] >= 1


def test_serve_from_a_config_file(serve: Any, tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        'node_id = 1\nhttp_address = "127.0.0.1:0"\nstorage = "memory"\nnetwork = "local"\n'
        "[raft]\nheartbeat_interval = 40\n"
    )
    child = serve("--config", str(config))
    client = Client([child.url()])
    client.init()
    assert client.status()["node_id"] == 1


def test_paths_in_a_config_file_are_relative_to_the_file(serve: Any, tmp_path: Path) -> None:
    """Started from ``/``, the file's ``token_file`` and ``data_dir`` are found next to
    it; a path given as a flag stays relative to the working directory."""
    sub = tmp_path / "sub"
    sub.mkdir()
    make_token_file(sub / "tok")
    config = sub / "n.toml"
    config.write_text(
        'node_id = 1\nhttp_address = "127.0.0.1:0"\nnetwork = "local"\ndata_dir = "data"\n'
        '[http]\ntoken_file = "tok"\n'
    )
    child = serve("--config", str(config), cwd="/")
    url = child.url()
    token = (sub / "tok").read_text().strip()
    answer = request(url, "GET", "/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 200, child.log.read_text()
    assert (sub / "data").is_dir() and not (Path("/") / "data" / "node.json").exists()
    child.proc.terminate()
    assert child.proc.wait(30) == 0
    # A flag overrides the file and is relative to where serve runs.
    (tmp_path / "work").mkdir()
    again = serve("--config", str(config), "--data-dir", "here", cwd=tmp_path / "work")
    again.url()
    assert (tmp_path / "work" / "here").is_dir()


def test_a_locked_data_directory_is_refused(serve: Any, tmp_path: Path) -> None:
    args = ("--id", "1", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--insecure")
    first = serve(*args, "--data-dir", str(tmp_path / "data"))
    first.url()
    second = serve(*args, "--data-dir", str(tmp_path / "data"))
    assert second.proc.wait(30) == 2
    assert "cannot start node 1" in second.log.read_text()


MEMORY = ("--storage", "memory", "--network", "local")


def test_a_ready_file_that_cannot_be_written_stops_serve_with_exit_2(
    serve: Any, tmp_path: Path
) -> None:
    ready = tmp_path / "missing" / "ready.json"
    child = serve("--id", "1", "--http", "127.0.0.1:0", *MEMORY, "--ready-file", str(ready))
    assert child.proc.wait(30) == 2  # the node was stopped: nothing keeps the process
    log = child.log.read_text()
    assert f"error: --ready-file: cannot write {ready}: No such file" in log
    assert "Traceback" not in log and ".tmp" not in log
    assert "node 1 serving" not in log  # the ready file is written before that line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http", "127.0.0.1:0"], "node_id: required"),
        (["--id", "1", "--http", "127.0.0.1:0", "--network", "local"], "data_dir: required"),
        (["--id", "1", "--http", "127.0.0.1:0", "--storage", "memory"], "raft_address"),
        (
            ["--id", "1", "--http", "127.0.0.1:0", "--storage", "memory", "--raft", "h:1"],
            "keys_dir: required",
        ),
        (
            [
                *("--id", "1", "--http", "127.0.0.1:0", "--storage", "memory", "--raft", "h:1"),
                *("--keys-dir", "/nonexistent"),
            ],
            "keygen",
        ),
        (["--id", "1", "--http", "127.0.0.1:0", *MEMORY, "--peer", "2=,127.0.0.1:1"], "tcp"),
        (["--id", "1", "--http", "127.0.0.1:0", "--peer", "2"], "--peer"),
        (["--id", "1", "--http", "nowhere"], "host:port"),
        (["--id", "1", "--http", "0.0.0.0:8001", *MEMORY], "reach"),
    ],
)
def test_serve_refuses_what_it_cannot_do(serve: Any, args: list[str], message: str) -> None:
    child = serve(*args)
    assert child.proc.wait(30) == 2
    assert message in child.log.read_text()


def a_write_to_a_cut_off_leader(cluster: Any) -> tuple[int, Any, threading.Thread, list[Any]]:
    """Isolate the leader, then PUT to it from a thread: the write waits, as its entry can
    no longer commit. Returns the leader, its server, the thread and its answers."""
    leader = leader_of(cluster, timeout=30)
    server = cluster.servers[leader]
    cluster.network.router.ask(Isolate(leader))
    answers: list[Any] = []
    pending = threading.Thread(
        target=lambda: answers.append(request(server.url, "PUT", "/v1/kv/k", {"value": 1}))
    )
    pending.start()
    return leader, server, pending, answers


def test_a_stopping_node_answers_requests_in_flight(cluster_factory: Any) -> None:
    # The isolated leader must still lead when the write reaches it (see PATIENT). The
    # grace (5 s by default) is the window in which the refusal below is asked for.
    http = HttpSettings(request_timeout=30.0, shutdown_grace=3.0)
    cluster = cluster_factory([1, 2, 3], raft=PATIENT, elect=1, http=http)
    leader, server, pending, answers = a_write_to_a_cut_off_leader(cluster)
    # Polled: the view's waiters wake on metrics only, and neither counter is a metric.
    wait_until(lambda: server.app._inflight == 1, 10, "the write to be in flight")
    stopper = threading.Thread(target=lambda: cluster.stop_node(leader))
    stopper.start()
    # While it drains, new requests are refused, promptly and clearly.
    # Polled too: a wake-up on metrics would come only when the node stops after the grace
    # period, racing with the HTTP server's own stop.
    wait_until(lambda: server.app.draining, 10, "the node to drain")
    refused = request(server.url, "GET", "/v1/status")
    assert refused.status == 503 and refused.code == "shutting_down"
    stopper.join(60)
    pending.join(60)
    (answer,) = answers
    assert answer.status == 504 and answer.code == "outcome_unknown"


def test_health_checks_are_answered_while_every_write_hangs(cluster_factory: Any) -> None:
    # Two request threads: one may wait on the cluster, the other stays free for status.
    http = HttpSettings(request_timeout=30.0, threads=2, shutdown_grace=0.5)
    cluster = cluster_factory([1, 2, 3], raft=PATIENT, elect=1, http=http)
    _, server, stuck, answers = a_write_to_a_cut_off_leader(cluster)
    # Polled: neither the slot table nor its age is a metric anyone is woken on.
    wait_until(
        lambda: any(
            time.monotonic() - since >= app_module.SLOT_PATIENCE
            for since in list(server.app._slot_holders.values())
        ),
        10,
        "the write to hold its slot for longer than the patience",
    )
    refused = request(server.url, "PUT", "/v1/kv/other", {"value": 2}, timeout=5)
    assert refused.status == 503 and refused.code == "busy", refused.data
    assert refused.headers["retry-after"] == "1"
    for path in ("/v1/status", "/metrics", "/"):
        assert request(server.url, "GET", path, timeout=5).status == 200, path
    assert stuck.is_alive() and not answers  # the first write still hangs meanwhile


def test_requests_wait_their_turn_for_a_thread_while_the_cluster_answers(
    cluster_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A healthy cluster busy with more requests than threads queues them, refusing none
    # (patience raised so that a loaded machine's slow commit cannot refuse one).
    monkeypatch.setattr(app_module, "SLOT_PATIENCE", 30.0)
    cluster = cluster_factory([1, 2, 3], http=HttpSettings(threads=2))
    leader = leader_of(cluster, timeout=30)
    url = cluster.servers[leader].url
    statuses: list[int] = []

    def writer(n: int) -> None:
        for i in range(10):
            statuses.append(request(url, "PUT", f"/v1/kv/w{n}-{i}", {"value": i}).status)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    assert statuses == [200] * 60


@pytest.mark.parametrize(("flag", "expires"), [(["--session-timeout", "1"], True), ([], False)])
def test_the_session_timeout_is_a_serve_setting(serve: Any, flag: list[str], expires: bool) -> None:
    child = serve("--id", "1", "--http", "127.0.0.1:0", *MEMORY, *flag)
    url = child.url()
    Client([url]).init()
    client_id = request(url, "POST", "/v1/sessions").json["client_id"]
    body = {"value": 1, "client_id": client_id, "sequence": 1}
    assert request(url, "PUT", "/v1/kv/k", body).status == 200
    time.sleep(1.5)  # the scenario: the session stays idle for longer than one second
    later = request(url, "PUT", "/v1/kv/k", {**body, "sequence": 2})
    if expires:  # its own entry moved the log's clock past the session's timeout
        assert later.status == 409 and later.code == "session_expired", later.data
    else:  # the default timeout is an hour
        assert later.status == 200, later.data


def test_max_sessions_is_a_serve_setting(serve: Any) -> None:
    child = serve("--id", "1", "--http", "127.0.0.1:0", *MEMORY, "--max-sessions", "2")
    url = child.url()
    Client([url]).init()
    first, second, third = (
        request(url, "POST", "/v1/sessions").json["client_id"] for _ in range(3)
    )  # the third ends the first, the least recently active
    body = {"value": 1, "client_id": first, "sequence": 1}
    ended = request(url, "PUT", "/v1/kv/k", body)
    assert ended.status == 409 and ended.code == "session_expired", ended.data
    for client_id in (second, third):
        body = {"value": 1, "client_id": client_id, "sequence": 1}
        assert request(url, "PUT", "/v1/kv/k", body).status == 200


def test_serve_exits_when_its_storage_fails(serve: Any, tmp_path: Path) -> None:
    # A file size limit makes the SqliteStore's writes fail (EFBIG; Python ignores
    # SIGXFSZ) once its files grow past it: the Raft node stops, and so does the process,
    # with its own exit code, so that a supervisor restarts it.
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

    args = ("--id", "1", "--http", "127.0.0.1:0", "--network", "local")
    child = serve(*args, "--data-dir", str(tmp_path / "data"), preexec_fn=limit_file_size)
    url = child.url()
    Client([url]).init()
    big = {"value": "x" * 400_000}
    answers = []
    for n in range(20):
        try:
            answers.append(request(url, "PUT", f"/v1/kv/big-{n}", big).status)
        except OSError:
            break  # the process exited meanwhile
        if answers[-1] != 200:
            break
    assert answers[-1:] != [200], answers
    assert child.proc.wait(30) == EXIT_NODE_STOPPED
    log = child.log.read_text()
    assert "storage failed" in log and "stopped on its own" in log


def test_a_node_restarted_on_another_raft_port_says_its_peers_cannot_reach_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Port 0 on a restart binds a new port, while the membership (which the peers send
    to) keeps the old one: the node says so at WARNING. Restarted on its recorded port, it
    says nothing."""
    config = NodeConfig(
        1, "127.0.0.1:0", raft_address="127.0.0.1:0", insecure=True, data_dir=str(tmp_path)
    )
    server = KvServer.start(config)
    try:
        Client([server.url]).init()
        node = server.node
        wait_until(lambda: _recorded(node) is not None, 10, "the membership to hold the address")
        first = node.raft_address
        assert _recorded(node) == first
    finally:
        server.stop()
    warned = "its peers will not reach it"
    with caplog.at_level(logging.WARNING, logger="pykka_raft.kv"):
        server = KvServer.start(config)  # port 0 again
        try:
            moved = server.node.raft_address
            assert moved != first
            # Polled: the node's registrar thread checks once the node has metrics.
            wait_until(lambda: warned in caplog.text, 10, "the warning")
            assert first in caplog.text and moved in caplog.text
            # It names the remedy, with the node's new addresses.
            remedy = f"move --id 1 --http {server.node.http_address} --raft {moved}"
            assert remedy in caplog.text, caplog.text
        finally:
            server.stop()
        caplog.clear()
        server = KvServer.start(attrs.evolve(config, raft_address=first))
        try:
            node = server.node
            wait_until(lambda: _recorded(node) is not None, 10, "the node's start")
            node._warn_if_moved()  # the registrar's check, run here: it has metrics
            assert warned not in caplog.text, caplog.text
        finally:
            server.stop()


def _recorded(node: Any) -> str | None:
    latest = node.view.latest()
    return None if latest is None else latest.membership_config.address_of(node.node_id)


@pytest.mark.parametrize(
    ("told", "recorded", "moved"),
    [
        ("vm:9001", "vm:9001", False),  # a host name: the node binds the address it resolves to
        ("127.0.0.1:0", "127.0.0.1:9001", False),  # port 0 the first time: what it bound
        ("LOCALHOST:9001", "127.0.0.1:9001", False),
        ("vm:9001", "vm:9002", True),
        ("127.0.0.1:0", "127.0.0.1:9002", True),
    ],
)
def test_the_moved_check_knows_the_nodes_own_names(
    caplog: pytest.LogCaptureFixture, told: str, recorded: str, moved: bool
) -> None:
    """The address the membership records is the node's own if it is the one the node was
    told to listen on or the one it bound (ZeroMQ reports the resolved IP)."""
    node = KvNode(NodeConfig(1, "127.0.0.1:0", raft_address=told, insecure=True, storage="memory"))
    node.raft_address = "127.0.0.1:9001"  # as bound
    membership = MembershipConfig((1,), addresses=((1, recorded),))
    node.view.tell(RaftMetrics(1, State.FOLLOWER, 1, 0, 0, 0, None, membership))
    with caplog.at_level(logging.WARNING, logger="pykka_raft.kv"):
        node._warn_if_moved()
    assert ("its peers will not reach it" in caplog.text) is moved, caplog.text
