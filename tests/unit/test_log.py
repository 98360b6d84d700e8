"""The in-memory RaftLog: contiguity, lookups, slicing, truncation and membership."""

from __future__ import annotations

import pytest

from pykka_raft.core.log import RaftLog
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    MembershipConfig,
)
from pykka_raft.statemachine import Put
from pykka_raft.types import LogId

C1 = MembershipConfig(members=(1,))
C2 = MembershipConfig(members=(1, 2, 3))
C3 = MembershipConfig(members=(1, 2, 3), members_after_consensus=(3, 4, 5))


def blank(term: int, index: int) -> Entry:
    return Entry(term, index, EntryBlank())


def normal(term: int, index: int, key: str = "k") -> Entry:
    return Entry(term, index, EntryNormal(Put(key, index)))


def config(term: int, index: int, membership: MembershipConfig) -> Entry:
    return Entry(term, index, EntryConfigChange(membership))


def make_log(*terms: int) -> RaftLog:
    """A log of normal entries at indexes 1.. with the given terms."""
    return RaftLog(normal(term, i + 1) for i, term in enumerate(terms))


def test_empty_log() -> None:
    log = RaftLog()
    assert log.last_index == 0
    assert log.last_term == 0
    assert log.last_log_id == LogId(0, 0)
    assert log.term_at(0) == 0
    assert log.term_at(1) is None
    assert log.slice(0, 10) == ()
    assert log.latest_membership() is None


def test_append_and_last_log_id() -> None:
    log = RaftLog()
    log.append([blank(1, 1), normal(1, 2)])
    assert log.last_log_id == LogId(1, 2)
    log.append([normal(3, 3)])
    assert log.last_index == 3
    assert log.last_term == 3
    assert log.last_log_id == LogId(3, 3)
    assert log.get(2) == normal(1, 2)
    log.append([])
    assert log.last_log_id == LogId(3, 3)


@pytest.mark.parametrize(
    "index",
    [pytest.param(5, id="gap"), pytest.param(3, id="overlap"), pytest.param(0, id="zero")],
)
def test_append_must_be_contiguous(index: int) -> None:
    log = make_log(1, 1, 1)
    with pytest.raises(ValueError, match=f"entry {index} does not follow 3"):
        log.append([normal(1, index)])
    assert log.last_index == 3


def test_append_with_a_gap_appends_nothing() -> None:
    log = make_log(1)
    with pytest.raises(ValueError, match="entry 4 does not follow 2"):
        log.append([normal(1, 2), normal(1, 4)])
    assert log.last_index == 1  # all or nothing


def test_constructor_checks_contiguity() -> None:
    with pytest.raises(ValueError, match="entry 2 does not follow 0"):
        RaftLog([normal(1, 2)])
    log = RaftLog([normal(1, 6)], offset=5, offset_term=1)
    assert log.last_index == 6


def test_term_at() -> None:
    log = make_log(1, 1, 2, 4)
    assert log.term_at(0) == 0
    assert [log.term_at(i) for i in range(1, 5)] == [1, 1, 2, 4]
    assert log.term_at(5) is None
    assert log.term_at(100) is None
    assert log.term_at(-1) is None


def test_term_at_with_offset() -> None:
    log = RaftLog([normal(3, 11), normal(4, 12)], offset=10, offset_term=2)
    assert log.term_at(10) == 2
    assert log.term_at(9) is None
    assert log.term_at(0) == 0  # index 0 (the empty prefix) matches in every log
    assert log.term_at(11) == 3
    assert log.term_at(12) == 4
    assert log.term_at(13) is None
    assert log.last_log_id == LogId(4, 12)


def test_empty_log_with_offset_reports_the_offset() -> None:
    log = RaftLog(offset=7, offset_term=3)
    assert log.last_log_id == LogId(3, 7)
    with pytest.raises(ValueError, match="entry 1 does not follow 7"):
        log.append([normal(3, 1)])
    log.append([normal(3, 8)])
    assert log.last_log_id == LogId(3, 8)


@pytest.mark.parametrize(
    ("start", "stop", "indexes"),
    [
        (1, 6, [1, 2, 3, 4, 5]),
        (2, 4, [2, 3]),
        (0, 3, [1, 2]),
        (-5, 2, [1]),
        (4, 100, [4, 5]),
        (6, 10, []),
        (3, 3, []),
        (4, 2, []),
        (1, 1, []),
        (0, 0, []),
    ],
)
def test_slice_is_half_open_and_clipped(start: int, stop: int, indexes: list[int]) -> None:
    log = make_log(1, 1, 2, 2, 3)
    assert [e.index for e in log.slice(start, stop)] == indexes
    assert isinstance(log.slice(start, stop), tuple)


@pytest.mark.parametrize(
    ("start", "stop", "indexes"),
    [(1, 100, [11, 12, 13]), (11, 13, [11, 12]), (10, 12, [11]), (14, 20, []), (5, 11, [])],
)
def test_slice_with_offset(start: int, stop: int, indexes: list[int]) -> None:
    log = RaftLog([normal(2, 11), normal(2, 12), normal(3, 13)], offset=10, offset_term=1)
    assert [e.index for e in log.slice(start, stop)] == indexes


def test_truncate_from() -> None:
    log = make_log(1, 1, 2, 2, 3)
    log.truncate_from(4)
    assert log.last_log_id == LogId(2, 3)
    assert log.term_at(4) is None
    log.append([normal(5, 4)])
    assert log.last_log_id == LogId(5, 4)


def test_truncate_beyond_the_end_is_a_no_op() -> None:
    log = make_log(1, 2)
    log.truncate_from(3)
    log.truncate_from(10)
    assert log.last_log_id == LogId(2, 2)


