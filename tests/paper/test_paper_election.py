"""§5.2 leader election, the RequestVote receiver (Figure 2) and §5.4.1 election restriction."""

from __future__ import annotations

import pytest
from paper_helpers import (
    CONFIG,
    LeadWhenDurable,
    Respond,
    SaveHardState,
    Send,
    WriteLog,
    append_requests,
    lead_when_durable,
    make_core,
    make_entries,
    of_type,
    responds,
    tick_until,
    vote_requests,
)

from pykka_raft.core.state import Role
from pykka_raft.messages import (
    AppendEntriesRequest,
    EntryBlank,
    MembershipConfig,
    VoteRequest,
    VoteResponse,
)

# --- §5.2 elections ---------------------------------------------------------------------


def test_follower_times_out_and_becomes_candidate() -> None:
    """§5.2: a follower that hears nothing for its election timeout becomes a candidate:
    it increments its term, votes for itself, persists both, then asks every other voter
    (non-voters excluded) with RequestVotes that wait for that persistence."""
    core = make_core(1, (1, 2, 3), term=3, entries=make_entries([1, 3]), non_voters=(4,))
    core.tick(CONFIG.election_timeout_min - 1)
    assert core.role is Role.FOLLOWER
    assert core.take_commands() == []

    tick_until(core, lambda: core.role is Role.CANDIDATE)
    commands = core.take_commands()
    assert (core.current_term, core.voted_for) == (4, 1)
    assert isinstance(commands[0], SaveHardState)
    assert (commands[0].hard_state.current_term, commands[0].hard_state.voted_for) == (4, 1)
    sends = vote_requests(commands)
    assert [s.request for s in sends] == [VoteRequest(2, 4, 1, 2, 3), VoteRequest(3, 4, 1, 2, 3)]
    assert all(s.after_durable for s in sends)
    assert len(of_type(commands, Send)) == 2


def test_election_timeout_is_within_bounds() -> None:
    """§5.2: no election starts before election_timeout_min, one always has by the max."""
    for seed in range(30):
        core = make_core(1, seed=seed)
        elapsed = tick_until(core, lambda c=core: c.role is Role.CANDIDATE)
        assert CONFIG.election_timeout_min <= elapsed <= CONFIG.election_timeout_max


def test_election_timeouts_are_drawn_afresh_for_every_election() -> None:
    """§5.2: "election timeouts are chosen randomly from a fixed interval" — a new draw for
    each election, so successive elections of one node (one rng) wait different times."""
    core = make_core(1, seed=42)
    waits = []
    for _ in range(20):
        term = core.current_term
        waits.append(tick_until(core, lambda t=term: core.current_term > t))
        assert core.role is Role.CANDIDATE
    assert all(CONFIG.election_timeout_min <= w <= CONFIG.election_timeout_max for w in waits)
    assert len(set(waits)) >= 10, f"the timeout is not redrawn per election: {waits}"


