"""The shape's floor: pykka_raft's threads and hand-offs with no Raft work in them.

A node of this system has the threads a pykka_raft node has, and passes a write between
them the way pykka_raft does, but does nothing else: no terms, no elections, no checks,
no codec. It measures what the library's shape costs on its own (a Pykka actor for the
node, another for the storage, an I/O thread owning ZeroMQ sockets, libzmq's own I/O
thread), so a target can be compared with what that shape allows on the same machine in
the same run. Node 1 leads from the start and never changes.

A write's path, as in pykka_raft (docs/architecture.md):

    gateway --(queue + one wake per burst)--> node actor --> storage actor (append)
    --> node actor --> I/O thread --> ZeroMQ --> follower's I/O thread --> its node actor
    --> its storage actor (append) --> its node actor --> its I/O thread --> ZeroMQ
    --> leader's I/O thread --> node actor (commit by majority) --> storage actor (apply)
    --> node actor --> the write's reply (the gateway)

What it leaves out, which pykka_raft does: terms and votes, log matching, limits on what
is in flight, the codec's checks, the client API's objects, CURVE (the floor runs without
it; CURVE cost pykka_raft 6-8% in the published runs), metrics. Followers learn the commit
index from the next request or a heartbeat every ``heartbeat_ms``, and apply as well.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import pykka
import zmq

from bench.common import WakePipe, received

Answer = Callable[[bytes, int, "str | None"], None]

_REQUEST, _HEARTBEAT = 0, 1


class ShapeStore(pykka.ThreadingActor):
    """Appends entries to a list and applies them to a dictionary, runs what the message
    asks to run next on this thread (the lean variant's answers), and tells the node."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[Any] = []
        self.data: dict[Any, Any] = {}

    def on_receive(self, message: Any) -> None:
        kind, entries, node, then = message
        if kind == "append":
            self.log.extend(entries)
        else:
            data = self.data
            for _, key, value in entries:
                data[key] = value
        if then is not None:
            then()
        node.tell((kind, entries))


class _Io:
    """The I/O thread: a ROUTER for requests from the leader, a DEALER to each peer;
    other threads hand it frames through a queue and a wake-up pipe."""

    def __init__(self, node_id: int) -> None:
        self.context = zmq.Context()  # its own, as pykka_raft's network has (and I/O thread)
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 0)  # never drop an acknowledgement
        self.router.bind("tcp://127.0.0.1:*")
        self.address = self.router.getsockopt_string(zmq.LAST_ENDPOINT).removeprefix("tcp://")
        self.dealers: dict[int, zmq.Socket[bytes]] = {}
        self.outbox: collections.deque[tuple[Any, ...]] = collections.deque()
        self.waker = WakePipe()
        self.node: Any = None
        self.thread = threading.Thread(target=self._run, name=f"raft-net-{node_id}", daemon=True)

    def submit(self, item: tuple[Any, ...]) -> None:
        """From any thread: ``("connect", book)``, ``("peer", id, frame)`` (to a peer's
        ROUTER), ``("back", identity, frame)`` (an answer through our ROUTER) or
        ``("stop",)``."""
        self.outbox.append(item)
        self.waker.wake()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.waker.r, zmq.POLLIN)
        by_socket: dict[Any, int] = {}
        node, outbox, router = self.node, self.outbox, self.router
        while True:
            events = dict(poller.poll())
            if self.waker.r in events:
                self.waker.drain()
            while outbox:
                item = outbox.popleft()
                if item[0] == "stop":
                    self.context.destroy(linger=0)
                    return
                if item[0] == "peer":
                    self.dealers[item[1]].send(item[2])
                elif item[0] == "back":
                    router.send_multipart([item[1], item[2]])
                else:
                    for peer, address in item[1].items():
                        dealer = self.context.socket(zmq.DEALER)
                        dealer.setsockopt(zmq.LINGER, 0)
                        dealer.setsockopt(zmq.SNDHWM, 0)  # never block the I/O thread
                        dealer.connect(f"tcp://{address}")
                        self.dealers[peer] = dealer
                        by_socket[dealer] = peer
                        poller.register(dealer, zmq.POLLIN)
            if router in events:
                for identity, frame in received(router, multipart=True):
                    node.tell(("request", identity, frame))
            for sock in events:
                peer = by_socket.get(sock)
                if peer is not None:
                    for frame in received(sock):
                        node.tell(("ack", peer, frame))


