"""The cluster's membership configuration (§6), carried by log entries and snapshots."""

from __future__ import annotations

from typing import Any

import attrs

from pykka_raft.messages.checks import _address_pairs, _node_set, _opt_node_set
from pykka_raft.types import NodeId


def _members(ids: Any) -> tuple[NodeId, ...]:
    return _node_set(ids, "MembershipConfig.members")


def _members_after_consensus(ids: Any) -> tuple[NodeId, ...] | None:
    return _opt_node_set(ids, "MembershipConfig.members_after_consensus")


def _non_voters(ids: Any) -> tuple[NodeId, ...]:
    return _node_set(ids, "MembershipConfig.non_voters")


def _membership_addresses(ids: Any) -> tuple[tuple[NodeId, str], ...]:
    return _address_pairs(ids, "MembershipConfig.addresses")


@attrs.frozen
class MembershipConfig:
    """The cluster's membership: who votes, who only replicates.

    Attributes:
        members: the voters (``C_old`` while a joint configuration is in effect).
        members_after_consensus: ``C_new`` during joint consensus (§6), else ``None``.
            While set, elections and commits need a majority of ``members`` **and** a
            majority of ``members_after_consensus``.
        non_voters: nodes that receive the log but never vote or count toward a majority
            (new nodes catching up, or permanent learners). While joint, a member of
            ``members`` that the change demotes is listed here already: it still votes in
            ``C_old`` and is a non-voter of the final configuration.
        addresses: where nodes of this configuration can be reached, as ``(node id,
            "host:port")`` pairs sorted by id (a mapping is accepted too). A network that
            carries RPCs between machines learns the addresses from here, so they travel
            with the configuration to every node and survive restarts (the way openraft's
            membership carries node information). Empty for in-process clusters.

    actix-raft kept ``{members, non_voters, removing, is_in_joint_consensus}``; the joint
    configuration is represented here by its two voter sets instead, which is what the
    quorum rules need (see ``docs/differences.md``). Node sets are stored sorted and
    without duplicates.

    Every field is checked when the object is built (and so when it is decoded): node ids
    are non-negative ``int`` (never converted from ``str``, ``float`` or ``bool``), node
    sets are collections of them (a bare ``int`` or a ``str`` is refused), addresses are
    ``"host:port"`` strings. A ``TypeError`` or ``ValueError`` names the field.
    """

    members: tuple[NodeId, ...] = attrs.field(default=(), converter=_members)
    members_after_consensus: tuple[NodeId, ...] | None = attrs.field(
        default=None,
        converter=_members_after_consensus,
    )
    non_voters: tuple[NodeId, ...] = attrs.field(default=(), converter=_non_voters)
    addresses: tuple[tuple[NodeId, str], ...] = attrs.field(
        default=(), converter=_membership_addresses
    )

    @property
    def is_in_joint_consensus(self) -> bool:
        """True while the configuration is joint (``C_old,new``)."""
        return self.members_after_consensus is not None

    def voter_sets(self) -> tuple[tuple[NodeId, ...], ...]:
        """The voter sets that each need a majority: one, or two while joint."""
        if self.members_after_consensus is None:
            return (self.members,)
        return (self.members, self.members_after_consensus)

    def voters(self) -> frozenset[NodeId]:
        """Every node that votes in at least one of the voter sets."""
        out = set(self.members)
        out.update(self.members_after_consensus or ())
        return frozenset(out)

    def all_nodes(self) -> frozenset[NodeId]:
        """Voters and non-voters."""
        return self.voters() | frozenset(self.non_voters)

    def contains(self, node_id: NodeId) -> bool:
        """True if the node is a voter or a non-voter of this configuration."""
        return node_id in self.all_nodes()

    def is_voter(self, node_id: NodeId) -> bool:
        """True if the node votes in this configuration."""
        return node_id in self.voters()

    def address_of(self, node_id: NodeId) -> str | None:
        """The address recorded for ``node_id``, if any."""
        for node, address in self.addresses:
            if node == node_id:
                return address
        return None

    def address_book(self) -> dict[NodeId, str]:
        """The recorded addresses as a dict."""
        return dict(self.addresses)
