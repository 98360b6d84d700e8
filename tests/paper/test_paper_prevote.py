"""Dissertation §9.6 PreVote, §4.2.3 leader stickiness, §3.10 leadership transfer, and
TriggerElection, one rule per test."""

from __future__ import annotations

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    SaveHardState,
    append_requests,
    elect,
    make_core,
    make_entries,
    of_type,
    payload,
    responds,
    tick_until,
    vote_requests,
)

from pykka_raft.admin import TransferLeadershipResponse
from pykka_raft.core import RaftCore
from pykka_raft.core.commands import Send
from pykka_raft.core.state import Role
from pykka_raft.errors import Busy, NodeNotLeader, NotAllowed, TransferFailed
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)

STICKY = attrs.evolve(CONFIG, pre_vote=True, leader_stickiness=True)


def sticky_core(node_id: int = 1, **kwargs: object) -> RaftCore:
    return make_core(node_id, config=STICKY, **kwargs)  # type: ignore[arg-type]


def heartbeat(core: RaftCore, leader: int = 2, term: int | None = None) -> None:
    """An empty AppendEntries from ``leader`` that matches the core's log."""
    last = core.log.last_log_id
    request = AppendEntriesRequest(
        core.id, core.current_term if term is None else term, leader, last.index, last.term, (), 0
    )
    core.receive_append_entries(request, token=99)
    core.take_commands()


def answer(core: RaftCore, token: int) -> object:
    (respond,) = responds(core.take_commands(), token)
    return respond.value if respond.error is None else respond.error


# --- §9.6 PreVote ---------------------------------------------------------------------


def test_timeout_starts_a_pre_vote_without_raising_the_term() -> None:
    """§9.6: the timed-out node asks "would you vote for me in term t+1?" and keeps its
    term and vote: nothing to persist, so the requests need not wait for storage."""
    core = sticky_core(term=3, entries=make_entries([1, 3]))
    tick_until(core, lambda: core.role is Role.PRE_CANDIDATE)
    commands = core.take_commands()
    assert (core.current_term, core.voted_for) == (3, None)
    assert of_type(commands, SaveHardState) == []
    requests = [s.request for s in vote_requests(commands)]
    assert requests == [
        VoteRequest(2, 4, 1, 2, 3, pre_vote=True),
        VoteRequest(3, 4, 1, 2, 3, pre_vote=True),
    ]
    assert not any(s.after_durable for s in vote_requests(commands))


def test_a_majority_of_pre_votes_starts_the_real_election() -> None:
    core = sticky_core(term=3)
    tick_until(core, lambda: core.role is Role.PRE_CANDIDATE)
    pre = [s.request for s in vote_requests(core.take_commands())]
    core.vote_result(pre[0], VoteResponse(3, True))
    assert core.role is Role.CANDIDATE and core.current_term == 4 and core.voted_for == 1
    real = [s.request for s in vote_requests(core.take_commands())]
    assert [(r.term, r.pre_vote) for r in real] == [(4, False), (4, False)]


def test_refused_pre_votes_leave_the_term_alone_round_after_round() -> None:
    """A node cut off from a healthy cluster (or refused by it) keeps its term however many
    election timeouts pass: when it comes back it cannot depose the leader (§9.6)."""
    core = sticky_core(term=3)
    for _ in range(10):
        tick_until(core, lambda: bool(vote_requests(core.commands)), step=10)
        for send in vote_requests(core.take_commands()):
            core.vote_result(send.request, VoteResponse(3, False))
    assert core.role is Role.PRE_CANDIDATE and core.current_term == 3


def test_pre_vote_granted_only_for_a_newer_term_and_an_up_to_date_log() -> None:
    voter = sticky_core(2, term=3, entries=make_entries([1, 3]))
    voter.receive_vote(VoteRequest(2, 4, 1, 2, 3, pre_vote=True), token=1)
    assert answer(voter, 1) == VoteResponse(3, True)
    voter.receive_vote(VoteRequest(2, 3, 1, 2, 3, pre_vote=True), token=2)
    assert answer(voter, 2) == VoteResponse(3, False)  # not a newer term
    voter.receive_vote(VoteRequest(2, 4, 1, 5, 1, pre_vote=True), token=3)
    assert answer(voter, 3) == VoteResponse(3, False)  # §5.4.1: log behind
    # Granting a pre-vote changes nothing: no term, no vote, nothing persisted.
    assert (voter.current_term, voter.voted_for) == (3, None)


