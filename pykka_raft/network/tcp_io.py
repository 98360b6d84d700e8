"""The I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork`: every socket, the ZAP
handler, connection events, request ids and timeouts, and the network's counters.

Only :meth:`IoLoop.submit` and :meth:`IoLoop.call` may be used from other threads;
everything else runs on the I/O thread, which owns all of this state, so none of it needs
a lock.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import zmq
import zmq.utils.monitor
from zmq.utils import z85

from pykka_raft.calls import DEAD_ACTOR_ERRORS, Call, Reply
from pykka_raft.errors import RpcError, UnknownNode, Unreachable
from pykka_raft.logs import RateLimited
from pykka_raft.messages import RpcRequest
from pykka_raft.network import frames
from pykka_raft.network.contract import rpc_source
from pykka_raft.network.frames import FrameError
from pykka_raft.network.keys import CurveKeyError, CurveKeys, load_public_keys
from pykka_raft.network.tcp_messages import (
    AUTH_REFUSED,
    BAD_ADDRESS,
    DROPPED_ISOLATED,
    DUPLICATE_RESPONSE,
    ENCODE_ERROR,
    HANDSHAKE_FAILED,
    INTERNAL_ERROR,
    LATE_RESPONSE,
    NO_KEY,
    REQUEST_TOO_LARGE,
    UNDELIVERABLE_RESPONSE,
    UNEXPECTED_KIND,
    UNEXPECTED_RESPONSE,
    WRONG_SOURCE,
    WRONG_TARGET,
    NetworkMetrics,
    PeerMetrics,
)
from pykka_raft.types import NodeId

logger = logging.getLogger("pykka_raft.net")

ZAP_DOMAIN = b"pykka_raft"
BATCH = 256  # messages read from one socket before the loop looks at the others
LOG_INTERVAL = 5.0  # seconds between two log lines of one kind of refusal
KEY_RELOAD_INTERVAL = 1.0  # seconds between two reads of the key directory
RTT_SAMPLES = 1024
MAX_PEERS = 1024  # peers with metrics of their own
REFUSED_RETRY = 1.0  # seconds before connecting again to a peer that refused the handshake
REMEMBERED_IDS = 4096  # answered or timed-out request ids kept to tell late from bogus


_PROTOCOL_ERRORS = {
    getattr(zmq, name): name.removeprefix("PROTOCOL_ERROR_")
    for name in dir(zmq)
    if name.startswith("PROTOCOL_ERROR_")
}


def _event_text(event: Mapping[str, Any]) -> str:
    """A monitor event in words, e.g. ``HANDSHAKE_FAILED_PROTOCOL (ZMTP_MECHANISM_MISMATCH)``."""
    kind, value = event["event"], event["value"]
    try:
        name = str(zmq.Event(kind).name)
    except ValueError:
        name = f"event {kind:#x}"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"{name} ({_PROTOCOL_ERRORS.get(value, value)})"
    if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"{name} (ZAP status {value})"
    return name


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _endpoint(address: str) -> str:
    """``tcp://host:port`` for a ``host:port`` address (port 0: one the OS picks)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"an address is 'host:port', got {address!r}")
    return f"tcp://{host}:{'*' if int(port) == 0 else port}"


class _Peer:
    """One peer: its DEALER socket (owned by the I/O thread) and counters."""

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        self.address: str | None = None
        self.socket: zmq.Socket[bytes] | None = None
        self.monitor: zmq.Socket[bytes] | None = None
        self.state = "idle"
        self.requests_sent = 0
        self.responses_received = 0
        self.requests_received = 0
        self.responses_sent = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.timeouts = 0
        self.failures = 0
        self.rtt_ms: collections.deque[float] = collections.deque(maxlen=RTT_SAMPLES)
        self.retry_at = 0.0  # after a refused handshake: no new connection before this

    def metrics(self) -> PeerMetrics:
        ordered = sorted(self.rtt_ms)
        return PeerMetrics(
            node_id=self.node_id,
            address=self.address,
            state=self.state,
            requests_sent=self.requests_sent,
            responses_received=self.responses_received,
            requests_received=self.requests_received,
            responses_sent=self.responses_sent,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            timeouts=self.timeouts,
            failures=self.failures,
            rtt_ms_p50=_percentile(ordered, 0.5) if ordered else None,
            rtt_ms_p99=_percentile(ordered, 0.99) if ordered else None,
            rtt_samples=len(ordered),
        )


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


