"""The MemStore actor driven directly with ask, and through Call with a FutureReply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types)
from pykka_raft.calls import Call, FutureReply
from pykka_raft.errors import UnknownMessage
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    HardState,
    InitialState,
    MembershipConfig,
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
from pykka_raft.storage import (
    AppendEntryToLog,
    ApplyToStateMachine,
    DeleteLogsFrom,
    GetInitialState,
    GetLogEntries,
    ReplicateToLog,
    SaveHardState,
)
from pykka_raft.storage.memory import DumpStorage, MemStore, MemStoreData, StorageDump
from pykka_raft.types import LogId

TIMEOUT = 5
MEMBERS = MembershipConfig(members=(1, 2, 3))


def normal(term: int, index: int, command: Any) -> Entry:
    return Entry(term, index, EntryNormal(command))


def blank(term: int, index: int) -> Entry:
    return Entry(term, index, EntryBlank())


@pytest.fixture
def data() -> MemStoreData:
    return MemStoreData()


@pytest.fixture
def store(data: MemStoreData) -> Iterator[pykka.ActorRef[MemStore]]:
    ref = MemStore.start(data=data)
    try:
        yield ref
    finally:
        ref.stop()


def ask(ref: pykka.ActorRef[Any], message: Any) -> Any:
    return ref.ask(message, timeout=TIMEOUT)


def test_initial_state_of_an_empty_store(store: pykka.ActorRef[MemStore]) -> None:
    state = ask(store, GetInitialState())
    assert state == InitialState(LogId(0, 0), 0, HardState())
    assert state.hard_state.voted_for is None
    assert state.hard_state.membership == MembershipConfig()


def test_default_store_has_a_kv_state_machine() -> None:
    ref = MemStore.start()
    try:
        assert ask(ref, ApplyToStateMachine((normal(1, 1, Put("a", 1)),))) == (None,)
        assert ask(ref, DumpStorage()).state_machine == {"a": 1}
    finally:
        ref.stop()


def test_save_hard_state(store: pykka.ActorRef[MemStore]) -> None:
    hard = HardState(current_term=4, voted_for=2, membership=MEMBERS)
    assert ask(store, SaveHardState(hard)) is None
    assert ask(store, GetInitialState()).hard_state == hard
    newer = HardState(5, None, MEMBERS)
    ask(store, SaveHardState(newer))
    assert ask(store, GetInitialState()).hard_state == newer


def test_replicate_and_read_half_open_ranges(store: pykka.ActorRef[MemStore]) -> None:
    entries = (blank(1, 1), normal(1, 2, Put("a", 1)), normal(2, 3, Get("a")), blank(3, 4))
    assert ask(store, ReplicateToLog(entries)) is None
    assert ask(store, GetInitialState()).last_log_id == LogId(3, 4)
    assert ask(store, GetLogEntries(1, 5)) == entries
    assert ask(store, GetLogEntries(2, 4)) == entries[1:3]
    assert ask(store, GetLogEntries(3, 3)) == ()
    assert ask(store, GetLogEntries(0, 2)) == entries[:1]
    assert ask(store, GetLogEntries(3, 100)) == entries[2:]
    assert ask(store, GetLogEntries(5, 10)) == ()
    assert isinstance(ask(store, GetLogEntries(1, 5)), tuple)


def test_replicate_overwrites_by_index(store: pykka.ActorRef[MemStore]) -> None:
    ask(store, ReplicateToLog((blank(1, 1), blank(1, 2))))
    ask(store, ReplicateToLog((blank(2, 2), blank(2, 3))))
    assert ask(store, GetLogEntries(1, 10)) == (blank(1, 1), blank(2, 2), blank(2, 3))


def test_write_with_a_gap_raises_through_ask(store: pykka.ActorRef[MemStore]) -> None:
    ask(store, ReplicateToLog((blank(1, 1),)))
    with pytest.raises(ValueError, match="entry 3 would leave a gap after 1"):
        ask(store, ReplicateToLog((blank(1, 3),)))
    assert ask(store, GetLogEntries(1, 10)) == (blank(1, 1),)  # the actor still runs


def test_append_with_a_gap_raises_through_ask(store: pykka.ActorRef[MemStore]) -> None:
    with pytest.raises(ValueError, match="gap"):
        ask(store, AppendEntryToLog((normal(1, 2, Put("a", 1)),)))
    assert ask(store, GetInitialState()).last_log_id == LogId(0, 0)


def test_delete_logs_from(store: pykka.ActorRef[MemStore]) -> None:
    entries = tuple(blank(1, i) for i in range(1, 6))
    ask(store, ReplicateToLog(entries))
    assert ask(store, DeleteLogsFrom(4)) is None
    assert ask(store, GetLogEntries(1, 10)) == entries[:3]
    assert ask(store, GetInitialState()).last_log_id == LogId(1, 3)
    ask(store, DeleteLogsFrom(10))
    assert ask(store, GetLogEntries(1, 10)) == entries[:3]
    ask(store, DeleteLogsFrom(1))
    assert ask(store, GetLogEntries(1, 10)) == ()
    assert ask(store, GetInitialState()).last_log_id == LogId(0, 0)


def test_delete_then_write_replacing_entries(store: pykka.ActorRef[MemStore]) -> None:
    ask(store, ReplicateToLog((blank(1, 1), blank(1, 2), blank(1, 3))))
    ask(store, DeleteLogsFrom(2))
    ask(store, ReplicateToLog((blank(3, 2),)))
    assert ask(store, GetLogEntries(1, 10)) == (blank(1, 1), blank(3, 2))


def test_append_entry_to_log_blanks_refused_entries(store: pykka.ActorRef[MemStore]) -> None:
    config = Entry(1, 3, EntryConfigChange(MEMBERS))
    entries = (
        blank(1, 1),
        normal(1, 2, Put("a", 1)),
        config,
        normal(1, 4, "not a command"),
        normal(1, 5, CompareAndSet("a", 1, 2)),
        normal(1, 6, 42),
    )
    refused = ask(store, AppendEntryToLog(entries))
    assert set(refused) == {4, 6}
    assert isinstance(refused[4], InvalidCommand)
    assert "str" in str(refused[4])
    assert isinstance(refused[6], InvalidCommand)
    stored = ask(store, GetLogEntries(1, 10))
    assert stored == (
        blank(1, 1),
        normal(1, 2, Put("a", 1)),
        config,
        blank(1, 4),
        normal(1, 5, CompareAndSet("a", 1, 2)),
        blank(1, 6),
    )
    assert ask(store, GetInitialState()).last_log_id == LogId(1, 6)


def test_append_entry_to_log_all_accepted(store: pykka.ActorRef[MemStore]) -> None:
    entries = (normal(2, 1, Put("a", 1)), normal(2, 2, Get("a")), normal(2, 3, Delete("a")))
    assert ask(store, AppendEntryToLog(entries)) == {}
    assert ask(store, GetLogEntries(1, 4)) == entries


def test_apply_to_state_machine(store: pykka.ActorRef[MemStore]) -> None:
    entries = (
        blank(1, 1),
        normal(1, 2, Put("a", 1)),
        normal(1, 3, Put("a", 2)),
        normal(1, 4, Get("a")),
        normal(1, 5, Get("missing")),
        normal(1, 6, CompareAndSet("a", 2, 3)),
        normal(1, 7, CompareAndSet("a", 2, 4)),
        normal(1, 8, CompareAndSet("new", None, "x")),
        Entry(1, 9, EntryConfigChange(MEMBERS)),
        normal(1, 10, Delete("a")),
        normal(1, 11, Delete("a")),
    )
    ask(store, ReplicateToLog(entries))
    responses = ask(store, ApplyToStateMachine(entries))
    assert responses == (
        None,
        None,
        1,
        2,
        None,
        CasResult(True, 2),
        CasResult(False, 3),
        CasResult(True, None),
        None,
        3,
        None,
    )
    assert ask(store, GetInitialState()).last_applied == 11
    dump = ask(store, DumpStorage())
    assert dump.state_machine == {"new": "x"}
    assert dump.last_applied == 11


def test_apply_in_batches_tracks_last_applied(store: pykka.ActorRef[MemStore]) -> None:
    first = (normal(1, 1, Put("k", "v1")), normal(1, 2, Put("k", "v2")))
    second = (normal(2, 3, Get("k")),)
    ask(store, ReplicateToLog(first + second))
    assert ask(store, ApplyToStateMachine(first)) == (None, "v1")
    assert ask(store, GetInitialState()).last_applied == 2
    assert ask(store, ApplyToStateMachine(())) == ()
    assert ask(store, GetInitialState()).last_applied == 2
    assert ask(store, ApplyToStateMachine(second)) == ("v2",)
    assert ask(store, GetInitialState()).last_applied == 3


def test_dump_storage(store: pykka.ActorRef[MemStore]) -> None:
    hard = HardState(2, 1, MEMBERS)
    entries = (normal(1, 1, Put("a", [1])), blank(2, 2))
    ask(store, SaveHardState(hard))
    ask(store, ReplicateToLog(entries))
    ask(store, ApplyToStateMachine(entries[:1]))
    dump = ask(store, DumpStorage())
    assert dump == StorageDump(hard, entries, 1, {"a": [1]})
    assert isinstance(dump.log, tuple)


def test_dump_is_a_copy(store: pykka.ActorRef[MemStore]) -> None:
    ask(store, ApplyToStateMachine((normal(1, 1, Put("a", [1])),)))
    dump = ask(store, DumpStorage())
    dump.state_machine["a"].append(2)
    dump.state_machine["b"] = 0
    assert ask(store, DumpStorage()).state_machine == {"a": [1]}


@pytest.mark.parametrize(
    "message",
    [pytest.param("hello", id="str"), pytest.param(42, id="int"), pytest.param(object(), id="obj")],
)
def test_unknown_message_raises(store: pykka.ActorRef[MemStore], message: Any) -> None:
    with pytest.raises(UnknownMessage, match="MemStore does not handle messages of type"):
        ask(store, message)
    assert ask(store, GetInitialState()).last_log_id == LogId(0, 0)


def test_unknown_message_is_a_type_error(store: pykka.ActorRef[MemStore]) -> None:
    with pytest.raises(TypeError, match="type int"):
        ask(store, 1)


def test_the_actor_works_on_the_given_data(
    store: pykka.ActorRef[MemStore], data: MemStoreData
) -> None:
    entries = (blank(1, 1), normal(1, 2, Put("a", 1)))
    ask(store, SaveHardState(HardState(3, 1, MEMBERS)))
    ask(store, ReplicateToLog(entries))
    ask(store, ApplyToStateMachine(entries))
    assert data.hard_state == HardState(3, 1, MEMBERS)
    assert data.log == list(entries)
    assert data.last_applied == 2
    assert data.state_machine.data == {"a": 1}  # type: ignore[attr-defined]


def test_restart_on_the_same_data_sees_the_same_state(data: MemStoreData) -> None:
    hard = HardState(7, 3, MEMBERS)
    entries = (normal(7, 1, Put("a", 1)), normal(7, 2, Put("b", 2)), blank(7, 3))
    first = MemStore.start(data=data)
    try:
        ask(first, SaveHardState(hard))
        ask(first, ReplicateToLog(entries))
        ask(first, ApplyToStateMachine(entries[:2]))
        before = ask(first, DumpStorage())
    finally:
        first.stop()
    second = MemStore.start(data=data)
    try:
        assert ask(second, GetInitialState()) == InitialState(LogId(7, 3), 2, hard)
        assert ask(second, GetLogEntries(1, 10)) == entries
        assert ask(second, DumpStorage()) == before
        assert ask(second, ApplyToStateMachine((normal(7, 4, Get("b")),))) == (2,)
    finally:
        second.stop()


def test_a_fresh_store_does_not_share_state(store: pykka.ActorRef[MemStore]) -> None:
    ask(store, ReplicateToLog((blank(1, 1),)))
    other = MemStore.start()
    try:
        assert ask(other, GetInitialState()).last_log_id == LogId(0, 0)
    finally:
        other.stop()


def test_custom_state_machine_is_used() -> None:
    machine = KeyValueStateMachine(keep_history=True)
    ref = MemStore.start(state_machine=machine)
    try:
        entries = (blank(1, 1), normal(1, 2, Put("a", 1)))
        ask(ref, ApplyToStateMachine(entries))
    finally:
        ref.stop()
    assert machine.data == {"a": 1}
    assert machine.applied == [(1, None), (2, Put("a", 1))]


# --- Call with a FutureReply ------------------------------------------------------------


def call(ref: pykka.ActorRef[Any], message: Any) -> pykka.Future[Any]:
    future: pykka.Future[Any] = pykka.ThreadingFuture()
    ref.tell(Call(message, FutureReply(future)))
    return future


def test_call_delivers_the_value_to_the_future(store: pykka.ActorRef[MemStore]) -> None:
    entries = (blank(1, 1), normal(1, 2, Put("a", 1)))
    assert call(store, ReplicateToLog(entries)).get(timeout=TIMEOUT) is None
    assert call(store, GetLogEntries(1, 3)).get(timeout=TIMEOUT) == entries
    refused = call(store, AppendEntryToLog((normal(1, 3, "bad"),))).get(timeout=TIMEOUT)
    assert set(refused) == {3}
    assert isinstance(refused[3], InvalidCommand)
    responses = call(store, ApplyToStateMachine(entries)).get(timeout=TIMEOUT)
    assert responses == (None, None)
    state = call(store, GetInitialState()).get(timeout=TIMEOUT)
    assert state.last_log_id == LogId(1, 3)
    assert state.last_applied == 2


def test_call_delivers_an_error_to_the_future(store: pykka.ActorRef[MemStore]) -> None:
    future = call(store, ReplicateToLog((blank(1, 2),)))
    with pytest.raises(ValueError, match="would leave a gap"):
        future.get(timeout=TIMEOUT)
    # the actor survives an error answered through a reply
    assert ask(store, GetInitialState()).last_log_id == LogId(0, 0)


def test_call_with_an_unknown_message(store: pykka.ActorRef[MemStore]) -> None:
    future = call(store, "nonsense")
    with pytest.raises(UnknownMessage, match="type str"):
        future.get(timeout=TIMEOUT)
    assert store.is_alive()


def test_calls_are_answered_in_order(store: pykka.ActorRef[MemStore]) -> None:
    writes = [call(store, ReplicateToLog((blank(1, i),))) for i in range(1, 21)]
    read = call(store, GetLogEntries(1, 100))
    for future in writes:
        assert future.get(timeout=TIMEOUT) is None
    assert [e.index for e in read.get(timeout=TIMEOUT)] == list(range(1, 21))


def test_a_snapshot_built_as_the_store_stops_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's result may reach the inbox after the store emptied it on stop (Pykka's
    ``tell`` checks ``is_alive`` first, then puts): the ref answers what it left behind."""
    import threading

    from pykka_raft import KeyValueStateMachine, MemStore
    from pykka_raft.errors import StorageError
    from pykka_raft.messages import MembershipConfig
    from pykka_raft.storage.messages import CreateSnapshot
    from pykka_raft.types import LogId

    release = threading.Event()

    class SlowMachine(KeyValueStateMachine):
        def snapshot(self) -> Any:
            inner = super().snapshot()

            def build() -> bytes:
                release.wait(10)
                return inner()

            return build

    store = MemStore.start(SlowMachine())
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    store.tell(Call(CreateSnapshot(LogId(0, 0), MembershipConfig((1,))), FutureReply(future)))
    store.ask(GetInitialState())  # the build has started (the Call was handled before)
    store.stop()
    alive, fooled = type(store).is_alive, []

    def is_alive(ref: Any) -> bool:  # the window: alive when checked, stopped when put
        if threading.current_thread().name.startswith("MemStore-snapshot") and not fooled:
            fooled.append(True)
            return True
        return alive(ref)

    monkeypatch.setattr(type(store), "is_alive", is_alive)
    release.set()
    with pytest.raises(StorageError, match="MemStore has stopped"):
        future.get(timeout=10)
    assert fooled, "the window was not reached"
