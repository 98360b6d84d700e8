"""The safety monitors on hand-built data: each catches its violation and passes clean data."""

from __future__ import annotations

from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.testing.monitors import log_matching, state_machine_safety


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
