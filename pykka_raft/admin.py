"""Admin messages: forming a cluster and changing its membership."""

from __future__ import annotations

from typing import Any

import attrs

from pykka_raft.messages import (
    MembershipConfig,
    _address_pairs,
    _optional_node_id,
    check_node_ids,
)
from pykka_raft.types import LogIndex, NodeId, Term


def _ids(ids: Any, field: str) -> tuple[NodeId, ...]:
    """Checked node ids without duplicates, in their first order."""
    return tuple(dict.fromkeys(check_node_ids(ids, field)))


def _init_members(ids: Any) -> tuple[NodeId, ...]:
    return _ids(ids, "InitWithConfig.members")


def _init_addresses(ids: Any) -> tuple[tuple[NodeId, str], ...]:
    return _address_pairs(ids, "InitWithConfig.addresses")


def _add_members(ids: Any) -> tuple[NodeId, ...]:
    return _ids(ids, "ProposeConfigChange.add_members")


def _remove_members(ids: Any) -> tuple[NodeId, ...]:
    return _ids(ids, "ProposeConfigChange.remove_members")


def _add_non_voters(ids: Any) -> tuple[NodeId, ...]:
    return _ids(ids, "ProposeConfigChange.add_non_voters")


def _change_addresses(ids: Any) -> tuple[tuple[NodeId, str], ...]:
    return _address_pairs(ids, "ProposeConfigChange.addresses")


@attrs.frozen
class InitWithConfig:
    """Form a new cluster from pristine nodes.

    Send it to **every** node of the new cluster, each with the full member list (sending in
    parallel is safe). It is allowed only on a pristine node: one with an empty log and no
    membership (a term learned from a leader that reached it first does not count); sent
    while the node is still reading its storage, it waits until the node has started.
    Duplicates are dropped and the
    receiving node's own id is added if missing. A single-member config makes the node
    leader at once; otherwise it starts an election. The reply (``None``) comes as soon as
    the configuration is durable, before any election finishes; a node that is not
    pristine raises :class:`~pykka_raft.errors.NotAllowed`.

    ``addresses`` (a mapping of node id to ``"host:port"``) records where each member can
    be reached, for networks between processes (``MembershipConfig.addresses``); give every
    node the same mapping.

    ``members`` must be a collection of node ids (non-negative ``int``): a bare ``int``, a
    ``str``, or an item such as ``"2"``, ``3.9`` or ``True`` raises ``TypeError`` (a
    negative id ``ValueError``) naming the field; nothing is converted.
    """

    members: tuple[NodeId, ...] = attrs.field(converter=_init_members)
    addresses: tuple[tuple[NodeId, str], ...] = attrs.field(default=(), converter=_init_addresses)


@attrs.frozen
class ProposeConfigChange:
    """Change the cluster's membership; send it to the leader.

    ``add_members`` become voters, ``remove_members`` leave the cluster, and
    ``add_non_voters`` join as non-voters that stay non-voters (learners: they receive the
    log but never vote or count toward a majority). Naming a current non-voter in
    ``add_members`` promotes it; naming a current voter in ``add_non_voters`` demotes it.
    Duplicates are ignored, and so is anything already as asked. ``addresses`` (a mapping
    of node id to ``"host:port"``) records where new nodes can be reached, for networks
    between processes; it travels in the configuration entries to every member
    (``MembershipConfig.addresses``). Giving a new address for a node already in the
    cluster (and nothing else) changes only its address, in one step.

    The leader carries the change out in committed steps (``docs/membership.md``):

    1. nodes new to the cluster are added as non-voters and replicated to until each is
       at most ``Config.catch_up_lag`` entries behind;
    2. the joint configuration (old and new voters, §6), in which elections and commits
       need a majority of each;
    3. the final configuration. A leader that is no longer a voter then steps down.

    The reply, a :class:`ConfigChangeResponse`, comes when the final configuration is
    committed. Errors (all :class:`~pykka_raft.errors.ConfigChangeError`):
    :class:`~pykka_raft.errors.NodeNotLeader` (with the known leader),
    :class:`~pykka_raft.errors.Noop` (nothing to change),
    :class:`~pykka_raft.errors.InoperableConfig` (fewer voters would remain than now and
    than ``Config.min_voters``, or a node is both added and removed),
    :class:`~pykka_raft.errors.ChangeInProgress` (one change at a time),
    :class:`~pykka_raft.errors.CatchUpTimeout` (new voters did not catch up in time) and
    :class:`~pykka_raft.errors.LeadershipLost` (the outcome is open).

    Each node list must be a collection of node ids (non-negative ``int``) and each
    address a ``"host:port"`` string; anything else raises ``TypeError`` or ``ValueError``
    naming the field when the message is built.
    """

    add_members: tuple[NodeId, ...] = attrs.field(default=(), converter=_add_members)
    remove_members: tuple[NodeId, ...] = attrs.field(default=(), converter=_remove_members)
    add_non_voters: tuple[NodeId, ...] = attrs.field(default=(), converter=_add_non_voters)
    addresses: tuple[tuple[NodeId, str], ...] = attrs.field(default=(), converter=_change_addresses)


@attrs.frozen
class ConfigChangeResponse:
    """The answer to :class:`ProposeConfigChange`: the committed final membership.

    Attributes:
        index: the log index of the committed configuration entry.
        membership: the membership now in effect.
    """

    index: LogIndex
    membership: MembershipConfig


@attrs.frozen
class TransferLeadership:
    """Hand leadership to ``target`` (a voter), or with ``None`` to the voter whose log is
    most up to date; send it to the leader (dissertation §3.10).

    The leader stops taking new writes (they get :class:`~pykka_raft.errors.Busy`, and
    ``ForwardToLeader`` naming the new leader once it leads), brings the target's log up to
    date, and tells it to start an election at once (``TimeoutNow``). The reply, a
    :class:`TransferLeadershipResponse`, comes once the target leads. If it does not lead
    within an election timeout, the call fails with
    :class:`~pykka_raft.errors.TransferFailed` and the leader (if still leader) takes writes
    again. Non-leaders answer :class:`~pykka_raft.errors.NodeNotLeader`.
    """

    target: NodeId | None = attrs.field(default=None, validator=_optional_node_id)


@attrs.frozen
class TransferLeadershipResponse:
    """The answer to :class:`TransferLeadership`: ``leader_id`` leads in ``term``."""

    leader_id: NodeId
    term: Term


@attrs.frozen
class TriggerElection:
    """Make this node (a voter) start an election now, as if its election timer fired,
    always with PreVote first (even with ``Config.pre_vote`` off). Voters that still hear from a
    leader refuse it (leader stickiness), and this node does not count its own vote while
    it hears from one, so it moves leadership only when the leader is
    gone or cut off; to move it away from a healthy leader, use :class:`TransferLeadership`.
    A leader ignores it. Replies ``None`` once the election started (and the node's vote
    for itself, if it became a candidate, is durable).
    """


@attrs.frozen
class TriggerSnapshot:
    """Compact the log into a snapshot now, whatever ``Config.snapshot_policy`` says.

    The snapshot covers every entry sent to the state machine so far; if one is being
    built already, the answer is that one (it may end a little earlier). Replies the
    :class:`~pykka_raft.messages.SnapshotMeta` of the node's current snapshot once it is
    stored (``None`` if nothing was ever applied). Any node may be asked. A storage
    without snapshots answers :class:`~pykka_raft.errors.SnapshotsUnsupported`.
    """
