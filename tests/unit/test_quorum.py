"""Majority arithmetic against a brute-force oracle, for single and joint voter sets."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykka_raft.core.quorum import has_quorum, joint_quorum_index, quorum_index
from pykka_raft.messages import MembershipConfig

NODE_IDS = st.integers(min_value=1, max_value=12)
VOTER_SETS = st.frozensets(NODE_IDS, max_size=9)
NON_EMPTY_VOTER_SETS = st.frozensets(NODE_IDS, min_size=1, max_size=9)
MATCHES = st.dictionaries(NODE_IDS, st.integers(min_value=0, max_value=30), max_size=12)


def oracle_quorum_index(voters: Collection[int], match: dict[int, int]) -> int:
    """The largest v such that strictly more than half of ``voters`` have match >= v."""
    if not voters:
        return 0
    candidates = {0, *(match.get(n, 0) for n in voters)}
    return max(
        v for v in candidates if sum(1 for n in voters if match.get(n, 0) >= v) * 2 > len(voters)
    )


def oracle_has_quorum(voter_sets: list[frozenset[int]], granted: Collection[int]) -> bool:
    """Every voter set is non-empty and more than half of it granted."""
    for voters in voter_sets:
        if not voters:
            return False
        if not len(voters & set(granted)) * 2 > len(voters):
            return False
    return True


def lookup(match: dict[int, int]) -> Callable[[int], int]:
    """A match function reading ``match`` (0 for unknown nodes)."""
    return lambda node: match.get(node, 0)


@settings(max_examples=200, deadline=None)
@given(voters=VOTER_SETS, match=MATCHES)
def test_quorum_index_matches_oracle(voters: frozenset[int], match: dict[int, int]) -> None:
    assert quorum_index(voters, lookup(match)) == oracle_quorum_index(voters, match)


@settings(max_examples=200, deadline=None)
@given(voters=NON_EMPTY_VOTER_SETS, match=MATCHES)
def test_quorum_index_is_reached_by_a_majority_and_not_exceeded(
    voters: frozenset[int], match: dict[int, int]
) -> None:
    index = quorum_index(voters, lookup(match))
    reached = sum(1 for n in voters if match.get(n, 0) >= index)
    assert reached * 2 > len(voters)
    above = sum(1 for n in voters if match.get(n, 0) >= index + 1)
    assert above * 2 <= len(voters)


@settings(max_examples=200, deadline=None)
@given(voters=st.lists(NODE_IDS, max_size=9, unique=True), match=MATCHES)
def test_quorum_index_ignores_voter_order(voters: list[int], match: dict[int, int]) -> None:
    expected = quorum_index(frozenset(voters), lookup(match))
    assert quorum_index(voters, lookup(match)) == expected
    assert quorum_index(tuple(reversed(voters)), lookup(match)) == expected


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(VOTER_SETS, min_size=1, max_size=3), match=MATCHES)
def test_joint_quorum_index_matches_oracle(
    sets: list[frozenset[int]], match: dict[int, int]
) -> None:
    expected = min(oracle_quorum_index(voters, match) for voters in sets)
    assert joint_quorum_index(sets, lookup(match)) == expected
    assert joint_quorum_index(iter(sets), lookup(match)) == expected


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(VOTER_SETS, min_size=1, max_size=3), granted=st.frozensets(NODE_IDS))
def test_has_quorum_matches_oracle(sets: list[frozenset[int]], granted: frozenset[int]) -> None:
    assert has_quorum(sets, granted) == oracle_has_quorum(sets, granted)
    assert has_quorum(iter(sets), sorted(granted)) == oracle_has_quorum(sets, granted)


@settings(max_examples=200, deadline=None)
@given(
    old=NON_EMPTY_VOTER_SETS,
    new=NON_EMPTY_VOTER_SETS,
    non_voters=st.frozensets(NODE_IDS, max_size=4),
    match=MATCHES,
    granted=st.frozensets(NODE_IDS),
)
def test_membership_voter_sets_agree_with_oracle(
    old: frozenset[int],
    new: frozenset[int],
    non_voters: frozenset[int],
    match: dict[int, int],
    granted: frozenset[int],
) -> None:
    config = MembershipConfig(members=old, members_after_consensus=new, non_voters=non_voters)
    sets = config.voter_sets()
    assert len(sets) == 2
    expected = min(oracle_quorum_index(old, match), oracle_quorum_index(new, match))
    assert joint_quorum_index(sets, lookup(match)) == expected
    assert has_quorum(sets, granted) == (
        oracle_has_quorum([old], granted) and oracle_has_quorum([new], granted)
    )


@settings(max_examples=200, deadline=None)
@given(voters=NON_EMPTY_VOTER_SETS, granted=st.frozensets(NODE_IDS))
def test_has_quorum_is_monotonic(voters: frozenset[int], granted: frozenset[int]) -> None:
    if has_quorum([voters], granted):
        assert has_quorum([voters], granted | voters)
        assert not has_quorum([voters], voters - granted)  # two majorities always overlap


# --- hand examples ----------------------------------------------------------------------


def test_no_voters() -> None:
    assert quorum_index((), lookup({1: 5})) == 0
    assert joint_quorum_index([()], lookup({1: 5})) == 0
    assert not has_quorum([()], {1, 2})
    assert joint_quorum_index([(1,), ()], lookup({1: 5})) == 0
    assert not has_quorum([(1,), ()], {1})


def test_single_node() -> None:
    assert quorum_index((1,), lookup({1: 7})) == 7
    assert has_quorum([(1,)], {1})
    assert not has_quorum([(1,)], set())
    assert not has_quorum([(1,)], {2})


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({1: 5, 2: 3, 3: 1}, 3),
        ({1: 5, 2: 5, 3: 0}, 5),
        ({1: 5, 2: 0, 3: 0}, 0),
        ({1: 4, 2: 4, 3: 4}, 4),
        ({1: 9}, 0),
    ],
)
def test_three_nodes_quorum_index(match: dict[int, int], expected: int) -> None:
    assert quorum_index((1, 2, 3), lookup(match)) == expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({1: 5, 2: 4, 3: 3, 4: 2}, 3),
        ({1: 5, 2: 5, 3: 0, 4: 0}, 0),
        ({1: 8, 2: 8, 3: 8, 4: 0}, 8),
        ({1: 9, 2: 7, 3: 2, 4: 2}, 2),
    ],
)
def test_four_nodes_quorum_index(match: dict[int, int], expected: int) -> None:
    assert quorum_index((1, 2, 3, 4), lookup(match)) == expected


@pytest.mark.parametrize(
    ("granted", "expected"),
    [({1, 2}, True), ({1, 2, 3}, True), ({3}, False), ({2, 9}, False), (set(), False)],
)
def test_three_nodes_has_quorum(granted: set[int], expected: bool) -> None:
    assert has_quorum([(1, 2, 3)], granted) is expected


@pytest.mark.parametrize(
    ("granted", "expected"),
    [({1, 2}, False), ({1, 2, 3}, True), ({2, 3, 4}, True), ({1, 2, 5, 6}, False)],
)
def test_four_nodes_need_three(granted: set[int], expected: bool) -> None:
    assert has_quorum([(1, 2, 3, 4)], granted) is expected


def test_joint_disjoint_sets() -> None:
    sets = [(1, 2, 3), (4, 5, 6)]
    match = {1: 10, 2: 10, 3: 10, 4: 2, 5: 3, 6: 1}
    assert joint_quorum_index(sets, lookup(match)) == 2
    match = {1: 1, 2: 2, 3: 3, 4: 10, 5: 10, 6: 10}
    assert joint_quorum_index(sets, lookup(match)) == 2
    assert has_quorum(sets, {1, 2, 4, 5})
    assert not has_quorum(sets, {1, 2, 3})
    assert not has_quorum(sets, {1, 2, 3, 4})
    assert not has_quorum(sets, {4, 5, 6, 1})


def test_joint_overlapping_sets() -> None:
    sets = [(1, 2, 3), (3, 4, 5)]
    match = {1: 9, 2: 1, 3: 6, 4: 2, 5: 7}
    assert quorum_index(sets[0], lookup(match)) == 6
    assert quorum_index(sets[1], lookup(match)) == 6
    assert joint_quorum_index(sets, lookup(match)) == 6
    match[3] = 0
    assert joint_quorum_index(sets, lookup(match)) == 1
    assert has_quorum(sets, {2, 3, 4})
    assert not has_quorum(sets, {1, 2, 4})
    assert not has_quorum(sets, {3})
    assert has_quorum(sets, {1, 3, 5})


def test_joint_growing_from_one_to_three() -> None:
    sets = [(1,), (1, 2, 3)]
    assert not has_quorum(sets, {1})
    assert has_quorum(sets, {1, 2})
    assert not has_quorum(sets, {2, 3})
    assert joint_quorum_index(sets, lookup({1: 5, 2: 4, 3: 0})) == 4
    assert joint_quorum_index(sets, lookup({1: 3, 2: 4, 3: 4})) == 3


def test_non_voters_do_not_count() -> None:
    config = MembershipConfig(members=(1, 2, 3), non_voters=(4, 5, 6))
    assert not has_quorum(config.voter_sets(), {1, 4, 5, 6})
    match = {1: 9, 2: 0, 3: 0, 4: 9, 5: 9, 6: 9}
    assert joint_quorum_index(config.voter_sets(), lookup(match)) == 0
