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

from pathlib import Path
from typing import Any

import pykka
import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types with the codec)
from pykka_raft.calls import DEAD_ACTOR_ERRORS, Call
from pykka_raft.errors import ApplicationError, UnknownMessage
from pykka_raft.messages import EntryConfigChange, HardState, InitialState, SnapshotMeta
from pykka_raft.statemachine import CasResult, CompareAndSet, Delete, Get, Put
from pykka_raft.storage.contract import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    QueryStateMachine,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
)
from pykka_raft.testing.conformance_kit import (
    JOINT,
    MEMBERS,
    REJECT,
    ConformanceHarness,
    RejectingKeyValueStateMachine,
    RejectingSqliteKeyValueStateMachine,
    Store,
    blank,
    config,
    key_value_machine,
    model_state,
    normal,
    puts,
    typed_puts,
)
from pykka_raft.testing.conformance_log import LogConformance
from pykka_raft.testing.conformance_snapshots import SnapshotConformance
from pykka_raft.testing.values import difference, same
from pykka_raft.types import LogId

__all__ = [
    "JOINT",
    "MEMBERS",
    "REJECT",
    "ConformanceHarness",
    "MemStoreConformance",
    "RejectingKeyValueStateMachine",
    "RejectingSqliteKeyValueStateMachine",
    "SnapshotConformance",
    "StorageConformance",
    "Store",
    "blank",
    "config",
    "key_value_machine",
    "model_state",
    "normal",
    "puts",
]


def assert_same(got: Any, wanted: Any, what: str) -> None:
    """``got`` is ``wanted`` with the same types at every depth, dict order included."""
    assert same(got, wanted), f"{what} differs: {difference(got, wanted) or 'dict order'}"


def assert_same_state(got: dict[str, Any], wanted: dict[str, Any], what: str) -> None:
    """:func:`assert_same` for each value of a key-value state (in which order a storage
    lists the keys themselves is its own)."""
    assert sorted(got) == sorted(wanted), f"{what} has the keys {sorted(got)}"
    assert_same([got[k] for k in sorted(got)], [wanted[k] for k in sorted(got)], what)


