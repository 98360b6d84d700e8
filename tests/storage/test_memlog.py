"""MemLog, the pure in-memory storage model, operation by operation (no actor)."""

from __future__ import annotations

import pytest

from pykka_raft.messages import (
    Entry,
    EntryBlank,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.storage.memlog import MemLog
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.storage.messages import InvalidRequest
from pykka_raft.types import LogId

MEMBERS = MembershipConfig(members=(1, 2, 3))


def log(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term, start + i, EntryBlank()) for i, term in enumerate(terms)]


def meta(index: int, term: int, size: int = 3, sid: str | None = None) -> SnapshotMeta:
    return SnapshotMeta(LogId(term, index), MEMBERS, sid or f"s{index}", size)


def receive(model: MemLog, snapshot: SnapshotMeta, data: bytes) -> None:
    model.write_chunk(snapshot, 0, data[:1])
    model.write_chunk(snapshot, 1, data[1:])


def test_an_empty_model_reports_nothing() -> None:
    model = MemLog()
    assert model.initial_state() == InitialState(LogId(0, 0), 0, HardState(), None)
    assert (model.offset, model.offset_term, model.last_index) == (0, 0, 0)
    assert model.entries(1, 10) == ()
    assert model.entry(1) is None


def test_writes_extend_and_reads_are_half_open() -> None:
    model = MemLog()
    model.write(tuple(log(1, 1, 2)))
    assert model.entries(2, 4) == tuple(log(1, 2, start=2))
    assert model.entries(1, 1) == ()
    assert model.last_log_id == LogId(2, 3)
    assert model.initial_state().last_log_id == LogId(2, 3)


def test_a_write_replaces_by_index_and_skips_what_the_snapshot_covers() -> None:
    model = MemLog(log=log(1, 1, 1))
    model.write(tuple(log(2, start=2)))
    assert [e.term for e in model.log] == [1, 2, 1]
    snapshot = meta(2, 2)
    model.compact(snapshot, b"abc")
    model.write(tuple(log(9, 3, 3, start=2)))  # 2 is covered: skipped
    assert model.log == log(3, 3, start=3)


def test_a_write_with_a_gap_raises_and_writes_nothing() -> None:
    model = MemLog(log=log(1))
    with pytest.raises(InvalidRequest, match="entry 3 would leave a gap after 1"):
        model.write((*log(1, start=1), *log(1, start=3)))
    assert model.log == log(1)
    with pytest.raises(ValueError):  # InvalidRequest is a ValueError
        model.write(tuple(log(1, start=5)))


def test_delete_from_inside_the_log_and_inside_the_snapshot() -> None:
    model = MemLog(log=log(1, 1, 1, 1))
    model.delete_from(3)
    assert model.log == log(1, 1)
    model.compact(meta(1, 1), b"abc")
    model.delete_from(1)  # inside the snapshot: the whole log after it goes
    assert model.log == [] and model.last_index == 1


def test_hard_state_and_applied_bookkeeping() -> None:
    model = MemLog()
    model.save_hard_state(HardState(3, 2, MEMBERS))
    model.mark_applied(4)
    assert model.initial_state() == InitialState(LogId(0, 0), 4, HardState(3, 2, MEMBERS), None)


def test_compact_keeps_the_log_after_the_snapshot() -> None:
    model = MemLog(log=log(1, 1, 2, 2))
    assert model.compact(meta(2, 1), b"abc")
    assert model.log == log(2, 2, start=3)
    assert (model.offset, model.offset_term, model.last_index) == (2, 1, 4)
    assert model.entry(2) is None and model.entry(3) == log(2, start=3)[0]
    assert model.entries(1, 5) == tuple(log(2, 2, start=3))
    assert model.initial_state().snapshot == meta(2, 1)
    assert model.holds(log(7, start=1)[0])  # covered by the snapshot: committed
    assert not model.holds(log(7, start=3)[0])


def test_compact_drops_a_log_that_does_not_continue_the_snapshot() -> None:
    model = MemLog(log=log(1, 1, 2))
    assert not model.continues(LogId(3, 2))
    assert not model.compact(meta(2, 3), b"abc")
    assert model.log == [] and model.last_log_id == LogId(3, 2)


def test_snapshot_covering_tells_a_superseded_build() -> None:
    model = MemLog(log=log(1, 1, 1))
    assert model.snapshot_covering(2) is None
    model.compact(meta(2, 1), b"abc")
    assert model.snapshot_covering(1) == meta(2, 1)
    assert model.snapshot_covering(2) == meta(2, 1)
    assert model.snapshot_covering(3) is None


