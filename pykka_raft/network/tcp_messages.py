"""Messages and metrics of :class:`~pykka_raft.network.tcp.TcpNetwork`, and the kinds of
refused input it counts (``NetworkMetrics.errors``; ``docs/network.md`` explains each)."""

from __future__ import annotations

import attrs

from pykka_raft.network.frames import (
    BAD_VERSION,
    DECODE_ERROR,
    MALFORMED_FRAME,
    MALFORMED_MSGPACK,
    OVERSIZED,
    UNKNOWN_KIND,
    UNKNOWN_TYPE,
)
from pykka_raft.types import NodeId

# Kinds counted in NetworkMetrics.errors besides the decoding ones of frames.py.
UNEXPECTED_KIND = "unexpected_kind"
WRONG_TARGET = "wrong_target"
WRONG_SOURCE = "wrong_source"
UNEXPECTED_RESPONSE = "unexpected_response"
DUPLICATE_RESPONSE = "duplicate_response"
LATE_RESPONSE = "late_response"
AUTH_REFUSED = "auth_refused"
HANDSHAKE_FAILED = "handshake_failed"
UNDELIVERABLE_RESPONSE = "undeliverable_response"
DROPPED_ISOLATED = "dropped_isolated"
ENCODE_ERROR = "encode_error"
REQUEST_TOO_LARGE = "request_too_large"
BAD_ADDRESS = "bad_address"
NO_KEY = "no_key"
INTERNAL_ERROR = "internal_error"
STRAY_MESSAGE = "stray_message"

ERROR_KINDS = (
    MALFORMED_FRAME,
    BAD_VERSION,
    UNKNOWN_KIND,
    OVERSIZED,
    MALFORMED_MSGPACK,
    UNKNOWN_TYPE,
    DECODE_ERROR,
    UNEXPECTED_KIND,
    WRONG_TARGET,
    WRONG_SOURCE,
    UNEXPECTED_RESPONSE,
    DUPLICATE_RESPONSE,
    LATE_RESPONSE,
    AUTH_REFUSED,
    HANDSHAKE_FAILED,
    UNDELIVERABLE_RESPONSE,
    DROPPED_ISOLATED,
    ENCODE_ERROR,
    REQUEST_TOO_LARGE,
    BAD_ADDRESS,
    NO_KEY,
    INTERNAL_ERROR,
    STRAY_MESSAGE,
)
"""Every kind counted in ``NetworkMetrics.errors``."""


@attrs.frozen
class GetNetworkMetrics:
    """Ask a :class:`TcpNetwork` for its :class:`NetworkMetrics`."""


@attrs.frozen
class TrustKey:
    """Accept ``public_key`` (Z85) as node ``node_id``'s key from now on, and expect it
    when connecting to that node (replaces an earlier key of that node)."""

    node_id: NodeId
    public_key: bytes


@attrs.frozen
class PeerMetrics:
    """What one :class:`TcpNetwork` saw of one peer.

    Attributes:
        node_id: the peer.
        address: its address in the address book (``None`` if unknown).
        state: the outgoing connection: ``"idle"`` (nothing sent yet), ``"connecting"``,
            ``"handshaking"``, ``"connected"``, ``"disconnected"`` or ``"refused"`` (the
            handshake failed: a wrong key, or one side insecure).
        requests_sent / responses_received: RPCs this node sent the peer, and answers to them.
        requests_received / responses_sent: RPCs the peer sent this node, and answers sent.
        bytes_sent / bytes_received: frame bytes both ways (both connections).
        timeouts: requests answered ``Unreachable`` after ``rpc_timeout`` without an answer
            (or because the connection dropped while they waited).
        failures: requests answered ``Unreachable`` at once (not connected, queue full,
            isolated, no key).
        rtt_ms_p50 / rtt_ms_p99: round-trip time of the last answered requests
            (``None`` before the first answer).
        rtt_samples: how many round trips the percentiles are over.
    """

    node_id: NodeId
    address: str | None
    state: str
    requests_sent: int
    responses_received: int
    requests_received: int
    responses_sent: int
    bytes_sent: int
    bytes_received: int
    timeouts: int
    failures: int
    rtt_ms_p50: float | None
    rtt_ms_p99: float | None
    rtt_samples: int


@attrs.frozen
class NetworkMetrics:
    """The answer to :class:`GetNetworkMetrics`.

    Attributes:
        node_id: this node.
        address: the address its ROUTER socket is bound to (``host:port``).
        secure: whether CURVE is on.
        isolated: whether the network drops all traffic (``Isolate(node_id)``).
        isolated_peers: peers whose traffic is dropped (``Isolate(peer)``).
        raft_registered: whether a local Raft ref receives incoming requests.
        pending: requests waiting for an answer.
        connections_accepted / incoming_disconnects: connections to this node's ROUTER.
        frames_received / bytes_received: every frame that arrived, valid or not.
        peers: one :class:`PeerMetrics` per peer, by node id.
        errors: ``(kind, count)`` of every kind of refused input and failure seen, sorted
            by kind (``docs/network.md`` lists the kinds).
    """

    node_id: NodeId
    address: str
    secure: bool
    isolated: bool
    isolated_peers: tuple[NodeId, ...]
    raft_registered: bool
    pending: int
    connections_accepted: int
    incoming_disconnects: int
    frames_received: int
    bytes_received: int
    peers: tuple[PeerMetrics, ...]
    errors: tuple[tuple[str, int], ...]

    def error_count(self, kind: str) -> int:
        """How often ``kind`` was counted."""
        return dict(self.errors).get(kind, 0)

    def peer(self, node_id: NodeId) -> PeerMetrics | None:
        """The metrics of one peer, if it was ever seen."""
        return next((p for p in self.peers if p.node_id == node_id), None)
