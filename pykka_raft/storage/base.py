"""``RaftStorage``: the base class of storage actors, which dispatches the storage
messages (:mod:`pykka_raft.storage.messages`) to the methods a storage implements, under
the durability contract of :mod:`pykka_raft.storage.contract`."""

from __future__ import annotations

import abc
import copy
import functools
import inspect
import itertools
import logging
import threading
from typing import Any

import attrs
import pykka

from pykka_raft._pykka import drain_inbox, use_ref_class
from pykka_raft.calls import AskAwareRef, Call, answer, answer_dropped, deliver_error, unwrap
from pykka_raft.errors import (
    ApplicationError,
    SnapshotsUnsupported,
    StorageError,
    UnknownMessage,
)
from pykka_raft.logs import STORAGE, RateLimited
from pykka_raft.messages import (
    Entry,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.statemachine import StateMachine
from pykka_raft.storage.messages import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    DumpStorage,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    InvalidRequest,
    QueryStateMachine,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
    WriteSnapshotChunk,
    blank_refused,
)
from pykka_raft.types import LogId, LogIndex


@attrs.frozen
class SnapshotBuilt:
    """Internal: a background build of ``request`` finished (``data`` or ``error``)."""

    request: CreateSnapshot
    reply: Any
    data: bytes | None
    error: BaseException | None


class RaftStorage(pykka.ThreadingActor, abc.ABC):
    """Base class of storage actors: dispatches the storage messages to methods.

    Subclasses implement the abstract methods below with the durability contract of this
    module; :class:`~pykka_raft.storage.memory.MemStore` is the in-memory reference. Messages
    arrive either as a :class:`~pykka_raft.calls.Call` (from the Raft node, answered
    through its reply) or plainly through ``ask``.
    """

    def __init__(self, state_machine: StateMachine) -> None:
        if not callable(getattr(state_machine, "apply", None)):
            raise TypeError(
                "state_machine must be a state machine (with an apply(entry) method), got "
                f"{type(state_machine).__name__} {state_machine!r:.80}"
            )
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

    @classmethod
    def stopped_error(cls) -> StorageError:
        """What a call gets that this storage can no longer handle."""
        return StorageError(f"{cls.__name__} has stopped")

    build_results: tuple[type, ...] = (SnapshotBuilt,)
    """Internal messages a background snapshot build sends back; each has a ``reply``."""

    @classmethod
    def answer_stopped(cls, message: Any) -> None:
        """Answer a message left in the inbox of this stopped storage: a call, or a
        snapshot build's result (its ``CreateSnapshot``), gets :meth:`stopped_error`."""
        if isinstance(message, cls.build_results):
            deliver_error(message.reply, cls.stopped_error())  # type: ignore[attr-defined]
        else:
            answer_dropped(message, cls.stopped_error())

    def on_stop(self) -> None:
        """Answer every call still queued, and every snapshot build whose result is: the
        storage is gone (the node stops on it)."""
        self.answer_queued()

    def on_failure(self, *exc_info: Any) -> None:
        """An exception escaped a told message's handler and Pykka stops the actor without
        :meth:`on_stop`: answer what is queued all the same."""
        self.answer_queued()

    def answer_queued(self) -> None:
        """Answer everything still in the inbox of this stopped storage (:meth:`answer_stopped`)."""
        for message in drain_inbox(self):
            self.answer_stopped(message)

    def built(self, result: Any) -> None:
        """Hand a background build's result to this actor (on the build's thread); if the
        actor has stopped, answer its caller here instead."""
        try:
            self.actor_ref.tell(result)
        except pykka.ActorDeadError:
            deliver_error(result.reply, self.stopped_error())

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
            deliver_error(reply, SnapshotsUnsupported(type(self.state_machine).__name__))
            return
        try:
            build = self.state_machine.snapshot()
        except Exception as exc:
            deliver_error(reply, exc)
            return

        def run() -> None:
            data: bytes | None = None
            error: BaseException | None = None
            try:
                data = build()
            except Exception as exc:
                error = exc
            self.built(SnapshotBuilt(request, reply, data, error))

        name = f"{type(self).__name__}-snapshot-{next(self._builds)}"
        threading.Thread(target=run, name=name, daemon=True).start()

    def _snapshot_built(self, built: SnapshotBuilt) -> None:
        if built.error is not None or built.data is None:
            deliver_error(built.reply, built.error or ValueError("the snapshot produced no data"))
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
            if message.keep_log is not None and _takes_keep_log(type(self)):
                self.install_snapshot(message.meta, keep_log=message.keep_log)
            else:  # a storage written before the node said; it decides by the same rule
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
        written, refused = blank_refused(entries, self.validate_entry)
        self.write_log(written)
        return refused

    def validate_entry(self, entry: Entry) -> None:
        """Raise to refuse a client's entry on the leader; accepts everything by default."""
        self.state_machine.validate(entry)

    def query_state_machine(self, queries: tuple[Any, ...]) -> tuple[Any, ...]:
        """Answer read-only queries through the state machine's ``query_many`` if it has
        one, else its ``query`` for each; a refused query answers its exception."""
        many = getattr(self.state_machine, "query_many", None)
        if callable(many):
            batch = tuple(many(queries))
            if len(batch) != len(queries):
                raise StorageError(
                    f"{type(self.state_machine).__name__}.query_many answered "
                    f"{len(batch)} of {len(queries)} queries"
                )
            return batch
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

    def install_snapshot(self, meta: SnapshotMeta, keep_log: bool | None = None) -> None:
        """Make the received snapshot current (see :class:`InstallSnapshot`), durably.

        ``keep_log`` is the node's decision whether the log after the snapshot stays
        (``None``: decide by the rule of :class:`InstallSnapshot`). An override may leave
        the parameter out; it then decides by that rule itself.
        """
        raise SnapshotsUnsupported(type(self).__name__)


@functools.cache
def _takes_keep_log(cls: type[RaftStorage]) -> bool:
    """Whether ``cls.install_snapshot`` accepts ``keep_log`` (storages written before it
    existed do not)."""
    return "keep_log" in inspect.signature(cls.install_snapshot).parameters