# --- §4.2.3 leader stickiness ---------------------------------------------------------


def test_a_follower_hearing_its_leader_refuses_votes_and_keeps_its_term() -> None:
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.receive_vote(VoteRequest(3, 6, 1, 0, 0), token=1)
    assert answer(follower, 1) == VoteResponse(5, False)
    follower.receive_vote(VoteRequest(3, 6, 1, 0, 0, pre_vote=True), token=2)
    assert answer(follower, 2) == VoteResponse(5, False)
    assert follower.current_term == 5 and follower.leader_id == 2


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_voter_that_reached_a_term_without_voting_still_sticks_to_its_leader(
    pre_vote: bool,
) -> None:
    """§4.2.3 with §6.4.1: a voter can reach a newer term without voting in it (here the
    answer to a vote request it sent earlier carries that term). A candidate of that term
    asking next gets no vote while the voter hears from its leader: that leader's lease
    counts on this voter's refusal (a review found LEASE reads going stale this way)."""
    voter = make_core(2, term=5, config=attrs.evolve(STICKY, pre_vote=pre_vote))
    heartbeat(voter, leader=1)
    earlier = VoteRequest(3, 5, 2, 0, 0)  # sent by 2 as a candidate of term 5, answered late
    voter.vote_result(earlier, VoteResponse(6, False))
    assert (voter.current_term, voter.voted_for) == (6, None)
    voter.receive_vote(VoteRequest(2, 6, 3, 0, 0), token=1)
    assert answer(voter, 1) == VoteResponse(6, False)
    assert voter.voted_for is None
    voter.receive_vote(VoteRequest(2, 6, 3, 0, 0, transfer=True), token=2)  # a handover
    assert answer(voter, 2) == VoteResponse(6, True)


def test_stickiness_ends_election_timeout_min_after_the_leader_was_heard() -> None:
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.tick(CONFIG.election_timeout_min)
    follower.take_commands()
    follower.receive_vote(VoteRequest(3, 6, 1, 0, 0), token=1)
    assert answer(follower, 1) == VoteResponse(6, True)


def test_a_leader_refuses_a_disruptive_vote_and_stays_leader() -> None:
    leader = leader_of(term=2)
    term = leader.current_term
    leader.receive_vote(VoteRequest(1, term + 5, 3, 0, 0), token=1)
    assert answer(leader, 1) == VoteResponse(term, False)
    assert leader.role is Role.LEADER and leader.current_term == term


def test_a_transfer_election_is_granted_while_the_leader_is_heard() -> None:
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.receive_vote(VoteRequest(3, 6, 1, 0, 0, transfer=True), token=1)
    assert answer(follower, 1) == VoteResponse(6, True)


def test_without_stickiness_a_newer_term_is_taken_at_once() -> None:
    """The paper's rule (D11), kept when ``leader_stickiness`` is off."""
    follower = make_core(3, term=5, config=attrs.evolve(CONFIG, leader_stickiness=False))
    heartbeat(follower, leader=2)
    follower.receive_vote(VoteRequest(3, 6, 1, 0, 0), token=1)
    assert answer(follower, 1) == VoteResponse(6, True)


# --- §3.10 leadership transfer --------------------------------------------------------


def leader_of(term: int = 1, **kwargs: object) -> RaftCore:
    """Node 1 elected (the paper's way), then running with PreVote and stickiness."""
    core = make_core(1, term=term, **kwargs)  # type: ignore[arg-type]
    elect(core)
    core.take_commands()
    core.config = STICKY
    return core


def catch_up(core: RaftCore, peer: int) -> list[object]:
    """Answer every AppendEntries to ``peer`` until it holds the whole log."""
    core.log_written(core.log.last_log_id, None, leader=True)
    probe = AppendEntriesRequest(peer, core.current_term, core.id, 0, 0, (), 0)
    core.append_entries_result(probe, AppendEntriesResponse(core.current_term, True))
    commands: list[object] = []
    for _ in range(20):
        sends = append_requests(core.take_commands(), peer)
        if not sends:
            break
        for send in sends:
            core.append_entries_result(send.request, AppendEntriesResponse(core.current_term, True))
            commands += core.take_commands()
    return commands


