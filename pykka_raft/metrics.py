"""Metrics a Raft node pushes to its subscriber."""

from __future__ import annotations

import enum

import attrs

from pykka_raft.messages import MembershipConfig
from pykka_raft.types import LogIndex, NodeId, Term


class State(enum.Enum):
    """The role of a node."""

    NON_VOTER = "non_voter"
    """Passive: replicates the log but neither votes in elections nor times out."""
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"
    SHUTDOWN = "shutdown"
    """The node has stopped (cleanly, or after a fatal storage error)."""


@attrs.frozen
class ReplicationMetrics:
    """A leader's view of one follower (or learner).

    Attributes:
        node_id: the follower.
        matched: the highest log index known replicated on it.
        lag: how many entries of the leader's log it lacks (``last_log_index - matched``).
        snapshotting: a snapshot transfer to it is in progress.
    """

    node_id: NodeId
    matched: LogIndex
    lag: int
    snapshotting: bool = False


@attrs.frozen
class RaftMetrics:
    """A snapshot of a node's state, pushed to the metrics subscriber.

    Pushed at once on every change of state, term, leader or membership, after index
    changes (coalesced to at most one push per tick), and every ``Config.metrics_rate``.
    """

    id: NodeId
    state: State
    current_term: Term
    last_log_index: LogIndex
    commit_index: LogIndex
    last_applied: LogIndex
    current_leader: NodeId | None
    membership_config: MembershipConfig
    snapshot_index: LogIndex = 0
    """The last log index the current snapshot covers (0: no snapshot yet)."""
    replication: tuple[ReplicationMetrics, ...] = ()
    """The leader's view of every other node, by node id (empty unless leader)."""
    elections_started: int = 0
    """Elections this node started (as a candidate) since it started."""
    writes_refused_busy: int = 0
    """Client writes refused with ``Busy`` (backpressure) since the node started."""
    writes_refused_application: int = 0
    """Client writes refused with ``ApplicationError`` (codec, storage or state machine)."""
    snapshots_sent: int = 0
    """Snapshot transfers this node completed as a leader."""
    snapshots_installed: int = 0
    """Snapshots this node received and installed."""

    @property
    def voters(self) -> frozenset[NodeId]:
        """The nodes that vote (both sets while the configuration is joint)."""
        return self.membership_config.voters()

    @property
    def non_voters(self) -> frozenset[NodeId]:
        """The nodes that only replicate (new nodes catching up, and learners); a voter
        being demoted counts as a voter until the final configuration."""
        return frozenset(self.membership_config.non_voters) - self.voters
