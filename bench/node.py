"""One node process of the TCP benchmark: ``python -m bench.node '<json options>'``.

The process runs one node of the system under test (pykka_raft or PySyncObj) and the same
client gateway for both: a ZeroMQ ROUTER socket on 127.0.0.1 that receives batches of
writes from the client process (:mod:`bench.client`), hands each one to the node, and
sends the answers back in batches once the node answered them (after the leader applied
the write). So both systems serve the same client through the same code; only what is
between "a write arrives" and "the write is answered" differs.

The coordinator drives the process with one JSON command per line on stdin and reads one
JSON answer per line on stdout; lines with an ``event`` key are announcements the process
makes on its own (``{"event": "leader", "t": <monotonic>, "term": n}`` when this node
becomes leader), written under a lock so they never interleave with an answer.

Options: ``system`` (``pykka_raft``, ``pysyncobj``, or ``shape``: pykka_raft's threads
with no Raft work, :mod:`bench.shape`), ``id`` (1..n), ``store``
(pykka_raft: ``mem``, ``os``, ``fsync``; PySyncObj: ``mem``, ``journal``), ``data`` (the
node's directory), ``timers`` (election timeout min and max and heartbeat, ms);
``machine`` (``SqliteStore``: ``memory``, the default, keeps the key-value dictionary in
memory as PySyncObj does; ``durable`` uses the store's durable key-value machine);
pykka_raft: ``insecure`` and ``keys`` (the CURVE key directory); PySyncObj: ``address``,
``all`` (every node's address) and ``batch`` (``appendEntriesUseBatch``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from bench.common import WakePipe, received

_OUT = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    """One line on stdout, whole (answers and events come from different threads)."""
    line = json.dumps(obj) + "\n"
    with _OUT:
        sys.stdout.write(line)
        sys.stdout.flush()


def digest(data: dict[Any, Any]) -> str:
    """A short fingerprint of a key-value state machine's contents."""
    h = hashlib.sha256()
    for key in sorted(data, key=repr):
        h.update(repr((key, data[key])).encode())
    return h.hexdigest()[:16]


# --- the client gateway -------------------------------------------------------------------


class Gateway:
    """Receives write batches from clients and answers them in batches.

    A frame from a client is a msgpack list of ``[id, key, value]``; the answer frame is a
    list of ``[id, error]`` with ``error`` ``None`` for a write the node answered with
    success, else the error's class name. ``submit(key, value, client, id)`` starts one
    write and must make sure :meth:`answer` is called once for it, on any thread.
    """

    def __init__(self, submit: Callable[[str, Any, bytes, int], None]) -> None:
        self.submit = submit
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = endpoint.removeprefix("tcp://")
        self.answers: collections.deque[tuple[bytes, int, str | None]] = collections.deque()
        self.waker = WakePipe()
        threading.Thread(target=self._loop, name="gateway", daemon=True).start()

    def answer(self, client: bytes, write_id: int, error: str | None) -> None:
        """Queue one answer; wake the gateway thread if it is not awake already."""
        self.answers.append((client, write_id, error))
        self.waker.wake()

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self.waker.r, zmq.POLLIN)
        socket, unpack, submit = self.socket, msgpack.unpackb, self.submit
        while True:
            ready = dict(poller.poll())
            if socket in ready:
                for client, frame in received(socket, multipart=True):
                    for write_id, key, value in unpack(frame):
                        submit(key, value, client, write_id)
            if self.waker.r in ready:
                self.waker.drain()
                by_client: dict[bytes, list[tuple[int, str | None]]] = {}
                answers = self.answers
                while answers:
                    client, write_id, error = answers.popleft()
                    by_client.setdefault(client, []).append((write_id, error))
                for client, items in by_client.items():
                    socket.send_multipart([client, msgpack.packb(items)])


# --- pykka_raft ----------------------------------------------------------------------------