class StorageConformance(LogConformance, SnapshotConformance):
    """The storage contract as tests. Subclass it as ``Test<YourStore>`` and implement
    :meth:`start_storage`.

    Attributes:
        timeout: seconds to wait for each answer.
        supports_snapshots: set to ``False`` for a storage without the snapshot messages
            (their tests are skipped).
    """

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

    def test_a_hard_state_that_changes_only_the_vote_is_saved(self) -> None:
        """A vote in the term the node already has (and the membership ``InitWithConfig``
        records at term 0) is durable too: a node that forgot its vote could vote twice in
        one term and let two leaders be elected."""
        store = self.store()
        store.ask(SaveHardState(HardState(0, None, MEMBERS)))
        store.restart()
        assert store.initial().hard_state == HardState(0, None, MEMBERS)
        store.ask(SaveHardState(HardState(3, None, MEMBERS)))
        store.ask(SaveHardState(HardState(3, 2, MEMBERS)))
        store.restart()
        assert store.initial().hard_state == HardState(3, 2, MEMBERS)

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

    def test_values_keep_their_types(self) -> None:
        """Every value comes back equal and with its types at every depth (``1``, ``1.0``
        and ``True``; ``-0.0``; NaN; big ints; tuples and lists; bytes; dict keys of
        several types, in order): from the log, from the state machine, after a restart,
        and through a snapshot a new storage installs."""
        store = self.store()
        entries = typed_puts(1, 1)
        store.ask(ReplicateToLog(entries))
        assert_same(store.log(), entries, "the log")
        store.ask(ApplyToStateMachine(entries))
        assert_same_state(store.dump().state_machine, model_state(entries), "the state machine")
        store.restart()
        assert_same(store.log(), entries, "the log after a restart")
        applied = store.initial().last_applied
        state = model_state(entries[:applied])
        assert_same_state(store.dump().state_machine, state, "the state after a restart")
        if not self.supports_snapshots:
            return
        store.ask(ApplyToStateMachine(entries[applied:]))
        last = LogId(1, len(entries))
        meta: SnapshotMeta = store.call(CreateSnapshot(last, MEMBERS)).get(timeout=self.timeout)
        target = self.store()
        target.receive(meta, store.snapshot_bytes(meta))
        target.call(InstallSnapshot(meta)).get(timeout=self.timeout)
        assert_same_state(target.dump().state_machine, model_state(entries), "a snapshot")

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

    def test_an_entry_is_applied_once_also_across_a_restart(self) -> None:
        """Entries whose state shows a second apply (``CompareAndSet("a", 5, 6)`` fails on
        an empty key, then ``CompareAndSet("a", None, 5)`` sets it: once more, ``a`` would
        be 6): applied once, they leave ``a == 5``; a restart replays at most what its
        ``last_applied`` says was not applied."""
        store = self.store()
        entries = (
            normal(1, 1, CompareAndSet("a", 5, 6)),
            normal(1, 2, CompareAndSet("a", None, 5)),
            normal(1, 3, Put("b", 1)),
        )
        store.ask(ReplicateToLog(entries))
        store.ask(ApplyToStateMachine(entries))
        assert store.dump().state_machine == {"a": 5, "b": 1}
        store.restart()
        applied = store.initial().last_applied
        assert store.dump().state_machine == model_state(entries[:applied])
        store.ask(ApplyToStateMachine(entries[applied:]))
        assert store.dump().state_machine == {"a": 5, "b": 1}

    def test_queries_are_answered_in_order_from_the_applied_state(self) -> None:
        """``QueryStateMachine`` answers one answer per query, in order, from the state
        every apply sent before it left (a repeated key, a missing one); a query the state
        machine refuses answers its exception and the others are answered."""
        store = self.store()
        entries = (
            normal(1, 1, Put("a", 1)),
            normal(1, 2, Put("b", {"nested": (1, b"x")})),
            normal(1, 3, Put("c", "text")),
            normal(1, 4, Delete("c")),
        )
        store.ask(ReplicateToLog(entries))
        applied = store.call(ApplyToStateMachine(entries))  # not waited for
        queries: tuple[Any, ...] = (Get("a"), Get("b"), Get("missing"), ("not", "a Get"))
        queries += (Get("a"), Get("c"))
        answers = store.ask(QueryStateMachine(queries))
        assert len(answers) == len(queries)
        assert answers[:3] == (1, {"nested": (1, b"x")}, None)
        assert isinstance(answers[3], Exception)
        assert answers[4:] == (1, None)
        assert store.ask(QueryStateMachine(())) == ()
        assert applied.get(timeout=self.timeout) == (None, None, None, "text")

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

    def test_calls_queued_behind_a_stop_are_answered(self) -> None:
        """A storage that stops answers every call it holds (an error is an answer): a node
        waiting on one would wait forever. An ``on_stop`` of its own calls
        ``super().on_stop()``."""
        store = self.store()
        futures = [store.call(GetInitialState()) for _ in range(200)]
        store.ref.stop(block=False)
        for _ in range(200):  # most land behind the stop
            try:
                futures.append(store.call(GetInitialState()))
            except DEAD_ACTOR_ERRORS:
                break  # refused at once: the storage has stopped
        for number, future in enumerate(futures):
            try:
                future.get(timeout=self.timeout)
            except pykka.Timeout:
                raise AssertionError(
                    f"call {number} of {len(futures)} was never answered"
                ) from None
            except Exception:  # refused because the storage stopped: an answer too
                continue

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
        store.ref.tell("nonsense")  # told, nobody to answer: dropped (and logged)
        store.ref.tell(object())
        assert store.initial().last_log_id == LogId(0, 0)
        assert store.ref.is_alive()

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
