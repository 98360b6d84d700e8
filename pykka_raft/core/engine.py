"""The engine under the façade: the steps that several events share, in one order.

Role transitions (§5.2), following a leader, committing (§5.3, §5.4.2) and handing
committed entries to the state machine, giving proposals log indexes, membership steps
(§6), installing a received snapshot (§7): each is started by more than one entry point of
:class:`~pykka_raft.core.node.RaftCore`, so they live here once. The concern objects
(election, writes, snapshots, and the leader's state while leading) are created here; the
concerns themselves never call back into the engine.
"""

from __future__ import annotations

import random

from pykka_raft.admin import ConfigChangeResponse, TransferLeadershipResponse
from pykka_raft.config import Config
from pykka_raft.core import commands as cmd
from pykka_raft.core import membership as planner
from pykka_raft.core import replication
from pykka_raft.core.election import Election
from pykka_raft.core.leader import LeaderState, Proposal, Transfer
from pykka_raft.core.progress import Progress
from pykka_raft.core.reads import Reads
from pykka_raft.core.snapshots import Snapshots
from pykka_raft.core.state import NodeState, Role
from pykka_raft.core.writes import ClientWrites
from pykka_raft.errors import (
    CatchUpTimeout,
    ForwardToLeader,
    LeadershipLost,
    TransferFailed,
)
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryPayload,
    MembershipConfig,
    SnapshotMeta,
    TimeoutNowRequest,
)
from pykka_raft.types import LogIndex, NodeId, Term


