"""The ``RaftStorage`` contract: the messages a storage actor handles, and its guarantees.

A Raft node talks to its storage only through these messages, sent as
:class:`~pykka_raft.calls.Call` and answered through the call's reply; the node never
blocks on them. Applications and tests may also ``ask`` a storage actor directly.

**Durability contract.** To ensure correctness, the storage must:

* process messages in the order it receives them (a Pykka inbox is FIFO: handle each
  message completely before the next);
* answer ``SaveHardState``, ``AppendEntryToLog``, ``ReplicateToLog`` and
  ``DeleteLogsFrom`` only once the change would survive a crash of the process (and, for a
  durable store, of the machine). The node replies to votes and appends only after those
  answers, so answering early can elect two leaders or lose acknowledged writes;
* never lose an entry or a hard state it acknowledged, and never change an entry except
  through ``DeleteLogsFrom`` followed by new writes;
* apply entries to the state machine exactly once and in index order, and report
  ``last_applied`` truthfully in ``GetInitialState``;
* fail loudly: an exception from any message but an application rejection in
  ``AppendEntryToLog`` stops the node (it cannot know what was persisted). A state
  machine's :class:`~pykka_raft.errors.ApplicationError` at apply time is not a failure:
  :meth:`RaftStorage.apply_to_state_machine` returns it as that entry's response.

**Snapshots** (``docs/snapshots.md``). ``CreateSnapshot`` builds a snapshot of the state
machine and drops the log through it; :class:`RaftStorage` captures the state on the
storage thread and serializes it on a background thread, so writes go on meanwhile.
``ReadSnapshotChunk`` serves a leader's transfer; ``WriteSnapshotChunk`` keeps received
chunks apart from the current snapshot; ``InstallSnapshot`` makes them current at once
(state machine restored, log reset or its matching suffix kept). A storage without
snapshots leaves those methods unimplemented and runs with
``Config.snapshot_policy = SnapshotPolicy.disabled()``.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import itertools
import logging
import threading
from typing import Any

import attrs
import pykka

from pykka_raft._pykka import drain_inbox, use_ref_class
from pykka_raft.calls import AskAwareRef, Call, answer, unwrap
from pykka_raft.errors import (
    ApplicationError,
    RaftError,
    SnapshotsUnsupported,
    StorageError,
    UnknownMessage,
)
from pykka_raft.logs import STORAGE, RateLimited
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryNormal,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.statemachine import StateMachine
from pykka_raft.types import LogId, LogIndex


@attrs.frozen
class GetInitialState:
    """Report the persisted state when a node starts. Replies :class:`InitialState`."""


@attrs.frozen
class SaveHardState:
    """Persist term, vote and initial membership durably. Replies ``None``."""

    hard_state: HardState


@attrs.frozen
class GetLogEntries:
    """Read the entries in the half-open range ``[start, stop)``. Replies a tuple."""

    start: LogIndex
    stop: LogIndex


@attrs.frozen
class AppendEntryToLog:
    """The leader's own new entries, each to be written at its index.

    The one place where the application may refuse an entry: a normal entry refused by
    :meth:`RaftStorage.validate_entry` is stored as a blank entry at the same index (so the
    log stays contiguous) and its error goes to the client as
    :class:`~pykka_raft.errors.ApplicationError`. Replies ``{index: error}`` of the
    refused entries (empty when all were accepted).
    """

    entries: tuple[Entry, ...]


@attrs.frozen
class ReplicateToLog:
    """Entries from the leader, each written at its index. Must not fail. Replies ``None``."""

    entries: tuple[Entry, ...]


@attrs.frozen
class DeleteLogsFrom:
    """Delete the entries at ``index`` and after (a conflicting suffix). Replies ``None``.

    actix-raft had no such message and only overwrote by index, so a stale suffix could
    survive (D6); Raft sends it before it writes the replacing entries.
    """

    index: LogIndex


@attrs.frozen
class ApplyToStateMachine:
    """Apply committed entries in order. Replies a tuple with one response per entry.

    Replaces actix-raft's ``ApplyEntryToStateMachine`` (leader, one entry) and
    ``ReplicateToStateMachine`` (followers, in bulk): every node applies through the same
    path, so state machines cannot diverge by role. Blank and configuration entries are
    passed too; the state machine answers ``None`` for them.
    """

    entries: tuple[Entry, ...]


@attrs.frozen
class CreateSnapshot:
    """Snapshot the state machine, which has applied exactly through ``last_included``
    (the node sends it after the matching ``ApplyToStateMachine``), keep it as the current
    snapshot with ``membership``, and drop the log through ``last_included``.

    Replies the current :class:`~pykka_raft.messages.SnapshotMeta` (a newer snapshot
    installed meanwhile wins). The answer may come after later messages' answers.
    """

    last_included: LogId
    membership: MembershipConfig


@attrs.frozen
class ReadSnapshotChunk:
    """Read up to ``size`` bytes of snapshot ``snapshot_id`` at byte ``offset``.

    Replies ``bytes``, or ``None`` if that snapshot is no longer the current one.
    """

    snapshot_id: str
    offset: int
    size: int


@attrs.frozen
class WriteSnapshotChunk:
    """Store a chunk of a snapshot being received, apart from the current snapshot.

    Offset 0 starts a new one (discarding any half-received one); later chunks follow in
    order. Durable before the reply. Replies ``None``.
    """

    meta: SnapshotMeta
    offset: int
    data: bytes


@attrs.frozen
class InstallSnapshot:
    """Make the fully received snapshot ``meta`` current, atomically: restore the state
    machine from it, set ``last_applied`` to its last index, and keep only the log after
    it if the log holds its last entry with the same term (else drop the whole log).
    Durable before the reply. Replies ``None``.
    """

    meta: SnapshotMeta


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


@attrs.frozen
class SnapshotBuilt:
    """Internal: a background build of ``request`` finished (``data`` or ``error``)."""

    request: CreateSnapshot
    reply: Any
    data: bytes | None
    error: BaseException | None


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


class RaftStorage(pykka.ThreadingActor, abc.ABC):
    """Base class of storage actors: dispatches the storage messages to methods.

    Subclasses implement the abstract methods below with the durability contract of this
    module; :class:`~pykka_raft.storage.memory.MemStore` is the in-memory reference. Messages
    arrive either as a :class:`~pykka_raft.calls.Call` (from the Raft node, answered
    through its reply) or plainly through ``ask``.
    """

    def __init__(self, state_machine: StateMachine) -> None:
        super().__init__()
        use_ref_class(self, AskAwareRef)
        self._stray = RateLimited(logging.getLogger(STORAGE))
        self.state_machine = state_machine
        # The index the state machine applied through, as far as this actor has seen
        # (applies and installs); ``None`` until then. Only the default dump reads it.
        self._applied_seen: LogIndex | None = None

    _builds = itertools.count(1)

    def on_receive(self, message: Any) -> Any:
        """Run :meth:`receive`. A message this storage does not handle, sent with ``ask``,
        is answered :class:`~pykka_raft.errors.UnknownMessage`; sent with ``tell``, it is
        logged (rate-limited) and dropped: a stray message never stops the storage."""
        message, asked = unwrap(message)
        try:
            return self.receive(message)
        except UnknownMessage as exc:
            if asked:
                raise
            self._stray.log(
                logging.WARNING, type(message).__name__, "%s dropped: %s", type(self).__name__, exc
            )
            return None

    def on_stop(self) -> None:
        """Answer every call still queued: the storage is gone (the node stops on it)."""
        for message in drain_inbox(self):
            call, _ = unwrap(message)
            if isinstance(call, Call):
                call.reply.set_exception(StorageError(f"{type(self).__name__} has stopped"))

    def receive(self, message: Any) -> Any:
        """Answer a call through its reply, or a plain ``ask`` directly (subclasses that
        take messages of their own override this, not ``on_receive``)."""
        if isinstance(message, Call):
            if isinstance(message.message, CreateSnapshot):
                self._build_snapshot(message.message, message.reply)
            else:
                answer(message.reply, self.handle, message.message)
            return None
        if isinstance(message, SnapshotBuilt):
            self._snapshot_built(message)
            return None
        return self.handle(message)

    def _build_snapshot(self, request: CreateSnapshot, reply: Any) -> None:
        """Capture the state now, serialize it on a background thread."""
        if not callable(getattr(self.state_machine, "snapshot", None)):
            # A state machine written before snapshots existed: run on without them, as
            # for a storage that does not implement them (not a fatal storage error).
            reply.set_exception(SnapshotsUnsupported(type(self.state_machine).__name__))
            return
        try:
            build = self.state_machine.snapshot()
        except Exception as exc:
            reply.set_exception(exc)
            return

        def run() -> None:
            data: bytes | None = None
            error: BaseException | None = None
            try:
                data = build()
            except Exception as exc:
                error = exc
            # If the storage stopped meanwhile, the node is gone too: nobody to answer.
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(SnapshotBuilt(request, reply, data, error))

        name = f"{type(self).__name__}-snapshot-{next(self._builds)}"
        threading.Thread(target=run, name=name, daemon=True).start()

    def _snapshot_built(self, built: SnapshotBuilt) -> None:
        if built.error is not None or built.data is None:
            built.reply.set_exception(built.error or ValueError("the snapshot produced no data"))
            return
        request, data = built.request, built.data
        answer(
            built.reply,
            lambda _: self.store_snapshot(request.last_included, request.membership, data),
            None,
        )

    def handle(self, message: Any) -> Any:
        """Dispatch one storage message to the method that implements it."""
        if isinstance(message, AppendEntryToLog):
            return self.append_entry_to_log(message.entries)
        if isinstance(message, ReplicateToLog):
            self.write_log(message.entries)
            return None
        if isinstance(message, ApplyToStateMachine):
            return self.apply_to_state_machine(message.entries)
        if isinstance(message, SaveHardState):
            self.save_hard_state(message.hard_state)
            return None
        if isinstance(message, DeleteLogsFrom):
            self.delete_logs_from(message.index)
            return None
        if isinstance(message, GetLogEntries):
            return self.get_log_entries(message.start, message.stop)
        if isinstance(message, GetInitialState):
            return self.get_initial_state()
        if isinstance(message, ReadSnapshotChunk):
            return self.read_snapshot_chunk(message.snapshot_id, message.offset, message.size)
        if isinstance(message, WriteSnapshotChunk):
            self.write_snapshot_chunk(message.meta, message.offset, message.data)
            return None
        if isinstance(message, QueryStateMachine):
            return self.query_state_machine(message.queries)
        if isinstance(message, InstallSnapshot):
            self.install_snapshot(message.meta)
            self._applied_seen = message.meta.last_included.index
            return None
        if isinstance(message, CreateSnapshot):  # a plain ask: build right here
            data = self.state_machine.snapshot()()
            return self.store_snapshot(message.last_included, message.membership, data)
        return self.handle_other(message)

    def handle_other(self, message: Any) -> Any:
        """Messages beyond the contract: the default answers :class:`DumpStorage` and
        refuses everything else with :class:`~pykka_raft.errors.UnknownMessage`.

        Override it for messages of your own, and call ``super().handle_other(message)``
        for the rest.
        """
        if isinstance(message, DumpStorage):
            return self.dump_storage()
        raise UnknownMessage(type(self).__name__, message)

    def dump_storage(self) -> StorageDump:
        """A :class:`StorageDump` built from this storage's own methods.

        The hard state, snapshot and log come from :meth:`get_initial_state` and
        :meth:`get_log_entries`; ``last_applied`` is the index this actor last applied or
        installed through (the reported one before that), and the state machine's data
        comes from :meth:`dump_state_machine`.
        """
        initial = self.get_initial_state()
        start = initial.snapshot.last_included.index + 1 if initial.snapshot else 1
        log = self.get_log_entries(start, initial.last_log_id.index + 1)
        applied = initial.last_applied if self._applied_seen is None else self._applied_seen
        return StorageDump(
            initial.hard_state, log, applied, self.dump_state_machine(), initial.snapshot
        )

    def dump_state_machine(self) -> Any:
        """Comparable data of the state machine: its ``dump()`` if it has one, else a deep
        copy of its ``data`` attribute (the dict of
        :class:`~pykka_raft.statemachine.KeyValueStateMachine`), else ``None``."""
        dump = getattr(self.state_machine, "dump", None)
        if callable(dump):
            return dump()
        return copy.deepcopy(getattr(self.state_machine, "data", None))

    def append_entry_to_log(self, entries: tuple[Entry, ...]) -> dict[LogIndex, BaseException]:
        """Validate the leader's entries, blank the refused ones, and write them all."""
        refused: dict[LogIndex, BaseException] = {}
        written = []
        for entry in entries:
            if isinstance(entry.payload, EntryNormal):
                try:
                    self.validate_entry(entry)
                except Exception as exc:  # the application's refusal
                    refused[entry.index] = exc
                    entry = Entry(entry.term, entry.index, EntryBlank())
            written.append(entry)
        self.write_log(tuple(written))
        return refused

    def validate_entry(self, entry: Entry) -> None:
        """Raise to refuse a client's entry on the leader; accepts everything by default."""
        self.state_machine.validate(entry)

    def query_state_machine(self, queries: tuple[Any, ...]) -> tuple[Any, ...]:
        """Answer read-only queries through the state machine's ``query``; a refused query
        answers its exception."""
        method = getattr(self.state_machine, "query", None)
        answers: list[Any] = []
        for query in queries:
            try:
                if not callable(method):
                    raise InvalidRequest(
                        f"{type(self.state_machine).__name__} has no query(): read through the log"
                    )
                answers.append(method(query))
            except Exception as exc:  # the reader's error
                answers.append(exc)
        return tuple(answers)

    def apply_to_state_machine(self, entries: tuple[Entry, ...]) -> tuple[Any, ...]:
        """Apply entries in order through :meth:`apply_entry` and record ``last_applied``.

        A state machine that refuses one entry deterministically raises
        :class:`~pykka_raft.errors.ApplicationError`: that exception becomes the entry's
        response (the node answers the client with it as an error) and the next entries
        are applied as usual. Every replica refuses the same entry, so they stay equal,
        provided the refusal had no side effects. Any other exception is fatal.
        """
        responses: list[Any] = []
        for entry in entries:
            try:
                responses.append(self.apply_entry(entry))
            except ApplicationError as exc:
                responses.append(exc)
        if entries:
            self.set_last_applied(entries[-1].index)
            self._applied_seen = entries[-1].index
        return tuple(responses)

    def apply_entry(self, entry: Entry) -> Any:
        """Apply one committed entry through the state machine; return its response.

        Override it to wrap each apply (a durable state machine undoes a refused entry's
        partial writes here, e.g. with a savepoint).
        """
        return self.state_machine.apply(entry)

    @abc.abstractmethod
    def get_initial_state(self) -> InitialState:
        """The hard state, the last log id, and the last applied index."""

    @abc.abstractmethod
    def save_hard_state(self, hard_state: HardState) -> None:
        """Persist the hard state durably before returning."""

    @abc.abstractmethod
    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """The entries in ``[start, stop)`` that the log holds."""

    @abc.abstractmethod
    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index, durably before returning."""

    @abc.abstractmethod
    def delete_logs_from(self, index: LogIndex) -> None:
        """Delete every entry at ``index`` and after, durably before returning."""

    @abc.abstractmethod
    def set_last_applied(self, index: LogIndex) -> None:
        """Record that the state machine has applied everything through ``index``."""

    # --- snapshots: override all four to support them -------------------------------------

    def store_snapshot(
        self, last_included: LogId, membership: MembershipConfig, data: bytes
    ) -> SnapshotMeta:
        """Keep ``data`` as the current snapshot (unless a newer one is current) and drop
        the log through ``last_included``, durably; return the current snapshot's meta."""
        raise SnapshotsUnsupported(type(self).__name__)

    def read_snapshot_chunk(self, snapshot_id: str, offset: int, size: int) -> bytes | None:
        """Up to ``size`` bytes of the current snapshot at ``offset``; ``None`` if
        ``snapshot_id`` is not the current snapshot."""
        raise SnapshotsUnsupported(type(self).__name__)

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Store a received chunk apart from the current snapshot, durably."""
        raise SnapshotsUnsupported(type(self).__name__)

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Make the received snapshot current (see :class:`InstallSnapshot`), durably."""
        raise SnapshotsUnsupported(type(self).__name__)
