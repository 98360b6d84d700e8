"""Key-value nodes as local processes: for ``demo``, ``local-cluster``, the tests and the
benchmark.

Each node is a ``pykka-raft-kv serve`` child process on 127.0.0.1 with its own data
directory (``SqliteStore``), a TOML configuration file, a log file, and CURVE keys in a
shared key directory (or ``insecure``). A node's first start binds port 0 for its HTTP
and Raft endpoints and reports the ports the system chose in a ready file; a restart
binds the same ports again, as a real node keeps its addresses. Children watch their
parent and stop if it goes away, and :meth:`ProcessCluster.close` kills and reaps every
child it started.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pykka_raft.kv.auth import load_tokens
from pykka_raft.kv.client import Client
from pykka_raft.kv.config import endpoint
from pykka_raft.kv.errors import KeyNotFound, KvError
from pykka_raft.kv.node_process import NodeProcess, toml_table, wait
from pykka_raft.kv.store import node_key
from pykka_raft.kv.transport import fetch_json


class ProcessCluster:
    """Key-value nodes in local processes, in one working directory.

    Args:
        root: the working directory (keys, data directories, configurations, logs).
        secure: CURVE keys (made on first start of each node) or ``insecure``.
        raft: ``[raft]`` settings for every node.
        http: ``[http]`` settings for every node (with a ``token_file``, :meth:`client`
            and :meth:`statuses` send its first token).
        durability: ``"fsync"`` or ``"os"``.
        storage: ``"sqlite"`` (the default) or ``"memory"`` (benchmarks of the layers
            above the disk).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        secure: bool = True,
        raft: Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
        durability: str = "fsync",
        storage: str = "sqlite",
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keys_dir = self.root / "keys"
        self.secure = secure
        self.raft = dict(raft or {})
        self.http = dict(http or {})
        token_file = self.http.get("token_file")
        self.token = load_tokens(str(token_file))[0] if token_file else None
        self.durability = durability
        self.storage = storage
        self.nodes: dict[int, NodeProcess] = {}

    def data_dir(self, node_id: int) -> Path:
        """Node ``node_id``'s data directory."""
        return self.root / f"node-{node_id}"

    def node(self, node_id: int) -> NodeProcess:
        """The process of ``node_id`` (made, not started, on first use)."""
        if node_id not in self.nodes:
            config = self.root / f"node-{node_id}.toml"
            top: dict[str, Any] = {
                "node_id": node_id,
                "data_dir": str(self.data_dir(node_id)),
                "storage": self.storage,
                "network": "tcp",
                "durability": self.durability,
            }
            if self.secure:
                top["keys_dir"] = str(self.keys_dir)
            else:
                top["insecure"] = True
            text = toml_table(None, top)
            if self.raft:
                text += toml_table("raft", self.raft)
            if self.http:
                text += toml_table("http", self.http)
            config.write_text(text)
            node = NodeProcess(
                node_id,
                config,
                self.root / f"node-{node_id}.ready",
                self.root / f"node-{node_id}.log",
            )
            node.http, node.raft = self.recorded(node_id) or (None, None)
            self.nodes[node_id] = node
        return self.nodes[node_id]

    def recorded(self, node_id: int) -> tuple[str, str] | None:
        """The HTTP and Raft addresses node ``node_id`` last served on in this directory
        (from its ready file), if it holds its data: a restart must use them, since its
        peers know it by them."""
        try:
            report = json.loads((self.root / f"node-{node_id}.ready").read_text())
            addresses = (str(report["http"]), str(report["raft"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return addresses if self.data_dir(node_id).is_dir() else None

    def earlier_nodes(self) -> list[int]:
        """The nodes of a cluster an earlier run left in this directory (data and
        addresses), by id."""
        ids = []
        for path in self.root.glob("node-*.ready"):
            number = path.name[len("node-") : -len(".ready")]
            if number.isdigit() and self.recorded(int(number)) is not None:
                ids.append(int(number))
        return sorted(ids)

    def resume(self, ids: Iterable[int], timeout: float = 60.0) -> int:
        """Start again the nodes ``ids`` an earlier run left here, on their addresses
        (no ``init``: their data holds the cluster), and return the leader's id.

        The addresses are those of each node's ready file, unless the cluster records
        others: a node that was moved (``move``) while it ran outside this launcher is
        restarted on the addresses the leader's directory holds for it."""
        members = sorted(ids)
        deadline = time.monotonic() + timeout
        self.start_all(members, timeout)
        moved = self.recorded_elsewhere(members, max(deadline - time.monotonic(), 1.0))
        for node_id, (http, raft) in sorted(moved.items()):
            node = self.nodes[node_id]
            node.kill(signal.SIGTERM)
            node.http, node.raft = http, raft
        if moved:
            self.start_all(sorted(moved), timeout)
        return self.leader(members, max(deadline - time.monotonic(), 1.0))

    def recorded_elsewhere(self, ids: Iterable[int], timeout: float) -> dict[int, tuple[str, str]]:
        """The nodes of ``ids`` that the cluster records at other addresses than they
        serve on, with those addresses (``{id: (http, raft)}``): the directory's records,
        read through the log (a new leader's own view may not have applied them yet) once
        a node leads within ``timeout`` (none found, or the reads fail: ``{}``)."""
        members = list(ids)

        def a_leader() -> int | None:
            statuses = self.statuses(members).items()
            return next((n for n, s in statuses if s.get("state") == "leader"), None)

        until = time.monotonic() + timeout
        try:
            leader = wait(a_leader, timeout, "a leader", poll=0.1)
        except TimeoutError:
            return {}  # leader() says what is wrong
        client = self.client([leader], deadline=max(until - time.monotonic(), 1.0))
        moved = {}
        for node_id in members:
            try:
                record = client.get(node_key(node_id))
            except KeyNotFound:
                continue  # not recorded (yet): its own addresses stand
            except KvError:
                return {}  # leader() says what is wrong
            if not isinstance(record, dict):
                continue
            http, raft = record.get("http"), record.get("raft")
            node = self.nodes[node_id]
            if not isinstance(http, str) or not isinstance(raft, str):
                continue
            if (endpoint(http), endpoint(raft)) != (
                endpoint(node.http or ""),
                endpoint(node.raft or ""),
            ):
                moved[node_id] = (http, raft)
        return moved

    def start(self, node_id: int, timeout: float = 60.0) -> NodeProcess:
        """Start node ``node_id`` (pristine the first time; from its directory after)."""
        (node,) = self.start_all([node_id], timeout)
        return node

    def start_all(self, ids: Iterable[int], timeout: float = 60.0) -> list[NodeProcess]:
        """Start the nodes ``ids`` together (their processes load at the same time) and
        wait until every one serves, each for at most ``timeout`` seconds. Missing key
        pairs are made first, so that no node reads a key file while it is written."""
        members = list(ids)
        for node_id in members:
            if self.secure and not (self.keys_dir / f"node-{node_id}.key_secret").exists():
                from pykka_raft.net import generate_keypair

                generate_keypair(self.keys_dir, node_id)
        nodes = [self.node(node_id) for node_id in members]
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_serving(timeout)
        return nodes

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> int:
        """Signal a node and reap it; its exit status."""
        return self.nodes[node_id].kill(sig)

    def running(self) -> list[int]:
        """The ids of the nodes whose process runs."""
        return sorted(n for n, p in self.nodes.items() if p.alive())

    def urls(self, ids: Iterable[int] | None = None) -> list[str]:
        """The base URLs of ``ids`` (default: every running node)."""
        return [self.nodes[n].url for n in (self.running() if ids is None else ids)]

    def client(self, ids: Iterable[int] | None = None, **kwargs: Any) -> Client:
        """A client of ``ids`` (default: every running node)."""
        return Client(self.urls(ids), **{"token": self.token, **kwargs})

    def form(self, ids: Iterable[int], timeout: float = 60.0) -> int:
        """Start ``ids``, form them into a cluster, and return the leader's id."""
        members = sorted(ids)
        self.start_all(members, timeout)
        self.client(members).init(members)
        return self.leader(members, timeout)

    def statuses(self, ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """``/v1/status`` of every running node (or ``ids``) that answers."""
        out: dict[int, dict[str, Any]] = {}
        for node_id in self.running() if ids is None else ids:
            try:
                url = self.nodes[node_id].url
                out[node_id] = fetch_json(url + "/v1/status", 2.0, self.token)
            except (OSError, KvError, ValueError):
                continue
        return out

    def leader(self, among: Iterable[int] | None = None, timeout: float = 60.0) -> int:
        """Wait until the running nodes (or ``among``) agree on one leader, in one term,
        and it says it leads; return its id."""

        def agreed() -> int | None:
            ids = list(self.running() if among is None else among)
            statuses = self.statuses(ids)
            if not ids or len(statuses) < len(ids):
                return None
            views = {(s.get("leader_id"), s.get("term")) for s in statuses.values()}
            if len(views) != 1:
                return None
            ((leader, _term),) = views
            if leader not in statuses or statuses[leader].get("state") != "leader":
                return None
            return int(leader)

        try:
            return wait(agreed, timeout, "the nodes to agree on a leader", poll=0.1)
        except TimeoutError as exc:
            ids = list(self.running() if among is None else among)
            raise TimeoutError(f"{exc}: {self.disagreement(ids)}") from None

    def disagreement(self, ids: Iterable[int]) -> str:
        """Why ``ids`` do not agree on a leader: who leads whom, and for each node that
        does not follow the leader, the WARNING lines of its log (or where its log is)."""
        members = list(ids)
        statuses = self.statuses(members)
        leaders = sorted(
            (n for n, s in statuses.items() if s.get("state") == "leader"),
            key=lambda n: statuses[n].get("term") or 0,
            reverse=True,
        )
        view = (leaders[0], statuses[leaders[0]].get("term")) if leaders else None
        following = [n for n, s in statuses.items() if (s.get("leader_id"), s.get("term")) == view]
        parts = [
            f"node {view[0]} leads in term {view[1]} (followed by nodes "
            f"{', '.join(map(str, following))})"
            if view
            else "no node leads"
        ]
        for node_id in members:
            if node_id in following:
                continue
            status = statuses.get(node_id)
            seen = "it does not answer"
            if status is not None:
                leader = status.get("leader_id") or "none"
                seen = f"it sees leader {leader} in term {status.get('term')}"
            node = self.nodes[node_id]
            lines = node.warnings()
            said = (
                f"its log {node.log_file} says:\n    " + "\n    ".join(lines)
                if lines
                else f"its log: {node.log_file}"
            )
            parts.append(f"node {node_id} does not follow: {seen}; {said}")
        return "; ".join(parts)

    def wait_applied(self, index: int, ids: Iterable[int], timeout: float = 60.0) -> None:
        """Wait until each of ``ids`` has applied ``index``."""
        members = list(ids)

        def done() -> bool:
            statuses = self.statuses(members)
            return len(statuses) == len(members) and all(
                (s.get("last_applied") or 0) >= index for s in statuses.values()
            )

        wait(done, timeout, f"nodes {members} to apply index {index}", poll=0.1)

    def close(self) -> None:
        """Kill and reap every node."""
        for node in self.nodes.values():
            node.reap()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
