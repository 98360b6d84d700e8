"""Commands the core asks its shell to carry out.

Storage commands (``SaveHardState``, ``WriteLog``, ``DeleteLogsFrom``, ``Apply`` and the
snapshot commands) must be executed in the order given, by one FIFO storage. ``Send`` and
``Respond`` with ``after_durable=True`` must wait until every storage *write* issued before
them has completed: that is how "term, vote and log are durable before any reply that
depends on them" (Figure 2) is kept. ``Apply``, ``CreateSnapshot`` and
``ReadSnapshotChunk`` are not writes: no reply waits for them, and ``CreateSnapshot`` may
complete after later commands (the snapshot is built in the background).
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from pykka_raft.messages import Entry, HardState, MembershipConfig, RpcRequest, SnapshotMeta
from pykka_raft.types import LogId, LogIndex, NodeId, Term


@attrs.frozen
class LoadInitialState:
    """At start: read the persisted state (``GetInitialState``). Completion:
    :meth:`RaftCore.initial_state_loaded`."""


@attrs.frozen
class LoadLog:
    """At start: read the log entries in ``[start, stop)`` (``GetLogEntries``).
    Completion: :meth:`RaftCore.log_loaded`."""

    start: LogIndex
    stop: LogIndex


@attrs.frozen
class SaveHardState:
    """Persist term, vote and initial membership."""

    hard_state: HardState


@attrs.frozen
class WriteLog:
    """Write entries at their indexes.

    ``leader=True``: the leader's own new entries (``AppendEntryToLog``); the storage may
    reject a normal entry with an application error, storing a blank entry in its place.
    Otherwise entries replicated from a leader (``ReplicateToLog``), which must not fail.
    The shell reports completion with :meth:`RaftCore.log_written`.
    """

    entries: tuple[Entry, ...]
    leader: bool


@attrs.frozen
class DeleteLogsFrom:
    """Delete every log entry at ``index`` and after (a conflicting suffix, §5.3)."""

    index: LogIndex


@attrs.frozen
class Apply:
    """Apply committed entries to the state machine, in order.

    The shell reports completion with :meth:`RaftCore.applied`.
    """

    entries: tuple[Entry, ...]


@attrs.frozen
class Send:
    """Send an RPC to ``request.target``; report the outcome to the core."""

    request: RpcRequest
    after_durable: bool


@attrs.frozen
class Respond:
    """Answer the caller that holds ``token`` with ``value`` or ``error``."""

    token: int
    value: Any = None
    error: BaseException | None = None
    after_durable: bool = False


@attrs.frozen
class LeadWhenDurable:
    """A lone voter won the election of ``term`` without asking anyone: once every storage
    write issued before this command completed (its new term and self-vote are durable),
    call :meth:`RaftCore.hard_state_durable`. Leading earlier could let a crash forget
    the term while others saw this node lead it, and another node win the same term."""

    term: Term
    after_durable: bool = True


@attrs.frozen
class CreateSnapshot:
    """Snapshot the state machine, which has applied exactly through ``last_included``
    when the storage reaches this command, and drop the log up to it.

    The shell reports completion with :meth:`RaftCore.snapshot_created`.
    """

    last_included: LogId
    membership: MembershipConfig


@attrs.frozen
class ReadSnapshotChunk:
    """Leader: read up to ``size`` bytes of snapshot ``snapshot_id`` at ``offset``, for
    ``peer``. Completion: :meth:`RaftCore.snapshot_chunk_read` (``None``: gone)."""

    peer: NodeId
    snapshot_id: str
    offset: int
    size: int


@attrs.frozen
class WriteSnapshotChunk:
    """Follower: store a received chunk apart from the current snapshot (offset 0 starts
    a new one)."""

    meta: SnapshotMeta
    offset: int
    data: bytes


@attrs.frozen
class Query:
    """Answer reads: ``reads`` holds (token, query) pairs, answered with the state
    machine's answers (FIFO with the applies, so they see every entry applied before).
    Every ``Apply`` through ``index`` was issued before this command: the state the
    queries read is at least that recent (each answer's ``ClientReadResponse.index``).
    Completion: :meth:`RaftCore.queries_answered`, or, for a driver whose ports answer
    the readers themselves, nothing (the core keeps no state for a query it sent)."""

    reads: tuple[tuple[int, Any], ...]
    index: LogIndex


@attrs.frozen
class InstallSnapshot:
    """Follower: the received snapshot becomes current, atomically: the state machine is
    restored from it, and the log keeps its entries after the snapshot if ``keep_log``
    (the log holds ``last_included`` with its term, §7), else it is reset. The core
    decides ``keep_log``; the storage carries it out."""

    meta: SnapshotMeta
    keep_log: bool


Command = Union[
    LoadInitialState,
    LoadLog,
    SaveHardState,
    WriteLog,
    DeleteLogsFrom,
    Apply,
    Send,
    Respond,
    LeadWhenDurable,
    CreateSnapshot,
    ReadSnapshotChunk,
    WriteSnapshotChunk,
    InstallSnapshot,
    Query,
]
STORAGE_COMMANDS = (
    LoadInitialState,
    LoadLog,
    SaveHardState,
    WriteLog,
    DeleteLogsFrom,
    Apply,
    CreateSnapshot,
    ReadSnapshotChunk,
    WriteSnapshotChunk,
    InstallSnapshot,
    Query,
)
NOT_WRITES = (LoadInitialState, LoadLog, Apply, CreateSnapshot, ReadSnapshotChunk, Query)
"""Storage commands that make nothing durable: no reply waits for them."""
