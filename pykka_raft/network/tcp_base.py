"""The state the I/O thread owns: the context, the ROUTER it binds, the hand-over queue
from other threads, refusals, requests waiting on a peer, and closing sockets.
Part of the I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork` (see
:mod:`~pykka_raft.network.tcp_io`)."""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import zmq
import zmq.utils.monitor
from zmq.utils import z85

from pykka_raft.calls import Reply
from pykka_raft.errors import Unreachable
from pykka_raft.logs import RateLimited
from pykka_raft.network import frames
from pykka_raft.network.keys import CurveKeys
from pykka_raft.network.tcp_options import TcpBindError
from pykka_raft.network.tcp_peers import (
    LOG_INTERVAL,
    REMEMBERED_IDS,
    ZAP_DOMAIN,
    _endpoint,
    _Peer,
    logger,
)
from pykka_raft.types import NodeId


class _CallResult:
    """A control call's result. A caller that gives up before the I/O thread starts the
    call cancels it, so that it never runs: it was answered as failed."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._state = "queued"  # then "running", or "cancelled"

    def start(self) -> bool:
        """On the I/O thread: whether to run the call (not cancelled meanwhile)."""
        with self._lock:
            if self._state == "cancelled":
                return False
            self._state = "running"
            return True

    def cancel(self) -> bool:
        """On the caller's thread: cancel a call not started yet (False: it has)."""
        with self._lock:
            if self._state == "queued":
                self._state = "cancelled"
                return True
            return False


class _Pending:
    __slots__ = ("deadline", "peer", "reply", "response_type", "sent_at")

    def __init__(
        self, reply: Reply, peer: NodeId, response_type: type, sent_at: float, deadline: float
    ) -> None:
        self.reply = reply
        self.peer = peer
        self.response_type = response_type
        self.sent_at = sent_at
        self.deadline = deadline