class Engine(NodeState):
    """Node state plus the concern objects and the shared steps (see the module docstring)."""

    def __init__(self, node_id: NodeId, config: Config, rng: random.Random | None = None) -> None:
        super().__init__(node_id, config, rng)
        self.election = Election(self)
        self.writes = ClientWrites(self)
        self.snapshots = Snapshots(self)
        self.reads = Reads(self)
        self.leader: LeaderState | None = None
        self.transfer: Transfer | None = None

    def become_follower(self, term: Term, leader_id: NodeId | None, reset: bool = True) -> None:
        """Follow ``leader_id`` (if known) in ``term``; a leader drops its LeaderState.
        Without ``reset`` the election timer runs on (a vote refused: Figure 2)."""
        self.set_term(term)
        self.leader_id = leader_id
        self.role = Role.FOLLOWER if self.may_campaign() else Role.NON_VOTER
        self.election.votes_granted = set()
        if reset:
            self.election.reset_timer()
        leader, self.leader = self.leader, None
        if leader is not None:
            if leader.change is not None:
                self.respond(leader.change.token, error=LeadershipLost(leader_id))
            self.writes.refuse_all(leader.client_proposals())
            self.reads.leadership_lost()

    def start_election(self) -> None:
        """The election timer fired: a pre-vote first (§9.6) unless it is turned off."""
        if self.config.pre_vote:
            self.become_pre_candidate()
        else:
            self.become_candidate()

    def become_pre_candidate(self) -> None:
        """§9.6: ask the voters whether they would elect us, without raising our term (a
        node cut off from the cluster keeps its term, so it cannot depose a leader when it
        comes back). Nothing changes durably, so the requests need not wait."""
        if self.election.term_exhausted():
            return
        if not self.may_campaign():
            self.role = Role.NON_VOTER
            return
        self.role = Role.PRE_CANDIDATE
        self.leader_id = None
        self.election.reset_timer()
        requests = self.election.begin(pre_vote=True)
        if self.election.won():
            self.become_candidate()
            return
        for request in requests:
            self.send(request)

    def become_candidate(self, transfer: bool = False) -> None:
        """§5.2: new term, vote for self, ask every other voter (``transfer``: an election
        asked for, which voters grant even while they hear from a leader)."""
        if self.election.term_exhausted():
            return
        if not self.may_campaign():
            self.role = Role.NON_VOTER
            return
        self.role = Role.CANDIDATE
        self.counters.elections_started += 1
        self.current_term += 1
        self.voted_for = self.id
        self.leader_id = None
        self.save_hard_state()
        self.election.reset_timer()
        requests = self.election.begin(transfer=transfer)
        if self.election.won():
            # A lone voter: no vote request carries the durable barrier, so wait for it.
            self.emit(cmd.LeadWhenDurable(self.current_term))
            return
        for request in requests:
            # The vote for ourselves must be durable before anyone can count on it.
            self.send(request, after_durable=True)

    def hard_state_durable(self, term: Term) -> None:
        """The term a lone voter won (``LeadWhenDurable``) is durable: lead it, unless a
        newer term or another candidacy came meanwhile."""
        if self.role is Role.CANDIDATE and self.current_term == term and self.election.won():
            self.become_leader()

    def become_leader(self) -> None:
        """Won the election: replicate, starting with an entry of our own term (§8)."""
        self.role = Role.LEADER
        self.leader_id = self.id
        if self.transfer is not None:
            self._end_transfer(TransferFailed("this node was elected leader again", self.id))
        # flushed_index stays as the storage confirmed it: an append of the last term
        # still under way may blank a refused entry: nothing after it is sent before.
        leader = self.leader = LeaderState()
        leader.sync_progress(self)
        # §8: commit an entry of our own term at once; a leader forming a new cluster
        # commits its configuration so the membership is in the log.
        payload: EntryPayload = (
            EntryConfigChange(self.membership) if self.log.last_index == 0 else EntryBlank()
        )
        leader.proposals.insert(0, Proposal(payload))
        self._flush_proposals(leader)
        for peer in leader.progress:
            replication.send_append(self, leader, peer)

    def _refresh_role(self) -> None:
        """The membership may have changed: a non-voter may have become a voter, or not; a
        node removed from the cluster answers its undecided writes."""
        if self.role in (Role.FOLLOWER, Role.NON_VOTER):
            self.role = Role.FOLLOWER if self.may_campaign() else Role.NON_VOTER
            if (
                self.writes.pending
                and not self.membership.contains(self.id)
                and self.commit_index >= self.log.config_index
            ):
                self.writes.abandon("this node was removed from the cluster")

    def _follow(self, term: Term, leader_id: NodeId) -> None:
        """A leader of ``term`` (at least ours) reached us: follow it."""
        if (
            term > self.current_term
            or self.role is not Role.FOLLOWER
            or self.leader_id != leader_id
        ):
            if self.role is Role.NON_VOTER:
                self.set_term(term)
                self.leader_id = leader_id
            else:
                self.become_follower(term, leader_id)
            self._transfer_seen_leader(leader_id)
        self.heard_leader_at = self.now
        self.election.reset_timer()

    def _truncate_from(self, index: LogIndex) -> None:
        self.log.truncate_from(index)
        self.flushed_index = min(self.flushed_index, index - 1)
        self.emit(cmd.DeleteLogsFrom(index))
        # Writes waiting at these indexes stay pending: only the commit of their index
        # decides them (writes.py).
        self._refresh_role()

    def _install_snapshot(self, meta: SnapshotMeta) -> None:
        last = meta.last_included
        if last.index <= self.commit_index:
            return  # we already hold everything it covers
        # The snapshot holds committed entries only: our matching suffix stays (§7).
        keep = self.log.term_at(last.index) == last.term
        self.writes.snapshot_installed(last, self.log, keep)
        self.log.compact(last.index, last.term, meta.membership)
        self.snapshot = meta
        self.commit_index = max(self.commit_index, last.index)
        self.writes.sweep_older_terms(last.index, last.term)
        self.apply_requested = max(self.apply_requested, last.index)
        self.last_applied = max(self.last_applied, last.index)
        self.flushed_index = max(min(self.flushed_index, self.log.last_index), last.index)
        self.emit(cmd.InstallSnapshot(meta, keep))
        self.counters.snapshots_installed += 1
        self.reads.applying()
        self._refresh_role()

    def _answered(
        self, peer: NodeId, request_term: Term, response_term: Term | None
    ) -> Progress | None:
        """The progress of ``peer`` if an answer to our request of ``request_term`` still
        concerns this leadership (``None`` otherwise); a newer term in it ends ours."""
        if response_term is not None and response_term > self.current_term:
            if self.leader is None or not self.leader.drop_departed(peer):
                self.become_follower(response_term, None)  # §5.1: a newer term exists
            return None
        if self.leader is None or request_term != self.current_term:
            return None  # stale: an answer to an earlier leadership
        return self.leader.progress.get(peer)

    def _after_answer(self, peer: NodeId, outcome: replication.Outcome) -> None:
        if outcome is replication.Outcome.MATCHED:
            self._maybe_commit()
            if self.transfer is not None:
                self._drive_transfer()
        if outcome in (replication.Outcome.MATCHED, replication.Outcome.CONTINUE):
            leader = self.leader  # committing may have ended our leadership
            if leader is not None and peer in leader.progress:
                replication.send_append(self, leader, peer)

    def _lead(self) -> LeaderState:
        assert self.leader is not None
        return self.leader

    def _flush_proposals(self, leader: LeaderState) -> None:
        """Give queued proposals indexes and write them, one storage append at a time.

        Proposals that arrive while an append is in flight are batched into the next one.
        """
        if leader.appends_in_flight or not leader.proposals:
            return
        batch = leader.proposals[: self.config.max_payload_entries]
        del leader.proposals[: len(batch)]
        entries: list[Entry] = []
        in_log = 0  # how many of ``entries`` are in self.log already
        term, index, writes = self.current_term, self.log.last_index, self.writes
        leaving, add, wait_at = self._leaving, entries.append, writes.wait_at
        for proposal in batch:
            client_payload, token = proposal.client_payload, proposal.token
            if client_payload is not None and token is not None:
                if leaving:
                    # The final configuration without this leader is in the log: writes
                    # after it could outlive our leadership undecided, so refuse them now.
                    writes.refuse(token, ForwardToLeader(client_payload, None))
                    continue
                index += 1
                add(Entry(term, index, proposal.payload))
                wait_at(index, term, token, client_payload)
                continue
            index += 1
            entries.append(Entry(term, index, proposal.payload))
            if isinstance(proposal.payload, EntryConfigChange):
                # The membership is the latest configuration in the log: append up to it.
                self.log.append(entries[in_log:])
                in_log = len(entries)
                leader.config_queued = False
                leader.sync_progress(self)
                leaving = self._leaving
        self.log.append(entries[in_log:])
        if entries:
            leader.appends_in_flight += 1
            self.emit(cmd.WriteLog(tuple(entries), leader=True))

    @property
    def _leaving(self) -> bool:
        """Leader only: the latest configuration no longer has this node as a voter."""
        m = self.membership
        return self.id not in m.members and self.id not in (m.members_after_consensus or ())

    def _drive_membership(self) -> None:
        """Leader: take the next step toward the target membership, if one is due: only
        once the latest configuration entry committed and this leader committed an entry
        of its own term. A leader that is not a voter of the committed final configuration
        steps down (§6)."""
        leader = self.leader
        if leader is None or leader.config_queued:
            return
        if self.log.config_index > self.commit_index or (
            self.log.term_at(self.commit_index) != self.current_term
        ):
            return  # the latest configuration is not committed yet
        m, change = self.membership, leader.change
        step = planner.next_step(m, change.target if change else None, self._caught_up)
        if isinstance(step, planner.Propose):
            self._propose_config(step.membership)
            return
        if change is not None and isinstance(step, planner.Done):
            leader.change = None
            self.respond(change.token, ConfigChangeResponse(self.log.config_index, m))
        elif change is not None and isinstance(step, planner.Wait):
            if self.now - change.started_at >= self.config.catch_up_timeout:
                leader.change = None
                timeout = CatchUpTimeout(step.lagging, self.config.catch_up_timeout)
                self.respond(change.token, error=timeout)
            return
        if not m.is_voter(self.id) and self.transfer is None:
            # §6: a leader removed from the cluster steps down once C_new is committed; it
            # hands over to the most caught-up voter first, so the cluster need not wait
            # an election timeout for a new leader.
            target = leader.most_caught_up_voter(self)
            if target is None:
                self.become_follower(self.current_term, None)
            else:
                self._start_transfer(target, None)

    # --- heartbeat rounds and reads (dissertation §6.4) ------------------------------------

    def _start_round(self, leader: LeaderState) -> None:
        """A new heartbeat round: every AppendEntries from now on carries it, and its
        acknowledgement by a majority confirms leadership for reads and leases."""
        leader.round += 1
        leader.round_sent_at[leader.round] = self.clock
        done = self.reads.acknowledged_round(leader)
        for old in [r for r in leader.round_sent_at if r < done]:
            del leader.round_sent_at[old]
        for peer in leader.progress:
            replication.send_heartbeat(self, leader, peer)

    def _confirm_reads(self, leader: LeaderState) -> None:
        """Reads whose round was acknowledged get their index; waiting reads start the
        next round if none started for reads is in flight."""
        self.reads.confirm(leader)
        if self.reads.round_wanted(leader):
            self._start_round(leader)
            leader.read_round = leader.round
            # With no other voter, the round is acknowledged as it starts.
            self.reads.confirm(leader)

    # --- leadership transfer (dissertation §3.10) --------------------------------------

    def _start_transfer(self, target: NodeId, token: int | None) -> None:
        self.transfer = Transfer(target, self.now, token)
        self._drive_transfer()

    def _drive_transfer(self) -> None:
        """Once the target holds our whole log, tell it to campaign now; give up after an
        election timeout (a removed leader then steps down anyway)."""
        transfer, leader = self.transfer, self.leader
        if transfer is None:
            return
        if self.now - transfer.started_at >= self.config.election_timeout_max:
            detail = (
                f"node {transfer.target} did not become leader within an election timeout "
                f"({self.config.election_timeout_max} ms)"
            )
            self._end_transfer(TransferFailed(detail, self.leader_id))
            if leader is not None and self._leaving:
                self.become_follower(self.current_term, None)
            return
        if leader is None or transfer.timeout_sent:
            return
        pr = leader.progress.get(transfer.target)
        if pr is not None and pr.match_index >= self.log.last_index:
            transfer.timeout_sent = True
            # The target may win without the others' stickiness: no lease from now on.
            leader.lease_given_up = True
            self.send(TimeoutNowRequest(transfer.target, self.current_term, self.id))

    def _transfer_seen_leader(self, leader_id: NodeId) -> None:
        """A leader reached us: the transfer succeeded, or someone else leads."""
        transfer = self.transfer
        if transfer is None or leader_id == self.id:
            return
        if leader_id == transfer.target:
            self._end_transfer(None)
        else:
            detail = f"node {leader_id} leads instead of node {transfer.target}"
            self._end_transfer(TransferFailed(detail, leader_id))

    def _end_transfer(self, error: BaseException | None) -> None:
        transfer, self.transfer = self.transfer, None
        if transfer is not None and transfer.token is not None:
            if error is None:
                answer = TransferLeadershipResponse(transfer.target, self.current_term)
                self.respond(transfer.token, answer)
            else:
                self.respond(transfer.token, error=error)

    def _caught_up(self, node: NodeId) -> bool:
        return self._lead().caught_up(node, self)

    def _propose_config(self, membership: MembershipConfig) -> None:
        leader = self._lead()
        leader.config_queued = True
        leader.proposals.append(Proposal(EntryConfigChange(membership)))
        self._flush_proposals(leader)

    def _maybe_commit(self) -> None:
        """Leader: advance the commit index to what a majority (of each config) holds."""
        leader = self.leader
        if leader is None:
            return
        index = leader.commit_candidate(self)
        # §5.4.2: only an entry of the current term is committed by counting replicas.
        if index > self.commit_index and self.log.term_at(index) == self.current_term:
            self._advance_commit(index)
        m = self.membership
        if leader.change is not None or m.is_in_joint_consensus or self.id not in m.members:
            self._drive_membership()

    def _advance_commit(self, index: LogIndex) -> None:
        if index <= self.commit_index:
            return
        old, self.commit_index = self.commit_index, index
        self.writes.committed(old, index, self.log)
        self.writes.sweep_older_terms(index, self.log.term_at(index) or 0)
        entries = self.log.slice(self.apply_requested + 1, self.commit_index + 1)
        if entries:
            self.apply_requested = entries[-1].index
            self.emit(cmd.Apply(entries))
            self.reads.applying()
        if self.leader is not None:
            self._confirm_reads(self.leader)  # the term's first commit unblocks reads
