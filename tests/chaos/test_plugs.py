"""Storage plugs and crash hooks: what the chaos runner relies on to use any storage.

A crash through a plug's hook must lose exactly what the storage had not acknowledged;
``Cluster`` must give each node a place of its own, kept across restarts and removed at the
end; and a storage without a hard-state record is sampled through its dumps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from pykka_raft import HardState, MembershipConfig, MemStore, MemStoreData, Put, SqliteStore
from pykka_raft.calls import Call, FutureReply
from pykka_raft.storage import ApplyToStateMachine, DumpStorage, ReplicateToLog, SaveHardState
from pykka_raft.testing import Cluster
from pykka_raft.testing.conformance import puts
from pykka_raft.testing.crash import CrashableSqliteStore, PowerSwitch
from pykka_raft.testing.plugs import (
    AppliedHistory,
    RecordingKeyValueStateMachine,
    StoragePlug,
    memory_storage,
    sqlite_storage,
)

MEMBERS = MembershipConfig(members=(1,))
TIMEOUT = 10


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


class _HeldStore(CrashableSqliteStore):
    """Holds a ``SaveHardState`` of term 99 until released: the writes grouped before it
    are then in the open transaction, neither committed nor answered."""

    def __init__(self, *args: Any, entered: threading.Event, release: threading.Event, **kw: Any):
        super().__init__(*args, **kw)
        self.entered, self.release = entered, release

    def save_hard_state(self, hard_state: HardState) -> None:
        if hard_state.current_term == 99:
            self.entered.set()
            self.release.wait(TIMEOUT)
        super().save_hard_state(hard_state)


def _call(store: Any, message: Any) -> pykka.Future[Any]:
    future: pykka.Future[Any] = pykka.ThreadingFuture()
    store.tell(Call(message, FutureReply(future)))
    return future


@pytest.mark.parametrize("crash", [True, False], ids=["crash", "clean-stop"])
def test_a_sqlite_crash_loses_the_open_transaction_and_keeps_the_committed_ones(
    tmp_path: Path, crash: bool
) -> None:
    entered, release, power = threading.Event(), threading.Event(), PowerSwitch()
    store = _HeldStore.start(tmp_path, 1, power=power, entered=entered, release=release)
    _call(store, SaveHardState(HardState(3, 1, MEMBERS))).get(timeout=TIMEOUT)  # acknowledged
    grouped = _call(store, ReplicateToLog(puts(3, 1, 5)))
    held = _call(store, SaveHardState(HardState(99, None, MEMBERS)))
    assert entered.wait(TIMEOUT), "the store never reached the held write"
    if crash:
        power.cut()
    release.set()
    store.stop(timeout=TIMEOUT)

    reopened = SqliteStore.start(tmp_path, 1)
    dump = reopened.ask(DumpStorage(), timeout=TIMEOUT)
    if crash:
        # Nothing of the open transaction survived, and nobody was told it had.
        assert dump.hard_state == HardState(3, 1, MEMBERS)
        assert dump.log == ()
        for future in (grouped, held):
            with pytest.raises(pykka.Timeout):
                future.get(timeout=0.2)
    else:
        # The control: a clean stop commits the batch and answers it.
        assert dump.hard_state.current_term == 99
        assert [e.index for e in dump.log] == [1, 2, 3, 4, 5]
        grouped.get(timeout=TIMEOUT)
        held.get(timeout=TIMEOUT)


def test_the_sqlite_plug_crashes_through_its_hook(tmp_path: Path) -> None:
    plug = sqlite_storage()
    assert plug.crash is not None
    store = plug.start(1, tmp_path)
    store.ask(SaveHardState(HardState(4, 1, MEMBERS)), timeout=TIMEOUT)
    plug.crash(store)
    assert not store.is_alive()
    again = plug.start(1, tmp_path)  # the directory is unlocked and keeps what was acked
    assert again.ask(DumpStorage(), timeout=TIMEOUT).hard_state.current_term == 4


def test_the_memory_plug_keeps_data_per_place_and_records_hard_states(tmp_path: Path) -> None:
    plug = memory_storage()
    assert plug.crash is not None and plug.hard_states is not None and plug.close is not None
    a, b = tmp_path / "a", tmp_path / "b"
    store = plug.start(1, a)
    store.ask(SaveHardState(HardState(2, 1, MEMBERS)), timeout=TIMEOUT)
    store.ask(SaveHardState(HardState(3, None, MEMBERS)), timeout=TIMEOUT)
    plug.crash(store)
    assert [h.current_term for h in plug.hard_states(1, a)] == [2, 3]
    assert plug.start(1, a).ask(DumpStorage(), timeout=TIMEOUT).hard_state.current_term == 3
    assert plug.start(2, b).ask(DumpStorage(), timeout=TIMEOUT).hard_state == HardState()
    plug.close()
    assert list(plug.hard_states(1, a)) == []  # forgotten: a new run starts pristine


def test_the_recording_machine_dumps_its_history() -> None:
    store = MemStore.start(data=MemStoreData(RecordingKeyValueStateMachine()))
    entries = puts(1, 1, 3)
    store.ask(ReplicateToLog(entries), timeout=TIMEOUT)
    store.ask(ApplyToStateMachine(entries), timeout=TIMEOUT)
    dump = store.ask(DumpStorage(), timeout=TIMEOUT).state_machine
    assert isinstance(dump, AppliedHistory)
    assert [index for index, _ in dump.applied] == [1, 2, 3]
    assert dump.data == {"k1": 1, "k2": 2, "k3": 3}


def test_a_cluster_gives_each_plugged_node_a_place_and_removes_it() -> None:
    starts: list[tuple[int, Path]] = []
    stores: dict[Path, MemStoreData] = {}

    def start(node_id: int, place: Path) -> Any:
        starts.append((node_id, place))
        return MemStore.start(data=stores.setdefault(place, MemStoreData()))

    cluster = Cluster([1, 2, 3], storage=StoragePlug(start, name="mine"))
    try:
        cluster.initialize()
        cluster.write(Put("k", "before"))
        cluster.crash(2)  # no crash hook: the storage stops cleanly
        cluster.start_node(2)
        cluster.write(Put("k", "after"))
        cluster.wait_applied(cluster.write(Put("k", "last")).index)
        places = {node_id: place for node_id, place in starts}
        assert sorted(places) == [1, 2, 3] and len(set(places.values())) == 3
        assert [p for n, p in starts if n == 2] == [places[2], places[2]]  # same on restart
        assert all(place.is_dir() for place in places.values())
        assert all(cluster.dump(n).state_machine == {"k": "last"} for n in (1, 2, 3))
        cluster.sample_hard_states()
        sampled = cluster.recorded_hard_states()
        assert all(states and states[-1].current_term >= 1 for states in sampled.values())
    finally:
        cluster.shutdown()
    assert not any(place.exists() for place in places.values())