def test_chunks_are_read_from_the_current_snapshot_only() -> None:
    model = MemLog(log=log(1, 1))
    model.compact(meta(2, 1, sid="a"), b"abcdef")
    assert model.snapshot_chunk("a", 2, 3) == b"cde"
    assert model.snapshot_chunk("a", 5, 3) == b"f"
    assert model.snapshot_chunk("gone", 0, 3) is None


def test_received_chunks_must_follow_on() -> None:
    model = MemLog()
    snapshot = meta(5, 2, size=4)
    with pytest.raises(InvalidRequest, match="out of order"):
        model.write_chunk(snapshot, 2, b"xx")
    model.write_chunk(snapshot, 0, b"ab")
    with pytest.raises(InvalidRequest, match="out of order"):
        model.write_chunk(snapshot, 3, b"d")
    with pytest.raises(InvalidRequest, match="out of order"):
        model.write_chunk(meta(5, 2, size=4, sid="other"), 2, b"cd")
    with pytest.raises(InvalidRequest, match="not fully received"):
        model.received(snapshot)
    model.write_chunk(snapshot, 2, b"cd")
    assert model.received(snapshot) == b"abcd"
    model.write_chunk(snapshot, 0, b"z")  # offset 0 starts over
    assert model.receiving is not None and bytes(model.receiving[1]) == b"z"


def test_install_keeps_a_matching_suffix_and_records_the_apply() -> None:
    model = MemLog(log=log(1, 1, 2, 2))
    snapshot = meta(3, 2)
    receive(model, snapshot, b"abc")
    assert model.install(snapshot)
    assert model.log == log(2, start=4)
    assert model.last_applied == 3 and model.receiving is None
    assert model.snapshot_data == b"abc"


def test_install_drops_a_log_that_does_not_continue_it() -> None:
    model = MemLog(log=log(1, 1, 1, 1))
    snapshot = meta(3, 2)
    receive(model, snapshot, b"abc")
    assert not model.install(snapshot)
    assert model.log == [] and model.last_log_id == LogId(2, 3)


def test_install_follows_the_decision_it_is_given() -> None:
    model = MemLog(log=log(1, 1, 2, 2))
    snapshot = meta(3, 2)
    receive(model, snapshot, b"abc")
    assert not model.install(snapshot, keep_log=False)
    assert model.log == []


def test_install_of_a_snapshot_not_fully_received_changes_nothing() -> None:
    model = MemLog(log=log(1, 1))
    snapshot = meta(3, 2, size=5)
    receive(model, snapshot, b"abc")
    with pytest.raises(InvalidRequest, match="not fully received"):
        model.install(snapshot)
    assert model.log == log(1, 1) and model.snapshot_meta is None and model.last_applied == 0


def test_memstore_data_is_a_memlog_with_a_state_machine() -> None:
    data = MemStoreData(hard_state=HardState(2, 1, MEMBERS))
    assert isinstance(data, MemLog)
    assert data.initial_state().hard_state == HardState(2, 1, MEMBERS)
    data.last_applied = 3  # a plain attribute, as tests that rewrite a store's data use it
    assert data.initial_state().last_applied == 3


@pytest.mark.parametrize("old_style", [False, True], ids=["keep_log", "old-signature"])
def test_memstore_follows_the_nodes_keep_log_and_old_storages_still_install(
    old_style: bool,
) -> None:
    """The node decides whether the log after a snapshot stays; MemStore carries it out
    even where its own rule would decide otherwise, and a storage whose
    ``install_snapshot`` predates ``keep_log`` is called without it (and decides by the
    rule: here, keep)."""
    from pykka_raft.statemachine import KeyValueStateMachine
    from pykka_raft.storage.base import _takes_keep_log
    from pykka_raft.storage.memory import MemStore
    from pykka_raft.storage.messages import InstallSnapshot, WriteSnapshotChunk

    class OldStyle(MemStore):
        def install_snapshot(self, meta: SnapshotMeta) -> None:  # type: ignore[override]
            super().install_snapshot(meta)

    cls = OldStyle if old_style else MemStore
    assert _takes_keep_log(cls) is not old_style
    data = MemStoreData(KeyValueStateMachine())
    data.write(log(1, 1, 1, 2))  # continues a snapshot through 2/t1
    payload = KeyValueStateMachine().snapshot()()
    snapshot = meta(2, 1, size=len(payload))
    store = cls.start(data=data)
    try:
        store.ask(WriteSnapshotChunk(snapshot, 0, payload))
        store.ask(InstallSnapshot(snapshot, keep_log=False))
    finally:
        store.stop()
    assert data.offset == 2
    assert len(data.log) == (2 if old_style else 0)
