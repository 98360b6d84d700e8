"""The API events of the core: client writes and reads, and the admin messages.

Split from the façade (``node.py``) so that each file stays small: ``RaftCore`` inherits
these entry points; the steps they share with other events live in ``engine.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pykka_raft.admin import ProposeConfigChange, TransferLeadershipResponse
from pykka_raft.codec import check_app_value
from pykka_raft.core import membership as planner
from pykka_raft.core.engine import Engine
from pykka_raft.core.leader import LeaderState, MembershipChange, Proposal
from pykka_raft.core.state import Role
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    ChangeInProgress,
    ForwardToLeader,
    NodeNotLeader,
    NotAllowed,
    TransferFailed,
    Unreachable,
)
from pykka_raft.messages import ClientPayload, ClientRead, MembershipConfig
from pykka_raft.types import NodeId


class ClientApi(Engine):
    """Client and admin entry points (see the module docstring)."""

    def client_write(self, payload: ClientPayload, token: int) -> None:
        """``ClientPayload``: append on the leader, answer at commit or apply."""
        self.client_writes(((payload, token),))

    def client_writes(self, writes: Iterable[tuple[ClientPayload, int]]) -> None:
        """Several ``ClientPayload`` at once: queued together, then flushed as one batch."""
        accepted = self.writes
        leader = self.leader
        if leader is not None and self.transfer is not None and not self._leaving:
            # Handing over: the log must stop growing so the target can catch up.
            for payload, token in writes:
                accepted.accept(token)
                accepted.refuse(
                    token, Busy(payload, 0, "leadership is being handed over; retry shortly")
                )
            return
        if leader is None or self._leaving:
            # A leader on its way out (removed by the committing configuration) knows no
            # leader to point to yet.
            hint = self.leader_id if leader is None else None
            why = None
            if hint is None and not self.membership.contains(self.id) and self.log.last_index:
                why = f"node {self.id} is not in the configuration it knows (removed, or not "
                why += "added yet): ask a member"
            for payload, token in writes:
                accepted.accept(token)
                accepted.refuse(token, ForwardToLeader(payload, hint, why))
            return
        # Backpressure: writes queued or awaiting commit (one per waiting index, roughly).
        limit, max_bytes = self.config.max_pending_writes, self.config.max_entry_bytes
        room = limit - len(leader.proposals) - len(accepted)
        accept, propose = accepted.accept, leader.proposals.append
        for payload, token in writes:
            accept(token)
            if room <= 0:
                self.counters.writes_refused_busy += 1
                accepted.refuse(token, Busy(payload, limit))
                continue
            entry = payload.entry
            try:
                check_app_value(entry.data, max_bytes)
            except Exception as exc:  # a value the codec cannot carry: never appended
                self.counters.writes_refused_application += 1
                accepted.refuse(token, ApplicationError(exc))
                continue
            room -= 1
            propose(Proposal(entry, token, payload))
        self._flush_proposals(leader)

    def init_with_config(
        self, members: Iterable[NodeId], token: int, addresses: Iterable[tuple[NodeId, str]] = ()
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
            self.respond(token, None, after_durable=True)
            return
        if not self.is_pristine:
            reason = (
                "the node is still starting (its storage has not reported its state yet)"
                if self.role is Role.INITIALIZING
                else "the node is not pristine (it has a log or a membership); "
                "add it to an existing cluster with a membership change instead"
            )
            self.respond(token, error=NotAllowed(f"InitWithConfig refused: {reason}"))
            return
        formed = MembershipConfig(members=voters)
        self.hard_membership = planner.with_addresses(formed, dict(addresses))
        self.save_hard_state()
        if self.leader_id is not None:
            # A leader of this term is already replicating to us (parallel formation): follow
            # it rather than disrupt it with an election; its configuration entry follows.
            self.become_follower(self.current_term, self.leader_id)
        else:
            self.become_candidate()
        self.respond(token, None, after_durable=True)

    def propose_config_change(self, change: ProposeConfigChange, token: int) -> None:
        """``ProposeConfigChange``: validate, then carry it out in committed steps (§6)."""
        leader = self.leader
        if leader is None:
            self.respond(token, error=NodeNotLeader(self.leader_id))
            return
        m = self.membership
        if self._changing(leader) or self._leaving or self.transfer is not None:
            what = (
                "leadership is being handed over; propose again to the new leader"
                if self.transfer is not None
                else "another change is in progress (membership "
                f"{planner.describe(m)}); wait until it finishes, then propose again"
            )
            self.respond(token, error=ChangeInProgress(f"membership change refused: {what}"))
            return
        target = planner.plan_change(m, change, self.config.min_voters)
        if isinstance(target, BaseException):
            self.respond(token, error=target)
            return
        leader.change = MembershipChange(token, target, self.now)
        self._drive_membership()

    def client_read(self, read: ClientRead, token: int) -> None:
        """``ClientRead``: answer a query at a linearizable index (``reads.py``)."""
        self.client_reads(((read, token),))

    def client_reads(self, reads: Iterable[tuple[ClientRead, int]]) -> None:
        """Several ``ClientRead`` at once: one round, one query batch, one question to the
        leader for all of them."""
        for read, token in reads:
            if self.role is Role.INITIALIZING:
                self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
            else:
                self.reads.read(token, read.query, read.policy, self.leader, flush=False)
        self.reads.flush()
        if self.leader is not None:
            self._confirm_reads(self.leader)

    def transfer_leadership(self, target: NodeId | None, token: int) -> None:
        """``TransferLeadership``: hand over to ``target`` (or the most caught-up voter)."""
        leader = self.leader
        if leader is None:
            self.respond(token, error=NodeNotLeader(self.leader_id))
            return
        if self.transfer is not None or self._leaving or self._changing(leader):
            # One at a time: a configuration entry appended after TimeoutNow would leave the
            # target's log behind, and a change may remove the target (dissertation §3.10).
            if self.transfer is not None:
                why = "a transfer is in progress"
            elif self._leaving:
                why = "this leader is being removed: it hands over once its removal commits"
            else:
                why = "a membership change is in progress; transfer once it is answered"
            self.respond(token, error=TransferFailed(why, self.id))
            return
        if target is None:
            target = leader.most_caught_up_voter(self)
        if target == self.id:
            self.respond(token, TransferLeadershipResponse(self.id, self.current_term))
        elif target is None or not self.membership.is_voter(target):
            what = "there is no other voter" if target is None else f"node {target} is no voter"
            self.respond(token, error=TransferFailed(what, self.id))
        else:
            self._start_transfer(target, token)

    def _changing(self, leader: LeaderState) -> bool:
        """A membership change is under way: proposed (catching up, joint or final), or a
        joint configuration this leader inherited and will finish."""
        return leader.change is not None or self.membership.is_in_joint_consensus

    def trigger_election(self, token: int) -> None:
        """``TriggerElection``: campaign now, with a PreVote round first even when
        ``Config.pre_vote`` is off (a raised term would depose a leader the voters still
        hear, though they refuse the vote). Voters that hear from a leader refuse, as
        always: a forced election would let a leader's lease outlive its leadership (use
        ``TransferLeadership``)."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
        elif self.leader is not None:
            self.respond(token, None)
        elif not self.may_campaign():
            self.respond(token, error=NotAllowed(f"node {self.id} is not a voter"))
        else:
            self.become_pre_candidate()
            self.respond(token, None, after_durable=True)

    def trigger_snapshot(self, token: int) -> None:
        """``TriggerSnapshot``: snapshot through the last entry sent to the state machine."""
        if self.role is Role.INITIALIZING:
            self.respond(token, error=Unreachable(f"node {self.id} is still starting"))
        else:
            self.snapshots.trigger(token)
