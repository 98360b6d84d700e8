"""§5.1 terms: every server adopts a newer term it sees and rejects stale ones (Figure 2)."""

from __future__ import annotations

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    Respond,
    SaveHardState,
    Send,
    elect,
    make_core,
    make_entries,
    of_type,
    responds,
    tick_until,
)

from pykka_raft.core import RaftCore, Role
from pykka_raft.messages import (
    MAX_RPC_NUMBER,
    AppendEntriesRequest,
    AppendEntriesResponse,
    TimeoutNowRequest,
    VoteRequest,
    VoteResponse,
)


def _assert_persisted_before_reply(commands: list, term: int, token: int) -> Respond:
    """A SaveHardState(term, voted_for=None) comes before the Respond for ``token``."""
    saves = [
        i
        for i, c in enumerate(commands)
        if isinstance(c, SaveHardState)
        and c.hard_state.current_term == term
        and c.hard_state.voted_for is None
    ]
    replies = [i for i, c in enumerate(commands) if isinstance(c, Respond) and c.token == token]
    assert saves, f"the new term {term} was never persisted: {commands}"
    assert len(replies) == 1
    assert saves[0] < replies[0], "the reply was issued before the new term was persisted"
    reply = commands[replies[0]]
    assert reply.after_durable
    return reply


def test_follower_adopts_higher_term_from_append_entries() -> None:
    """§5.1: a follower seeing a higher term in AppendEntries adopts it and clears its vote.

    The new term is persisted (SaveHardState) before the durable reply, which carries it.
    """
    core = make_core(1, term=2, voted_for=2, entries=make_entries([1, 2]))
    request = AppendEntriesRequest(1, 5, 3, 2, 2, (), 0)
    core.receive_append_entries(request, token=7)
    commands = core.take_commands()
    reply = _assert_persisted_before_reply(commands, term=5, token=7)
    assert reply.value == AppendEntriesResponse(5, True)
    assert (core.current_term, core.voted_for, core.leader_id) == (5, None, 3)
    assert core.role is Role.FOLLOWER


def test_follower_adopts_higher_term_from_vote_request_even_when_refusing() -> None:
    """§5.1: a higher term in a RequestVote is adopted (vote cleared, persisted) even when the
    vote itself is refused (§5.4.1, the candidate's log is behind)."""
    core = make_core(1, term=2, voted_for=2, entries=make_entries([1, 2]))
    core.receive_vote(VoteRequest(1, 4, 3, 1, 1), token=9)
    commands = core.take_commands()
    reply = _assert_persisted_before_reply(commands, term=4, token=9)
    assert reply.value == VoteResponse(4, False)
    assert (core.current_term, core.voted_for) == (4, None)


def _leader() -> RaftCore:
    core = make_core(1, term=1, entries=make_entries([1]))
    elect(core, granting=[2])
    core.take_commands()
    assert core.current_term == 2
    return core


