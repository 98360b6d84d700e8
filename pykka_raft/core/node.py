"""The core's façade: every event the driver feeds in, and the order of steps it causes.

``RaftCore`` owns the entry points (an RPC arrived, an answer came back, time passed, the
storage completed something, a client or an admin asked) and the role transitions. Each
concern works on its own state and returns decisions or emits commands:

=====================  ==================================================================
``engine.py``          the steps several events share: roles, commit, proposals, membership
``election.py``        the election timer, one vote's rules, counting votes
``leader.py``          ``LeaderState``, created on election and dropped on step-down
``progress.py``        one follower's progress: probe / replicate / snapshot
``replication.py``     what the leader sends each follower, and what answers mean
``follower.py``        what an AppendEntries means for this node's log
``membership.py``      the pure planner of configuration changes
``snapshots.py``       creating, triggering and receiving snapshots
``writes.py``          pending client writes: the only place a write is answered
=====================  ==================================================================

Sections of the Raft paper (Ongaro and Ousterhout, 2014) and of the dissertation (Ongaro,
2014) are cited where a rule is decided. The core never blocks and never reads a clock:
time advances only through :meth:`RaftCore.tick`, randomness comes from the injected
``random.Random``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from pykka_raft.core import replication
from pykka_raft.core.api import ClientApi
from pykka_raft.core.commands import LoadInitialState, LoadLog, Query, WriteLog
from pykka_raft.core.election import grants_pre_vote, may_vote_for, sticks_to_its_leader
from pykka_raft.core.follower import plan_append
from pykka_raft.core.leader import LeaderState
from pykka_raft.core.log import RaftLog
from pykka_raft.core.state import Role
from pykka_raft.errors import LeadershipLost, SafetyViolation, Unreachable
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Entry,
    EntryBlank,
    EntryNormal,
    InitialState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMeta,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.metrics import RaftMetrics, ReplicationMetrics, State
from pykka_raft.types import LogId, LogIndex, NodeId

_CAMPAIGNERS = (Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE)

_ROLE_STATE = {
    Role.PRE_CANDIDATE: State.PRE_CANDIDATE,
    Role.NON_VOTER: State.NON_VOTER,
    Role.FOLLOWER: State.FOLLOWER,
    Role.CANDIDATE: State.CANDIDATE,
    Role.LEADER: State.LEADER,
}


class RaftCore(ClientApi):
    """One node's Raft rules. The driver calls the event methods, then takes the commands."""

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
            replication=self._replication_metrics(),
            **attrs.asdict(self.counters),
        )

    def metrics_headline(self) -> tuple[Any, ...]:
        """The fields of :meth:`metrics` pushed at once when they change, cheaply."""
        state, c = _ROLE_STATE.get(self.role, State.NON_VOTER), self.counters
        term, leader, offset = self.current_term, self.leader_id, self.log.offset
        sent, installed, refused = c.snapshots_sent, c.snapshots_installed, c.snapshots_refused
        return (state, term, leader, self.membership, offset, sent, installed, refused)

    def _replication_metrics(self) -> tuple[ReplicationMetrics, ...]:
        if self.leader is None:
            return ()
        last = self.log.last_index
        return tuple(
            ReplicationMetrics(node, pr.match_index, last - pr.match_index, pr.snapshot is not None)
            for node, pr in sorted(self.leader.progress.items())
        )

    def boot(self) -> None:
        """Start reading the persisted state: the initial state, then the log after the
        snapshot (two reads, so a storage need not return its whole log at once)."""
        self.emit(LoadInitialState())

    def initial_state_loaded(self, initial: InitialState) -> None:
        """The storage reported its state: read the log it holds."""
        self._initial: InitialState | None = initial
        start = initial.snapshot.last_included.index + 1 if initial.snapshot else 1
        self.emit(LoadLog(start, initial.last_log_id.index + 1))

    def log_loaded(self, entries: Iterable[Entry]) -> None:
        """The storage returned the log: start."""
        initial = getattr(self, "_initial", None)
        if initial is None:
            raise SafetyViolation("the log was loaded before the initial state")
        self._initial = None
        self.start(initial, entries)

    def start(self, initial: InitialState, entries: Iterable[Entry]) -> None:
        """The storage reported its state and log: leave ``INITIALIZING``."""
        hs = initial.hard_state
        self.current_term, self.voted_for = hs.current_term, hs.voted_for
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
        self.become_follower(self.current_term, None)
        if self.current_term > 0:
            # It may have acknowledged a leader's round just before it stopped, and that
            # leader may be serving LEASE reads on the strength of it (§6.4.1).
            self.quiet_until = self.now + self.config.election_timeout_min

    def tick(self, elapsed_ms: int) -> None:
        """Time passed: drive elections, heartbeats, retransmissions and check-quorum."""
        if self.role is Role.INITIALIZING:
            return
        self.now += elapsed_ms
        leader = self.leader
        if leader is not None:
            self._tick_leader(leader, elapsed_ms)
        elif self.role in _CAMPAIGNERS and self.election.advance(elapsed_ms):
            self.start_election()
        if self.transfer is not None:
            self._drive_transfer()
        if self.reads.asked or self.reads.ready:
            self.reads.expire()

    def _tick_leader(self, leader: LeaderState, elapsed_ms: int) -> None:
        leader.heartbeat_elapsed += elapsed_ms
        if leader.heartbeat_elapsed >= self.config.heartbeat_interval:
            leader.heartbeat_elapsed = 0
            self._start_round(leader)
        replication.resend_timed_out(self, leader)
        leader.quorum_check_elapsed += elapsed_ms
        window = self.config.election_timeout_max
        if leader.quorum_check_elapsed >= window:
            leader.quorum_check_elapsed = 0
            if not leader.heard_from_quorum(self, window):
                self.become_follower(self.current_term, None)
                return
            if leader.departing:
                leader.forget_silent_departed(self, window)
        if leader.change is not None:
            self._drive_membership()  # catch-up may have timed out

    def receive_vote(self, request: VoteRequest, token: int) -> None:
        """§5.2 RequestVote receiver implementation (Figure 2), with §5.4.1."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        newer = LogId(request.last_log_term, request.last_log_index) > self.log.last_log_id
        if not self.membership.contains(request.candidate_id) and not newer:
            # Unknown candidates (e.g. removed nodes) must not disrupt us with their terms:
            # actix-raft's rule, not the paper's (docs/differences.md, "Removed nodes").
            # One with a newer log may hold a configuration that added it: it gets the
            # ordinary rules, or a lagging voter could keep a live majority leaderless.
            # A pristine node knows no cluster at all: it refuses without saying "unknown",
            # so a node forming a cluster in parallel with it does not go quiet.
            known = bool(self.membership.all_nodes())
            self.respond(token, VoteResponse(self.current_term, False, known))
            return
        if request.pre_vote:
            # §9.6: an answer changes nothing here (no term, no vote), so it needs nothing
            # durable.
            self.respond(token, VoteResponse(self.current_term, grants_pre_vote(self, request)))
            return
        if sticks_to_its_leader(self, request):
            # §4.2.3: we hear from a leader: refuse, and do not take up a newer term.
            self.respond(token, VoteResponse(self.current_term, False))
            return
        if request.term > self.current_term:  # D11; the timer runs on unless we grant
            self.become_follower(request.term, None, reset=self.leader is not None)
        granted = may_vote_for(self, request)
        if granted:
            if self.voted_for is None:
                self.voted_for = request.candidate_id
                self.save_hard_state()
            self.election.reset_timer()
        self.respond(token, VoteResponse(self.current_term, granted), after_durable=True)

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        """The outcome of a VoteRequest we sent (``None``: the network failed)."""
        if response is None:
            return
        if request.pre_vote:
            term, role = self.current_term + 1, Role.PRE_CANDIDATE
        else:
            term, role = self.current_term, Role.CANDIDATE
        current = self.role is role and request.term == term
        if response.is_candidate_unknown:
            # The voter does not know us, so its term says nothing about our cluster. If a
            # majority of one of our voter sets does not know us, we were removed and missed
            # the entry saying so: go quiet (actix-raft's rule, not the paper's; see above).
            # A leader that still counts us makes us a voter again when it reaches us.
            if current and self.election.unknown_by(request.target):
                self.role = Role.NON_VOTER
                self.writes.abandon("the cluster no longer knows this node")
            return
        if response.term > self.current_term and not response.vote_granted:
            self.become_follower(response.term, None)
        elif current and response.vote_granted and self.election.granted_by(request.target):
            if request.pre_vote:
                self.become_candidate()  # a majority would elect us: now the real election
            else:
                self.become_leader()

    def receive_read_index(self, request: ReadIndexRequest, token: int) -> None:
        """A follower asks us, as leader, for a read index (§6.4.1)."""
        self.reads.read_index_asked(request, token, self.leader)
        if self.leader is not None:
            self._confirm_reads(self.leader)

    def read_index_result(
        self, request: ReadIndexRequest, response: ReadIndexResponse | None
    ) -> None:
        """The leader answered our ReadIndexRequest (``None``: the request failed)."""
        if response is not None and response.term > self.current_term:
            self.become_follower(response.term, None)
        self.reads.leader_answered(request, response)

    def queries_answered(self, query: Query, answers: object, error: BaseException | None) -> None:
        """The state machine answered ``query`` (``error``: the storage refused it all)."""
        self.reads.answered(query, answers, error)

    def receive_timeout_now(self, request: TimeoutNowRequest, token: int) -> None:
        """Our leader hands leadership over to us (§3.10): campaign at once."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        ok = (
            request.term == self.current_term
            and self.leader_id == request.leader_id
            and self.role is Role.FOLLOWER
        )
        if ok:
            self.become_candidate(transfer=True)
        self.respond(token, TimeoutNowResponse(self.current_term, ok), after_durable=True)

    def timeout_now_result(
        self, request: TimeoutNowRequest, response: TimeoutNowResponse | None
    ) -> None:
        """The target of our transfer answered (a newer term: it is campaigning)."""
        if response is not None and response.term > self.current_term:
            self.become_follower(response.term, None)

    def receive_append_entries(self, request: AppendEntriesRequest, token: int) -> None:
        """§5.3 AppendEntries receiver implementation (Figure 2)."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        if request.term < self.current_term:
            self.respond(token, AppendEntriesResponse(self.current_term, False), after_durable=True)
            return
        self._follow(request.term, request.leader_id)
        plan = plan_append(self, request)
        if not plan.matched:
            response = AppendEntriesResponse(self.current_term, False, plan.hint)
            self.respond(token, response, after_durable=True)
            return
        if plan.truncate_from is not None:
            self._truncate_from(plan.truncate_from)
        if plan.entries:
            self.log.append(plan.entries)
            self.emit(WriteLog(plan.entries, leader=False))
        self._advance_commit(plan.commit_to)
        # The membership may have changed, or become committed (a removed node may campaign
        # only until then); and a node that went quiet after voters did not know it (see
        # vote_result) rejoins once a leader reaches it.
        self._refresh_role()
        self.respond(token, AppendEntriesResponse(self.current_term, True), after_durable=True)

    def receive_install_snapshot(self, request: InstallSnapshotRequest, token: int) -> None:
        """§7 InstallSnapshot receiver: store each chunk apart, install at the last one."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
            return
        ok, resume = request.term >= self.current_term, None
        if ok:
            self._follow(request.term, request.leader_id)
            ok, stored, resume = self.snapshots.receive_chunk(request)
            if stored and request.done:
                self._install_snapshot(request.meta)
        # Answered only once the chunk (and, at the end, the installed snapshot) is stored.
        answer = InstallSnapshotResponse(self.current_term, ok, resume)
        self.respond(token, answer, after_durable=True)

    def append_entries_result(
        self,
        request: AppendEntriesRequest,
        response: AppendEntriesResponse | None,
        fits: int | None = None,
    ) -> None:
        """Our AppendEntries' outcome (``None``: it failed; ``fits``: too large, that many fit)."""
        pr = self._answered(request.target, request.term, response.term if response else None)
        if pr is not None:
            lead = self._lead()
            outcome = replication.on_append_result(self, lead, pr, request, response, fits)
            self._after_answer(request.target, outcome)
            if self.leader is not None and response is not None:
                self._confirm_reads(self.leader)

    def install_snapshot_result(
        self, request: InstallSnapshotRequest, response: InstallSnapshotResponse | None
    ) -> None:
        """The outcome of an InstallSnapshot chunk we sent (``None``: the network failed)."""
        pr = self._answered(request.target, request.term, response.term if response else None)
        if pr is not None:
            outcome = replication.on_install_result(self, self._lead(), pr, request, response)
            self._after_answer(request.target, outcome)

    def snapshot_chunk_read(
        self, peer: NodeId, snapshot_id: str, offset: int, data: bytes | None
    ) -> None:
        """The storage read a chunk of a snapshot for ``peer`` (``None``: it is gone)."""
        if self.leader is not None:
            replication.on_chunk_read(self, self.leader, peer, snapshot_id, offset, data)

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
            self.writes.refused_by_storage(index, last.term, error)
        if self.log.term_at(last.index) == last.term:
            self.flushed_index = max(self.flushed_index, last.index)
        state = self.leader
        if leader and state is not None and last.term == self.current_term:
            state.appends_in_flight = max(0, state.appends_in_flight - 1)
        if state is not None:
            self._maybe_commit()
            state = self.leader  # committing may have ended our leadership
        if state is not None:
            for peer in state.progress:
                replication.send_append(self, state, peer)
            self._flush_proposals(state)

    def applied(self, entries: tuple[Entry, ...], responses: tuple[object, ...]) -> None:
        """The state machine applied ``entries`` and answered ``responses``."""
        self.writes.applied(entries, responses)
        if entries:
            self.last_applied = max(self.last_applied, entries[-1].index)
            if self.snapshots.due(self.leader is not None and self.leader.sending_snapshot()):
                self.snapshots.create()

    def snapshot_created(self, meta: SnapshotMeta) -> None:
        """The storage stored a snapshot and dropped the log through it."""
        self.snapshots.created(meta)

    def snapshot_unsupported(self, error: BaseException) -> None:
        """The storage cannot take snapshots: run on without compaction."""
        self.snapshots.storage_unsupported(error)

    def stop(self, cause: BaseException) -> None:
        """The node stops: answer every client write it holds (queued ones were never
        appended, so they are definitely not committed; pending ones are unknown)."""
        leader, self.leader = self.leader, None
        if leader is not None:
            self.leader_id = None  # a stopped node leads nothing: not where to send them
            self.writes.refuse_all(leader.client_proposals())
            if leader.change is not None:
                self.respond(leader.change.token, error=LeadershipLost(None))
        self.writes.stop(cause)
