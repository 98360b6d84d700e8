"""Membership changes as a pure planner (§6, dissertation §4.3).

:func:`plan_change` validates a ``ProposeConfigChange`` against the current configuration
and returns the target configuration (or the error to answer). :func:`next_step` says
which configuration entry comes next on the way to the target. The leader appends one
step at a time, only once the previous configuration entry committed and once it
committed an entry of its own term (that ordering lives in the façade):

1. nodes new to the cluster join as non-voters and are replicated to;
2. when every new voter is caught up, the joint configuration ``C_old,new``;
3. the final configuration ``C_new`` (also for a joint configuration inherited from an
   earlier leader, D9).

A node being demoted is listed as a non-voter of the joint configuration already: it
still votes in ``C_old`` and is a learner of ``C_new``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from pykka_raft.admin import ProposeConfigChange
from pykka_raft.errors import ConfigChangeError, InoperableConfig, Noop
from pykka_raft.messages import MembershipConfig
from pykka_raft.types import NodeId


@attrs.frozen
class Propose:
    """Append this configuration entry next."""

    membership: MembershipConfig


@attrs.frozen
class Done:
    """The target is the committed configuration."""


@attrs.frozen
class Wait:
    """New voters are still catching up (``lagging``)."""

    lagging: tuple[NodeId, ...]


Step = Propose | Done | Wait


def describe(m: MembershipConfig) -> str:
    """A configuration in words, for error messages and logs."""
    text = f"voters {list(m.members)}"
    if m.members_after_consensus is not None:
        text += f" joint with {list(m.members_after_consensus)}"
    if m.non_voters:
        text += f", non-voters {list(m.non_voters)}"
    return text


def with_addresses(m: MembershipConfig, book: dict[NodeId, str]) -> MembershipConfig:
    """``m`` with the addresses of its nodes taken from ``book``."""
    nodes = m.all_nodes()
    return attrs.evolve(m, addresses={n: a for n, a in book.items() if n in nodes})


def plan_change(
    m: MembershipConfig, change: ProposeConfigChange, min_voters: int
) -> MembershipConfig | ConfigChangeError:
    """The configuration ``change`` asks for, starting from ``m`` (not joint), or why not."""
    add, remove, learners = (
        set(change.add_members),
        set(change.remove_members),
        set(change.add_non_voters),
    )
    clash = ((add | learners) & remove) or (add & learners)
    if clash:
        nodes = ", ".join(str(n) for n in sorted(clash))
        return InoperableConfig(
            f"membership change refused: node(s) {nodes} are listed twice (to add and "
            "to remove, or as voter and non-voter); list each node once"
        )
    voters = (set(m.voters()) | add) - remove - learners
    target = with_addresses(
        MembershipConfig(voters, None, (set(m.non_voters) | learners) - remove - add),
        {**m.address_book(), **dict(change.addresses)},
    )
    if target == m:
        return Noop(
            f"membership change refused: the membership already is {describe(m)}; "
            "nothing to add or remove"
        )
    # min_voters guards against shrinking: a change that does not reduce the voters is
    # taken, also in a cluster still smaller than min_voters (formed with one node).
    if len(voters) < min_voters and len(voters) < len(m.voters()):
        return InoperableConfig(
            f"membership change refused: it would leave {len(voters)} voter(s), "
            f"fewer than Config.min_voters ({min_voters}) and fewer than now "
            f"({len(m.voters())}); add voters in the same change or remove fewer"
        )
    return target


def next_step(
    m: MembershipConfig, target: MembershipConfig | None, caught_up: Callable[[NodeId], bool]
) -> Step:
    """The next configuration entry from the committed configuration ``m`` toward
    ``target`` (``None``: no change asked; only a joint ``m`` is finished)."""
    if m.is_in_joint_consensus:
        assert m.members_after_consensus is not None
        final = MembershipConfig(m.members_after_consensus, None, m.non_voters)
        return Propose(with_addresses(final, m.address_book()))
    if target is None or m == target:
        return Done()
    # The steps between carry the nodes of both: the old voters vote until the final
    # entry, so their addresses stay (a node that learns addresses only from the log,
    # restarted or new, must reach every voter of the configuration in effect).
    book = {**m.address_book(), **target.address_book()}
    new = target.all_nodes() - m.all_nodes()
    if new:
        joining = MembershipConfig(m.members, None, set(m.non_voters) | new)
        return Propose(with_addresses(joining, book))
    if target.members != m.members:
        lagging = tuple(n for n in sorted(target.voters() - m.voters()) if not caught_up(n))
        if lagging:
            return Wait(lagging)
        joint = MembershipConfig(m.members, target.members, target.non_voters)
        return Propose(with_addresses(joint, book))
    return Propose(target)  # only non-voters (or addresses) change: one step
