"""A conformance suite for storage actors: does a storage keep the ``RaftStorage`` contract?

Subclass :class:`StorageConformance` in a pytest module, name the subclass ``Test...``,
and implement :meth:`~StorageConformance.start_storage`; pytest then runs every test of
the suite against your storage (requires pytest)::

    from pykka_raft.testing.conformance import StorageConformance, key_value_machine

    class TestMyStore(StorageConformance):
        def start_storage(self, place, rejecting=False):
            return MyStore.start(place, key_value_machine(rejecting))

The suite drives the storage with the messages a Raft node sends (through
:class:`~pykka_raft.calls.Call` and plain ``ask``) and checks the answers, the state after
a restart on the same data, and :class:`~pykka_raft.storage.contract.DumpStorage`. Entries
carry the key-value commands (``Put``, ``Get``, ``Delete``, ``CompareAndSet``), so the
storage must apply them as :class:`~pykka_raft.statemachine.KeyValueStateMachine` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types with the codec)
from pykka_raft.calls import Call, FutureReply
from pykka_raft.errors import ApplicationError, UnknownMessage
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.statemachine import (
    CasResult,
    CompareAndSet,
    Delete,
    Get,
    InvalidCommand,
    KeyValueStateMachine,
    Put,
)
from pykka_raft.storage.contract import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    DumpStorage,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
    WriteSnapshotChunk,
)
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine
from pykka_raft.types import LogId

REJECT = "reject"
"""A ``Put`` whose key starts with this is refused at apply time by the rejecting machines."""


def _refuse(entry: Entry) -> bool:
    data = getattr(entry.payload, "data", None)
    return isinstance(data, Put) and isinstance(data.key, str) and data.key.startswith(REJECT)


class RejectingKeyValueStateMachine(KeyValueStateMachine):
    """A :class:`KeyValueStateMachine` that refuses, while applying, every ``Put`` whose
    key starts with ``"reject"``: it raises :class:`~pykka_raft.errors.ApplicationError`
    before changing anything, as the contract asks."""

    def __init__(self) -> None:
        super().__init__(keep_history=False)

    def apply(self, entry: Entry) -> Any:
        """Refuse the ``reject...`` puts; apply the rest as usual."""
        if _refuse(entry):
            raise ApplicationError(ValueError(f"refused {entry.payload}"))
        return super().apply(entry)


class RejectingSqliteKeyValueStateMachine(SqliteKeyValueStateMachine):
    """The durable key-value machine with the same refusals, raised *after* it wrote the
    value: the store must roll that write back."""

    def apply(self, entry: Entry) -> Any:
        """Apply, then refuse the ``reject...`` puts (leaving their write to undo)."""
        response = super().apply(entry)
        if _refuse(entry):
            raise ApplicationError(ValueError(f"refused {entry.payload}"))
        return response


def key_value_machine(rejecting: bool = False) -> KeyValueStateMachine:
    """The in-memory state machine the suite expects: rejecting or not."""
    if rejecting:
        return RejectingKeyValueStateMachine()
    return KeyValueStateMachine(keep_history=False)


# --- entries ----------------------------------------------------------------------------


def normal(term: int, index: int, command: Any) -> Entry:
    """A client entry."""
    return Entry(term, index, EntryNormal(command))


def blank(term: int, index: int) -> Entry:
    """A leader's blank entry."""
    return Entry(term, index, EntryBlank())


def config(term: int, index: int, membership: MembershipConfig) -> Entry:
    """A configuration entry."""
    return Entry(term, index, EntryConfigChange(membership))


def puts(term: int, first: int, last: int, prefix: str = "k") -> tuple[Entry, ...]:
    """``Put(f"{prefix}{i % 5}", i)`` at indexes ``first..last``."""
    return tuple(normal(term, i, Put(f"{prefix}{i % 5}", i)) for i in range(first, last + 1))


