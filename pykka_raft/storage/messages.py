"""The storage messages a Raft node sends to its storage actor (the ``RaftStorage``
contract, :mod:`pykka_raft.storage.contract`), and the dump any storage answers for tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from pykka_raft.errors import RaftError
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryNormal,
    HardState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.messages.checks import _instance_of, _non_negative_int
from pykka_raft.types import LogId, LogIndex


def _as_tuple(value: Any) -> Any:
    """A list of entries as a tuple (a network may deliver a request's entries as a list);
    anything else as it is, for :func:`_entries` to check."""
    return tuple(value) if type(value) is list else value


def _as_bytes(value: Any) -> Any:
    """A ``bytearray`` or ``memoryview`` as ``bytes``; anything else as it is."""
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


def _entries(instance: Any, attribute: Any, value: Any) -> None:
    """A tuple of :class:`Entry` (what the node sends; checked so that a storage addressed
    directly refuses anything else when the message is built)."""
    if type(value) is not tuple or not all(isinstance(e, Entry) for e in value):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a tuple of Entry, got "
            f"{type(value).__name__} {value!r:.80}"
        )


def _optional_bool(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and type(value) is not bool:
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be True, False or None, got "
            f"{type(value).__name__} {value!r}"
        )


@attrs.frozen
class GetInitialState:
    """Report the persisted state when a node starts. Replies :class:`InitialState`."""


@attrs.frozen
class SaveHardState:
    """Persist term, vote and initial membership durably. Replies ``None``."""

    hard_state: HardState = attrs.field(validator=_instance_of(HardState))


@attrs.frozen
class GetLogEntries:
    """Read the entries in the half-open range ``[start, stop)``. Replies a tuple."""

    start: LogIndex = attrs.field(validator=_non_negative_int)
    stop: LogIndex = attrs.field(validator=_non_negative_int)


@attrs.frozen
class AppendEntryToLog:
    """The leader's own new entries, each to be written at its index.

    The one place where the application may refuse an entry: a normal entry refused by
    :meth:`RaftStorage.validate_entry` is stored as a blank entry at the same index (so the
    log stays contiguous) and its error goes to the client as
    :class:`~pykka_raft.errors.ApplicationError`. Replies ``{index: error}`` of the
    refused entries (empty when all were accepted). :func:`blank_refused` applies the rule.
    """

    entries: tuple[Entry, ...] = attrs.field(converter=_as_tuple, validator=_entries)


def blank_refused(
    entries: Iterable[Entry], check: Callable[[Entry], object]
) -> tuple[tuple[Entry, ...], dict[LogIndex, BaseException]]:
    """:class:`AppendEntryToLog`'s rule, the same for every storage: each normal entry
    that ``check`` refuses (by raising an ``Exception``) becomes a blank entry at the same
    index and term; other entries are not checked.

    Returns the entries to write, in order, and the refusals by index.
    """
    refused: dict[LogIndex, BaseException] = {}
    written = []
    for entry in entries:
        if isinstance(entry.payload, EntryNormal):
            try:
                check(entry)
            except Exception as exc:  # the application's refusal
                refused[entry.index] = exc
                entry = Entry(entry.term, entry.index, EntryBlank())
        written.append(entry)
    return tuple(written), refused


@attrs.frozen
class ReplicateToLog:
    """Entries from the leader, each written at its index. Must not fail. Replies ``None``."""

    entries: tuple[Entry, ...] = attrs.field(converter=_as_tuple, validator=_entries)


@attrs.frozen
class DeleteLogsFrom:
    """Delete the entries at ``index`` and after (a conflicting suffix). Replies ``None``.

    actix-raft had no such message and only overwrote by index, so a stale suffix could
    survive (D6); Raft sends it before it writes the replacing entries.
    """

    index: LogIndex = attrs.field(validator=_non_negative_int)


@attrs.frozen
class ApplyToStateMachine:
    """Apply committed entries in order. Replies a tuple with one response per entry.

    Replaces actix-raft's ``ApplyEntryToStateMachine`` (leader, one entry) and
    ``ReplicateToStateMachine`` (followers, in bulk): every node applies through the same
    path, so state machines cannot diverge by role. Blank and configuration entries are
    passed too; the state machine answers ``None`` for them.
    """

    entries: tuple[Entry, ...] = attrs.field(converter=_as_tuple, validator=_entries)


@attrs.frozen
class CreateSnapshot:
    """Snapshot the state machine, which has applied exactly through ``last_included``
    (the node sends it after the matching ``ApplyToStateMachine``), keep it as the current
    snapshot with ``membership``, and drop the log through ``last_included``.

    Replies the current :class:`~pykka_raft.messages.SnapshotMeta` (a newer snapshot
    installed meanwhile wins). The answer may come after later messages' answers.
    """

    last_included: LogId = attrs.field(validator=_instance_of(LogId))
    membership: MembershipConfig = attrs.field(validator=_instance_of(MembershipConfig))


@attrs.frozen
class ReadSnapshotChunk:
    """Read up to ``size`` bytes of snapshot ``snapshot_id`` at byte ``offset``.

    Replies ``bytes``, or ``None`` if that snapshot is no longer the current one.
    """

    snapshot_id: str = attrs.field(validator=_instance_of(str))
    offset: int = attrs.field(validator=_non_negative_int)
    size: int = attrs.field(validator=_non_negative_int)


@attrs.frozen
class WriteSnapshotChunk:
    """Store a chunk of a snapshot being received, apart from the current snapshot.

    Offset 0 starts a new one (discarding any half-received one); later chunks follow in
    order. Need not be durable before the reply: a node that restarts starts a reception
    over. Replies ``None``.
    """

    meta: SnapshotMeta = attrs.field(validator=_instance_of(SnapshotMeta))
    offset: int = attrs.field(validator=_non_negative_int)
    data: bytes = attrs.field(converter=_as_bytes, validator=_instance_of(bytes))


@attrs.frozen
class InstallSnapshot:
    """Make the fully received snapshot ``meta`` current, atomically: restore the state
    machine from it, set ``last_applied`` to its last index, and keep the log after it if
    ``keep_log`` (else drop the whole log). Durable before the reply. Replies ``None``.

    The node decides ``keep_log``: true when its log holds the snapshot's last entry with
    the same term (§7). ``None`` (a sender that does not say) leaves the same rule to the
    storage.
    """

    meta: SnapshotMeta = attrs.field(validator=_instance_of(SnapshotMeta))
    keep_log: bool | None = attrs.field(default=None, validator=_optional_bool)


@attrs.frozen
class QueryStateMachine:
    """Answer read-only ``queries`` from the state machine as it is now (``ClientRead``,
    ``docs/reads.md``). FIFO with the applies: the node sends it once the state machine has
    been sent every entry through the reads' index. Replies a tuple with one answer per
    query, in order; a query the state machine refuses has the exception as its answer
    (it is the reader's error, not the storage's). Changes nothing."""

    queries: Any = attrs.field(converter=tuple)  # a tuple of application values


class InvalidRequest(RaftError, ValueError):
    """A storage request that makes no sense, refused before anything was changed: an
    entry that would leave a gap in the log, a snapshot chunk out of order, the install
    of a snapshot not fully received, deleting applied entries.

    Sent by a Raft node, it stops the node like any storage error (the node has a bug or
    the storage lost data); asked directly, the storage stays usable.
    """


@attrs.frozen
class DumpStorage:
    """Ask any storage for a copy of its contents, for tests and checks.

    Replies :class:`StorageDump`. :class:`RaftStorage` answers it from its own methods
    (:meth:`RaftStorage.dump_storage`); a storage may override that with something cheaper.
    Not part of what a Raft node sends: the testing tools use it to compare nodes.
    """


@attrs.frozen
class StorageDump:
    """A copy of a storage's contents, for assertions.

    Attributes:
        hard_state: the last saved hard state.
        log: every entry the log holds (those after the snapshot), in index order.
        last_applied: the index the state machine has applied through.
        state_machine: comparable data of the state machine (see
            :meth:`RaftStorage.dump_state_machine`): equal on two nodes that applied the
            same entries.
        snapshot: the current snapshot's meta, or ``None``.
    """

    hard_state: HardState
    log: tuple[Entry, ...]
    last_applied: LogIndex
    state_machine: Any
    snapshot: SnapshotMeta | None = None


STORAGE_MESSAGES = (
    GetInitialState,
    SaveHardState,
    GetLogEntries,
    AppendEntryToLog,
    ReplicateToLog,
    DeleteLogsFrom,
    ApplyToStateMachine,
    CreateSnapshot,
    ReadSnapshotChunk,
    WriteSnapshotChunk,
    InstallSnapshot,
    QueryStateMachine,
)