class IoBase:
    """The I/O thread's state, its sockets, and what other threads may call
    (:meth:`submit`, :meth:`call`)."""

    def __init__(
        self,
        node_id: NodeId,
        bind: str,
        addresses: Mapping[NodeId, str],
        keys: CurveKeys | None,
        max_frame_bytes: int,
        rpc_timeout_ms: int,
    ) -> None:
        self.node_id = node_id
        self.keys = keys
        self.max_frame_bytes = max_frame_bytes
        self.rpc_timeout = rpc_timeout_ms / 1000
        self.addresses: dict[NodeId, str] = dict(addresses)
        self.members: frozenset[NodeId] | None = None  # None until a membership is known
        self.next_sweep = 0.0  # when to look for idle connections to non-members
        self.peer_keys: dict[NodeId, bytes] = keys.peer_book() if keys else {}
        self.key_owners: dict[bytes, NodeId] = {}
        self._rebuild_owners()
        self.last_key_reload = float("-inf")
        self.peers: dict[NodeId, _Peer] = {}
        self.pending: dict[int, _Pending] = {}
        self.deadlines: collections.deque[tuple[float, int]] = collections.deque()
        self.completed: collections.OrderedDict[int, str] = collections.OrderedDict()
        self.ids = itertools.count(1)
        self.raft: Any = None
        self.isolated = False
        self.isolated_peers: set[NodeId] = set()
        self.errors: collections.Counter[str] = collections.Counter()
        self.entry_cache = frames.EntryCache()
        self.limiter = RateLimited(logger, LOG_INTERVAL)
        self.connections_accepted = 0
        self.incoming_disconnects = 0
        self.frames_received = 0
        self.bytes_received = 0
        self.inbox: collections.deque[tuple[Any, ...]] = collections.deque()
        self.wake_pending = False
        self.closed = False
        # Held while writing to the wake pipe and while closing it: once closed, its
        # descriptor numbers may name another file of this process.
        self._wake_lock = threading.Lock()
        self._wake_closed = False
        self.stopping = False
        self.by_socket: dict[Any, _Peer] = {}
        self.by_monitor: dict[Any, _Peer] = {}

        self.ctx = zmq.Context()
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        try:
            self.zap: zmq.Socket[bytes] | None = None
            if keys is not None:
                self.zap = self.ctx.socket(zmq.REP)
                self.zap.bind("inproc://zeromq.zap.01")
            self.router = self.ctx.socket(zmq.ROUTER)
            self._socket_options(self.router)
            self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.router.setsockopt(zmq.SNDHWM, 10_000)
            if keys is not None:
                self.router.curve_secretkey = keys.secret
                self.router.curve_publickey = keys.public
                self.router.curve_server = True
                self.router.zap_domain = ZAP_DOMAIN
            self.router_monitor = self.router.get_monitor_socket(
                zmq.EVENT_ACCEPTED
                | zmq.EVENT_DISCONNECTED
                | zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            )
            if bind.startswith("["):
                self.router.setsockopt(zmq.IPV6, 1)
            try:
                self.router.bind(_endpoint(bind))
            except zmq.ZMQError as exc:
                reason = zmq.strerror(exc.errno) if exc.errno else exc.strerror
                raise TcpBindError(bind, exc.errno, reason) from exc
            endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception:
            self.ctx.destroy(linger=0)
            os.close(self.wake_r)
            os.close(self.wake_w)
            raise
        self.address = endpoint.removeprefix("tcp://")
        self.poller = zmq.Poller()

    def _socket_options(self, sock: zmq.Socket[bytes]) -> None:
        sock.setsockopt(zmq.LINGER, 0)
        # libzmq refuses (and disconnects) frames beyond twice the cap before reading
        # them, so no declared length makes it allocate; between the cap and twice the
        # cap, frames are read, counted as "oversized" and dropped.
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_frame_bytes)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)  # notice a silently dead peer
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)

    # --- other threads ------------------------------------------------------------------

    def submit(self, item: tuple[Any, ...]) -> None:
        """Queue an item for the I/O thread and wake it (any thread, never blocks)."""
        self.inbox.append(item)
        if not self.wake_pending:
            self.wake_pending = True
            self.wake()
        if self.closed:  # closed (maybe meanwhile): nothing may be left unanswered
            self._drain_closed()

    def wake(self) -> None:
        """Wake the I/O thread (any thread; nothing once the network has closed)."""
        with self._wake_lock:
            if not self._wake_closed:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self.wake_w, b"\0")

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the I/O thread and return its result (control messages only)."""
        result = _CallResult()
        self.submit(("call", fn, result))
        if not result.done.wait(timeout) and (result.cancel() or not result.done.wait(timeout)):
            # Cancelled, it never runs (a Register the caller was told failed must not
            # take effect later); started, it had as long again to finish.
            raise TimeoutError("the network's I/O thread did not answer")
        if result.error is not None:
            raise result.error
        return result.value

    def _refuse_closed(self, item: tuple[Any, ...]) -> None:
        if item[0] == "req":
            item[2].set_exception(Unreachable("the network has stopped"))
        elif item[0] == "call":
            item[2].error = Unreachable("the network has stopped")
            item[2].done.set()

    def _drain_closed(self) -> None:
        while True:
            try:
                item = self.inbox.popleft()
            except IndexError:
                return
            self._refuse_closed(item)

    def _poll_timeout_ms(self) -> int:
        if self.inbox:
            return 0
        if not self.deadlines:
            return 1000
        wait = self.deadlines[0][0] - time.monotonic()
        return max(0, min(1000, int(wait * 1000) + 1))

    def _close(self) -> None:
        """Answer everything still waiting, then close every socket (I/O thread, at exit)."""
        self.closed = True
        error = Unreachable("the network has stopped")
        pending, self.pending = self.pending, {}
        for waiting in pending.values():
            waiting.reply.set_exception(error)
        self._drain_closed()
        for peer in self.peers.values():
            self._close_peer_socket(peer)
        for sock in (self.router, self.router_monitor, self.zap):
            if sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    if sock is self.router:
                        sock.disable_monitor()
                    sock.close(linger=0)
        self.ctx.term()
        with self._wake_lock:
            self._wake_closed = True
            for fd in (self.wake_r, self.wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    # --- refusals, waiting requests and closing peers ----------------------------------

    def refuse(self, kind: str, who: str, detail: str, level: int = logging.WARNING) -> None:
        """Count one refused input of ``kind`` and log it (rate-limited)."""
        self.errors[kind] += 1
        self.limiter.log(
            level, kind, "node %s refused input from %s [%s]: %s", self.node_id, who, kind, detail
        )

    def not_sent(self, kind: str, dst: NodeId, detail: str, level: int = logging.WARNING) -> None:
        """Count one request to ``dst`` this node could not send, of ``kind``, and log it
        (rate-limited)."""
        self.errors[kind] += 1
        self.limiter.log(
            level, kind, "node %s did not send to node %s [%s]: %s", self.node_id, dst, kind, detail
        )

    def _remember(self, request_id: int, outcome: str) -> None:
        self.completed[request_id] = outcome
        if len(self.completed) > REMEMBERED_IDS:
            self.completed.popitem(last=False)

    def _fail_pending(self, peer: _Peer, why: str, error: Unreachable | None = None) -> None:
        """Answer every request waiting on ``peer`` with ``error`` (by default
        ``Unreachable`` naming ``why``) now; each counts as timed out."""
        waiting = [rid for rid, p in self.pending.items() if p.peer == peer.node_id]
        if not waiting:
            return
        error = error or Unreachable(f"node {peer.node_id}: {why}")
        for rid in waiting:
            pending = self.pending.pop(rid)
            self._remember(rid, "timed_out")
            peer.timeouts += 1
            pending.reply.set_exception(error)

    def _close_peer_socket(self, peer: _Peer) -> None:
        sock, monitor = peer.socket, peer.monitor
        peer.socket = peer.monitor = None
        if sock is not None and peer.state != "refused":
            peer.state = "idle"  # a new connection is opened on the next request
        if sock is not None:
            self.by_socket.pop(sock, None)
            with contextlib.suppress(KeyError):
                self.poller.unregister(sock)
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()
            sock.close(linger=0)
        if monitor is not None:
            self.by_monitor.pop(monitor, None)
            with contextlib.suppress(KeyError):
                self.poller.unregister(monitor)
            monitor.close(linger=0)
        self._fail_pending(peer, "its connection was closed")

    def _rebuild_owners(self) -> None:
        self.key_owners = {z85.decode(k): n for n, k in sorted(self.peer_keys.items())}
