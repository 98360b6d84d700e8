"""Elections: the election timer, the vote a node gives (§5.2, §5.4.1) and the votes a
candidate counts, including joint configurations (§6), removed nodes (dissertation
§4.2.2), PreVote (§9.6) and leader stickiness (§4.2.3).

The façade decides what a result means for the node's role; this module keeps the
bookkeeping and the rules that decide a single vote.
"""

from __future__ import annotations

from pykka_raft.core.quorum import has_quorum
from pykka_raft.core.state import NodeState, Role
from pykka_raft.messages import MAX_RPC_NUMBER, VoteRequest
from pykka_raft.types import LogId, NodeId


class Election:
    """The election timer and, while campaigning, the votes counted so far.

    Attributes:
        elapsed: milliseconds since the timer was last reset.
        timeout: this round's randomized election timeout (§5.2: a fresh draw each time).
        votes_granted: voters that granted this node their vote in the current term.
        unknown_to: voters that answered "candidate unknown" (they do not know this node).
    """

    def __init__(self, node: NodeState) -> None:
        self.node = node
        self.elapsed = 0
        self.timeout = self._draw()
        self.votes_granted: set[NodeId] = set()
        self.unknown_to: set[NodeId] = set()

    def _draw(self) -> int:
        config = self.node.config
        return self.node.rng.randint(config.election_timeout_min, config.election_timeout_max)

    def reset_timer(self) -> None:
        """Heard from a leader, granted a vote, or started an election: wait a new timeout."""
        self.elapsed = 0
        self.timeout = self._draw()

    def advance(self, elapsed_ms: int) -> bool:
        """Time passed; True when the election timeout expired."""
        self.elapsed += elapsed_ms
        return self.elapsed >= self.timeout

    def term_exhausted(self) -> bool:
        """True, with the timer restarted, if the term cannot be raised: it is
        :data:`~pykka_raft.messages.MAX_RPC_NUMBER`, the largest an RPC carries (2**62
        elections, or a member sent it). Such a node never campaigns."""
        if self.node.current_term < MAX_RPC_NUMBER:
            return False
        self.reset_timer()
        return True

    def begin(self, pre_vote: bool = False, transfer: bool = False) -> list[VoteRequest]:
        """§5.2: count our own vote and ask every other voter of the latest configuration.

        A pre-vote asks about the next term without raising ours. A node that votes only
        in the previous configuration (§4.2.2) has no vote of its own in the latest one,
        so it is not counted there; ``has_quorum`` only counts members of each voter set.
        A node that hears from a leader (:func:`hears_a_leader`: it campaigns because of
        ``TriggerElection``) does not count its own vote either, as it would refuse anyone
        else's request: that leader's lease counts on it. A transfer counts it.
        """
        node = self.node
        self.votes_granted = set() if not transfer and hears_a_leader(node) else {node.id}
        self.unknown_to = set()
        last = node.log.last_log_id
        term = node.current_term + 1 if pre_vote else node.current_term
        return [
            VoteRequest(peer, term, node.id, last.index, last.term, pre_vote, transfer)
            for peer in sorted(node.membership.voters() - {node.id})
        ]

    def won(self) -> bool:
        """A majority of every voter set granted its vote (§5.2, §6)."""
        return has_quorum(self.node.membership.voter_sets(), self.votes_granted)

    def granted_by(self, voter: NodeId) -> bool:
        """Count ``voter``'s vote; True once the election is won."""
        self.votes_granted.add(voter)
        return self.won()

    def unknown_by(self, voter: NodeId) -> bool:
        """``voter`` does not know this node; True once a majority of one of our voter sets
        does not: we were removed and missed the entry saying so.

        "Candidate unknown" answers and going quiet on them depart from the paper: they
        come from actix-raft's design. The dissertation keeps a removed server from
        disrupting the cluster with leader stickiness (§4.2.3) and PreVote (§9.6), which
        this node also has; see docs/differences.md, "Removed nodes"."""
        self.unknown_to.add(voter)
        return any(
            sum(1 for n in voters if n in self.unknown_to) * 2 > len(voters)
            for voters in self.node.membership.voter_sets()
        )


def hears_a_leader(node: NodeState) -> bool:
    """Leader stickiness (dissertation §4.2.3): a leader, or a node that heard from a
    current leader within ``election_timeout_min``, believes a leader exists and refuses
    to help elect another (a transfer aside). So does a node for ``election_timeout_min``
    after it restarted: it may have heard a leader just before, and that leader's lease
    counts on its refusal (§6.4.1). Off with ``Config.leader_stickiness``.

    Only the time counts, not whether the node still names a leader: a higher term taken
    from a late answer (a vote, AppendEntries or read-index response of an earlier round)
    clears ``leader_id``, but the leader it heard still holds its lease."""
    if not node.config.leader_stickiness:
        return False
    if node.role is Role.LEADER or node.now < node.quiet_until:
        return True
    heard = node.heard_leader_at
    return heard is not None and node.now - heard < node.config.election_timeout_min


def sticks_to_its_leader(node: NodeState, request: VoteRequest) -> bool:
    """§4.2.3: refuse a vote (and do not take up the term) because we hear from a leader.

    For a newer term, and for our own term while we have not voted in it: a node can
    reach a newer term without voting (a late answer to a request it sent as a
    candidate), and a candidate of that term asking next must not get the vote of a voter
    whose acknowledgement the old leader's lease still counts on (§6.4.1)."""
    newer = request.term > node.current_term
    unvoted = request.term == node.current_term and node.voted_for is None
    return (newer or unvoted) and hears_a_leader(node) and not request.transfer


def grants_pre_vote(node: NodeState, request: VoteRequest) -> bool:
    """§9.6: would we vote for this candidate in the term it asks about? Only if that term
    is newer than ours, its log is up to date and we do not hear from a leader."""
    return (
        request.term > node.current_term
        and not (hears_a_leader(node) and not request.transfer)
        and candidate_is_up_to_date(node, request)
    )


def candidate_is_up_to_date(node: NodeState, request: VoteRequest) -> bool:
    """§5.4.1: the candidate's log is at least as up-to-date as ours (last term first,
    then length)."""
    return LogId(request.last_log_term, request.last_log_index) >= node.log.last_log_id


def may_vote_for(node: NodeState, request: VoteRequest) -> bool:
    """§5.2: one vote per term, first come first served (a repeated request from the
    candidate we voted for is granted again), to an up-to-date candidate only."""
    return (
        request.term == node.current_term
        and node.voted_for in (None, request.candidate_id)
        and candidate_is_up_to_date(node, request)
    )