def model_state(entries: tuple[Entry, ...] | list[Entry]) -> dict[Any, Any]:
    """The key-value data after applying ``entries`` (refusals skipped)."""
    machine = KeyValueStateMachine(keep_history=False)
    for entry in entries:
        if not _refuse(entry):
            machine.apply(entry)
    return machine.data


MEMBERS = MembershipConfig(members=(1, 2, 3), addresses={1: "10.0.0.1:7001", 2: "h2:7002"})
JOINT = MembershipConfig(
    members=(1, 2, 3),
    members_after_consensus=(2, 3, 4),
    non_voters=(1, 5),
    addresses={4: "[::1]:7004", 5: "node-5:7005"},
)


class Store:
    """A storage under test: its ref, and a restart on the same place."""

    def __init__(self, suite: StorageConformance, place: Path, rejecting: bool) -> None:
        self.suite, self.place, self.rejecting = suite, place, rejecting
        self.ref: Any = None
        self.start()

    def start(self) -> None:
        """Start a storage actor on the place."""
        self.ref = self.suite.start_storage(self.place, self.rejecting)
        self.suite._started.append(self)

    def stop(self) -> None:
        """Stop the actor and wait until it has stopped."""
        if self.ref is not None and self.ref.is_alive():
            self.ref.stop(timeout=self.suite.timeout)

    def restart(self) -> None:
        """Stop, then start again on the same data: a node restarting."""
        self.stop()
        self.start()

    def ask(self, message: Any) -> Any:
        """Ask a plain message and wait for the answer."""
        return self.ref.ask(message, timeout=self.suite.timeout)

    def call(self, message: Any) -> pykka.Future[Any]:
        """Send a message as a Raft node does (a :class:`Call`); return the future."""
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        self.ref.tell(Call(message, FutureReply(future)))
        return future

    def initial(self) -> InitialState:
        """The answer to ``GetInitialState``."""
        state: InitialState = self.ask(GetInitialState())
        return state

    def log(self) -> tuple[Entry, ...]:
        """Every entry the log holds."""
        entries: tuple[Entry, ...] = self.ask(
            GetLogEntries(1, self.initial().last_log_id.index + 1)
        )
        return entries

    def dump(self) -> StorageDump:
        """The answer to ``DumpStorage``."""
        dump: StorageDump = self.ask(DumpStorage())
        return dump

    def snapshot_bytes(self, meta: SnapshotMeta, chunk: int = 7) -> bytes:
        """Read the whole snapshot ``meta`` in chunks of ``chunk`` bytes."""
        data = b""
        while len(data) < meta.size:
            part = self.ask(ReadSnapshotChunk(meta.snapshot_id, len(data), chunk))
            assert part, f"snapshot {meta.snapshot_id} ended at {len(data)} of {meta.size}"
            assert len(part) <= chunk
            data += part
        return data

    def receive(self, meta: SnapshotMeta, data: bytes, chunk: int = 5) -> None:
        """Store ``data`` in chunks, as a node receiving ``meta`` does."""
        for offset in range(0, max(len(data), 1), chunk):
            self.call(WriteSnapshotChunk(meta, offset, data[offset : offset + chunk])).get(
                timeout=self.suite.timeout
            )


