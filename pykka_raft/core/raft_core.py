"""The Raft protocol as a pure state machine: events in, commands out.

Sections of the Raft paper (Ongaro and Ousterhout, 2014) are cited where a rule is
decided. The core never blocks and never reads a clock: time advances only through
:meth:`RaftCore.tick`, and randomness comes from the injected ``random.Random``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable

import attrs

from pykka_raft.admin import ConfigChangeResponse, ProposeConfigChange
from pykka_raft.codec import check_app_value
from pykka_raft.config import Config
from pykka_raft.core.commands import (
    Apply,
    Command,
    CreateSnapshot,
    DeleteLogsFrom,
    InstallSnapshot,
    ReadSnapshotChunk,
    Respond,
    SaveHardState,
    Send,
    WriteLog,
    WriteSnapshotChunk,
)
from pykka_raft.core.log import RaftLog
from pykka_raft.core.quorum import has_quorum, joint_quorum_index
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    CatchUpTimeout,
    ChangeInProgress,
    EncodeError,
    EntryTooLarge,
    ForwardToLeader,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
    NotAllowed,
    OutcomeUnknown,
    SafetyViolation,
    Unreachable,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    ClientPayloadResponse,
    ConflictOpt,
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    EntryPayload,
    HardState,
    InitialState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    ResponseMode,
    SnapshotMeta,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.types import LogId, LogIndex, NodeId, Term


class Role(enum.Enum):
    """The core's role; ``INITIALIZING`` until the storage reported the initial state."""

    INITIALIZING = "initializing"
    NON_VOTER = "non_voter"
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


_ROLE_STATE = {
    Role.NON_VOTER: State.NON_VOTER,
    Role.FOLLOWER: State.FOLLOWER,
    Role.CANDIDATE: State.CANDIDATE,
    Role.LEADER: State.LEADER,
}


@attrs.define
class SnapshotTransfer:
    """A snapshot being sent to one node, a chunk at a time.

    ``offset`` is the next byte to send; ``sent_at`` is set while a chunk is being read or
    is on the wire (``None``: the next chunk is due).
    """

    meta: SnapshotMeta
    offset: int = 0
    sent_at: int | None = None


@attrs.define
class Progress:
    """The leader's view of one follower (§5.3 nextIndex / matchIndex).

    While ``probing``, at most one AppendEntries is in flight, looking for the point where
    the logs match; once one succeeds the follower is replicated to with up to
    ``Config.max_inflight`` pipelined requests.
    """

    next_index: LogIndex
    match_index: LogIndex = 0
    probing: bool = True
    inflight: list[tuple[LogIndex, int]] = attrs.field(factory=list)  # (last index, sent at)
    retry_at: int = 0
    last_heard: int = 0
    snapshot: SnapshotTransfer | None = None


@attrs.define
class Pending:
    """A client write with a log index, waiting for its outcome.

    The outcome is known only when its index commits: if the committed entry there has the
    write's term it is the write (answered at commit or apply), otherwise the write was
    definitely not committed (``ForwardToLeader``). Truncation alone decides nothing.
    """

    term: Term
    token: int
    payload: ClientPayload


@attrs.define
class Proposal:
    """A payload waiting to be given an index by the leader."""

    payload: EntryPayload
    token: int | None = None
    client_payload: ClientPayload | None = None


@attrs.define
class MembershipChange:
    """A ``ProposeConfigChange`` the leader is carrying out, step by step, to ``target``."""

    token: int
    target: MembershipConfig
    started_at: int