class _Inbox:
    """Writes from the gateway's thread: a queue, and one wake-up message per burst (as
    pykka_raft's ``RaftRef`` does with ``WakeForClients``)."""

    def __init__(self) -> None:
        self.queue: collections.deque[tuple[Any, Any, Any]] = collections.deque()
        self.woken = False
        self.ref: Any = None

    def write(self, key: Any, value: Any, reply: Any) -> None:
        self.queue.append((key, value, reply))
        if not self.woken:
            self.woken = True
            self.ref.tell(("wake",))


class ShapeRaft(pykka.ThreadingActor):
    """The node actor: on the leader it batches writes, sends them once stored, counts
    acknowledgements and applies; on a follower it stores what it receives and answers."""

    def __init__(self, node_id: int, io: _Io, inbox: _Inbox, lean: bool) -> None:
        super().__init__()
        self.node_id = node_id
        self.leader = node_id == 1
        self.lean = lean
        self.io = io
        self.storage = ShapeStore.start()
        self.inbox = inbox
        self.log: dict[int, tuple[int, Any, Any]] = {}
        self.last = 0  # the last index given (leader) or stored (follower)
        self.stored = 0  # the last index the storage holds
        self.appending = False
        self.replies: dict[int, Any] = {}
        self.match: dict[int, int] = {}
        self.sent: dict[int, int] = {}
        self.commit = 0
        self.applied = 0
        self.applying = False
        self.answering: list[Any] = []  # the replies of the apply in flight
        self.waiting: collections.deque[tuple[bytes, int]] = collections.deque()  # follower

    def on_receive(self, message: Any) -> None:
        kind = message[0]
        if kind == "wake":
            self.inbox.woken = False
            self._append()
        elif kind == "append":
            self._stored(message[1])
        elif kind == "apply":
            self._applied(message[1])
        elif kind == "request":
            self._request(message[1], message[2])
        elif kind == "ack":
            self._ack(message[1], message[2])
        elif kind == "tick":
            if self.leader:
                frame = msgpack.packb([_HEARTBEAT, self.commit])
                for peer in self.sent:
                    self.io.submit(("peer", peer, frame))
        elif kind == "peers":
            self.match = dict.fromkeys(message[1], 0)
            self.sent = dict.fromkeys(message[1], 0)

    # --- leader -----------------------------------------------------------------------

    def _append(self) -> None:
        queue = self.inbox.queue
        if self.appending or not queue:
            return
        entries, index = [], self.last
        while queue:
            key, value, reply = queue.popleft()
            index += 1
            entry = (index, key, value)
            entries.append(entry)
            self.log[index] = entry
            self.replies[index] = reply
        self.last = index
        self.appending = True
        if self.lean:  # send while the leader's own append is in flight
            self._send(index)
        self.storage.tell(("append", entries, self.actor_ref, None))

    def _send(self, upto: int) -> None:
        for peer, sent in self.sent.items():
            batch = [self.log[i] for i in range(sent + 1, upto + 1)]
            self.sent[peer] = upto
            self.io.submit(("peer", peer, msgpack.packb([_REQUEST, self.commit, batch])))

    def _stored(self, entries: list[Any]) -> None:
        self.appending = False
        self.stored = entries[-1][0]
        if self.leader:
            if not self.lean:
                self._send(self.stored)
            self._append()
            self._count()  # lean: the followers may have acknowledged first
        else:
            waiting = self.waiting
            while waiting and waiting[0][1] <= self.stored:
                identity, last = waiting.popleft()
                self.io.submit(("back", identity, msgpack.packb(last)))
            self._apply()

    def _ack(self, peer: int, frame: bytes) -> None:
        self.match[peer] = max(self.match[peer], msgpack.unpackb(frame))
        self._count()

    def _count(self) -> None:
        """Commit what a majority holds (the leader counting what it stored)."""
        held = sorted([self.stored, *self.match.values()], reverse=True)
        self.commit = max(self.commit, held[len(held) // 2])
        # Also when the commit index stayed: the leader's own append may have completed
        # after the followers' acknowledgements moved it (lean), with nothing applied.
        self._apply()

    # --- both -------------------------------------------------------------------------

    def _apply(self) -> None:
        if self.applying or self.applied >= min(self.commit, self.stored):
            return
        upto = min(self.commit, self.stored)
        entries = [self.log.pop(i) for i in range(self.applied + 1, upto + 1)]
        self.applying = True
        then = None
        if self.leader:
            replies = [self.replies.pop(index) for index, _, _ in entries]
            if self.lean:  # the storage's thread answers the writes it applied
                then = functools.partial(_answer, replies)
            else:
                self.answering = replies
        self.storage.tell(("apply", entries, self.actor_ref, then))

    def _applied(self, entries: list[Any]) -> None:
        self.applying = False
        self.applied = entries[-1][0]
        _answer(self.answering)
        self.answering = []
        self._apply()

    # --- follower ---------------------------------------------------------------------

    def _request(self, identity: bytes, frame: bytes) -> None:
        message = msgpack.unpackb(frame)
        self.commit = max(self.commit, message[1])
        if message[0] == _REQUEST and message[2]:
            entries = [tuple(e) for e in message[2]]
            for entry in entries:
                self.log[entry[0]] = entry
            self.last = entries[-1][0]
            then = None
            if self.lean:  # the storage's thread hands the answer to the I/O thread
                frame = msgpack.packb(self.last)
                then = functools.partial(self.io.submit, ("back", identity, frame))
            else:
                self.waiting.append((identity, self.last))
            self.storage.tell(("append", entries, self.actor_ref, then))
        else:
            self._apply()


def _answer(replies: list[Any]) -> None:
    for reply in replies:
        reply.set()


class _Reply:
    __slots__ = ("answer", "client", "write_id")

    def __init__(self, answer: Answer, client: bytes, write_id: int) -> None:
        self.answer, self.client, self.write_id = answer, client, write_id

    def set(self) -> None:
        self.answer(self.client, self.write_id, None)


class ShapeNode:
    """The bench node process's side of it (see :mod:`bench.node`)."""

    def __init__(self, options: dict[str, Any], gateway: Callable[..., Any], emit: Any) -> None:
        self.node_id = int(options["id"])
        self.emit = emit
        self.io = _Io(self.node_id)
        self.inbox = _Inbox()
        self.node = ShapeRaft.start(self.node_id, self.io, self.inbox, bool(options.get("lean")))
        self.inbox.ref = self.io.node = self.node
        self.io.thread.start()
        self.tick = threading.Event()
        self.heartbeat = options["timers"]["heartbeat_ms"] / 1000
        threading.Thread(target=self._ticker, name="raft-ticker", daemon=True).start()
        self.raft_address = self.io.address
        self.gateway = gateway(self.submit)

    def _ticker(self) -> None:
        while not self.tick.wait(self.heartbeat):
            self.node.tell(("tick",))

    def stop(self) -> None:
        """Stop the threads and actors (a node process just exits; tests call this)."""
        self.tick.set()
        self.io.submit(("stop",))
        self.io.thread.join(10)
        storage = self.node.proxy().storage.get(timeout=10)
        self.node.stop()
        storage.stop()

    def submit(self, key: str, value: Any, client: bytes, write_id: int) -> None:
        self.inbox.write(key, value, _Reply(self.gateway.answer, client, write_id))

    def command(self, op: str, arg: Any) -> Any:
        import time

        from bench.node import digest

        node = self.node.proxy()
        leader = self.node_id == 1
        if op == "init":
            peers = {int(k): v for k, v in arg.items() if int(k) != self.node_id}
            self.io.submit(("connect", peers))
            if leader:
                self.node.tell(("peers", sorted(peers)))
                self.emit({"event": "leader", "t": time.monotonic(), "term": 1})
            return None
        if op == "state":
            return {"leader": leader, "term": 1, "last_applied": node.applied.get(timeout=30)}
        if op == "digest":
            applied = node.applied.get(timeout=30)
            data = dict(node.storage.get(timeout=30).proxy().data.get(timeout=30))
            return {"last_applied": applied, "digest": digest(data), "keys": len(data)}
        if op == "stats":
            return {}
        raise ValueError(op)