class StorageConformance:
    """The storage contract as tests. Subclass it as ``Test<YourStore>`` and implement
    :meth:`start_storage`.

    Attributes:
        timeout: seconds to wait for each answer.
        supports_snapshots: set to ``False`` for a storage without the snapshot messages
            (their tests are skipped).
    """

    timeout = 10.0
    supports_snapshots = True

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        """Start your storage actor on ``place`` and return its ref.

        Args:
            place: a directory for this storage's data: a new, empty one for each storage
                of a test, and the same one again when the suite restarts that storage
                (it stops the previous actor first). A storage kept in memory can use it
                as a key to its data objects (see :class:`MemStoreConformance`).
            rejecting: give the storage a state machine that refuses at apply time
                (:class:`~pykka_raft.errors.ApplicationError`) every ``Put`` whose key
                starts with ``"reject"``: :func:`key_value_machine` makes one.
        """
        raise NotImplementedError("implement start_storage in your subclass")

    # --- harness ---------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _conformance_harness(self, tmp_path: Path) -> Iterator[None]:
        self._tmp = tmp_path
        self._started: list[Store] = []
        self._places = 0
        yield
        for store in reversed(self._started):
            store.stop()

    def store(self, rejecting: bool = False) -> Store:
        """A new storage on a new place."""
        self._places += 1
        place = self._tmp / f"store{self._places}"
        place.mkdir()
        return Store(self, place, rejecting)

    def _need_snapshots(self) -> None:
        if not self.supports_snapshots:
            pytest.skip("this storage does not support snapshots")

    # --- initial state and hard state ------------------------------------------------

    def test_a_new_storage_is_pristine(self) -> None:
        """A new storage reports term 0, no vote, an empty membership, an empty log."""
        store = self.store()
        assert store.initial() == InitialState(LogId(0, 0), 0, HardState(), None)
        assert store.ask(GetLogEntries(1, 10)) == ()

    def test_hard_state_round_trip(self) -> None:
        """The last saved hard state is reported, before and after a restart, with the
        whole membership (joint sets, non-voters, addresses)."""
        store = self.store()
        store.ask(SaveHardState(HardState(1, None, MEMBERS)))
        last = HardState(7, 3, JOINT)
        store.ask(SaveHardState(last))
        assert store.initial().hard_state == last
        store.restart()
        assert store.initial().hard_state == last
        assert store.initial().hard_state.membership.address_of(4) == "[::1]:7004"

    # --- the log ---------------------------------------------------------------------

    def test_append_and_read_half_open_ranges(self) -> None:
        """Entries are read back by half-open ranges ``[start, stop)``."""
        store = self.store()
        entries = (blank(1, 1), *puts(1, 2, 6))
        assert store.ask(AppendEntryToLog(entries)) == {}
        assert store.ask(GetLogEntries(1, 7)) == entries
        assert store.ask(GetLogEntries(2, 4)) == entries[1:3]
        assert store.ask(GetLogEntries(5, 100)) == entries[4:]
        assert store.ask(GetLogEntries(7, 9)) == ()
        assert store.ask(GetLogEntries(3, 3)) == ()
        assert store.initial().last_log_id == LogId(1, 6)

    def test_replicated_entries_continue_the_log(self) -> None:
        """``ReplicateToLog`` writes each entry at its index, batch after batch."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 3)))
        store.ask(ReplicateToLog(puts(2, 4, 5)))
        assert store.log() == (*puts(1, 1, 3), *puts(2, 4, 5))
        assert store.initial().last_log_id == LogId(2, 5)

    def test_a_write_at_an_existing_index_replaces_that_entry(self) -> None:
        """An entry written at an index the log holds replaces the entry there."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 3)))
        replacement = normal(2, 3, Put("other", "x"))
        store.ask(ReplicateToLog((replacement,)))
        assert store.log() == (*puts(1, 1, 2), replacement)
        assert store.initial().last_log_id == LogId(2, 3)

    def test_delete_logs_from_then_rewrite(self) -> None:
        """``DeleteLogsFrom`` removes a conflicting suffix; new entries take its place,
        and a restart sees the result."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 6)))
        store.ask(DeleteLogsFrom(4))
        assert store.initial().last_log_id == LogId(1, 3)
        assert store.ask(GetLogEntries(1, 10)) == puts(1, 1, 3)
        store.ask(ReplicateToLog(puts(3, 4, 5, prefix="new")))
        store.restart()
        assert store.log() == (*puts(1, 1, 3), *puts(3, 4, 5, prefix="new"))
        assert store.initial().last_log_id == LogId(3, 5)
        store.ask(DeleteLogsFrom(1))
        assert store.initial().last_log_id == LogId(0, 0)
        assert store.log() == ()

    def test_an_entry_that_would_leave_a_gap_is_refused(self) -> None:
        """A request that makes no sense raises, changes nothing, and the storage goes
        on answering (through ``ask`` and through a ``Call``)."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 2)))
        with pytest.raises(ValueError):
            store.ask(ReplicateToLog((normal(1, 4, Put("a", 1)),)))
        with pytest.raises(ValueError):
            store.call(AppendEntryToLog((normal(1, 5, Put("a", 1)),))).get(timeout=self.timeout)
        assert store.log() == puts(1, 1, 2)
        store.ask(ReplicateToLog(puts(1, 3, 3)))
        assert store.initial().last_log_id == LogId(1, 3)

    def test_append_entry_to_log_blanks_refused_entries(self) -> None:
        """The application refuses a client entry on the leader: it is stored blank at
        its index and its error returned, the others are stored as they are."""
        store = self.store()
        entries = (blank(2, 1), normal(2, 2, Put("a", 1)), normal(2, 3, "not a command"))
        refused = store.ask(AppendEntryToLog((*entries, normal(2, 4, Get("a")))))
        assert set(refused) == {3}
        assert isinstance(refused[3], InvalidCommand)
        assert store.log() == (entries[0], entries[1], blank(2, 3), normal(2, 4, Get("a")))

    # --- applying ----------------------------------------------------------------------

    def test_apply_in_order_with_the_key_value_responses(self) -> None:
        """Each entry is applied once, in order, with one response per entry."""
        store = self.store()
        entries = (
            blank(1, 1),
            config(1, 2, MEMBERS),
            normal(1, 3, Put("a", 1)),
            normal(1, 4, Put("a", 2)),
            normal(1, 5, Get("a")),
            normal(1, 6, CompareAndSet("a", 1, 3)),
            normal(1, 7, CompareAndSet("a", 2, {"nested": (1, b"x")})),
            normal(1, 8, Delete("a")),
            normal(1, 9, Get("a")),
        )
        store.ask(ReplicateToLog(entries))
        first = store.ask(ApplyToStateMachine(entries[:4]))
        second = store.ask(ApplyToStateMachine(entries[4:]))
        assert (*first, *second) == (
            None,
            None,
            None,
            1,
            2,
            CasResult(False, 2),
            CasResult(True, 2),
            {"nested": (1, b"x")},
            None,
        )
        assert store.initial().last_applied == 9
        assert store.dump().state_machine == {}

    def test_an_application_error_at_apply_is_the_entry_s_response(self) -> None:
        """A state machine that refuses an entry at apply time: the storage returns the
        :class:`ApplicationError` as that entry's response, applies the next ones, and
        the refused entry leaves no trace, also after a restart."""
        store = self.store(rejecting=True)
        entries = (
            normal(1, 1, Put("a", 1)),
            normal(1, 2, Put("reject-me", 2)),
            normal(1, 3, Put("a", 3)),
            normal(1, 4, Get("reject-me")),
        )
        store.ask(ReplicateToLog(entries))
        responses = store.call(ApplyToStateMachine(entries)).get(timeout=self.timeout)
        assert responses[0] is None
        assert isinstance(responses[1], ApplicationError)
        assert responses[2:] == (1, None)
        assert store.dump().state_machine == {"a": 3}
        assert store.dump().last_applied == 4
        store.restart()
        assert store.dump().state_machine == model_state(entries[: store.initial().last_applied])

    def test_restart_reports_last_applied_truthfully(self) -> None:
        """After a restart, ``last_applied`` matches the state machine present: applying
        the entries after it gives the state of applying everything exactly once."""
        store = self.store()
        entries = puts(1, 1, 40)
        store.ask(ReplicateToLog(entries))
        for start in range(0, 40, 8):
            store.call(ApplyToStateMachine(entries[start : start + 8]))
        store.ask(GetLogEntries(1, 2))  # answered after every apply
        store.restart()
        applied = store.initial().last_applied
        assert 0 <= applied <= 40
        assert store.dump().state_machine == model_state(entries[:applied])
        store.ask(ApplyToStateMachine(entries[applied:]))  # what a node would apply again
        assert store.dump().state_machine == model_state(entries)
        assert store.initial().last_applied == 40

    # --- ordering and restarts ---------------------------------------------------------

    def test_calls_are_answered_in_order(self) -> None:
        """A burst of calls, as a node sends them: every one is answered, in the order
        sent, and each read sees every write sent before it."""
        store = self.store()
        order: list[int] = []

        class Recording:
            def __init__(self, number: int) -> None:
                self.number = number
                self.future: pykka.Future[Any] = pykka.ThreadingFuture()

            def set(self, value: Any = None) -> None:
                order.append(self.number)
                self.future.set(value)

            def set_exception(self, error: BaseException) -> None:
                order.append(self.number)
                self.future.set_exception((type(error), error, error.__traceback__))

        messages: list[Any] = [SaveHardState(HardState(1, 1, MEMBERS))]
        messages += [ReplicateToLog((entry,)) for entry in puts(1, 1, 30)]
        messages += [GetLogEntries(1, 31), SaveHardState(HardState(2, None, MEMBERS))]
        messages += [ApplyToStateMachine(puts(1, 1, 10)), DeleteLogsFrom(25)]
        messages += [AppendEntryToLog(puts(2, 25, 26)), GetInitialState()]
        replies = [Recording(n) for n in range(len(messages))]
        for message, reply in zip(messages, replies, strict=True):
            store.ref.tell(Call(message, reply))
        results = [reply.future.get(timeout=self.timeout) for reply in replies]
        assert order == list(range(len(messages)))
        assert results[31] == puts(1, 1, 30)
        final: InitialState = results[-1]
        assert final == InitialState(LogId(2, 26), 10, HardState(2, None, MEMBERS), None)

    def test_acknowledged_writes_survive_a_restart(self) -> None:
        """Everything answered before the storage stopped is there after a restart:
        hard state, entries, configuration entries with their addresses."""
        store = self.store()
        entries = (blank(1, 1), config(1, 2, MEMBERS), *puts(1, 3, 20), config(2, 21, JOINT))
        futures = [store.call(ReplicateToLog((entry,))) for entry in entries]
        futures.append(store.call(SaveHardState(HardState(2, 2, MEMBERS))))
        for future in futures:
            future.get(timeout=self.timeout)
        before = store.initial()
        store.restart()
        assert store.initial() == before
        log = store.log()
        assert log == entries
        assert log[-1].payload == EntryConfigChange(JOINT)
        assert log[1].payload.membership.address_book() == {  # type: ignore[union-attr]
            1: "10.0.0.1:7001",
            2: "h2:7002",
        }

    def test_unknown_messages_are_refused_and_the_storage_goes_on(self) -> None:
        """An unknown message gets :class:`UnknownMessage`; the storage keeps running."""
        store = self.store()
        with pytest.raises(UnknownMessage):
            store.ask("nonsense")
        with pytest.raises(UnknownMessage):
            store.call(object()).get(timeout=self.timeout)
        assert store.initial().last_log_id == LogId(0, 0)

    def test_dump_storage_reports_the_contents(self) -> None:
        """``DumpStorage`` answers with the hard state, the log, ``last_applied`` and the
        state machine's data."""
        store = self.store()
        entries = puts(1, 1, 6)
        store.ask(SaveHardState(HardState(1, 1, MEMBERS)))
        store.ask(ReplicateToLog(entries))
        store.ask(ApplyToStateMachine(entries[:4]))
        assert store.dump() == StorageDump(
            HardState(1, 1, MEMBERS), entries, 4, model_state(entries[:4]), None
        )

    # --- snapshots -------------------------------------------------------------------

    def _compacted(self, store: Store, last: int = 10, at: int = 6) -> SnapshotMeta:
        """Entries 1..last, applied through ``at`` and compacted there (through a Call,
        as a node asks)."""
        entries = (config(1, 1, MEMBERS), *puts(1, 2, last))
        store.ask(ReplicateToLog(entries))
        store.ask(ApplyToStateMachine(entries[:at]))
        meta: SnapshotMeta = store.call(CreateSnapshot(LogId(1, at), MEMBERS)).get(
            timeout=self.timeout
        )
        return meta

    def test_create_snapshot_keeps_the_log_after_it(self) -> None:
        """``CreateSnapshot`` answers the new snapshot's meta and drops the log through
        it; the entries after it stay, and a restart reports the snapshot."""
        self._need_snapshots()
        store = self.store()
        meta = self._compacted(store)
        assert (meta.last_included, meta.membership) == (LogId(1, 6), MEMBERS)
        assert meta.size > 0
        assert store.ask(GetLogEntries(1, 11)) == puts(1, 7, 10)
        initial = store.initial()
        assert (initial.snapshot, initial.last_log_id) == (meta, LogId(1, 10))
        store.restart()
        initial = store.initial()
        assert (initial.snapshot, initial.last_log_id) == (meta, LogId(1, 10))
        assert initial.last_applied >= 6
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 10))
        assert store.dump().state_machine == model_state(entries[: initial.last_applied])

    def test_read_snapshot_chunks_and_a_replaced_snapshot(self) -> None:
        """Chunks at any offset read the snapshot's bytes; a snapshot replaced by a newer
        one reads as ``None``; an older request answers the current snapshot."""
        self._need_snapshots()
        store = self.store()
        first = self._compacted(store, last=12, at=6)
        data = store.snapshot_bytes(first, chunk=7)
        assert len(data) == first.size
        assert store.snapshot_bytes(first, chunk=first.size) == data
        assert store.ask(ReadSnapshotChunk("no such snapshot", 0, 10)) is None
        entries = puts(1, 2, 12)
        store.ask(ApplyToStateMachine(entries[5:9]))
        second = store.call(CreateSnapshot(LogId(1, 10), MEMBERS)).get(timeout=self.timeout)
        assert second.snapshot_id != first.snapshot_id
        assert store.ask(ReadSnapshotChunk(first.snapshot_id, 0, 10)) is None
        assert len(store.snapshot_bytes(second)) == second.size
        older = store.call(CreateSnapshot(LogId(1, 8), MEMBERS)).get(timeout=self.timeout)
        assert older == second

    def test_writes_go_on_while_a_snapshot_is_built(self) -> None:
        """Messages sent after ``CreateSnapshot`` are handled (the answer to the snapshot
        may come later), and the snapshot holds the state at its own index."""
        self._need_snapshots()
        store = self.store()
        entries = puts(1, 1, 30)
        store.ask(ReplicateToLog(entries[:20]))
        store.ask(ApplyToStateMachine(entries[:12]))
        snapshot = store.call(CreateSnapshot(LogId(1, 12), MEMBERS))
        later = [
            store.call(ReplicateToLog(entries[20:])),
            store.call(ApplyToStateMachine(entries[12:])),
        ]
        for future in later:
            future.get(timeout=self.timeout)
        meta = snapshot.get(timeout=self.timeout)
        assert meta.last_included == LogId(1, 12)
        target = self.store()
        target.receive(meta, store.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.dump().state_machine == model_state(entries[:12])

    def test_install_a_snapshot_received_in_chunks(self) -> None:
        """A snapshot received chunk by chunk and installed replaces the state machine,
        sets ``last_applied`` to its index and drops a log that does not continue it;
        all of it survives a restart."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        data = source.snapshot_bytes(meta)
        target = self.store()
        target.ask(SaveHardState(HardState(2, 1, MEMBERS)))
        target.ask(ReplicateToLog((blank(1, 1), *puts(1, 2, 4, prefix="old"))))
        target.receive(meta, data, chunk=5)
        assert target.initial().snapshot is None  # received, not installed yet
        target.call(InstallSnapshot(meta)).get(timeout=self.timeout)
        expected = (meta, LogId(1, 6), 6)
        initial = target.initial()
        assert (initial.snapshot, initial.last_log_id, initial.last_applied) == expected
        assert target.ask(GetLogEntries(1, 10)) == ()
        assert target.dump().state_machine == source.dump().state_machine
        assert target.snapshot_bytes(meta) == data  # it can send it on, under the same id
        target.restart()
        initial = target.initial()
        assert (initial.snapshot, initial.last_log_id, initial.hard_state) == (
            meta,
            LogId(1, 6),
            HardState(2, 1, MEMBERS),
        )
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 10))
        assert target.dump().state_machine == model_state(entries[: initial.last_applied])
        target.ask(ReplicateToLog(puts(2, 7, 8)))  # the log continues after the snapshot
        assert target.log() == puts(2, 7, 8)

    def test_install_keeps_the_log_suffix_that_continues_the_snapshot(self) -> None:
        """If the log holds the snapshot's last entry with the same term, the entries
        after it are kept."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        target = self.store()
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 9))
        target.ask(ReplicateToLog(entries))
        target.ask(ApplyToStateMachine(entries[:2]))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.log() == entries[6:]
        assert target.initial().last_log_id == LogId(1, 9)
        assert target.initial().last_applied == 6
        target.restart()
        assert target.log() == entries[6:]

    def test_install_drops_a_log_whose_entry_at_the_snapshot_has_another_term(self) -> None:
        """A log that holds another term at the snapshot's index is dropped whole."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        target = self.store()
        target.ask(ReplicateToLog(puts(2, 1, 9)))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.log() == ()
        assert target.initial().last_log_id == LogId(1, 6)

    def test_snapshot_requests_that_make_no_sense_are_refused(self) -> None:
        """A chunk out of order, an install of a snapshot not fully received (or never
        received) raise, and change nothing; offset 0 starts a reception over."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        data = source.snapshot_bytes(meta)
        target = self.store()
        with pytest.raises(ValueError):
            target.ask(InstallSnapshot(meta))
        with pytest.raises(ValueError):
            target.ask(WriteSnapshotChunk(meta, 3, data[3:6]))
        target.ask(WriteSnapshotChunk(meta, 0, data[:4]))
        with pytest.raises(ValueError):
            target.ask(WriteSnapshotChunk(meta, 6, data[6:8]))
        with pytest.raises(ValueError):
            target.ask(InstallSnapshot(meta))
        assert target.initial() == InitialState(LogId(0, 0), 0, HardState(), None)
        target.ask(WriteSnapshotChunk(meta, 0, data[:2]))  # starts over
        target.ask(WriteSnapshotChunk(meta, 2, data[2:]))
        target.ask(InstallSnapshot(meta))
        assert target.initial().snapshot == meta

    def test_a_newer_snapshot_wins_over_an_older_create(self) -> None:
        """``CreateSnapshot`` for an index below the current snapshot (one installed
        meanwhile) answers the current snapshot and changes nothing."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source, last=12, at=9)
        target = self.store()
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 12))
        target.ask(ReplicateToLog(entries[:6]))
        target.ask(ApplyToStateMachine(entries[:5]))
        create = target.call(CreateSnapshot(LogId(1, 5), MEMBERS))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        answered = create.get(timeout=self.timeout)
        # Built before the install (its own meta) or after it (the installed one) ...
        assert answered.last_included in (LogId(1, 5), meta.last_included)
        # ... either way the installed snapshot is current, and stays so.
        assert target.initial().snapshot == meta
        assert target.call(CreateSnapshot(LogId(1, 5), MEMBERS)).get(timeout=5) == meta
        assert target.initial().last_applied == 9


class MemStoreConformance(StorageConformance):
    """The suite against :class:`~pykka_raft.storage.memory.MemStore`: a restart is a new
    actor on the same :class:`MemStoreData`, kept per place."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        """A MemStore on the data kept for ``place``."""
        from pykka_raft.storage.memory import MemStore, MemStoreData

        data = self.__dict__.setdefault("_data", {})
        if place not in data:
            data[place] = MemStoreData(key_value_machine(rejecting))
        return MemStore.start(data=data[place])
