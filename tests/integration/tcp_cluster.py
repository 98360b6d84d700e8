"""Drive Raft nodes that run in their own processes (``tcp_node.py``) over loopback TCP.

Every process is started on 127.0.0.1 with port 0 (it reports the port the OS chose),
in a temporary directory, and is killed and reaped by :meth:`ProcessCluster.close`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pykka_raft.net import generate_keypair

NODE_SCRIPT = Path(__file__).with_name("tcp_node.py")
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class NodeError(Exception):
    """A node answered a command with an error."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.kind = answer["error"]
        self.leader = answer.get("leader")
        super().__init__(f"{answer['error']}: {answer.get('message')}")


class NodeProcess:
    """One ``tcp_node.py`` process and its line protocol."""

    def __init__(self, node_id: int, args: list[str], log_path: Path) -> None:
        self.node_id = node_id
        self.log_path = log_path
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in reap()
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(NODE_SCRIPT), "--id", str(node_id), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.address = ""  # known once ready
        self.lock = threading.Lock()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the node's READY line, which names its address."""
        ready = self._line(timeout)
        if not ready.startswith("READY "):
            raise RuntimeError(f"node {self.node_id} did not start: {ready!r}; see {self.log_path}")
        self.address = ready.split()[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"node {self.node_id} said nothing for {timeout}s") from None
        if line is None:
            raise ConnectionError(f"node {self.node_id} exited ({self.proc.poll()})")
        return line

    def cmd(self, op: str, timeout: float = 40.0, **fields: Any) -> Any:
        """Send one command; return its ``ok`` value or raise :class:`NodeError`."""
        with self.lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
            self.proc.stdin.flush()
            answer = json.loads(self._line(timeout))
        if "error" in answer:
            raise NodeError(answer)
        return answer["ok"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int:
        """SIGKILL and reap; returns the exit status (``-9`` when the kill did it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=30)
        self.reap()
        return code

    def reap(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


class ProcessCluster:
    """Nodes in separate processes, with helpers that wait on conditions with deadlines."""

    def __init__(self, directory: Path, secure: bool = True, snapshot_every: int = 0) -> None:
        self.dir = directory
        self.keys = directory / "keys"
        self.secure = secure
        self.snapshot_every = snapshot_every
        self.nodes: dict[int, NodeProcess] = {}
        self.addresses: dict[int, str] = {}
        self.all: list[NodeProcess] = []

    def start(self, node_id: int, bind: str = "127.0.0.1:0") -> NodeProcess:
        """Start node ``node_id`` (keys made on first start); it knows no peer yet."""
        (node,) = self.start_all([node_id], bind)
        return node

    def start_all(self, ids: list[int], bind: str = "127.0.0.1:0") -> list[NodeProcess]:
        """Start the nodes ``ids`` together (their processes load at the same time) and
        wait until each is ready; missing key pairs are made before any of them starts."""
        if self.secure:
            for node_id in ids:
                if not (self.keys / f"node-{node_id}.key_secret").exists():
                    generate_keypair(self.keys, node_id)
        args = ["--bind", bind]
        args += ["--keys", str(self.keys)] if self.secure else ["--insecure"]
        if self.snapshot_every:
            args += ["--snapshot-every", str(self.snapshot_every)]
        nodes = []
        for node_id in ids:
            node = NodeProcess(node_id, args, self.dir / f"node{node_id}.log")
            self.all.append(node)
            nodes.append(node)
        for node in nodes:
            node.wait_ready()
            self.nodes[node.node_id] = node
            self.addresses[node.node_id] = node.address
        return nodes

    def restart(self, node_id: int) -> NodeProcess:
        """Start ``node_id`` again on the address it had (its MemStore starts empty)."""
        return self.start(node_id, self.addresses[node_id])

    def kill(self, node_id: int) -> int:
        node = self.nodes.pop(node_id)
        return node.kill()

    def close(self) -> None:
        for node in self.all:
            node.kill()
        self.nodes.clear()

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- forming and waiting ------------------------------------------------------------

    def form(self, ids: list[int]) -> int:
        """Start ``ids``, initialize them with each other's addresses, return the leader."""
        self.start_all(ids)
        book = {str(n): self.addresses[n] for n in ids}
        for node_id in ids:
            self.nodes[node_id].cmd("init", members=ids, addresses=book)
        return self.leader()

    def metrics(self) -> dict[int, dict[str, Any]]:
        """The Raft metrics of every running node that answers."""
        out = {}
        for node_id, node in list(self.nodes.items()):
            try:
                out[node_id] = node.cmd("metrics", timeout=10)
            except (NodeError, TimeoutError, ConnectionError):
                continue
        return out

    def wait(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.1)  # polling other processes' state, with a deadline

    def leader(self, among: list[int] | None = None, timeout: float = 30.0) -> int:
        """Wait until the running nodes (or ``among``) agree on one leader."""

        def agreed() -> int | None:
            metrics = self.metrics()
            ids = among if among is not None else list(self.nodes)
            if any(n not in metrics for n in ids):
                return None
            leaders = {metrics[n]["current_leader"] for n in ids}
            leader = leaders.pop() if len(leaders) == 1 else None
            if leader is None or leader not in ids or metrics[leader]["state"] != "leader":
                return None
            return int(leader)

        return self.wait(agreed, timeout, f"an agreed leader among {among or list(self.nodes)}")

    def write(self, key: str, value: Any, via: int | None = None, timeout: float = 40.0) -> int:
        """Write through ``via`` (default: any node), following ``ForwardToLeader``.

        Returns the log index of the applied write. Only definite refusals are retried.
        """
        deadline = time.monotonic() + timeout
        target = via if via is not None else next(iter(self.nodes))
        while True:
            try:
                answer = self.nodes[target].cmd("put", key=key, value=value)
                return int(answer["index"])
            except NodeError as exc:
                if exc.kind != "ForwardToLeader" or time.monotonic() > deadline:
                    raise
                if exc.leader is not None and exc.leader in self.nodes:
                    target = exc.leader
                else:
                    time.sleep(0.3)  # no leader known: an election is under way

    def wait_applied(self, index: int, ids: list[int], timeout: float = 30.0) -> None:
        self.wait(
            lambda: all(m.get("last_applied", 0) >= index for m in self._some(ids)),
            timeout,
            f"nodes {ids} to apply index {index}",
        )

    def _some(self, ids: list[int]) -> list[dict[str, Any]]:
        metrics = self.metrics()
        return [metrics.get(n, {}) for n in ids]