class _Reply:
    """What the Raft node answers a write through (a :class:`pykka_raft.Reply`)."""

    __slots__ = ("answer", "client", "write_id")

    def __init__(
        self, answer: Callable[[bytes, int, str | None], None], client: bytes, write_id: int
    ) -> None:
        self.answer = answer
        self.client = client
        self.write_id = write_id

    def set(self, value: Any = None) -> None:
        self.answer(self.client, self.write_id, None)

    def set_exception(self, error: BaseException | None = None) -> None:
        self.answer(self.client, self.write_id, type(error).__name__)


class _LeaderWatch:
    """The Raft node's metrics subscriber: announces each term this node leads."""

    def __init__(self) -> None:
        from pykka_raft import State

        self.leader = State.LEADER
        self.led: set[int] = set()

    def tell(self, metrics: Any) -> None:
        if metrics.state is self.leader and metrics.current_term not in self.led:
            self.led.add(metrics.current_term)
            emit({"event": "leader", "t": time.monotonic(), "term": metrics.current_term})


class RaftNode:
    def __init__(self, options: dict[str, Any]) -> None:
        from pykka_raft import (
            Call,
            ClientPayload,
            Config,
            GetMetrics,
            KeyValueStateMachine,
            MemStore,
            Put,
            Raft,
            Register,
            ResponseMode,
            SqliteStore,
        )
        from pykka_raft.net import CurveKeys, TcpNetwork

        self._call, self._put, self._new = Call, Put, ClientPayload.new
        self._applied = ResponseMode.APPLIED

        timers = options["timers"]
        self.config = Config(
            election_timeout_min=timers["election_min_ms"],
            election_timeout_max=timers["election_max_ms"],
            heartbeat_interval=timers["heartbeat_ms"],
        )
        node_id = int(options["id"])
        keys = None if options.get("insecure") else CurveKeys.from_dir(options["keys"], node_id)
        self.network = TcpNetwork.start(
            node_id, "127.0.0.1:0", config=self.config, keys=keys, insecure=keys is None
        )
        store = options["store"]
        if store == "mem":
            self.storage = MemStore.start(KeyValueStateMachine(keep_history=False))
        elif options.get("machine") == "durable":  # the store's durable key-value machine
            self.storage = SqliteStore.start(options["data"], node_id, durability=store)
        else:  # the log on disk, the dictionary in memory (rebuilt from the log at start)
            self.storage = SqliteStore.start(
                options["data"],
                node_id,
                KeyValueStateMachine(keep_history=False),
                durability=store,
            )
        self.sqlite = store != "mem"
        self.raft = Raft.start(node_id, self.config, self.network, self.storage, _LeaderWatch())
        self.network.ask(Register(node_id, self.raft))
        self.raft.ask(GetMetrics(), timeout=30)  # answered once the node has started
        self.raft_address = self.network.address
        self.gateway = Gateway(self.submit)

    def submit(self, key: str, value: Any, client: bytes, write_id: int) -> None:
        payload = self._new(self._put(key, value), self._applied)
        self.raft.tell(self._call(payload, _Reply(self.gateway.answer, client, write_id)))

    def command(self, op: str, arg: Any) -> Any:
        from pykka_raft import GetMetrics, InitWithConfig, State

        if op == "init":
            book = {int(k): v for k, v in arg.items()}
            self.raft.ask(InitWithConfig(sorted(book), book), timeout=30)
            return None
        if op == "state":
            m = self.raft.ask(GetMetrics(), timeout=30)
            return {
                "leader": m.state is State.LEADER,
                "term": m.current_term,
                "last_applied": m.last_applied,
            }
        if op == "digest":
            m = self.raft.ask(GetMetrics(), timeout=30)
            data = self.storage.proxy().dump_state_machine().get(timeout=30)
            return {"last_applied": m.last_applied, "digest": digest(data), "keys": len(data)}
        if op == "stats":
            if not self.sqlite:
                return {}
            s = self.storage.proxy().commit_stats().get(timeout=30)
            return {"commits": s.commits, "synced_commits": s.synced_commits, "entries": s.entries}
        raise ValueError(op)


