"""Metrics a Raft node pushes to its subscriber, and :class:`MetricsHub`, a subscriber
that keeps the latest metrics of every node and lets threads wait for a condition."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import attrs

from pykka_raft.messages import MembershipConfig
from pykka_raft.types import LogIndex, NodeId, Term

T = TypeVar("T")


class State(enum.Enum):
    """The role of a node."""

    NON_VOTER = "non_voter"
    """Passive: replicates the log but neither votes in elections nor times out."""
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    """Asking the voters whether they would elect it (PreVote), without a new term yet."""
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
        snapshotting: a snapshot transfer to it is in progress (pushed at once when a
            transfer starts or ends).
    """

    node_id: NodeId
    matched: LogIndex
    lag: int
    snapshotting: bool = False


@attrs.frozen
class RaftMetrics:
    """A snapshot of a node's state, pushed to the metrics subscriber.

    Pushed at once on every change of state, term, leader, membership, snapshot point or
    snapshot counters, and when a snapshot transfer to a peer starts or ends
    (``ReplicationMetrics.snapshotting``); after index changes (coalesced to at most one
    push per tick); and every ``Config.metrics_rate``.
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
    snapshots_refused: int = 0
    """Snapshots this node received whole but refused, because their data did not match
    ``SnapshotMeta.digest`` (the sender starts the transfer over)."""

    @property
    def voters(self) -> frozenset[NodeId]:
        """The nodes that vote (both sets while the configuration is joint)."""
        return self.membership_config.voters()

    @property
    def non_voters(self) -> frozenset[NodeId]:
        """The nodes that only replicate (new nodes catching up, and learners); a voter
        being demoted counts as a voter until the final configuration."""
        return frozenset(self.membership_config.non_voters) - self.voters


class MetricsHub:
    """A metrics subscriber for many nodes: keeps the latest metrics of each node and the
    whole history, and lets threads wait for a condition.

    It is a plain thread-safe object with a ``tell`` method, so a Raft node can push to it
    like to an actor without a thread of its own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.latest: dict[NodeId, RaftMetrics] = {}
        self.history: list[RaftMetrics] = []
        self._pushes = 0
        self._leaders: dict[int, set[NodeId]] = {}

    def tell(self, metrics: RaftMetrics) -> None:
        """Record one metrics push."""
        with self._cond:
            self.latest[metrics.id] = metrics
            self.history.append(metrics)
            self._pushes += 1
            if metrics.state is State.LEADER:
                self._leaders.setdefault(metrics.current_term, set()).add(metrics.id)
            self._cond.notify_all()

    def get(self, node_id: NodeId) -> RaftMetrics | None:
        """The latest metrics of ``node_id``."""
        with self._cond:
            return self.latest.get(node_id)

    def snapshot(self) -> dict[NodeId, RaftMetrics]:
        """A copy of the latest metrics of every node."""
        with self._cond:
            return dict(self.latest)

    def wait_for(
        self, predicate: Callable[[dict[NodeId, RaftMetrics]], T], timeout: float, what: str
    ) -> T:
        """Wait until ``predicate(latest metrics by node)`` is truthy; return its value.

        The predicate runs on a copy, outside the hub's lock, so it may take its time (or
        even ``ask`` a node) without stalling the nodes that push metrics.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._pushes - 1
        while True:
            with self._cond:
                while self._pushes == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                seen = self._pushes
                latest = dict(self.latest)
            value = predicate(latest)
            if value:
                return value
            if time.monotonic() >= deadline:
                state = {
                    n: (
                        m.state.value,
                        m.current_term,
                        m.current_leader,
                        m.last_log_index,
                        m.last_applied,
                    )
                    for n, m in sorted(latest.items())
                }
                raise TimeoutError(
                    f"timed out after {timeout:.1f}s waiting for {what}; "
                    f"metrics (state, term, leader, last log, applied): {state}"
                )

    def leaders_by_term(self) -> dict[int, set[NodeId]]:
        """Every node ever seen as leader, by term (election safety: one per term)."""
        with self._cond:
            return {term: set(ids) for term, ids in self._leaders.items()}