def test_candidate_wins_with_majority_of_votes() -> None:
    """§5.2: a candidate becomes leader once it has votes from a majority (itself included);
    a repeated grant from the same voter counts once; the leader then asserts itself with
    AppendEntries to every other server."""
    core = make_core(1, (1, 2, 3, 4, 5), term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    requests = {s.request.target: s.request for s in vote_requests(core.take_commands())}
    assert sorted(requests) == [2, 3, 4, 5]

    core.vote_result(requests[2], VoteResponse(2, True))
    core.vote_result(requests[2], VoteResponse(2, True))
    core.vote_result(requests[3], VoteResponse(2, False))
    core.vote_result(requests[4], None)
    assert core.role is Role.CANDIDATE, "2 of 5 votes is not a majority"
    assert core.take_commands() == []

    core.vote_result(requests[5], VoteResponse(2, True))
    assert core.role is Role.LEADER
    assert core.leader_id == 1
    commands = core.take_commands()
    assert sorted(s.request.target for s in append_requests(commands)) == [2, 3, 4, 5]
    assert all(s.request.term == 2 for s in append_requests(commands))


def test_candidate_ignores_votes_from_an_earlier_election() -> None:
    """§5.2: votes granted for an earlier term do not count toward the current election."""
    core = make_core(1, term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.current_term == 2)
    old = {s.request.target: s.request for s in vote_requests(core.take_commands())}
    tick_until(core, lambda: core.current_term == 3)
    core.take_commands()
    core.vote_result(old[2], VoteResponse(2, True))
    assert core.role is Role.CANDIDATE


def test_candidate_becomes_follower_when_another_leader_is_established() -> None:
    """§5.2: a candidate receiving AppendEntries from a leader whose term is at least its own
    recognizes that leader and returns to follower."""
    core = make_core(1, term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    core.take_commands()
    core.receive_append_entries(AppendEntriesRequest(1, 2, 3, 1, 1, (), 0), token=5)
    assert core.role is Role.FOLLOWER
    assert core.leader_id == 3
    assert core.current_term == 2
    assert core.voted_for == 1, "the vote of the term is kept"
    assert responds(core.take_commands())[0].value.success


def test_split_vote_starts_new_election_with_new_term() -> None:
    """§5.2: with no winner (split vote) the candidate times out and starts a new election
    with a higher term, voting for itself again."""
    core = make_core(1, term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    requests = vote_requests(core.take_commands())
    for send in requests:
        core.vote_result(send.request, VoteResponse(2, False))
    assert core.role is Role.CANDIDATE
    assert core.take_commands() == []

    core.tick(CONFIG.election_timeout_min - 1)
    assert core.current_term == 2
    tick_until(core, lambda: core.current_term == 3)
    commands = core.take_commands()
    assert core.role is Role.CANDIDATE
    assert core.voted_for == 1
    assert isinstance(commands[0], SaveHardState)
    assert commands[0].hard_state.current_term == 3
    assert [s.request.term for s in vote_requests(commands)] == [3, 3]


def test_single_voter_becomes_leader_on_its_own() -> None:
    """§5.2: a node that is the only voter holds a majority by its own vote, and leads
    once that vote and its new term are durable (Figure 2: persist before acting on them).
    Leading earlier, a crash could forget the term that others saw it lead, and a voter of
    an older configuration could then win the same term with this node's vote."""
    core = make_core(1, (1,), term=2, entries=make_entries([1, 2]), non_voters=(2,))
    tick_until(core, lambda: core.role is not Role.FOLLOWER)
    commands = core.take_commands()
    assert core.role is Role.CANDIDATE and core.current_term == 3
    assert vote_requests(commands) == [] and append_requests(commands, 2) == []
    save = of_type(commands, SaveHardState)[-1]
    assert (save.hard_state.current_term, save.hard_state.voted_for) == (3, 1)
    assert commands[commands.index(save) + 1 :] == [LeadWhenDurable(3)]
    commands = lead_when_durable(core, commands)
    assert core.role is Role.LEADER
    writes = of_type(commands, WriteLog)
    assert [e.payload for w in writes for e in w.entries] == [EntryBlank()]


def test_a_lone_voter_leads_only_the_term_it_still_stands_in() -> None:
    """Its storage is slow: the election timer fires again (term 4) before term 3 is
    durable, so term 3's release does nothing and term 4's makes it lead; a newer term
    seen meanwhile voids any release."""
    core = make_core(1, (1,), term=2, entries=make_entries([1, 2]), non_voters=(2,))
    tick_until(core, lambda: core.current_term == 3)
    tick_until(core, lambda: core.current_term == 4)
    assert of_type(core.take_commands(), LeadWhenDurable) == [
        LeadWhenDurable(3),
        LeadWhenDurable(4),
    ]
    core.hard_state_durable(3)
    assert core.role is Role.CANDIDATE and core.take_commands() == []
    core.hard_state_durable(4)
    assert core.role is Role.LEADER and core.current_term == 4

    core = make_core(1, (1,), term=2, entries=make_entries([1, 2]), non_voters=(2,))
    tick_until(core, lambda: core.current_term == 3)
    core.receive_vote(VoteRequest(1, 5, 2, 0, 0), token=1)  # refused, but a newer term
    core.hard_state_durable(3)
    assert core.role is Role.FOLLOWER and core.current_term == 5


@pytest.mark.parametrize(
    "membership",
    [
        MembershipConfig(members=(1, 2, 3), non_voters=(4,)),
        MembershipConfig(members=(1, 2, 3)),
        MembershipConfig(),
    ],
    ids=["non_voter", "not_a_member", "no_membership"],
)
def test_non_voters_never_start_elections(membership: MembershipConfig) -> None:
    """§5.2 / §6: only voters time out; a non-voter (or a node outside the configuration)
    never becomes a candidate, however long it hears nothing."""
    core = make_core(4, membership=membership, term=1, entries=make_entries([1]))
    assert core.role is Role.NON_VOTER
    for _ in range(100):
        core.tick(CONFIG.election_timeout_max)
    assert core.role is Role.NON_VOTER
    assert core.current_term == 1
    assert core.take_commands() == []


# --- RequestVote receiver -----------------------------------------------------------------


def _voter(**kwargs):
    kwargs.setdefault("term", 1)
    kwargs.setdefault("entries", make_entries([1]))
    return make_core(1, (1, 2, 3), **kwargs)


def test_at_most_one_vote_per_term() -> None:
    """§5.2: "each server will vote for at most one candidate in a given term, on a
    first-come-first-served basis"; the same candidate asking again gets the vote again."""
    core = _voter()
    core.receive_vote(VoteRequest(1, 2, 2, 1, 1), token=1)
    core.receive_vote(VoteRequest(1, 2, 3, 1, 1), token=2)
    core.receive_vote(VoteRequest(1, 2, 2, 1, 1), token=3)
    commands = core.take_commands()
    assert [(r.token, r.value) for r in responds(commands)] == [
        (1, VoteResponse(2, True)),
        (2, VoteResponse(2, False)),
        (3, VoteResponse(2, True)),
    ]
    assert core.voted_for == 2
    assert [s.hard_state.voted_for for s in of_type(commands, SaveHardState)][-1] == 2


def test_vote_survives_restart_and_is_honoured() -> None:
    """§5.2 / Figure 2: votedFor is persistent state: after a restart with votedFor=2 in
    term 2, another candidate of term 2 is refused."""
    core = _voter(term=2, voted_for=2)
    core.receive_vote(VoteRequest(1, 2, 3, 5, 2), token=1)
    assert responds(core.take_commands())[0].value == VoteResponse(2, False)


def test_vote_is_persisted_before_the_response() -> None:
    """Figure 2: votedFor is updated on stable storage before responding: a SaveHardState
    with voted_for=candidate precedes the Respond, which waits for durability."""
    core = _voter()
    core.receive_vote(VoteRequest(1, 2, 3, 1, 1), token=8)
    commands = core.take_commands()
    respond_at = next(i for i, c in enumerate(commands) if isinstance(c, Respond))
    saves = [
        i
        for i, c in enumerate(commands)
        if isinstance(c, SaveHardState)
        and c.hard_state.voted_for == 3
        and c.hard_state.current_term == 2
    ]
    assert saves and saves[0] < respond_at
    assert commands[respond_at] == Respond(8, VoteResponse(2, True), None, True)


def _timeout_of_fresh_voter(seed: int) -> int:
    twin = _voter(seed=seed)
    return tick_until(twin, lambda: twin.role is Role.CANDIDATE)


def test_granting_a_vote_resets_the_election_timer() -> None:
    """§5.2 / Figure 2 Followers: the timer restarts when the follower grants a vote, so it
    does not start its own election right after supporting another candidate."""
    timeout = _timeout_of_fresh_voter(seed=5)
    core = _voter(seed=5)  # same rng: same first timeout
    core.tick(timeout - 1)
    core.receive_vote(VoteRequest(1, 1, 2, 1, 1), token=1)  # same term: only the grant resets
    assert responds(core.take_commands())[0].value == VoteResponse(1, True)
    core.tick(CONFIG.election_timeout_min - 1)
    assert core.role is Role.FOLLOWER, "the election timer was not reset by the granted vote"
    assert core.current_term == 1


def test_refusing_a_vote_in_the_same_term_does_not_reset_the_timer() -> None:
    """Figure 2 Followers: only a granted vote (or the current leader) resets the timer; a
    refused candidate of the current term does not postpone this node's election."""
    timeout = _timeout_of_fresh_voter(seed=6)
    core = _voter(seed=6, entries=make_entries([1, 1]))
    core.tick(timeout - 1)
    core.receive_vote(VoteRequest(1, 1, 2, 1, 1), token=1)  # shorter log: refused
    assert responds(core.take_commands())[0].value == VoteResponse(1, False)
    core.tick(1)
    assert core.role is Role.CANDIDATE


def test_refusing_a_vote_of_a_newer_term_does_not_reset_the_timer() -> None:
    """Figure 2 Followers, for a candidate of a newer term: the node takes up the term but
    its timer runs on. When it reset, candidates whose logs are behind kept the one node
    that could win from ever timing out (a livelock of the membership simulation, seed
    2710568772: two removed nodes and a lagging voter outran the up-to-date voter)."""
    timeout = _timeout_of_fresh_voter(seed=6)
    core = _voter(seed=6, entries=make_entries([1, 1]))
    core.tick(timeout - 1)
    core.receive_vote(VoteRequest(1, 5, 2, 1, 1), token=1)  # newer term, shorter log
    assert responds(core.take_commands())[0].value == VoteResponse(5, False)
    assert core.current_term == 5
    core.tick(1)
    assert core.role is Role.CANDIDATE and core.current_term == 6


def test_a_leader_refusing_a_vote_of_a_newer_term_waits_a_fresh_timeout() -> None:
    """A leader's election clock stands still while it leads: stepping down on a refused
    vote request of a newer term, it draws a fresh timeout instead of resuming the one it
    had as a candidate. It won one ms before that one ran out, so it campaigned a ms after
    stepping down, before the new leader's first AppendEntries could reach it, and (with
    the paper's elections) deposed that leader though its vote could not be won."""
    core = make_core(1, (1, 2, 3), term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    requests = {s.request.target: s.request for s in vote_requests(core.take_commands())}
    core.tick(core.election.timeout - core.election.elapsed - 1)
    core.vote_result(requests[2], VoteResponse(2, True))
    assert core.role is Role.LEADER and core.current_term == 2
    core.take_commands()
    core.receive_vote(VoteRequest(1, 3, 3, 1, 1), token=7)  # newer term, shorter log
    assert responds(core.take_commands())[0].value == VoteResponse(3, False)
    core.tick(CONFIG.election_timeout_min - 1)
    assert core.role is Role.FOLLOWER and core.current_term == 3


# --- §5.4.1 election restriction ---------------------------------------------------------

# The voter's log has terms [1, 2, 2]: last entry (term 2, index 3).
UP_TO_DATE_CASES = [
    # (candidate last term, candidate last index, granted)
    (3, 1, True),  # higher last term wins even with a shorter log (actix D1)
    (3, 3, True),
    (3, 9, True),
    (2, 4, True),  # same last term, longer log
    (2, 3, True),  # same last term, same length
    (2, 2, False),  # same last term, shorter log
    (2, 0, False),
    (1, 9, False),  # lower last term loses even with a longer log (actix D1)
    (1, 3, False),
    (0, 0, False),  # empty log
]


@pytest.mark.parametrize(("last_term", "last_index", "granted"), UP_TO_DATE_CASES)
def test_vote_only_for_up_to_date_candidate(last_term: int, last_index: int, granted: bool) -> None:
    """§5.4.1: grant only if the candidate's log is at least as up-to-date: compare the last
    terms first; with equal last terms the longer (or equally long) log wins."""
    core = _voter(term=2, entries=make_entries([1, 2, 2]))
    core.receive_vote(VoteRequest(1, 5, 2, last_index, last_term), token=1)
    commands = core.take_commands()
    assert responds(commands)[0].value == VoteResponse(5, granted)
    assert core.voted_for == (2 if granted else None)
    assert core.current_term == 5


def test_empty_log_voter_grants_any_candidate() -> None:
    """§5.4.1: every log is at least as up-to-date as an empty one."""
    core = _voter(term=0, entries=())
    core.receive_vote(VoteRequest(1, 1, 2, 0, 0), token=1)
    assert responds(core.take_commands())[0].value == VoteResponse(1, True)


# --- Figure 2, Followers: who resets the election timer ------------------------------------


def test_append_entries_from_current_leader_prevents_election() -> None:
    """Figure 2 Followers / §5.2: "Followers remain in follower state as long as they receive
    valid RPCs from a leader": heartbeats more often than the minimum timeout keep it a
    follower indefinitely."""
    core = _voter()
    heartbeat = AppendEntriesRequest(1, 1, 2, 1, 1, (), 0)
    for _ in range(50):
        core.tick(CONFIG.election_timeout_min - 10)
        core.receive_append_entries(heartbeat, token=1)
    assert core.role is Role.FOLLOWER
    assert core.current_term == 1
    assert vote_requests(core.take_commands()) == []


def test_stale_leader_does_not_prevent_election() -> None:
    """Figure 2 Followers: only the *current* leader resets the timer; AppendEntries of an
    older term is rejected and the follower still times out."""
    core = _voter(term=2)
    stale = AppendEntriesRequest(1, 1, 2, 1, 1, (), 0)
    elapsed = 0
    while core.role is Role.FOLLOWER:
        assert elapsed <= CONFIG.election_timeout_max
        core.tick(10)
        elapsed += 10
        core.receive_append_entries(stale, token=1)
    assert core.role is Role.CANDIDATE
    assert core.current_term == 3


def test_unknown_candidate_is_refused_as_unknown_but_a_pristine_node_says_nothing() -> None:
    """§6 (removed servers): a node whose configuration lacks the candidate refuses with
    is_candidate_unknown and keeps its term. A pristine node knows no configuration at all:
    it refuses plainly, so a node forming a cluster in parallel does not go quiet."""
    member = make_core(1, (1, 2, 3), term=4)
    member.receive_vote(VoteRequest(1, 9, 7, 0, 0), token=1)
    answer = responds(member.take_commands(), 1)[0].value
    assert answer == VoteResponse(4, False, True)
    assert member.current_term == 4

    pristine = make_core(5, (), term=0)
    pristine.receive_vote(VoteRequest(5, 2, 1, 0, 0), token=2)
    answer = responds(pristine.take_commands(), 2)[0].value
    assert answer == VoteResponse(0, False, False)