def test_transfer_sends_timeout_now_once_the_target_caught_up() -> None:
    core = leader_of()
    core.transfer_leadership(3, token=7)
    assert not [
        c
        for c in core.take_commands()
        if isinstance(getattr(c, "request", None), TimeoutNowRequest)
    ]
    commands = catch_up(core, 3)
    nows = [
        c.request
        for c in commands
        if isinstance(c, Send) and isinstance(c.request, TimeoutNowRequest)
    ]
    assert nows == [TimeoutNowRequest(3, core.current_term, 1)]


def test_writes_during_a_transfer_are_refused_busy() -> None:
    core = leader_of()
    core.transfer_leadership(3, token=7)
    core.take_commands()
    core.client_write(payload("x"), token=8)
    error = answer(core, 8)
    assert isinstance(error, Busy) and "handed over" in str(error)


def test_transfer_answered_once_the_target_leads() -> None:
    core = leader_of()
    core.transfer_leadership(3, token=7)
    catch_up(core, 3)
    term = core.current_term + 1
    last = core.log.last_log_id
    core.receive_vote(VoteRequest(1, term, 3, last.index, last.term, transfer=True), 1)
    assert answer(core, 1) == VoteResponse(term, True)  # granted despite stickiness
    assert core.role is Role.FOLLOWER and core.transfer is not None  # not answered yet
    core.receive_append_entries(AppendEntriesRequest(1, term, 3, last.index, last.term, (), 0), 2)
    assert answer(core, 7) == TransferLeadershipResponse(3, term)
    assert core.transfer is None


def test_transfer_fails_when_another_node_leads() -> None:
    core = leader_of()
    core.transfer_leadership(3, token=7)
    core.take_commands()
    term = core.current_term + 1
    core.receive_append_entries(AppendEntriesRequest(1, term, 2, 0, 0, (), 0), 2)
    error = answer(core, 7)
    assert isinstance(error, TransferFailed) and "node 2 leads instead of node 3" in str(error)
    assert core.transfer is None and core.role is Role.FOLLOWER


def test_transfer_times_out_and_the_leader_takes_writes_again() -> None:
    core = leader_of()
    core.transfer_leadership(2, token=7)
    core.take_commands()
    tick_until(core, lambda: core.transfer is None, step=10)
    error = answer(core, 7)
    assert isinstance(error, TransferFailed) and core.role is Role.LEADER
    core.client_write(payload("again"), token=8)
    core.log_written(core.log.last_log_id, None, leader=True)
    assert not responds(core.take_commands(), 8)  # accepted, pending commit


def test_transfer_refusals() -> None:
    follower = sticky_core(2, term=2)
    follower.transfer_leadership(3, token=1)
    assert isinstance(answer(follower, 1), NodeNotLeader)
    core = leader_of(non_voters=(4,))
    core.transfer_leadership(4, token=2)
    assert isinstance(answer(core, 2), TransferFailed)
    core.transfer_leadership(1, token=3)
    assert answer(core, 3) == TransferLeadershipResponse(1, core.current_term)


def test_transfer_to_none_picks_the_most_caught_up_voter() -> None:
    core = leader_of()
    catch_up(core, 3)
    core.transfer_leadership(None, token=7)
    assert core.transfer is not None and core.transfer.target == 3


def test_timeout_now_from_the_leader_starts_an_election_at_once() -> None:
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.receive_timeout_now(TimeoutNowRequest(3, 5, 2), token=1)
    commands = follower.take_commands()
    assert follower.role is Role.CANDIDATE and follower.current_term == 6
    (respond,) = responds(commands, 1)
    assert respond.value == TimeoutNowResponse(6, True)
    assert all(s.request.transfer and not s.request.pre_vote for s in vote_requests(commands))


def test_timeout_now_from_anyone_else_is_refused() -> None:
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.receive_timeout_now(TimeoutNowRequest(3, 5, 1), token=1)
    assert answer(follower, 1) == TimeoutNowResponse(5, False)
    follower.receive_timeout_now(TimeoutNowRequest(3, 4, 2), token=2)
    assert answer(follower, 2) == TimeoutNowResponse(5, False)
    assert follower.role is Role.FOLLOWER