class _WireReply:
    """The reply of an incoming request: queues the node's answer for the I/O thread,
    which sends it back on the connection the request came in on (answers once)."""

    __slots__ = ("_answered", "_io", "request_id", "routing_id", "source")

    def __init__(self, io: IoLoop, routing_id: bytes, request_id: int, source: NodeId) -> None:
        self._io = io
        self.routing_id = routing_id
        self.request_id = request_id
        self.source = source
        self._answered = False

    def set(self, value: Any = None) -> None:
        """Send ``value`` back (from any thread, without blocking)."""
        if not self._answered:
            self._answered = True
            self._io.submit(("resp", self, value, None))

    def set_exception(self, error: BaseException) -> None:
        """Send an error back."""
        if not self._answered:
            self._answered = True
            self._io.submit(("resp", self, None, error))


class _CallResult:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class IoLoop:
    """Owns the context, every socket and all of the network's state.

    Only :meth:`submit` and :meth:`call` may be used from other threads; everything else
    runs on the I/O thread. The ROUTER (and the ZAP handler) are bound in the
    constructor, on the caller's thread, so a bind failure raises to whoever starts the
    network; the sockets are handed to the I/O thread when it starts.
    """

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
            self.router.bind(_endpoint(bind))
            endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception:
            self.ctx.destroy(linger=0)
            os.close(self.wake_r)
            os.close(self.wake_w)
            raise
        self.address = endpoint.removeprefix("tcp://")
        self.poller = zmq.Poller()
        self.thread = threading.Thread(target=self._run, name=f"raft-net-{node_id}", daemon=True)

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

    def start(self) -> None:
        self.thread.start()

    def submit(self, item: tuple[Any, ...]) -> None:
        """Queue an item for the I/O thread and wake it (any thread, never blocks)."""
        self.inbox.append(item)
        if not self.wake_pending:
            self.wake_pending = True
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self.wake_w, b"\0")
        if self.closed:  # closed (maybe meanwhile): nothing may be left unanswered
            self._drain_closed()

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the I/O thread and return its result (control messages only)."""
        result = _CallResult()
        self.submit(("call", fn, result))
        if not result.done.wait(timeout):
            raise TimeoutError("the network's I/O thread did not answer")
        if result.error is not None:
            raise result.error
        return result.value

    def stop(self) -> None:
        """Stop the I/O thread; every request still waiting is answered ``Unreachable``."""
        self.stopping = True
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"\0")
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(10)
        elif not self.thread.is_alive() and not self.closed:
            self._close()  # never started

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

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        poller = self.poller
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.router_monitor, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        if self.zap is not None:
            poller.register(self.zap, zmq.POLLIN)
        try:
            while not self.stopping:
                try:
                    events = dict(poller.poll(self._poll_timeout_ms()))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    raise
                self._guard(self._step, events)
        except Exception:
            logger.exception("the network I/O thread of node %s failed", self.node_id)
        finally:
            self._close()

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run one step; a bug is logged and counted, and the loop goes on."""
        try:
            fn(*args)
        except Exception as exc:
            self.errors[INTERNAL_ERROR] += 1
            self.limiter.log(
                logging.ERROR,
                INTERNAL_ERROR,
                "node %s: network I/O step failed: %r",
                self.node_id,
                exc,
            )
            logger.debug("network I/O step failed", exc_info=True)

    def _step(self, events: dict[Any, int]) -> None:
        if self.wake_r in events:
            # Drain first, then clear: a submitter that finds the flag clear writes a new
            # byte, which this drain can no longer swallow (the next poll wakes for it).
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_r, 4096):
                    pass
            self.wake_pending = False
        self._process_inbox()
        if self.router in events:
            self._recv_requests()
        for sock in events:
            peer = self.by_socket.get(sock)
            if peer is not None:
                self._recv_responses(peer)
                continue
            peer = self.by_monitor.get(sock)
            if peer is not None:
                self._peer_events(peer)
        if self.router_monitor in events:
            self._router_events()
        if self.zap is not None and self.zap in events:
            self._handle_zap()
        self._expire(time.monotonic())

    def _poll_timeout_ms(self) -> int:
        if self.inbox:
            return 0
        if not self.deadlines:
            return 1000
        wait = self.deadlines[0][0] - time.monotonic()
        return max(0, min(1000, int(wait * 1000) + 1))

    def _process_inbox(self) -> None:
        inbox = self.inbox
        for _ in range(len(inbox)):
            item = inbox.popleft()
            kind = item[0]
            if kind == "req":
                self._guard(self._send_request, item[1], item[2])
            elif kind == "resp":
                self._guard(self._send_response, item[1], item[2], item[3])
            elif kind == "call":
                result: _CallResult = item[2]
                try:
                    result.value = item[1]()
                except Exception as exc:
                    result.error = exc
                result.done.set()

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
        for fd in (self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- refusals -----------------------------------------------------------------------

    def refuse(self, kind: str, who: str, detail: str, level: int = logging.WARNING) -> None:
        """Count one refused input of ``kind`` and log it (rate-limited)."""
        self.errors[kind] += 1
        self.limiter.log(
            level, kind, "node %s refused input from %s [%s]: %s", self.node_id, who, kind, detail
        )

    # --- sending requests ---------------------------------------------------------------

    def _fail(self, reply: Reply, peer: _Peer | None, error: RpcError) -> None:
        if peer is not None:
            peer.failures += 1
        reply.set_exception(error)

    def _send_request(self, request: RpcRequest, reply: Reply) -> None:
        dst = request.target
        peer = self.peers.get(dst)
        if self.isolated or dst in self.isolated_peers:
            self.errors[DROPPED_ISOLATED] += 1
            self._fail(reply, peer, Unreachable(f"node {dst} is cut off from node {self.node_id}"))
            return
        address = self.addresses.get(dst)
        if address is None:
            reply.set_exception(UnknownNode(dst))
            return
        if peer is None:
            peer = self.peers[dst] = _Peer(dst)
        if peer.socket is None or peer.address != address:
            if peer.address == address and time.monotonic() < peer.retry_at:
                self._fail(
                    reply, peer, Unreachable(f"node {dst} at {address} refused the handshake")
                )
                return
            error = self._connect(peer, address)
            if error is not None:
                self._fail(reply, peer, error)
                return
        sock = peer.socket
        assert sock is not None
        request_id = next(self.ids)
        try:
            parts = frames.encode_request(request_id, request, self.entry_cache)
        except Exception as exc:
            self.refuse(
                ENCODE_ERROR, "this node", f"cannot encode {type(request).__name__}: {exc!r}"
            )
            self._fail(reply, peer, RpcError(f"cannot encode {type(request).__name__}: {exc}"))
            return
        size = len(parts[0]) + len(parts[1])
        if len(parts[1]) > self.max_frame_bytes:
            self.refuse(
                REQUEST_TOO_LARGE,
                "this node",
                f"a {type(request).__name__} of {len(parts[1])} bytes exceeds max_frame_bytes "
                f"({self.max_frame_bytes}); raise it or lower Config.max_payload_entries",
                logging.ERROR,
            )
            self._fail(reply, peer, RpcError(f"request of {len(parts[1])} bytes is too large"))
            return
        try:
            sock.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            self._fail(
                reply, peer, Unreachable(f"node {dst} at {address} is not connected ({peer.state})")
            )
            return
        now = time.monotonic()
        deadline = now + self.rpc_timeout
        response_type = frames.RESPONSE_FOR[type(request)]
        self.pending[request_id] = _Pending(reply, dst, response_type, now, deadline)
        self.deadlines.append((deadline, request_id))
        peer.requests_sent += 1
        peer.bytes_sent += size

    def _connect(self, peer: _Peer, address: str) -> RpcError | None:
        """(Re)open the DEALER to ``peer`` at ``address``; an error if that is impossible."""
        self._close_peer_socket(peer)
        peer.address = address
        server_key: bytes | None = None
        if self.keys is not None:
            server_key = self.peer_keys.get(peer.node_id)
            if server_key is None and self._reload_keys():
                server_key = self.peer_keys.get(peer.node_id)
            if server_key is None:
                self.refuse(
                    NO_KEY,
                    f"node {peer.node_id}",
                    "no CURVE public key is known for it: add node-"
                    f"{peer.node_id}.key to the key directory or send TrustKey",
                )
                return Unreachable(f"no CURVE public key is known for node {peer.node_id}")
        sock = self.ctx.socket(zmq.DEALER)
        try:
            self._socket_options(sock)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # no queue for a peer that is not connected
            sock.setsockopt(zmq.SNDHWM, 1000)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            if address.startswith("["):
                sock.setsockopt(zmq.IPV6, 1)
            if self.keys is not None and server_key is not None:
                sock.curve_secretkey = self.keys.secret
                sock.curve_publickey = self.keys.public
                sock.curve_serverkey = server_key
            monitor = sock.get_monitor_socket(
                zmq.EVENT_CONNECTED
                | zmq.EVENT_CONNECT_DELAYED
                | zmq.EVENT_CONNECT_RETRIED
                | zmq.EVENT_DISCONNECTED
                | zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            )
            sock.connect(_endpoint(address))
        except (zmq.ZMQError, ValueError) as exc:
            sock.close(linger=0)
            self.refuse(
                BAD_ADDRESS, f"node {peer.node_id}", f"cannot connect to {address!r}: {exc}"
            )
            return Unreachable(f"cannot connect to node {peer.node_id} at {address!r}: {exc}")
        peer.socket, peer.monitor = sock, monitor
        peer.state = "connecting"
        self.by_socket[sock] = peer
        self.by_monitor[monitor] = peer
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(monitor, zmq.POLLIN)
        return None

    def _close_peer_socket(self, peer: _Peer) -> None:
        sock, monitor = peer.socket, peer.monitor
        peer.socket = peer.monitor = None
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

    def _fail_pending(self, peer: _Peer, why: str) -> None:
        """Answer every request waiting on ``peer`` with ``Unreachable`` now."""
        waiting = [rid for rid, p in self.pending.items() if p.peer == peer.node_id]
        if not waiting:
            return
        error = Unreachable(f"node {peer.node_id}: {why}")
        for rid in waiting:
            pending = self.pending.pop(rid)
            self._remember(rid, "timed_out")
            peer.timeouts += 1
            pending.reply.set_exception(error)

    def _remember(self, request_id: int, outcome: str) -> None:
        self.completed[request_id] = outcome
        if len(self.completed) > REMEMBERED_IDS:
            self.completed.popitem(last=False)

    def _expire(self, now: float) -> None:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _, rid = deadlines.popleft()
            pending = self.pending.pop(rid, None)
            if pending is None:
                continue
            self._remember(rid, "timed_out")
            peer = self.peers.get(pending.peer)
            if peer is not None:
                peer.timeouts += 1
            pending.reply.set_exception(
                Unreachable(
                    f"node {pending.peer} did not answer within {self.rpc_timeout * 1000:.0f} ms"
                )
            )

    # --- receiving responses ------------------------------------------------------------

    def _recv_responses(self, peer: _Peer) -> None:
        sock = peer.socket
        for _ in range(BATCH):
            if sock is None or peer.socket is not sock:
                return
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            size = sum(len(p) for p in parts)
            self.frames_received += 1
            self.bytes_received += size
            peer.bytes_received += size
            who = f"node {peer.node_id}"
            try:
                self._on_response(peer, parts, who)
            except FrameError as exc:
                self.refuse(exc.kind, who, exc.detail)

    def _on_response(self, peer: _Peer, parts: list[bytes], who: str) -> None:
        if len(parts) != 2:
            raise FrameError(frames.MALFORMED_FRAME, f"{len(parts)} frames, not 2")
        kind, rid = frames.decode_header(parts[0])
        if kind == frames.REQUEST:
            raise FrameError(UNEXPECTED_KIND, "a request on an outgoing connection")
        pending = self.pending.get(rid)
        if pending is None:
            outcome = self.completed.get(rid)
            if outcome == "answered":
                raise FrameError(DUPLICATE_RESPONSE, f"request {rid} was answered already")
            if outcome == "timed_out":
                self.refuse(LATE_RESPONSE, who, f"request {rid} timed out already", logging.INFO)
                return
            raise FrameError(UNEXPECTED_RESPONSE, f"no request {rid} is waiting")
        if pending.peer != peer.node_id:
            raise FrameError(UNEXPECTED_RESPONSE, f"request {rid} went to node {pending.peer}")
        if kind == frames.RESPONSE:
            response = frames.decode_response(parts[1], self.max_frame_bytes)
            if type(response) is not pending.response_type:
                raise FrameError(
                    frames.DECODE_ERROR,
                    f"a {type(response).__name__} does not answer request {rid} "
                    f"(expected {pending.response_type.__name__})",
                )
            del self.pending[rid]
            self._remember(rid, "answered")
            peer.responses_received += 1
            peer.rtt_ms.append((time.monotonic() - pending.sent_at) * 1000)
            pending.reply.set(response)
        else:
            error_kind, message = frames.decode_error(parts[1], self.max_frame_bytes)
            del self.pending[rid]
            self._remember(rid, "answered")
            peer.responses_received += 1
            pending.reply.set_exception(
                Unreachable(f"node {peer.node_id} answered {error_kind}: {message}")
            )

    # --- receiving requests -------------------------------------------------------------

    def _recv_requests(self) -> None:
        router = self.router
        secure = self.keys is not None
        for _ in range(BATCH):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            sender: NodeId | None = None
            who = "a peer"
            if secure:
                with contextlib.suppress(zmq.ZMQError, ValueError):
                    sender = int(parts[0].get("User-Id"))
                    who = f"node {sender}"
            data = [p.bytes for p in parts]
            size = sum(len(p) for p in data[1:])
            self.frames_received += 1
            self.bytes_received += size
            if sender is not None:
                self._peer_of(sender).bytes_received += size
            try:
                self._on_request(data, sender, who)
            except FrameError as exc:
                self.refuse(exc.kind, who, exc.detail)

    def _peer_of(self, node_id: NodeId) -> _Peer:
        peer = self.peers.get(node_id)
        if peer is None:
            peer = _Peer(node_id)
            peer.address = self.addresses.get(node_id)
            # Node ids named by requests (an insecure peer may name any) are kept for the
            # metrics up to a bound, so that they cannot grow the node's memory.
            if len(self.peers) < MAX_PEERS:
                self.peers[node_id] = peer
        return peer

    def _on_request(self, data: list[bytes], sender: NodeId | None, who: str) -> None:
        routing_id, parts = data[0], data[1:]
        if len(parts) != 2:
            raise FrameError(frames.MALFORMED_FRAME, f"{len(parts)} frames, not 2")
        kind, rid = frames.decode_header(parts[0])
        if kind != frames.REQUEST:
            raise FrameError(UNEXPECTED_KIND, "a response on an incoming connection")
        request = frames.decode_request(parts[1], self.max_frame_bytes)
        if request.target != self.node_id:
            raise FrameError(
                WRONG_TARGET, f"a request for node {request.target} reached node {self.node_id}"
            )
        source = rpc_source(request)
        if sender is not None and source != sender:
            raise FrameError(WRONG_SOURCE, f"a request as node {source} from node {sender}'s key")
        peer = self._peer_of(source)
        if sender is None:
            peer.bytes_received += len(parts[0]) + len(parts[1])
        if self.isolated or source in self.isolated_peers:
            self.errors[DROPPED_ISOLATED] += 1
            return
        peer.requests_received += 1
        reply = _WireReply(self, routing_id, rid, source)
        raft = self.raft
        if raft is None:
            reply.set_exception(Unreachable(f"node {self.node_id} is not running"))
            return
        try:
            raft.tell(Call(request, reply))
        except DEAD_ACTOR_ERRORS:
            reply.set_exception(Unreachable(f"node {self.node_id} has stopped"))

    def _send_response(self, reply: _WireReply, value: Any, error: BaseException | None) -> None:
        if self.isolated or reply.source in self.isolated_peers:
            self.errors[DROPPED_ISOLATED] += 1
            return
        rid = reply.request_id
        if error is None:
            try:
                parts = frames.encode_response(rid, value)
            except Exception as exc:
                self.refuse(
                    ENCODE_ERROR, "this node", f"cannot encode {type(value).__name__}: {exc!r}"
                )
                parts = frames.encode_error(rid, RpcError(f"cannot encode the response: {exc}"))
        else:
            parts = frames.encode_error(rid, error)
        try:
            self.router.send_multipart([reply.routing_id, *parts], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the peer is gone; EAGAIN: its queue is full
            self.refuse(
                UNDELIVERABLE_RESPONSE,
                f"node {reply.source}",
                f"its connection is gone or full ({exc.strerror})",
                logging.INFO,
            )
            return
        peer = self._peer_of(reply.source)
        peer.responses_sent += 1
        peer.bytes_sent += len(parts[0]) + len(parts[1])

    # --- authentication -----------------------------------------------------------------

    def _rebuild_owners(self) -> None:
        self.key_owners = {z85.decode(k): n for n, k in sorted(self.peer_keys.items())}

    def _reload_keys(self) -> bool:
        """Read the key directory again (rate-limited); True if keys changed."""
        keys = self.keys
        now = time.monotonic()
        if keys is None or keys.key_dir is None or now - self.last_key_reload < KEY_RELOAD_INTERVAL:
            return False
        self.last_key_reload = now
        try:
            found = load_public_keys(keys.key_dir)
        except CurveKeyError as exc:
            self.limiter.log(logging.WARNING, "key_dir", "cannot read the key directory: %s", exc)
            return False
        changed = {n: k for n, k in found.items() if self.peer_keys.get(n) != k}
        if not changed:
            return False
        for node_id, key in changed.items():
            self._trust(node_id, key)
        return True

    def _trust(self, node_id: NodeId, key: bytes) -> None:
        old = self.peer_keys.get(node_id)
        self.peer_keys[node_id] = key
        self._rebuild_owners()
        logger.info("node %s accepts node %s's key %s...", self.node_id, node_id, key[:8].decode())
        peer = self.peers.get(node_id)
        if old is not None and peer is not None and peer.socket is not None:
            self._close_peer_socket(peer)  # reconnect with the new server key

    def _handle_zap(self) -> None:
        zap = self.zap
        assert zap is not None
        for _ in range(BATCH):
            try:
                msg = zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            request_id = msg[1] if len(msg) > 1 else b""
            status, text, user = b"400", b"refused", b""
            if len(msg) >= 6 and msg[0] == b"1.0":
                address = msg[3].decode("ascii", "replace")
                mechanism, credentials = msg[5], msg[6:]
                if mechanism == b"CURVE" and len(credentials) == 1 and len(credentials[0]) == 32:
                    owner = self.key_owners.get(credentials[0])
                    if owner is None and self._reload_keys():
                        owner = self.key_owners.get(credentials[0])
                    if owner is not None:
                        status, text, user = b"200", b"OK", str(owner).encode()
                        logger.info(
                            "node %s accepted a connection from node %s (%s)",
                            self.node_id,
                            owner,
                            address,
                        )
                    else:
                        key = z85.encode(credentials[0]).decode()
                        self.refuse(
                            AUTH_REFUSED,
                            address,
                            f"a connection with the unknown key {key[:8]}... (not accepted)",
                        )
                else:
                    self.refuse(
                        AUTH_REFUSED, address, f"a {mechanism.decode(errors='replace')} handshake"
                    )
            with contextlib.suppress(zmq.ZMQError):
                zap.send_multipart([b"1.0", request_id, status, text, user, b""])

    # --- connection events --------------------------------------------------------------

    def _peer_events(self, peer: _Peer) -> None:
        monitor = peer.monitor
        for _ in range(BATCH):
            if monitor is None or peer.monitor is not monitor:
                return
            try:
                event = zmq.utils.monitor.recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            where = f"node {peer.node_id} at {peer.address}"
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                peer.state = "connected"
                logger.info("node %s connected to %s", self.node_id, where)
            elif kind == zmq.EVENT_CONNECTED:
                peer.state = "handshaking"
            elif kind in (zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CONNECT_RETRIED):
                if peer.state not in ("refused", "connecting"):
                    peer.state = "connecting"
            elif kind == zmq.EVENT_DISCONNECTED:
                if peer.state == "connected":
                    logger.info("node %s lost its connection to %s", self.node_id, where)
                if peer.state != "refused":
                    peer.state = "disconnected"
                self._fail_pending(peer, "the connection dropped")
            elif kind in (
                zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            ):
                peer.state = "refused"
                self.refuse(
                    HANDSHAKE_FAILED,
                    where,
                    "the handshake failed (it does not accept this node's key, its key is "
                    f"not the one expected, or one side is insecure): {_event_text(event)}",
                )
                # libzmq gives up a connection whose handshake failed: open a new one on
                # the next request after a pause (the key may be accepted by then).
                self._reload_keys()
                peer.retry_at = time.monotonic() + REFUSED_RETRY
                self._close_peer_socket(peer)
                return

    def _router_events(self) -> None:
        for _ in range(BATCH):
            try:
                event = zmq.utils.monitor.recv_monitor_message(self.router_monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_ACCEPTED:
                self.connections_accepted += 1
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self.keys is None:
                    logger.info("node %s accepted a connection (insecure)", self.node_id)
            elif kind == zmq.EVENT_DISCONNECTED:
                self.incoming_disconnects += 1
                logger.debug("node %s: an incoming connection closed", self.node_id)
            else:  # a handshake failed: a client without CURVE, or with the wrong server key
                self.refuse(
                    HANDSHAKE_FAILED,
                    "an incoming connection",
                    f"the handshake failed: {_event_text(event)}",
                )

    # --- control (I/O thread, through call) ---------------------------------------------

    def learn_addresses(self, addresses: Iterable[tuple[NodeId, str]], source: str) -> None:
        for node_id, address in addresses:
            if node_id == self.node_id or self.addresses.get(node_id) == address:
                continue
            old = self.addresses.get(node_id)
            self.addresses[node_id] = address
            logger.info(
                "node %s: node %s is at %s (from %s%s)",
                self.node_id,
                node_id,
                address,
                source,
                f", was {old}" if old else "",
            )
            peer = self.peers.get(node_id)
            if peer is not None:
                peer.address = address
                if peer.socket is not None:
                    self._close_peer_socket(peer)  # reconnect to the new address

    def set_isolated(self, node_id: NodeId, isolated: bool) -> None:
        if node_id == self.node_id:
            self.isolated = isolated
            error = Unreachable(f"node {self.node_id} is cut off")
            targets = list(self.peers.values())
        else:
            if isolated:
                self.isolated_peers.add(node_id)
            else:
                self.isolated_peers.discard(node_id)
            error = Unreachable(f"node {node_id} is cut off from node {self.node_id}")
            targets = [p for p in self.peers.values() if p.node_id == node_id]
        if isolated:  # answers in flight would cross the cut: they are lost, fail them now
            for peer in targets:
                for rid in [r for r, p in self.pending.items() if p.peer == peer.node_id]:
                    pending = self.pending.pop(rid)
                    self._remember(rid, "timed_out")
                    pending.reply.set_exception(error)
        logger.warning(
            "node %s: %s %s",
            self.node_id,
            "isolated" if isolated else "restored",
            "this node from every peer"
            if node_id == self.node_id
            else f"the link to node {node_id}",
        )

    def trust(self, node_id: NodeId, key: bytes) -> None:
        self._trust(node_id, key)

    def metrics(self) -> NetworkMetrics:
        return NetworkMetrics(
            node_id=self.node_id,
            address=self.address,
            secure=self.keys is not None,
            isolated=self.isolated,
            isolated_peers=tuple(sorted(self.isolated_peers)),
            raft_registered=self.raft is not None,
            pending=len(self.pending),
            connections_accepted=self.connections_accepted,
            incoming_disconnects=self.incoming_disconnects,
            frames_received=self.frames_received,
            bytes_received=self.bytes_received,
            peers=tuple(self.peers[n].metrics() for n in sorted(self.peers)),
            errors=tuple(sorted(self.errors.items())),
        )
