"""The client API: writes, reads, their answers, and the metrics query."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from pykka_raft.messages.checks import _instance_of
from pykka_raft.messages.entries import EntryNormal
from pykka_raft.types import LogIndex


class ReadPolicy(enum.Enum):
    """How a :class:`ClientRead` is made linearizable (``docs/reads.md``)."""

    READ_INDEX = "read_index"
    """The leader confirms with one heartbeat round that it still leads, then reads once it
    has applied its commit index (dissertation §6.4). A follower asks the leader for the
    index and reads locally. Linearizable, with no clock assumption."""
    LEASE = "lease"
    """The leader reads without a round trip while its lease holds (heartbeats a majority
    acknowledged, less than ``election_timeout_min`` ago minus the drift margin).
    Linearizable if the nodes' clocks drift less than ``Config.max_clock_drift``; needs
    ``Config.leader_stickiness``."""
    STALE = "stale"
    """Read this node's state machine as it is: fast, possibly stale, any node."""


class ResponseMode(enum.Enum):
    """When the leader answers a :class:`ClientPayload`."""

    COMMITTED = "committed"
    """Once the entry is committed (replicated to a majority), before it is applied."""
    APPLIED = "applied"
    """Once the state machine applied the entry; the answer carries its response."""


@attrs.frozen
class ClientPayload:
    """A client write, sent to the leader with ``ask``.

    The reply is a :class:`ClientPayloadResponse`; a failure raises a
    :class:`~pykka_raft.errors.ClientError` (e.g. ``ForwardToLeader`` from a follower).
    ``response_mode`` must be a :class:`ResponseMode` (the string ``"applied"`` raises
    ``TypeError``: it is never read as a mode).
    """

    entry: EntryNormal = attrs.field(
        validator=_instance_of(EntryNormal, "; build a payload with ClientPayload.new(data)")
    )
    response_mode: ResponseMode = attrs.field(
        default=ResponseMode.COMMITTED, validator=_instance_of(ResponseMode)
    )

    @classmethod
    def new(cls, data: Any, response_mode: ResponseMode = ResponseMode.COMMITTED) -> ClientPayload:
        """Wrap application data into a payload."""
        return cls(EntryNormal(data), response_mode)


@attrs.frozen
class ClientRead:
    """A read-only ``query`` of the state machine that is never written to the log
    (``docs/reads.md``); send it to any node. The reply is a :class:`ClientReadResponse`;
    errors are :class:`~pykka_raft.errors.ClientError` (``ForwardToLeader`` when no leader
    is known or leadership was lost: retry; a read has no side effects)."""

    query: Any
    policy: ReadPolicy = attrs.field(
        default=ReadPolicy.READ_INDEX, validator=_instance_of(ReadPolicy)
    )


@attrs.frozen
class ClientReadResponse:
    """The answer to :class:`ClientRead`: the state machine's answer ``data``, read after
    applying every entry through ``index``."""

    index: LogIndex
    data: Any = None


@attrs.frozen
class ClientPayloadResponse:
    """The answer to a :class:`ClientPayload`.

    ``index`` is the entry's log index. With ``ResponseMode.APPLIED``, ``data`` holds the
    state machine's response to the entry; with ``COMMITTED`` it is ``None``.
    """

    index: LogIndex
    response_mode: ResponseMode = attrs.field(validator=_instance_of(ResponseMode))
    data: Any = None


@attrs.frozen
class GetMetrics:
    """Ask a Raft node for its current :class:`~pykka_raft.metrics.RaftMetrics` now."""
