"""Requests and responses: request ids and their deadlines, matching each response to
the request it answers (late, duplicate and unexpected ones refused), incoming requests
handed to the node, and its answers sent back.
Part of the I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork` (see
:mod:`~pykka_raft.network.tcp_io`)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import zmq
import zmq.utils.monitor

from pykka_raft.calls import DEAD_ACTOR_ERRORS, Call, Reply
from pykka_raft.errors import RequestTooLarge, RpcError, UnknownNode, Unreachable
from pykka_raft.messages import RESPONSE_FOR, RpcRequest
from pykka_raft.network import frames
from pykka_raft.network.contract import rpc_source
from pykka_raft.network.frames import FrameError
from pykka_raft.network.tcp_base import IoBase, _Pending
from pykka_raft.network.tcp_links import IoLinks
from pykka_raft.network.tcp_messages import (
    AUTH_REFUSED,
    DROPPED_ISOLATED,
    DUPLICATE_RESPONSE,
    ENCODE_ERROR,
    LATE_RESPONSE,
    REQUEST_TOO_LARGE,
    UNDELIVERABLE_RESPONSE,
    UNEXPECTED_KIND,
    UNEXPECTED_RESPONSE,
    WRONG_SOURCE,
    WRONG_TARGET,
)
from pykka_raft.network.tcp_peers import BATCH, MAX_PEERS, _Peer, logger
from pykka_raft.types import NodeId


class _WireReply:
    """The reply of an incoming request: queues the node's answer for the I/O thread,
    which sends it back on the connection the request came in on (answers once)."""

    __slots__ = ("_answered", "_io", "request_id", "routing_id", "source")

    def __init__(self, io: IoBase, routing_id: bytes, request_id: int, source: NodeId) -> None:
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


class IoRequests(IoLinks):
    """Sending requests, matching responses, serving incoming requests."""

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
        cap = self.max_frame_bytes
        try:
            parts = frames.encode_request(request_id, request, self.entry_cache, cap)
            if len(parts[1]) > cap:  # a request without entries: checked whole
                raise RequestTooLarge(len(parts[1]), cap, 0)
        except RequestTooLarge as exc:
            self.not_sent(
                REQUEST_TOO_LARGE,
                dst,
                f"a {type(request).__name__} would exceed max_frame_bytes ({cap}) "
                f"({exc.size} bytes counted); {exc.fits} of its entries fit, and the leader "
                "sends this node at most that many at a time (raise max_frame_bytes or "
                "lower Config.max_payload_entries to avoid it)",
            )
            self._fail(reply, peer, exc)
            return
        except Exception as exc:
            self.not_sent(ENCODE_ERROR, dst, f"cannot encode {type(request).__name__}: {exc!r}")
            self._fail(reply, peer, RpcError(f"cannot encode {type(request).__name__}: {exc}"))
            return
        size = len(parts[0]) + len(parts[1])
        try:
            sock.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            self._fail(
                reply, peer, Unreachable(f"node {dst} at {address} is not connected ({peer.state})")
            )
            return
        now = time.monotonic()
        deadline = now + self.rpc_timeout
        response_type = RESPONSE_FOR[type(request)]
        self.pending[request_id] = _Pending(reply, dst, response_type, now, deadline)
        self.deadlines.append((deadline, request_id))
        peer.requests_sent += 1
        peer.bytes_sent += size
        peer.last_sent = now

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
            data = [p.bytes for p in parts]
            size = sum(len(p) for p in data[1:])
            self.frames_received += 1
            self.bytes_received += size
            if secure:
                with contextlib.suppress(zmq.ZMQError, ValueError):
                    node, _, key = str(parts[0].get("User-Id")).partition(":")
                    sender = int(node)
                    who = f"node {sender}"
                    if self.peer_keys.get(sender) != key.encode():
                        # Accepted with a key that TrustKey or the key directory replaced.
                        self.refuse(
                            AUTH_REFUSED,
                            who,
                            "a request on a connection made with "
                            "a key that has been replaced since",
                        )
                        continue
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

    # --- control (I/O thread, through call) ---------------------------------------------

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
                self._fail_pending(peer, "cut off", error)
        logger.warning(
            "node %s: %s %s",
            self.node_id,
            "isolated" if isolated else "restored",
            "this node from every peer"
            if node_id == self.node_id
            else f"the link to node {node_id}",
        )