def _candidate() -> RaftCore:
    core = make_core(1, term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    core.take_commands()
    assert core.current_term == 2
    return core


STEP_DOWN_EVENTS = {
    "append_entries_request": lambda core: core.receive_append_entries(
        AppendEntriesRequest(1, 7, 3, 0, 0, (), 0), token=1
    ),
    # D11: a newer-term RequestVote must also make a leader or candidate step down, even if
    # the candidate's log is too short to get the vote.
    "vote_request_stale_log": lambda core: core.receive_vote(VoteRequest(1, 7, 3, 0, 0), token=1),
    "vote_request_good_log": lambda core: core.receive_vote(VoteRequest(1, 7, 3, 9, 2), token=1),
    "append_entries_response": lambda core: core.append_entries_result(
        AppendEntriesRequest(2, core.current_term, 1, 1, 1, (), 0),
        AppendEntriesResponse(7, False),
    ),
    "vote_response": lambda core: core.vote_result(
        VoteRequest(2, core.current_term, 1, 1, 1), VoteResponse(7, False)
    ),
}


@pytest.mark.parametrize("make", [_leader, _candidate], ids=["leader", "candidate"])
@pytest.mark.parametrize("event", sorted(STEP_DOWN_EVENTS))
def test_leader_and_candidate_step_down_on_higher_term(make, event: str) -> None:
    """§5.1: "If RPC request or response contains term T > currentTerm: set currentTerm = T,
    convert to follower" — for leaders and candidates, whatever the RPC (actix bug D11)."""
    core = make()
    STEP_DOWN_EVENTS[event](core)
    commands = core.take_commands()
    assert core.role is Role.FOLLOWER
    assert core.current_term == 7
    saves = of_type(commands, SaveHardState)
    assert saves and saves[0].hard_state.current_term == 7
    assert saves[0].hard_state.voted_for is None
    assert core.voted_for == (3 if event == "vote_request_good_log" else None)
    assert core.leader_id == (3 if event == "append_entries_request" else None)


def test_stale_append_entries_rejected_with_current_term() -> None:
    """§5.1 / Figure 2 AppendEntries 1: "Reply false if term < currentTerm"; the reply
    carries the current term so the stale leader steps down; nothing changes locally."""
    core = make_core(1, term=5, voted_for=2, entries=make_entries([1, 5]))
    core.receive_append_entries(AppendEntriesRequest(1, 4, 3, 2, 4, make_entries([4], 3), 2), 3)
    commands = core.take_commands()
    assert commands == [Respond(3, AppendEntriesResponse(5, False), None, True)]
    assert (core.current_term, core.voted_for, core.leader_id) == (5, 2, None)
    assert core.log.last_index == 2
    assert core.commit_index == 0


def test_stale_vote_request_rejected_with_current_term() -> None:
    """§5.1 / Figure 2 RequestVote 1: "Reply false if term < currentTerm"."""
    core = make_core(1, term=5, entries=make_entries([1, 5]))
    core.receive_vote(VoteRequest(1, 4, 3, 10, 4), token=3)
    commands = core.take_commands()
    assert [r.value for r in responds(commands)] == [VoteResponse(5, False)]
    assert of_type(commands, SaveHardState) == []
    assert (core.current_term, core.voted_for) == (5, None)


def test_leader_rejects_stale_append_entries_and_stays_leader() -> None:
    """§5.1: a leader receiving AppendEntries from a deposed leader of an older term rejects
    it with its own term and keeps leading."""
    core = _leader()
    core.receive_append_entries(AppendEntriesRequest(1, 1, 3, 1, 1, (), 1), token=4)
    commands = core.take_commands()
    assert [r.value for r in responds(commands)] == [AppendEntriesResponse(2, False)]
    assert core.role is Role.LEADER
    assert core.current_term == 2


@pytest.mark.parametrize("pre_vote", [True, False])
def test_a_node_at_the_largest_term_never_campaigns(pre_vote: bool) -> None:
    """Terms stop at MAX_RPC_NUMBER, the largest an RPC carries (a member may send it). A
    node that took it up cannot ask for a higher one: when its timer fires, or a leader
    hands it leadership, it stays as it is and sends nothing (it raised building a
    VoteRequest it could not send, and the node stopped)."""
    core = make_core(1, config=attrs.evolve(CONFIG, pre_vote=pre_vote))
    core.receive_append_entries(AppendEntriesRequest(1, MAX_RPC_NUMBER, 2, 0, 0, (), 0), 1)
    core.take_commands()
    assert (core.current_term, core.role) == (MAX_RPC_NUMBER, Role.FOLLOWER)
    for _ in range(5 * CONFIG.election_timeout_max // 10):
        core.tick(10)
        assert of_type(core.take_commands(), Send) == []
    core.receive_timeout_now(TimeoutNowRequest(1, MAX_RPC_NUMBER, 2), 2)
    assert of_type(core.take_commands(), Send) == []
    assert (core.current_term, core.role) == (MAX_RPC_NUMBER, Role.FOLLOWER)