# --- the quiet period after a restart (§6.4.1 leases) --------------------------------


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_restarted_voter_refuses_votes_for_election_timeout_min(pre_vote: bool) -> None:
    """A voter that restarts may have acknowledged a leader's round just before it stopped,
    and that leader may serve LEASE reads counting on its refusal: for
    ``election_timeout_min`` after it starts it refuses as if it still heard that leader."""
    voter = sticky_core(2, term=3, just_restarted=True)
    request = VoteRequest(2, 4, 1, 0, 0, pre_vote=pre_vote)
    voter.receive_vote(request, token=1)
    assert answer(voter, 1) == VoteResponse(3, False)
    assert voter.current_term == 3  # the request's term is not taken up either
    voter.tick(CONFIG.election_timeout_min)
    voter.take_commands()
    voter.receive_vote(request, token=2)
    granted = answer(voter, 2)
    assert isinstance(granted, VoteResponse) and granted.vote_granted


def test_a_pristine_node_has_no_quiet_period() -> None:
    """A node with term 0 never acknowledged any leader: nothing to protect."""
    voter = sticky_core(2, term=0, just_restarted=True)
    voter.receive_vote(VoteRequest(2, 1, 1, 0, 0, pre_vote=True), token=1)
    assert answer(voter, 1) == VoteResponse(0, True)


def test_a_restarted_voter_grants_a_transfer_election() -> None:
    voter = sticky_core(2, term=3, just_restarted=True)
    voter.receive_vote(VoteRequest(2, 4, 1, 0, 0, transfer=True), token=1)
    granted = answer(voter, 1)
    assert isinstance(granted, VoteResponse) and granted.vote_granted


# --- TriggerElection ------------------------------------------------------------------


def test_trigger_election_starts_an_ordinary_election() -> None:
    """It campaigns as if its timer fired: PreVote first, no transfer flag, so voters that
    hear from a leader refuse it (a forced election would outlive a leader's lease)."""
    follower = sticky_core(3, term=5)
    heartbeat(follower, leader=2)
    follower.trigger_election(token=1)
    commands = follower.take_commands()
    assert follower.role is Role.PRE_CANDIDATE and follower.current_term == 5
    requests = [s.request for s in vote_requests(commands)]
    assert requests and all(r.pre_vote and not r.transfer for r in requests)
    (respond,) = responds(commands, 1)
    assert respond.error is None
    voter = sticky_core(2, term=5)
    heartbeat(voter, leader=1)
    voter.receive_vote(requests[0], token=2)
    assert answer(voter, 2) == VoteResponse(5, False)


def test_trigger_election_asks_pre_votes_first_even_with_pre_vote_off() -> None:
    """With ``pre_vote`` off a raised term would depose the leader the voters still hear
    (they refuse the vote, but its next heartbeat's answer carries the new term): the
    forced election asks pre-votes first, and becomes a real one once they are granted."""
    config = attrs.evolve(STICKY, pre_vote=False)
    core = make_core(3, term=5, config=config)
    core.trigger_election(token=1)
    commands = core.take_commands()
    assert core.role is Role.PRE_CANDIDATE and core.current_term == 5
    requests = [s.request for s in vote_requests(commands)]
    assert requests and all(r.pre_vote and not r.transfer for r in requests)
    (respond,) = responds(commands, 1)
    assert respond.error is None
    voter = make_core(2, term=5, config=config)
    heartbeat(voter, leader=1)
    voter.receive_vote(requests[0], token=2)  # it hears its leader: refused
    assert answer(voter, 2) == VoteResponse(5, False)
    core.vote_result(requests[0], VoteResponse(5, True))  # another voter grants it
    assert core.role is Role.CANDIDATE and core.current_term == 6


@pytest.mark.parametrize("who", ["leader", "non-voter"])
def test_trigger_election_on_a_leader_or_a_learner(who: str) -> None:
    if who == "leader":
        core = leader_of()
        core.trigger_election(token=1)
        assert answer(core, 1) is None and core.role is Role.LEADER
    else:
        core = sticky_core(4, members=(1, 2, 3), non_voters=(4,), term=2)
        core.trigger_election(token=1)
        assert isinstance(answer(core, 1), NotAllowed)
