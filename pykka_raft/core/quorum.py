"""Majority arithmetic, for one voter set or a joint configuration (§6)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from pykka_raft.types import NodeId


def quorum_index(voters: Collection[NodeId], match: Callable[[NodeId], int]) -> int:
    """The highest value that a majority of ``voters`` has reached (0 for no voters)."""
    if not voters:
        return 0
    values = sorted((match(node) for node in voters), reverse=True)
    return values[len(values) // 2]


def joint_quorum_index(
    voter_sets: Iterable[Collection[NodeId]], match: Callable[[NodeId], int]
) -> int:
    """The highest value a majority of *every* voter set has reached (§6: joint consensus)."""
    return min(quorum_index(voters, match) for voters in voter_sets)


def has_quorum(voter_sets: Iterable[Collection[NodeId]], granted: Collection[NodeId]) -> bool:
    """True when ``granted`` holds a majority of each voter set (one, or two while joint)."""
    return all(
        len(voters) > 0 and sum(1 for n in voters if n in granted) * 2 > len(voters)
        for voters in voter_sets
    )