# --- PySyncObj ----------------------------------------------------------------------------


class PsoNode:
    def __init__(self, options: dict[str, Any]) -> None:
        from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

        timers = options["timers"]
        settings: dict[str, Any] = {
            "dynamicMembershipChange": False,
            "raftMinTimeout": timers["election_min_ms"] / 1000,
            "raftMaxTimeout": timers["election_max_ms"] / 1000,
            "appendEntriesPeriod": timers["heartbeat_ms"] / 1000,
            "appendEntriesUseBatch": bool(options.get("batch", True)),
            "onStateChanged": self._state_changed,
        }
        if options["store"] == "journal":  # on disk, never fsynced
            settings["journalFile"] = os.path.join(options["data"], "journal.bin")
            settings["fullDumpFile"] = os.path.join(options["data"], "dump.bin")
            os.makedirs(options["data"], exist_ok=True)
        self.success = FAIL_REASON.SUCCESS
        self.term = 0

        class KV(SyncObj):  # type: ignore[misc]
            def __init__(self, address: str, partners: list[str]) -> None:
                super().__init__(address, partners, SyncObjConf(**settings))
                self.data: dict[str, Any] = {}

            @replicated  # type: ignore[misc]
            def put(self, key: str, value: Any) -> None:
                self.data[key] = value

        self.address = options["address"]
        self.obj = KV(self.address, [a for a in options["all"] if a != self.address])
        self.raft_address = self.address
        self.gateway = Gateway(self.submit)

    def _state_changed(self, old: int, new: int) -> None:
        if new == 2:  # pysyncobj's _RAFT_STATE.LEADER
            emit({"event": "leader", "t": time.monotonic(), "term": self.obj.raftCurrentTerm})

    def submit(self, key: str, value: Any, client: bytes, write_id: int) -> None:
        obj, answer = self.obj, self.gateway.answer
        if not obj._isLeader():  # as pykka_raft's ForwardToLeader: refused at once
            answer(client, write_id, "NotLeader")
            return
        success = self.success

        def callback(result: Any, error: Any) -> None:
            answer(client, write_id, None if error == success else f"FAIL_REASON {error}")

        obj.put(key, value, callback=callback)

    def command(self, op: str, arg: Any) -> Any:
        obj = self.obj
        if op == "init":
            return None
        if op == "state":
            return {
                "leader": obj._isLeader(),
                "term": obj.raftCurrentTerm,
                "last_applied": obj.raftLastApplied,
            }
        if op == "digest":
            for _ in range(100):
                try:
                    data = dict(obj.data)
                    break
                except RuntimeError:  # changed while copied: try again
                    time.sleep(0.001)
            return {"last_applied": obj.raftLastApplied, "digest": digest(data), "keys": len(data)}
        if op == "stats":
            return {}
        raise ValueError(op)


# --- the process --------------------------------------------------------------------------


def main(options: dict[str, Any]) -> None:
    """``READY``, then one answer per command line, until ``quit`` or end of input."""
    dump_profile: Callable[[], None] | None = None
    if options.get("profile"):
        from bench.profiling import profile_threads

        dump_profile = profile_threads(options["profile"])
    node: Any
    if options["system"] == "pykka_raft":
        node = RaftNode(options)
    elif options["system"] == "shape":
        from bench.shape import ShapeNode

        node = ShapeNode(options, Gateway, emit)
    else:
        node = PsoNode(options)
    emit({"ready": True, "raft": node.raft_address, "gateway": node.gateway.address})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            break
        if op == "threads":  # native thread id -> Python thread name
            emit({"ok": {str(t.native_id): t.name for t in threading.enumerate()}})
            continue
        if op == "dump_profile":
            if dump_profile is not None:
                dump_profile()
            emit({"ok": None})
            continue
        try:
            answer = {"ok": node.command(op, command.get("arg"))}
        except Exception as exc:
            answer = {"error": repr(exc)}
        emit(answer)
    os._exit(0)  # PySyncObj and Pykka keep threads; the coordinator is done with us


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
