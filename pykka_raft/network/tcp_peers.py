"""The TCP network's peers: each peer's socket and counters, the I/O thread's limits,
and small helpers for addresses and connection events.
Part of the I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork` (see
:mod:`~pykka_raft.network.tcp_io`)."""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from typing import Any

import zmq
import zmq.utils.monitor

from pykka_raft.network.tcp_messages import PeerMetrics
from pykka_raft.types import NodeId

logger = logging.getLogger("pykka_raft.net")

ZAP_DOMAIN = b"pykka_raft"
BATCH = 256  # messages read from one socket before the loop looks at the others
LOG_INTERVAL = 5.0  # seconds between two log lines of one kind of refusal
KEY_RELOAD_INTERVAL = 1.0  # seconds between two reads of the key directory
RTT_SAMPLES = 1024
MAX_PEERS = 1024  # peers with metrics of their own
REFUSED_RETRY = 1.0  # seconds before connecting again to a peer that refused the handshake
OUTSIDER_IDLE = 30.0  # seconds after which an unused connection to a non-member is closed
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
    if not sep or not host or not (port.isascii() and port.isdigit()):
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
        self.last_sent = 0.0  # when a request last went to it (time.monotonic)

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