@pytest.mark.parametrize("index", [1, 0, -3])
def test_truncate_everything(index: int) -> None:
    log = make_log(1, 2, 3)
    log.truncate_from(index)
    assert log.last_log_id == LogId(0, 0)
    assert log.slice(0, 10) == ()
    log.append([normal(4, 1)])
    assert log.last_log_id == LogId(4, 1)


def test_truncate_with_offset_keeps_the_snapshot_point() -> None:
    log = RaftLog([normal(2, 11), normal(3, 12)], offset=10, offset_term=2)
    log.truncate_from(12)
    assert log.last_log_id == LogId(2, 11)
    log.truncate_from(11)
    assert log.last_log_id == LogId(2, 10)
    assert log.term_at(10) == 2


def test_replace() -> None:
    log = make_log(1, 1, 1)
    log.replace(blank(1, 2))
    assert log.get(2) == blank(1, 2)
    assert [e.index for e in log.slice(1, 4)] == [1, 2, 3]
    assert log.get(1) == normal(1, 1)
    assert log.get(3) == normal(1, 3)
    assert log.last_log_id == LogId(1, 3)


def test_replace_with_offset() -> None:
    log = RaftLog([normal(2, 11), normal(2, 12)], offset=10, offset_term=1)
    log.replace(blank(2, 12))
    assert log.get(12) == blank(2, 12)
    assert log.get(11) == normal(2, 11)


def test_latest_membership_after_append() -> None:
    log = RaftLog()
    log.append([config(1, 1, C1), normal(1, 2)])
    assert log.latest_membership() == C1
    log.append([config(2, 3, C2), normal(2, 4)])
    assert log.latest_membership() == C2
    log.append([config(2, 5, C3)])
    assert log.latest_membership() == C3
    assert log.latest_membership().is_in_joint_consensus  # type: ignore[union-attr]


def test_latest_membership_from_the_constructor() -> None:
    log = RaftLog([normal(1, 1), config(1, 2, C2), normal(1, 3)])
    assert log.latest_membership() == C2


def test_truncation_removes_a_config_entry() -> None:
    log = RaftLog([config(1, 1, C1), normal(1, 2), config(2, 3, C2), normal(2, 4)])
    log.truncate_from(4)
    assert log.latest_membership() == C2
    log.truncate_from(3)
    assert log.latest_membership() == C1
    log.truncate_from(1)
    assert log.latest_membership() is None


def test_membership_after_truncate_and_new_config() -> None:
    log = RaftLog([config(1, 1, C1), config(2, 2, C2)])
    log.truncate_from(2)
    log.append([normal(3, 2), config(3, 3, C3)])
    assert log.latest_membership() == C3
    log.truncate_from(3)
    assert log.latest_membership() == C1


def test_no_membership_without_config_entries() -> None:
    log = make_log(1, 2, 3)
    assert log.latest_membership() is None


# --- compaction -------------------------------------------------------------------------


def test_compact_drops_the_prefix_and_keeps_the_snapshot_membership() -> None:
    first, second = MembershipConfig((1,)), MembershipConfig((1, 2, 3))
    log = RaftLog([config(1, 1, first), normal(1, 2), config(1, 3, second), normal(2, 4)])
    log.compact(3, 1, second)
    assert (log.offset, log.offset_term, len(log), log.last_index) == (3, 1, 1, 4)
    assert log.term_at(3) == 1 and log.term_at(2) is None and log.term_at(4) == 2
    assert log.latest_membership() == second and log.config_index == 3
    assert log.membership_at(4) == second
    assert log.slice(1, 10) == (normal(2, 4),)


def test_compact_past_a_conflicting_entry_drops_the_whole_log() -> None:
    log = RaftLog([normal(1, 1), normal(1, 2), normal(1, 3)])
    log.compact(2, 5, MembershipConfig((1,)))  # term 5 at index 2: not our entry
    assert (log.offset, log.offset_term, log.last_index) == (2, 5, 2)
    assert len(log) == 0


def test_compact_beyond_the_log_and_twice() -> None:
    log = RaftLog([normal(1, 1)])
    log.compact(10, 3, MembershipConfig((1,)))
    assert log.last_log_id == LogId(3, 10)
    log.compact(5, 2, MembershipConfig((2,)))  # older: ignored
    assert log.offset == 10 and log.latest_membership() == MembershipConfig((1,))
    log.append([normal(3, 11)])
    assert log.last_index == 11


def test_membership_at_picks_the_latest_config_at_or_before() -> None:
    a, b = MembershipConfig((1,)), MembershipConfig((1, 2))
    log = RaftLog([config(1, 1, a), normal(1, 2), config(1, 3, b), normal(1, 4)])
    assert [log.membership_at(i) for i in range(0, 5)] == [None, a, a, b, b]


def test_truncate_into_the_snapshot_is_refused() -> None:
    log = RaftLog([normal(2, 6)], offset=5, offset_term=2)
    with pytest.raises(ValueError, match="compacted"):
        log.truncate_from(5)


def test_compact_without_a_matching_entry_forgets_its_configuration_entries() -> None:
    """A snapshot that does not continue the log drops every entry, configuration entries
    included: the membership is the snapshot's (a stale index once crashed the node)."""
    m, later = MembershipConfig((1, 2, 3)), MembershipConfig((1, 2, 3), None, (4,))
    log = RaftLog([config(1, 1, m), normal(2, 2), config(2, 3, later)])
    log.compact(2, 3, m)  # our entry 2 has term 2, the snapshot's term 3
    assert len(log) == 0
    assert log.latest_membership() == m and log.config_index == 2