class RaftCore:
    """One node's Raft state and rules.

    The shell calls the event methods and then drains :attr:`commands`.
    """

    def __init__(self, node_id: NodeId, config: Config, rng: random.Random | None = None) -> None:
        self.id = node_id
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

        self.now = 0
        self.election_elapsed = 0
        self.election_timeout = self._draw_timeout()
        self.heartbeat_elapsed = 0
        self.quorum_check_elapsed = 0

        self.votes_granted: set[NodeId] = set()
        self.progress: dict[NodeId, Progress] = {}
        self.proposals: list[Proposal] = []
        self.leader_appends_in_flight = 0
        # Several writes may wait on one index: a deposed leader's undecided write, and a
        # newer one this node appended there after it led again.
        self.pending: dict[LogIndex, list[Pending]] = {}
        self.swept_term: Term = 0  # pending writes of older terms decided up to this term

        # Membership changes (leader only): the change being carried out, whether its next
        # configuration entry is queued for the log, and nodes removed from the latest
        # configuration that are still sent to until they hold the entry removing them.
        self.change: MembershipChange | None = None
        self.config_queued = False
        self.departing: dict[NodeId, LogIndex] = {}
        self.unknown_to: set[NodeId] = set()  # voters that answered "candidate unknown"

        # Snapshots (§7): the current one, the callers waiting for one being built (None:
        # none is being built), and the one being received (its id and next offset).
        self.snapshot: SnapshotMeta | None = None
        self.snapshot_waiters: list[int] | None = None
        self.snapshots_unsupported: BaseException | None = None  # the storage said so
        # (snapshot id, offset of the last chunk stored, offset of the next one)
        self.receiving: tuple[str, int, int] | None = None

    # --- derived state ------------------------------------------------------------------

    @property
    def membership(self) -> MembershipConfig:
        """The latest configuration in the log, or the one the node was formed with (§6)."""
        return self.log.latest_membership() or self.hard_membership

    @property
    def hard_state(self) -> HardState:
        """What must be durable."""
        return HardState(self.current_term, self.voted_for, self.hard_membership)

    @property
    def is_pristine(self) -> bool:
        """A node that was never part of a cluster: no log and no membership.

        Its term may have moved: a leader of the cluster being formed may reach it before
        its own ``InitWithConfig`` does.
        """
        return (
            self.role is Role.NON_VOTER
            and self.log.last_index == 0
            and not self.membership.all_nodes()
        )

    def metrics(self) -> RaftMetrics:
        """The metrics this node reports now."""
        return RaftMetrics(
            id=self.id,
            state=_ROLE_STATE.get(self.role, State.NON_VOTER),
            current_term=self.current_term,
            last_log_index=self.log.last_index,
            commit_index=self.commit_index,
            last_applied=self.last_applied,
            current_leader=self.leader_id,
            membership_config=self.membership,
            snapshot_index=self.log.offset,
        )

    def take_commands(self) -> list[Command]:
        """Hand the accumulated commands to the shell."""
        out, self.commands = self.commands, []
        return out

    # --- startup and timers -------------------------------------------------------------

    def start(self, initial: InitialState, entries: Iterable[Entry]) -> None:
        """The storage reported its state and log: leave ``INITIALIZING``."""
        hs = initial.hard_state
        self.current_term = hs.current_term
        self.voted_for = hs.voted_for
        self.hard_membership = hs.membership
        snap = self.snapshot = initial.snapshot
        if snap is None:
            self.log = RaftLog(entries)
        else:
            last = snap.last_included
            if initial.last_applied < last.index:
                raise ValueError(
                    f"storage reported last_applied {initial.last_applied} below its snapshot "
                    f"through {last.index}: the state machine must be restored from the snapshot"
                )
            self.log = RaftLog(entries, last.index, last.term, snap.membership)
        if self.log.last_log_id != initial.last_log_id:
            raise ValueError(
                f"storage reported last log {initial.last_log_id} but returned entries up to "
                f"{self.log.last_log_id}"
            )
        self.flushed_index = self.log.last_index
        # Applied entries were committed; everything else is learned from a leader.
        self.last_applied = self.commit_index = self.apply_requested = initial.last_applied
        self._become_follower(self.current_term, None)

    def tick(self, elapsed_ms: int) -> None:
        """Time passed: drive elections, heartbeats and retransmissions."""
        if self.role is Role.INITIALIZING:
            return
        self.now += elapsed_ms
        if self.role is Role.LEADER:
            self._tick_leader(elapsed_ms)
        elif self.role in (Role.FOLLOWER, Role.CANDIDATE):
            self.election_elapsed += elapsed_ms
            if self.election_elapsed >= self.election_timeout:
                self._become_candidate()

    def _tick_leader(self, elapsed_ms: int) -> None:
        self.heartbeat_elapsed += elapsed_ms
        if self.heartbeat_elapsed >= self.config.heartbeat_interval:
            self.heartbeat_elapsed = 0
            for peer in self.progress:
                self._send_heartbeat(peer)
        for peer, pr in self.progress.items():
            transfer = pr.snapshot
            if (
                transfer is not None
                and transfer.sent_at is not None
                and self.now - transfer.sent_at >= self.config.rpc_timeout
            ):
                transfer.sent_at = None  # no answer in time: send the chunk again
                self._send_append(peer)
            if pr.inflight and self.now - pr.inflight[0][1] >= self.config.rpc_timeout:
                # No reply in time: assume the requests were lost and find the match again.
                self._reset_to_probe(pr)
                self._send_append(peer)
        # Check quorum: a leader that heard from no majority within an election timeout
        # steps down, so clients learn to go elsewhere instead of waiting on a lost leader.
        self.quorum_check_elapsed += elapsed_ms
        if self.quorum_check_elapsed >= self.config.election_timeout_max:
            self.quorum_check_elapsed = 0
            window = self.config.election_timeout_max
            recent = {self.id} | {
                peer for peer, pr in self.progress.items() if self.now - pr.last_heard <= window
            }
            if not has_quorum(self.membership.voter_sets(), recent):
                self._become_follower(self.current_term, None)
                return
        if self.change is not None:
            self._drive_membership()  # catch-up may have timed out

    def _draw_timeout(self) -> int:
        # §5.2: a fresh random election timeout for every election.
        return self.rng.randint(self.config.election_timeout_min, self.config.election_timeout_max)

    def _reset_election_timer(self) -> None:
        self.election_elapsed = 0
        self.election_timeout = self._draw_timeout()

    # --- role transitions ---------------------------------------------------------------

    def _set_term(self, term: Term) -> None:
        """Adopt a newer term (§5.1); the vote is cleared and must be persisted."""
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
            self._save_hard_state()

    def _save_hard_state(self) -> None:
        self.commands.append(SaveHardState(self.hard_state))

    def _become_follower(self, term: Term, leader_id: NodeId | None) -> None:
        was_leader = self.role is Role.LEADER
        self._set_term(term)
        self.leader_id = leader_id
        self.role = Role.FOLLOWER if self._may_campaign() else Role.NON_VOTER
        self.votes_granted = set()
        self._reset_election_timer()
        if was_leader:
            self.progress = {}
            self.departing = {}
            self.config_queued = False
            if self.change is not None:
                self._respond(self.change.token, error=LeadershipLost(leader_id))
                self.change = None
            for proposal in self.proposals:
                if proposal.token is not None:
                    self._respond(
                        proposal.token, error=ForwardToLeader(proposal.client_payload, leader_id)
                    )
            self.proposals = []

    def _may_campaign(self) -> bool:
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

    def _become_candidate(self) -> None:
        """§5.2: new term, vote for self, ask every other voter."""
        if not self._may_campaign():
            self.role = Role.NON_VOTER
            return
        self.role = Role.CANDIDATE
        self.current_term += 1
        self.voted_for = self.id
        self.leader_id = None
        self._save_hard_state()
        self._reset_election_timer()
        self.votes_granted = {self.id}
        self.unknown_to = set()
        if has_quorum(self.membership.voter_sets(), self.votes_granted):
            self._become_leader()
            return
        last = self.log.last_log_id
        for peer in sorted(self.membership.voters() - {self.id}):
            request = VoteRequest(peer, self.current_term, self.id, last.index, last.term)
            # The vote for ourselves must be durable before anyone can count on it.
            self.commands.append(Send(request, after_durable=True))

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader_id = self.id
        self.heartbeat_elapsed = 0
        self.quorum_check_elapsed = 0
        # Every entry was durable before our VoteRequests went out (after_durable), and a
        # candidate writes no entries, so our whole log is durable now.
        self.flushed_index = self.log.last_index
        self.progress = {}
        self.departing = {}
        self._sync_progress()
        # §8: commit an entry of our own term at once; a leader forming a new cluster
        # commits its configuration so the membership is in the log.
        payload: EntryPayload = (
            EntryConfigChange(self.membership) if self.log.last_index == 0 else EntryBlank()
        )
        self.proposals.insert(0, Proposal(payload))
        self._flush_proposals()
        for peer in self.progress:
            self._send_append(peer)

    # --- admin and client API -----------------------------------------------------------

    def init_with_config(
        self,
        members: Iterable[NodeId],
        token: int,
        addresses: Iterable[tuple[NodeId, str]] = (),
    ) -> None:
        """``InitWithConfig``: form a cluster from this pristine node."""
        voters = set(members) | {self.id}
        if (
            self.role is not Role.INITIALIZING
            and not self.membership.is_in_joint_consensus
            and set(self.membership.members) == voters
        ):
            # Already formed with exactly this configuration (e.g. a leader reached this node
            # before its own InitWithConfig did): succeed, so parallel formation is safe.
            self._respond(token, value=None, after_durable=True)
            return
        if not self.is_pristine:
            reason = (
                "the node is still starting: wait until its metrics report NON_VOTER"
                if self.role is Role.INITIALIZING
                else "the node is not pristine (it has a log or a membership); "
                "add it to an existing cluster with a membership change instead"
            )
            self._respond(token, error=NotAllowed(f"InitWithConfig refused: {reason}"))
            return
        self.hard_membership = _with_addresses(MembershipConfig(members=voters), dict(addresses))
        self._save_hard_state()
        if self.leader_id is not None:
            # A leader of this term is already replicating to us (parallel formation): follow
            # it rather than disrupt it with an election; its configuration entry follows.
            self._become_follower(self.current_term, self.leader_id)
        else:
            self._become_candidate()
        self._respond(token, value=None, after_durable=True)

    def client_write(self, payload: ClientPayload, token: int) -> None:
        """``ClientPayload``: append on the leader, answer at commit or apply."""
        self.client_writes(((payload, token),))

    def client_writes(self, writes: Iterable[tuple[ClientPayload, int]]) -> None:
        """Several ``ClientPayload`` at once: queued together, then flushed as one batch."""
        if self.role is not Role.LEADER or self._leaving:
            # A leader on its way out (removed by the committing configuration) knows no
            # leader to point to yet.
            leader = self.leader_id if self.role is not Role.LEADER else None
            for payload, token in writes:
                self._respond(token, error=ForwardToLeader(payload, leader))
            return
        # Backpressure: writes queued or awaiting commit (one per waiting index, roughly).
        limit = self.config.max_pending_writes
        room = limit - len(self.proposals) - len(self.pending)
        for payload, token in writes:
            try:  # a value the codec refuses must never reach a log (docs/codec.md)
                check_app_value(payload.entry.data, self.config.max_entry_bytes)
            except (EncodeError, EntryTooLarge) as exc:
                self._respond(token, error=ApplicationError(exc))
                continue
            if room <= 0:
                self._respond(token, error=Busy(payload, limit))
                continue
            room -= 1
            self.proposals.append(Proposal(payload.entry, token, payload))
        self._flush_proposals()

    def _flush_proposals(self) -> None:
        """Give queued proposals indexes and write them, one storage append at a time.

        Proposals that arrive while an append is in flight are batched into the next one.
        """
        if self.leader_appends_in_flight or not self.proposals:
            return
        batch = self.proposals[: self.config.max_payload_entries]
        del self.proposals[: len(batch)]
        entries: list[Entry] = []
        in_log = 0  # how many of ``entries`` are in self.log already
        term, index, pending = self.current_term, self.log.last_index, self.pending
        leaving = self._leaving
        for proposal in batch:
            client_payload, token = proposal.client_payload, proposal.token
            if client_payload is not None and token is not None:
                if leaving:
                    # The final configuration without this leader is in the log: writes
                    # after it could outlive our leadership undecided, so refuse them now.
                    self._respond(token, error=ForwardToLeader(client_payload, None))
                    continue
                index += 1
                entries.append(Entry(term, index, proposal.payload))
                waiting = pending.get(index)
                if waiting is None:
                    pending[index] = [Pending(term, token, client_payload)]
                else:
                    waiting.append(Pending(term, token, client_payload))
                continue
            index += 1
            entries.append(Entry(term, index, proposal.payload))
            if isinstance(proposal.payload, EntryConfigChange):
                # The membership is the latest configuration in the log: append up to it.
                self.log.append(entries[in_log:])
                in_log = len(entries)
                self.config_queued = False
                self._sync_progress()
                leaving = self._leaving
        self.log.append(entries[in_log:])
        if not entries:
            return
        self.leader_appends_in_flight += 1
        self.commands.append(WriteLog(tuple(entries), leader=True))

    # --- membership changes (§6) --------------------------------------------------------

    @property
    def _leaving(self) -> bool:
        """Leader only: the latest configuration no longer has this node as a voter."""
        m = self.membership
        return self.id not in m.members and self.id not in (m.members_after_consensus or ())

    def propose_config_change(self, change: ProposeConfigChange, token: int) -> None:
        """``ProposeConfigChange``: validate, then carry it out in committed steps."""
        if self.role is not Role.LEADER:
            self._respond(token, error=NodeNotLeader(self.leader_id))
            return
        m = self.membership
        if self.change is not None or m.is_in_joint_consensus or self._leaving:
            self._respond(
                token,
                error=ChangeInProgress(
                    f"membership change refused: another change is in progress (membership "
                    f"{_describe(m)}); wait until it finishes, then propose again"
                ),
            )
            return
        add, remove, learners = (
            set(change.add_members),
            set(change.remove_members),
            set(change.add_non_voters),
        )
        clash = ((add | learners) & remove) or (add & learners)
        if clash:
            nodes = ", ".join(str(n) for n in sorted(clash))
            self._respond(
                token,
                error=InoperableConfig(
                    f"membership change refused: node(s) {nodes} are listed twice (to add and "
                    "to remove, or as voter and non-voter); list each node once"
                ),
            )
            return
        voters = (set(m.voters()) | add) - remove - learners
        target = _with_addresses(
            MembershipConfig(voters, None, (set(m.non_voters) | learners) - remove - add),
            {**m.address_book(), **dict(change.addresses)},
        )
        if target == m:
            self._respond(
                token,
                error=Noop(
                    f"membership change refused: the membership already is {_describe(m)}; "
                    "nothing to add or remove"
                ),
            )
            return
        if len(voters) < self.config.min_voters:
            self._respond(
                token,
                error=InoperableConfig(
                    f"membership change refused: it would leave {len(voters)} voter(s), "
                    f"fewer than Config.min_voters ({self.config.min_voters}); add voters "
                    "in the same change or remove fewer"
                ),
            )
            return
        self.change = MembershipChange(token, target, self.now)
        self._drive_membership()

    def _drive_membership(self) -> None:
        """Leader: take the next step toward the target membership, if one is due.

        Steps, each a configuration entry appended once the previous one committed (and
        once this leader committed an entry of its own term): new nodes join as
        non-voters; when every new voter is caught up, the joint configuration; then the
        final one (also for a joint configuration inherited from an earlier leader, D9).
        A leader that is not a voter of the committed final configuration steps down.
        """
        if self.role is not Role.LEADER or self.config_queued:
            return
        m = self.membership
        if self.log.config_index > self.commit_index or (
            self.log.term_at(self.commit_index) != self.current_term
        ):
            return  # the latest configuration is not committed yet
        change = self.change
        if m.is_in_joint_consensus:
            assert m.members_after_consensus is not None
            final = MembershipConfig(m.members_after_consensus, None, m.non_voters)
            self._propose_config(_with_addresses(final, m.address_book()))
            return
        if change is not None:
            target = change.target
            if m == target:
                self.change = None
                self._respond(change.token, ConfigChangeResponse(self.log.config_index, m))
            elif target.all_nodes() - m.all_nodes():
                new = target.all_nodes() - m.all_nodes()
                joining = MembershipConfig(m.members, None, set(m.non_voters) | new)
                self._propose_config(_with_addresses(joining, target.address_book()))
                return
            elif target.members != m.members:
                lagging = tuple(
                    n for n in sorted(target.voters() - m.voters()) if not self._caught_up(n)
                )
                if not lagging:
                    # A voter being demoted is listed as a non-voter already: it votes in
                    # C_old until the final configuration, which keeps it as a learner.
                    joint = MembershipConfig(m.members, target.members, target.non_voters)
                    self._propose_config(_with_addresses(joint, target.address_book()))
                elif self.now - change.started_at >= self.config.catch_up_timeout:
                    self.change = None
                    self._respond(
                        change.token,
                        error=CatchUpTimeout(lagging, self.config.catch_up_timeout),
                    )
                return
            else:
                self._propose_config(target)  # only non-voters change: one step
                return
        if not m.is_voter(self.id):
            # §6: a leader removed from the cluster steps down once C_new is committed.
            self._become_follower(self.current_term, None)

    def _caught_up(self, node: NodeId) -> bool:
        """It holds the latest (committed) configuration and lags by at most the limit."""
        pr = self.progress.get(node)
        return (
            pr is not None
            and pr.match_index >= self.log.config_index
            and pr.match_index + self.config.catch_up_lag >= self.log.last_index
        )

    def _propose_config(self, membership: MembershipConfig) -> None:
        self.config_queued = True
        self.proposals.append(Proposal(EntryConfigChange(membership)))
        self._flush_proposals()

    def _sync_progress(self) -> None:
        """Leader: replicate to every node of the latest configuration.

        Nodes no longer in it are sent to until they hold the entry that removed them, so
        they learn it and go quiet.
        """
        nodes = self.membership.all_nodes() - {self.id}
        for node in nodes:
            self.departing.pop(node, None)
            if node not in self.progress:
                self.progress[node] = Progress(
                    next_index=self.log.last_index + 1, last_heard=self.now
                )
        for node in self.progress.keys() - nodes:
            self.departing.setdefault(node, self.log.config_index)

    # --- storage completions ------------------------------------------------------------

    def log_written(
        self,
        last: LogId,
        rejected: dict[LogIndex, BaseException] | None = None,
        leader: bool = False,
    ) -> None:
        """A ``WriteLog`` completed: entries through ``last`` are durable.

        ``rejected`` maps the indexes of entries the application refused to its errors;
        the storage stored blank entries there.
        """
        for index, error in sorted((rejected or {}).items()):
            if self.log.term_at(index) == last.term and index <= self.log.last_index:
                entry = self.log.get(index)
                if not isinstance(entry.payload, EntryNormal):
                    raise SafetyViolation(
                        f"the storage refused entry {entry.log_id}, which is not a client "
                        "entry; only EntryNormal entries may be refused"
                    )
                self.log.replace(Entry(entry.term, entry.index, EntryBlank()))
            for pending in self._take_pending(index, lambda p: p.term == last.term):
                self._respond(pending.token, error=ApplicationError(error))
        if self.log.term_at(last.index) == last.term:
            self.flushed_index = max(self.flushed_index, last.index)
        if leader:
            self.leader_appends_in_flight = max(0, self.leader_appends_in_flight - 1)
        if self.role is Role.LEADER:
            self._maybe_commit()
            for peer in self.progress:
                self._send_append(peer)
            self._flush_proposals()

    def applied(self, entries: tuple[Entry, ...], responses: tuple[object, ...]) -> None:
        """The state machine applied ``entries`` and answered ``responses``."""
        waiting_at = self.pending
        for entry, response in zip(entries, responses, strict=True):
            waiting = waiting_at.get(entry.index)
            if waiting is None:
                continue
            if len(waiting) == 1 and waiting[0].term == entry.term:
                # The common case: our own APPLIED write (COMMITTED ones were answered).
                del waiting_at[entry.index]
                value = ClientPayloadResponse(entry.index, ResponseMode.APPLIED, response)
                self._respond(waiting[0].token, value)
                continue
            for pending in self._take_pending(entry.index, _wants_applied):
                if pending.term == entry.term:
                    self._respond(
                        pending.token,
                        value=ClientPayloadResponse(entry.index, ResponseMode.APPLIED, response),
                    )
                else:
                    self._respond(
                        pending.token, error=ForwardToLeader(pending.payload, self.leader_id)
                    )
        if entries:
            self.last_applied = max(self.last_applied, entries[-1].index)
            since = self.config.snapshot_policy.logs_since_last
            if (
                since is not None
                and self.apply_requested - self.log.offset >= since
                and self.snapshots_unsupported is None
                and not self._defer_compaction(since)
            ):
                self._create_snapshot()

    def _defer_compaction(self, since: int) -> bool:
        """A leader sending its snapshot keeps it a while longer: a new one replaces it
        and the transfer starts over at offset 0, which never ends under a write load
        that compacts faster than one transfer takes. Bounded, so a transfer to a node
        that is down cannot make the log grow without limit."""
        sending = self.role is Role.LEADER and any(
            pr.snapshot is not None for pr in self.progress.values()
        )
        return sending and self.apply_requested - self.log.offset < 4 * since

    # --- snapshots (§7) -----------------------------------------------------------------

    def trigger_snapshot(self, token: int) -> None:
        """``TriggerSnapshot``: snapshot through the last entry sent to the state machine."""
        if self.role is Role.INITIALIZING:
            self._respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        if self.snapshots_unsupported is not None:
            self._respond(token, error=self.snapshots_unsupported)
            return
        if self.snapshot_waiters is None and self.apply_requested <= self.log.offset:
            self._respond(token, self.snapshot)  # nothing new to compact
            return
        self._create_snapshot()
        assert self.snapshot_waiters is not None
        self.snapshot_waiters.append(token)

    def _create_snapshot(self) -> None:
        """Ask the storage for a snapshot at ``apply_requested``: the storage is FIFO, so
        its state machine will have applied exactly that far when it gets the command."""
        if self.snapshot_waiters is not None:
            return  # one at a time
        index = self.apply_requested
        term = self.log.term_at(index)
        membership = self.log.membership_at(index) or self.hard_membership
        if index <= self.log.offset or term is None:
            return
        self.snapshot_waiters = []
        self.commands.append(CreateSnapshot(LogId(term, index), membership))

    def snapshot_unsupported(self, error: BaseException) -> None:
        """The storage cannot take snapshots: stop asking, answer the waiting callers."""
        self.snapshots_unsupported = error
        waiters, self.snapshot_waiters = self.snapshot_waiters or [], None
        for token in waiters:
            self._respond(token, error=error)

    def snapshot_created(self, meta: SnapshotMeta) -> None:
        """The storage stored a snapshot and dropped the log through it."""
        waiters, self.snapshot_waiters = self.snapshot_waiters or [], None
        last = meta.last_included
        if last.index > self.log.offset:
            self.log.compact(last.index, last.term, meta.membership)
        if self.snapshot is None or last.index >= self.snapshot.last_included.index:
            self.snapshot = meta
        for token in waiters:
            self._respond(token, self.snapshot)

    # --- commit and apply ---------------------------------------------------------------

    def _maybe_commit(self) -> None:
        """Leader: advance the commit index to what a majority (of each config) holds."""

        def match(node: NodeId) -> int:
            if node == self.id:
                return self.flushed_index
            pr = self.progress.get(node)
            return pr.match_index if pr else 0

        index = joint_quorum_index(self.membership.voter_sets(), match)
        # §5.4.2: only an entry of the current term is committed by counting replicas.
        if index > self.commit_index and self.log.term_at(index) == self.current_term:
            self._advance_commit(index)
        m = self.membership
        if self.change is not None or m.is_in_joint_consensus or self.id not in m.members:
            self._drive_membership()

    def _advance_commit(self, index: LogIndex) -> None:
        if index <= self.commit_index:
            return
        old = self.commit_index
        self.commit_index = index
        waiting_at = self.pending
        for i in range(old + 1, index + 1):
            waiting = waiting_at.get(i)
            if waiting is None:
                continue
            term = self.log.term_at(i)
            if len(waiting) == 1 and waiting[0].term == term:
                # The common case: our own write committed. APPLIED ones wait for applied().
                only = waiting[0]
                if only.payload.response_mode is not ResponseMode.APPLIED:
                    del waiting_at[i]
                    self._respond(only.token, ClientPayloadResponse(i, ResponseMode.COMMITTED))
                continue

            def decided_now(p: Pending, term: Term | None = term) -> bool:
                return p.term != term or not _wants_applied(p)

            # The entry committed at i decides every write waiting on i: the same entry
            # (same term) succeeded, any other is lost. APPLIED writes wait for applied().
            for pending in self._take_pending(i, decided_now):
                if pending.term != term:
                    self._respond(
                        pending.token, error=ForwardToLeader(pending.payload, self.leader_id)
                    )
                else:
                    self._respond(
                        pending.token, value=ClientPayloadResponse(i, ResponseMode.COMMITTED)
                    )
        self._sweep_older_terms(index, self.log.term_at(index) or 0)
        entries = self.log.slice(self.apply_requested + 1, self.commit_index + 1)
        if entries:
            self.apply_requested = entries[-1].index
            self.commands.append(Apply(entries))

    def _sweep_older_terms(self, index: LogIndex, committed_term: Term) -> None:
        """Entry ``index`` of ``committed_term`` is committed. Terms never decrease along a
        log and every later leader holds this entry (§5.4.3), so an older-term entry after
        it can never commit: the writes waiting there are lost."""
        if committed_term <= self.swept_term:
            return
        self.swept_term = committed_term
        for i in sorted(i for i in self.pending if i > index):
            for pending in self._take_pending(i, lambda p: p.term < committed_term):
                self._respond(pending.token, error=ForwardToLeader(pending.payload, self.leader_id))

    # --- replication: leader side -------------------------------------------------------

    def _append_request(
        self, peer: NodeId, prev_index: LogIndex, entries: tuple[Entry, ...]
    ) -> AppendEntriesRequest:
        prev_term = self.log.term_at(prev_index)
        if prev_term is None:
            raise SafetyViolation(f"leader has no term for prev_log_index {prev_index}")
        return AppendEntriesRequest(
            target=peer,
            term=self.current_term,
            leader_id=self.id,
            prev_log_index=prev_index,
            prev_log_term=prev_term,
            entries=entries,
            leader_commit=self.commit_index,
        )

    def _send_heartbeat(self, peer: NodeId) -> None:
        pr = self.progress[peer]
        if pr.snapshot is None and pr.probing and not pr.inflight and self.now >= pr.retry_at:
            self._send_append(peer)  # the probe doubles as the heartbeat
            return
        if pr.snapshot is not None:
            self._send_append(peer)  # resumes a paused transfer; the heartbeat goes too
        # A match below our snapshot point has no term here; index 0 matches every log,
        # and a heartbeat never conflicts with a transfer in progress (D7).
        prev = pr.match_index if self.log.term_at(pr.match_index) is not None else 0
        request = self._append_request(peer, prev, ())
        self.commands.append(Send(request, after_durable=False))

    def _send_append(self, peer: NodeId) -> None:
        """Send what the follower lacks: one probe, a pipeline of batches, or (if its next
        entry was compacted away) the next chunk of our snapshot."""
        pr = self.progress[peer]
        if self.now < pr.retry_at:
            return
        if pr.snapshot is None and pr.next_index <= self.log.offset:
            if self.snapshot is None:
                raise SafetyViolation(f"log compacted through {self.log.offset} without a snapshot")
            pr.snapshot = SnapshotTransfer(self.snapshot)
            pr.inflight = []
        transfer = pr.snapshot
        if transfer is not None:
            if transfer.sent_at is None:
                transfer.sent_at = self.now
                self.commands.append(
                    ReadSnapshotChunk(
                        peer,
                        transfer.meta.snapshot_id,
                        transfer.offset,
                        self.config.snapshot_max_chunk_size,
                    )
                )
            return
        while True:
            if pr.probing:
                if pr.inflight:
                    return
            elif len(pr.inflight) >= self.config.max_inflight or pr.next_index > self.flushed_index:
                return
            stop = min(self.flushed_index + 1, pr.next_index + self.config.max_payload_entries)
            entries = self.log.slice(pr.next_index, stop)
            request = self._append_request(peer, pr.next_index - 1, entries)
            pr.inflight.append((request.last_index, self.now))
            self.commands.append(Send(request, after_durable=False))
            if pr.probing:
                return
            pr.next_index = request.last_index + 1

    def snapshot_chunk_read(
        self, peer: NodeId, snapshot_id: str, offset: int, data: bytes | None
    ) -> None:
        """The storage read a chunk of a snapshot for ``peer`` (``None``: it is gone)."""
        pr = self.progress.get(peer)
        transfer = pr.snapshot if pr is not None else None
        if self.role is not Role.LEADER or pr is None or transfer is None:
            return
        meta = transfer.meta
        if meta.snapshot_id != snapshot_id or transfer.offset != offset:
            return
        if data is None:
            if self.snapshot is None or self.snapshot.snapshot_id == snapshot_id:
                raise SafetyViolation(f"the storage lost the current snapshot {snapshot_id!r}")
            pr.snapshot = SnapshotTransfer(self.snapshot)  # a newer one replaced it
            self._send_append(peer)
            return
        done = offset + len(data) >= meta.size
        if not data and not done:
            raise SafetyViolation(
                f"the storage returned no data at offset {offset} of snapshot {snapshot_id!r} "
                f"({meta.size} bytes)"
            )
        request = InstallSnapshotRequest(peer, self.current_term, self.id, meta, offset, data, done)
        self.commands.append(Send(request, after_durable=False))

    def install_snapshot_result(
        self, request: InstallSnapshotRequest, response: InstallSnapshotResponse | None
    ) -> None:
        """The outcome of an InstallSnapshot chunk we sent (``None``: the network failed)."""
        peer = request.target
        pr = self._answered(peer, request.term, response.term if response else None)
        transfer = pr.snapshot if pr is not None else None
        if (
            pr is None
            or transfer is None
            or transfer.meta.snapshot_id != request.meta.snapshot_id
            or transfer.offset != request.offset
        ):
            return  # an answer to an earlier or duplicated chunk
        if response is None:
            transfer.sent_at = None
            pr.retry_at = self.now + self.config.heartbeat_interval
            return
        pr.last_heard = self.now
        if not response.success:
            # It lost the chunks before this one (e.g. it restarted): start over.
            pr.snapshot = SnapshotTransfer(self.snapshot or transfer.meta)
        elif not request.done:
            transfer.offset += len(request.data)
            transfer.sent_at = None
        else:
            pr.snapshot = None
            pr.match_index = max(pr.match_index, transfer.meta.last_included.index)
            self._reset_to_probe(pr)
            if self._forget_if_departed(peer, pr, transfer.meta.last_included.index):
                return
            self._maybe_commit()
            if peer not in self.progress:
                return
        self._send_append(peer)

    def _answered(
        self, peer: NodeId, request_term: Term, response_term: Term | None
    ) -> Progress | None:
        """The progress of ``peer`` if an answer to our request of ``request_term`` still
        concerns this leadership (``None`` otherwise); a newer term in it ends ours."""
        if response_term is not None and response_term > self.current_term:
            self._higher_term_from(peer, response_term)
            return None
        if self.role is not Role.LEADER or request_term != self.current_term:
            return None  # stale: an answer to an earlier leadership
        return self.progress.get(peer)

    def _higher_term_from(self, peer: NodeId, term: Term) -> None:
        if peer in self.departing:
            # A removed node that campaigned on its own: it is not part of the
            # configuration, so its term says nothing about ours. Stop sending to it.
            del self.departing[peer]
            self.progress.pop(peer, None)
            return
        self._become_follower(term, None)  # §5.1: a newer term exists

    def _forget_if_departed(self, peer: NodeId, pr: Progress, committed: LogIndex) -> bool:
        """A removed node that holds the configuration removing it, and knows it committed
        (``committed``: how far it now knows the log is committed), goes quiet: stop sending
        to it. Until it knows, it may still campaign (§4.2.2)."""
        if (
            peer in self.departing
            and pr.match_index >= self.departing[peer]
            and committed >= self.departing[peer]
        ):
            del self.departing[peer]
            del self.progress[peer]
            return True
        return False

    def _reset_to_probe(self, pr: Progress) -> None:
        pr.probing = True
        pr.inflight = []
        pr.next_index = pr.match_index + 1

    def append_entries_result(
        self, request: AppendEntriesRequest, response: AppendEntriesResponse | None
    ) -> None:
        """The outcome of an AppendEntries we sent (``None``: the network failed)."""
        peer = request.target
        pr = self._answered(peer, request.term, response.term if response else None)
        if pr is None:
            return
        if response is None:
            if request.entries or pr.probing:
                self._reset_to_probe(pr)
                pr.retry_at = self.now + self.config.heartbeat_interval
            return
        pr.last_heard = self.now
        if response.success:
            pr.match_index = max(pr.match_index, request.last_index)
            committed = min(request.leader_commit, request.last_index)
            if self._forget_if_departed(peer, pr, committed):
                return
            pr.next_index = max(pr.next_index, pr.match_index + 1)
            pr.inflight = [f for f in pr.inflight if f[0] > request.last_index]
            if pr.probing and request.last_index >= pr.next_index - 1:
                pr.probing = False
                pr.inflight = []
            self._maybe_commit()
        else:
            if request.prev_log_index < pr.match_index:
                return  # stale rejection: we already know a later match
            self._reset_to_probe(pr)
            pr.next_index = self._next_after_rejection(request, response.conflict_opt)
            pr.next_index = max(pr.match_index + 1, pr.next_index)
        if peer in self.progress:  # a leader that just stepped down sends nothing more
            self._send_append(peer)

    def _next_after_rejection(
        self, request: AppendEntriesRequest, hint: ConflictOpt | None
    ) -> LogIndex:
        """Where to probe next after a rejection; always below the rejected prev index."""
        if hint is None:
            return request.prev_log_index
        # Skip every entry of a term the follower cannot share (§5.3, the optimization):
        # the highest index of ours at or below the hint whose term is at most its term.
        index = min(hint.index, self.log.last_index)
        while index > self.log.offset and (self.log.term_at(index) or 0) > hint.term:
            index -= 1
        return min(index + 1, request.prev_log_index)

    # --- replication: follower side -----------------------------------------------------

    def receive_append_entries(self, request: AppendEntriesRequest, token: int) -> None:
        """§5.3 AppendEntries receiver implementation (Figure 2)."""
        if self.role is Role.INITIALIZING:
            self._respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        if request.term < self.current_term:
            self._respond(
                token, value=AppendEntriesResponse(self.current_term, False), after_durable=True
            )
            return
        self._follow(request.term, request.leader_id)

        # Entries through our snapshot point are committed, so they match the leader's:
        # only a later prev_log_index needs checking (§7).
        prev_term = self.log.term_at(request.prev_log_index)
        if request.prev_log_index >= self.log.offset and prev_term != request.prev_log_term:
            self._respond(
                token,
                value=AppendEntriesResponse(self.current_term, False, self._conflict_hint(request)),
                after_durable=True,
            )
            return

        new_entries: tuple[Entry, ...] = ()
        entries = request.entries
        if entries and entries[0].index == self.log.last_index + 1:
            new_entries = entries  # the common case: they extend our log
            entries = ()
        for pos, entry in enumerate(entries):
            term = self.log.term_at(entry.index)
            if term == entry.term or entry.index <= self.log.offset:
                continue  # already have it: never truncate a matching entry
            if term is not None:
                # §5.3: a conflicting entry and all that follow it are deleted.
                if entry.index <= self.commit_index:
                    raise SafetyViolation(
                        f"leader {request.leader_id} sent entry {entry.log_id} that conflicts "
                        f"with committed entry {entry.index} (commit index {self.commit_index})"
                    )
                self._truncate_from(entry.index)
            new_entries = entries[pos:]
            break
        if new_entries:
            self.log.append(new_entries)
            self.commands.append(WriteLog(new_entries, leader=False))
        # D2 fix: commit no further than the last entry this request vouched for.
        self._advance_commit(min(request.leader_commit, request.last_index))
        # The membership may have changed, or become committed (a removed node may campaign
        # only until then); and a node that went quiet after voters did not know it (see
        # vote_result) rejoins once a leader reaches it.
        self._refresh_role()
        self._respond(
            token, value=AppendEntriesResponse(self.current_term, True), after_durable=True
        )

    def _follow(self, term: Term, leader_id: NodeId) -> None:
        """A leader of ``term`` (at least ours) reached us: follow it."""
        if (
            term > self.current_term
            or self.role is not Role.FOLLOWER
            or self.leader_id != leader_id
        ):
            if self.role is Role.NON_VOTER:
                self._set_term(term)
                self.leader_id = leader_id
            else:
                self._become_follower(term, leader_id)
        self._reset_election_timer()

    def _conflict_hint(self, request: AppendEntriesRequest) -> ConflictOpt:
        if request.prev_log_index > self.log.last_index:
            return ConflictOpt(self.log.last_term, self.log.last_index)
        index = request.prev_log_index
        while index > self.log.offset and (self.log.term_at(index) or 0) > request.prev_log_term:
            index -= 1
        return ConflictOpt(self.log.term_at(index) or 0, index)

    def _truncate_from(self, index: LogIndex) -> None:
        self.log.truncate_from(index)
        self.flushed_index = min(self.flushed_index, index - 1)
        self.commands.append(DeleteLogsFrom(index))
        # Pending writes at these indexes stay pending: another node may still hold their
        # entries and a later leader may commit them. Only the commit of their index tells
        # (see _advance_commit): the same entry committed, or a different one.
        self._refresh_role()

    def _refresh_role(self) -> None:
        """The membership may have changed: a non-voter may have become a voter, or not."""
        if self.role in (Role.FOLLOWER, Role.NON_VOTER):
            self.role = Role.FOLLOWER if self._may_campaign() else Role.NON_VOTER
            if (
                self.pending
                and not self.membership.contains(self.id)
                and self.commit_index >= self.log.config_index
            ):
                self._abandon_pending("this node was removed from the cluster")

    def _abandon_pending(self, reason: str) -> None:
        """A node out of the cluster will never learn how its undecided writes ended (no
        leader tells it what commits): answer them as unknown rather than never."""
        # Writes at committed indexes are decided; those still waiting are APPLIED writes
        # of this node whose Apply is under way: applied() answers them.
        for index in sorted(i for i in self.pending if i > self.commit_index):
            for pending in self._take_pending(index, lambda p: True):
                detail = f"{reason} before its entry at index {index} was decided"
                self._respond(pending.token, error=OutcomeUnknown(detail))

    def receive_install_snapshot(self, request: InstallSnapshotRequest, token: int) -> None:
        """§7 InstallSnapshot receiver: store each chunk apart, install at the last one."""
        if self.role is Role.INITIALIZING:
            self._respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        if request.term < self.current_term:
            self._respond(
                token, InstallSnapshotResponse(self.current_term, False), after_durable=True
            )
            return
        self._follow(request.term, request.leader_id)
        meta = request.meta
        end = request.offset + len(request.data)
        if request.offset > 0 and self.receiving == (meta.snapshot_id, request.offset, end):
            # The chunk we stored last, again: our answer was lost. Acknowledge it again
            # rather than make the leader start over.
            self._respond(
                token, InstallSnapshotResponse(self.current_term, True), after_durable=True
            )
            return
        if request.offset == 0:
            self.receiving = (meta.snapshot_id, 0, 0)
        receiving = self.receiving
        if receiving is None or (receiving[0], receiving[2]) != (meta.snapshot_id, request.offset):
            # Not the chunk we expect (we lost the earlier ones, or it is another snapshot).
            self._respond(
                token, InstallSnapshotResponse(self.current_term, False), after_durable=True
            )
            return
        self.commands.append(WriteSnapshotChunk(meta, request.offset, request.data))
        self.receiving = (meta.snapshot_id, request.offset, end)
        if request.done:
            self._install_snapshot(meta)
        # Answered only once the chunk (and, at the end, the installed snapshot) is stored.
        self._respond(token, InstallSnapshotResponse(self.current_term, True), after_durable=True)

    def _install_snapshot(self, meta: SnapshotMeta) -> None:
        last = meta.last_included
        if last.index <= self.commit_index:
            return  # we already hold everything it covers
        keep = self.log.term_at(last.index) == last.term
        for index in sorted(i for i in self.pending if i <= last.index):
            ours = self.log.term_at(index) if keep else None
            for pending in self._take_pending(index, lambda p: True):
                if ours is not None and pending.term != ours:
                    error: BaseException = ForwardToLeader(pending.payload, self.leader_id)
                    self._respond(pending.token, error=error)
                elif ours is not None and not _wants_applied(pending):
                    self._respond(
                        pending.token, ClientPayloadResponse(index, ResponseMode.COMMITTED)
                    )
                else:
                    detail = (
                        "it committed, but its result was folded into a snapshot"
                        if ours is not None
                        else "this node's log was replaced by a snapshot before it knew"
                    )
                    self._respond(pending.token, error=OutcomeUnknown(detail))
        # The snapshot holds committed entries only: our matching suffix stays (§7).
        self.log.compact(last.index, last.term, meta.membership)
        self.snapshot = meta
        self.commit_index = max(self.commit_index, last.index)
        self._sweep_older_terms(last.index, last.term)
        self.apply_requested = max(self.apply_requested, last.index)
        self.last_applied = max(self.last_applied, last.index)
        self.flushed_index = max(min(self.flushed_index, self.log.last_index), last.index)
        self.commands.append(InstallSnapshot(meta))
        self._refresh_role()

    # --- elections ----------------------------------------------------------------------

    def receive_vote(self, request: VoteRequest, token: int) -> None:
        """§5.2 RequestVote receiver implementation (Figure 2), with §5.4.1."""
        if self.role is Role.INITIALIZING:
            self._respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        if not self.membership.contains(request.candidate_id):
            # Unknown candidates (e.g. removed nodes) must not disrupt us with their terms.
            # A pristine node knows no cluster at all: it refuses without saying "unknown",
            # so a node forming a cluster in parallel with it does not go quiet.
            known = bool(self.membership.all_nodes())
            self._respond(token, value=VoteResponse(self.current_term, False, known))
            return
        if request.term > self.current_term:
            self._become_follower(request.term, None)  # D11: step down on any newer term
        granted = False
        if request.term == self.current_term and self.voted_for in (None, request.candidate_id):
            # §5.4.1: grant only to a candidate whose log is at least as up-to-date.
            candidate_last = LogId(request.last_log_term, request.last_log_index)
            if candidate_last >= self.log.last_log_id:
                granted = True
                if self.voted_for is None:
                    self.voted_for = request.candidate_id
                    self._save_hard_state()
                self._reset_election_timer()
        self._respond(token, value=VoteResponse(self.current_term, granted), after_durable=True)

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        """The outcome of a VoteRequest we sent (``None``: the network failed)."""
        if response is None:
            return
        current = self.role is Role.CANDIDATE and request.term == self.current_term
        if response.is_candidate_unknown:
            # The voter does not know us, so its term says nothing about our cluster. If a
            # majority of one of our voter sets does not know us, we were removed and missed
            # the entry saying so: go quiet instead of campaigning on and on. A leader that
            # still counts us makes us a voter again when it reaches us.
            if current:
                self.unknown_to.add(request.target)
                if any(
                    sum(1 for n in voters if n in self.unknown_to) * 2 > len(voters)
                    for voters in self.membership.voter_sets()
                ):
                    self.role = Role.NON_VOTER
                    self._abandon_pending("the cluster no longer knows this node")
            return
        if response.term > self.current_term:
            self._become_follower(response.term, None)
            return
        if not current:
            return
        if response.vote_granted:
            self.votes_granted.add(request.target)
            if has_quorum(self.membership.voter_sets(), self.votes_granted):
                self._become_leader()

    # --- helpers ------------------------------------------------------------------------

    def _take_pending(self, index: LogIndex, which: Callable[[Pending], bool]) -> list[Pending]:
        """Remove and return the writes waiting on ``index`` that ``which`` selects."""
        waiting = self.pending.get(index, [])
        taken = [p for p in waiting if which(p)]
        if taken:
            rest = [p for p in waiting if not which(p)]
            if rest:
                self.pending[index] = rest
            else:
                del self.pending[index]
        return taken

    def _respond(
        self,
        token: int,
        value: object = None,
        error: BaseException | None = None,
        after_durable: bool = False,
    ) -> None:
        self.commands.append(Respond(token, value, error, after_durable))


def _wants_applied(pending: Pending) -> bool:
    return pending.payload.response_mode is ResponseMode.APPLIED


def _with_addresses(m: MembershipConfig, book: dict[NodeId, str]) -> MembershipConfig:
    """``m`` with the addresses of its nodes taken from ``book``."""
    nodes = m.all_nodes()
    return attrs.evolve(m, addresses={n: a for n, a in book.items() if n in nodes})


def _describe(m: MembershipConfig) -> str:
    text = f"voters {list(m.members)}"
    if m.members_after_consensus is not None:
        text += f" joint with {list(m.members_after_consensus)}"
    if m.non_voters:
        text += f", non-voters {list(m.non_voters)}"
    return text
