"""The safety monitors on hand-built data: each catches its violation and passes clean data."""

from __future__ import annotations

import attrs

from pykka_raft.messages import Entry, EntryNormal, MembershipConfig
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.testing.monitors import (
    indexes_never_decrease,
    log_matching,
    logs_well_formed,
    state_machine_safety,
)
from pykka_raft.types import LogId


def entries(terms: list[int], start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, EntryNormal(f"{start + i}/{t}")) for i, t in enumerate(terms)]


def test_log_matching_accepts_logs_that_start_after_a_snapshot() -> None:
    full = entries([1, 1, 2, 2, 3])
    compacted = full[3:]  # snapshot through index 3
    assert log_matching({1: full, 2: compacted, 3: full[:2]}) == []


def test_log_matching_compares_by_index_not_position() -> None:
    full = entries([1, 1, 2, 2, 3])
    other = [*entries([1, 1]), Entry(2, 3, EntryNormal("different")), *full[3:]]
    problems = log_matching({1: full, 2: other[2:]})
    assert problems and "differ at index 3" in problems[0]


def test_state_machine_safety_catches_a_gap_and_a_divergence() -> None:
    assert state_machine_safety({1: [(1, "a"), (3, "c")]})
    assert state_machine_safety({1: [(1, "a")], 2: [(1, "b")]})
    assert state_machine_safety({1: [(1, "a"), (2, "b")], 2: [(1, "a")]}) == []


def test_log_matching_counts_a_snapshot_as_the_entry_it_ends_with() -> None:
    """Node 1's snapshot covers index 5 of term 2; node 2 holds 5 of term 3, and both hold
    6 of term 3: they agree on 6 but not on 5."""
    node1 = entries([3], start=6)
    node2 = entries([1, 1, 3, 3, 3, 3])
    assert log_matching({1: node1, 2: node2}) == []  # what the logs alone show
    problems = log_matching({1: node1, 2: node2}, {1: LogId(2, 5), 2: None})
    assert problems and "differ at index 5: term 2 vs 3" in problems[0]
    assert log_matching({1: node1, 2: node2}, {1: LogId(3, 5)}) == []


def test_logs_well_formed_catches_gaps_repeats_and_falling_terms() -> None:
    good = entries([1, 1, 2, 2, 3])
    assert logs_well_formed({1: good, 2: good[3:]}, {2: LogId(2, 3)}) == []
    assert logs_well_formed({1: [*good[:2], *good[3:]]})  # a gap: 1, 2, 4, 5
    assert logs_well_formed({1: [*good[:3], good[2], *good[3:]]})  # index 3 twice
    assert logs_well_formed({1: entries([1, 2, 1])})  # terms fall
    assert logs_well_formed({1: good[3:]})  # starts at 4 without a snapshot
    assert logs_well_formed({1: good[3:]}, {1: LogId(3, 3)})  # goes on from term 3 at term 2


def test_indexes_never_decrease_within_a_run_and_start_over_after_a_shutdown() -> None:
    def m(node: int, commit: int, applied: int, snap: int = 0, state: State = State.FOLLOWER):
        return RaftMetrics(node, state, 1, commit, commit, applied, None, MembershipConfig(), snap)

    run = [m(1, 3, 2), m(2, 9, 9, 5), m(1, 5, 5, 4)]
    assert indexes_never_decrease(run) == []
    restarted = [*run, attrs.evolve(run[-1], state=State.SHUTDOWN), m(1, 0, 4, 4), m(1, 6, 6, 4)]
    assert indexes_never_decrease(restarted) == []
    problems = indexes_never_decrease([*run, m(1, 4, 5, 4), m(1, 6, 3, 2)])
    assert problems == [
        "node 1: commit index went from 5 back to 4 in one run",
        "node 1: last applied went from 5 back to 3 in one run",
        "node 1: snapshot index went from 4 back to 2 in one run",
    ]
