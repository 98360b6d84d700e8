"""The node state every concern of the core reads: the bottom of the core's imports.

:class:`NodeState` holds what Figure 2 of the Raft paper calls the persistent state
(``current_term``, ``voted_for``, the log) and the volatile state of every server
(``commit_index``, ``last_applied``), plus the few facts the concerns share (role, known
leader, the snapshot, the virtual clock). State that belongs to one concern lives in that
concern's own object instead: the leader's progress in :class:`~pykka_raft.core.leader.
LeaderState`, the votes of an election in :class:`~pykka_raft.core.election.Election`,
pending client writes in :class:`~pykka_raft.core.writes.ClientWrites`.

The façade :class:`~pykka_raft.core.node.RaftCore` *is* a ``NodeState``: concern modules
take the state as a parameter and never import the façade, so the core has no import
circle.
"""

from __future__ import annotations

import enum
import operator
import random
from typing import Any

import attrs

from pykka_raft.config import Config
from pykka_raft.core.commands import Command, Respond, SaveHardState, Send
from pykka_raft.core.log import RaftLog
from pykka_raft.messages import (
    HardState,
    MembershipConfig,
    RpcRequest,
    SnapshotMeta,
    check_node_id,
)
from pykka_raft.types import LogIndex, NodeId, Term


class Role(enum.Enum):
    """The core's role; ``INITIALIZING`` until the storage reported the initial state."""

    INITIALIZING = "initializing"
    NON_VOTER = "non_voter"
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@attrs.define
class Counters:
    """Event counts since the node started, reported in ``RaftMetrics``."""

    elections_started: int = 0
    writes_refused_busy: int = 0
    writes_refused_application: int = 0
    snapshots_sent: int = 0
    snapshots_installed: int = 0
    snapshots_refused: int = 0

    def as_tuple(self) -> tuple[int, ...]:
        """Every count, in field order: what ``attrs.astuple`` returns, for a fraction of
        its cost (the Raft actor compares it on every message to see what changed)."""
        return _COUNTS(self)


_COUNTS = operator.attrgetter(*(field.name for field in attrs.fields(Counters)))


class NodeState:
    """One node's shared Raft state and its outgoing commands.

    Attributes:
        id: this node's id.
        config: the node's configuration.
        rng: the randomness of election timeouts (injected, so runs replay).
        commands: the commands produced since the driver last took them.
        role: the current role.
        current_term: the latest term this node has seen (persistent, §5.1).
        voted_for: the candidate this node voted for in ``current_term`` (persistent).
        leader_id: the leader of ``current_term`` if known.
        hard_membership: the configuration the node was formed with; the latest
            configuration entry of the log takes precedence (§6).
        log: the in-memory view of the log after the snapshot point.
        commit_index: the highest index known to be committed.
        last_applied: the highest index the state machine reported applied.
        apply_requested: the highest index sent to the state machine.
        flushed_index: the highest index known durable in this node's storage.
        snapshot: the node's current snapshot, if any.
        now: virtual milliseconds since start, advanced by ``tick`` (a paused node counts
            less than real time; timers use it).
        clock: the driver's monotonic clock in ms, read for leases only.
        counters: event counts for the metrics.
        snapshot_transfer_changes: how many times a leader's snapshot transfer to a peer
            started or ended (``ReplicationMetrics.snapshotting``): the driver pushes the
            metrics at once when it moves, without comparing them on every message.
        snapshot_chunk_sent_at: ``now`` when this node, as leader, last sent a snapshot
            chunk (``None``: never); compaction waits a while after it
            (``Snapshots.due``), also across a change of leadership.
        snapshot_chunk_acked_at: ``now`` when a follower last acknowledged a chunk of a
            transfer still under way (``None``: none is); while one is, compaction waits
            without bound (``Snapshots.due``).
        snapshot_refused_at: ``now`` when a follower last refused a whole transfer at its
            last chunk (its bytes did not match the digest; ``None``: none did); for a while
            after it, acknowledged chunks do not count as progress (``Snapshots.due``).
    """

    def __init__(self, node_id: NodeId, config: Config, rng: random.Random | None = None) -> None:
        self.id = check_node_id(node_id, "node_id")
        self.config = config
        self.rng = rng or random.Random()
        self.commands: list[Command] = []
        self.role = Role.INITIALIZING
        self.current_term: Term = 0
        self.voted_for: NodeId | None = None
        self.leader_id: NodeId | None = None
        self.hard_membership = MembershipConfig()
        self.log = RaftLog()
        self.commit_index: LogIndex = 0
        self.last_applied: LogIndex = 0
        self.apply_requested: LogIndex = 0
        self.flushed_index: LogIndex = 0
        self.snapshot: SnapshotMeta | None = None
        self.now = 0
        self.clock: float = 0.0  # the monotonic clock in ms, for leases only (reads.py)
        self.heard_leader_at: int | None = None  # ``now`` when a leader last reached us
        # A node that restarts may have acknowledged a leader just before it stopped: it
        # refuses votes until ``now`` reaches this, as if it still heard that leader.
        self.quiet_until = 0
        self.counters = Counters()
        self.snapshot_transfer_changes = 0
        self.snapshot_chunk_sent_at: int | None = None
        self.snapshot_chunk_acked_at: int | None = None
        self.snapshot_refused_at: int | None = None

    @property
    def membership(self) -> MembershipConfig:
        """The latest configuration in the log, or the one the node was formed with (§6)."""
        return self.log.latest_membership() or self.hard_membership

    @property
    def hard_state(self) -> HardState:
        """What must be durable before any reply that depends on it (Figure 2)."""
        return HardState(self.current_term, self.voted_for, self.hard_membership)

    @property
    def is_pristine(self) -> bool:
        """A node that was never part of a cluster: no log and no membership.

        Its term may have moved: a leader of the cluster being formed may reach it before
        its own ``InitWithConfig`` does.
        """
        m = self.membership
        return self.role is Role.NON_VOTER and self.log.last_index == 0 and not m.all_nodes()

    def may_campaign(self) -> bool:
        """A voter of the latest configuration; or of the one before it while the latest is
        not known to be committed (dissertation §4.2.2): the cluster may still need it to
        elect anyone. Such a candidate asks the latest configuration's voters and does not
        count its own vote, since it has none there."""
        if self.membership.is_voter(self.id):
            return True
        if self.log.config_index <= self.commit_index:
            return False
        previous = self.log.previous_membership() or self.hard_membership
        return previous.is_voter(self.id)

    # --- commands -----------------------------------------------------------------------

    def emit(self, command: Command) -> None:
        """Queue a command for the driver."""
        self.commands.append(command)

    def respond(
        self,
        token: int,
        value: Any = None,
        error: BaseException | None = None,
        after_durable: bool = False,
    ) -> None:
        """Answer the caller holding ``token`` (client writes answer through
        :class:`~pykka_raft.core.writes.ClientWrites` instead)."""
        self.commands.append(Respond(token, value, error, after_durable))

    def send(self, request: RpcRequest, after_durable: bool = False) -> None:
        """Send an RPC; ``after_durable`` holds it until earlier storage writes are durable."""
        self.commands.append(Send(request, after_durable))

    def save_hard_state(self) -> None:
        """Persist term, vote and the formed membership."""
        self.commands.append(SaveHardState(self.hard_state))

    def set_term(self, term: Term) -> None:
        """Adopt a newer term (§5.1); the vote is cleared and must be persisted."""
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
            self.save_hard_state()

    def take_commands(self) -> list[Command]:
        """Hand the accumulated commands to the driver."""
        out, self.commands = self.commands, []
        return out
