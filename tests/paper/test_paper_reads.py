"""Dissertation §6.4: linearizable reads without the log (ReadIndex, leases, follower reads),
one rule per test, on the core."""

from __future__ import annotations

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    Respond,
    Send,
    elect,
    lead_when_durable,
    make_core,
    make_entries,
    of_type,
    responds,
)

from pykka_raft.core import RaftCore
from pykka_raft.core.commands import Query
from pykka_raft.core.reads import lease_ms
from pykka_raft.errors import ApplicationError, ForwardToLeader
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientRead,
    ClientReadResponse,
    Entry,
    EntryConfigChange,
    MembershipConfig,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadPolicy,
    TimeoutNowRequest,
)

STICKY = attrs.evolve(CONFIG, leader_stickiness=True)


def leader_with_commit(config: object = STICKY) -> RaftCore:
    """Node 1 leads term 2 (log 1/t1, 2/t2 blank) and has committed its blank entry."""
    core = make_core(1, term=1, entries=make_entries([1]))
    commands = elect(core)
    core.config = config  # type: ignore[assignment]
    core.log_written(core.log.last_log_id, None, leader=True)
    core.take_commands()
    for send in [c for c in commands if isinstance(c, Send)]:
        request = send.request
        if isinstance(request, AppendEntriesRequest):
            full = AppendEntriesRequest(
                request.target, core.current_term, 1, 0, 0, core.log.slice(1, 3), 0
            )
            core.append_entries_result(full, AppendEntriesResponse(core.current_term, True))
    core.take_commands()
    assert core.commit_index == core.log.last_index == 2
    return core


def heartbeats(commands: list[object]) -> list[AppendEntriesRequest]:
    return [
        c.request
        for c in commands
        if isinstance(c, Send) and isinstance(c.request, AppendEntriesRequest)
    ]


def ack(core: RaftCore, request: AppendEntriesRequest) -> None:
    core.append_entries_result(request, AppendEntriesResponse(core.current_term, True))


def queries(commands: list[object]) -> list[Query]:
    return of_type(commands, Query)  # type: ignore[arg-type]


# --- ReadIndex on the leader --------------------------------------------------------------


def test_read_index_waits_for_a_round_a_majority_acknowledged() -> None:
    """§6.4 steps 2-4: the leader records its commit index, starts a heartbeat round after
    the read arrived, and runs the query once a majority acknowledged that round."""
    core = leader_with_commit()
    core.client_read(ClientRead("q"), token=7)
    commands = core.take_commands()
    beats = heartbeats(commands)
    assert {b.target for b in beats} == {2, 3} and queries(commands) == []
    ack(core, beats[0])  # one follower plus the leader: a majority of three
    commands = core.take_commands()
    (query,) = queries(commands)
    assert query == Query(((7, "q"),), 2)  # the state through the commit index
    core.queries_answered(query, ("answer",), None)
    assert responds(core.take_commands(), 7) == [
        Respond(7, ClientReadResponse(2, "answer"), None, False)
    ]


def test_an_older_round_does_not_confirm_a_newer_read() -> None:
    """An acknowledgement of a heartbeat sent before the read arrived proves nothing about
    leadership at the read's time: the read waits for a round started after it."""
    core = leader_with_commit()
    core.client_read(ClientRead("first"), token=7)
    first = heartbeats(core.take_commands())
    core.client_read(ClientRead("second"), token=8)
    assert heartbeats(core.take_commands()) == []  # one read round at a time
    ack(core, first[0])
    commands = core.take_commands()
    assert queries(commands) == [Query(((7, "first"),), 2)]
    second = heartbeats(commands)  # the waiting read starts the next round
    assert second and second[0].round > first[0].round
    ack(core, second[0])
    assert queries(core.take_commands()) == [Query(((8, "second"),), 2)]


def test_read_waits_for_the_leaders_first_commit_in_its_term() -> None:
    """§6.4 step 1: until it committed an entry of its term, a new leader's commit index
    may be behind the cluster's."""
    core = make_core(1, term=1, entries=make_entries([1]), config=STICKY)
    elect(core)
    core.take_commands()
    core.client_read(ClientRead("q"), token=7)
    for beat in heartbeats(core.take_commands()):
        ack(core, beat)
    assert queries(core.take_commands()) == []
    core.log_written(core.log.last_log_id, None, leader=True)
    blank = AppendEntriesRequest(2, core.current_term, 1, 0, 0, core.log.slice(1, 3), 0, 1)
    ack(core, blank)
    assert [t for q in queries(core.take_commands()) for t, _ in q.reads] == [7]


def test_a_leader_that_steps_down_fails_its_waiting_reads_retryably() -> None:
    core = leader_with_commit()
    core.client_read(ClientRead("q"), token=7)
    core.take_commands()
    core.append_entries_result(
        AppendEntriesRequest(2, core.current_term, 1, 2, 2, (), 2), AppendEntriesResponse(9, False)
    )
    (respond,) = responds(core.take_commands(), 7)
    assert isinstance(respond.error, ForwardToLeader)


# --- leases -----------------------------------------------------------------------------


def acknowledged_round_at(core: RaftCore, clock: float) -> None:
    """A heartbeat round sent at ``clock`` that every follower acknowledged."""
    core.clock = clock
    core.tick(CONFIG.heartbeat_interval)
    for beat in heartbeats(core.take_commands()):
        ack(core, beat)
    core.take_commands()


def test_lease_read_is_served_at_once_within_the_lease() -> None:
    core = leader_with_commit()
    acknowledged_round_at(core, 1000.0)
    core.clock = 1000.0 + lease_ms(core) - 1
    core.client_read(ClientRead("q", ReadPolicy.LEASE), token=7)
    commands = core.take_commands()
    assert queries(commands) == [Query(((7, "q"),), 2)] and heartbeats(commands) == []


def test_lease_expires_and_the_read_takes_a_round() -> None:
    core = leader_with_commit()
    acknowledged_round_at(core, 1000.0)
    core.clock = 1000.0 + lease_ms(core) + 1
    core.client_read(ClientRead("q", ReadPolicy.LEASE), token=7)
    commands = core.take_commands()
    assert queries(commands) == [] and heartbeats(commands)


def test_lease_is_shorter_than_election_timeout_min_by_the_drift_margin() -> None:
    """A voter counts its refusal in ticks, so it may end one tick early: it refuses for
    at least min - tick of its own clock. With clock rates within 1 ± d of real time,
    that is at least (min - tick)/(1+d) of real time; the lease is
    (min - tick)(1-d)/(1+d) on the leader's clock, which is at most that much real time."""
    core = make_core(1, config=attrs.evolve(STICKY, max_clock_drift=0.1))
    tick = CONFIG.tick_interval
    assert tick > 0
    assert lease_ms(core) == (CONFIG.election_timeout_min - tick) * 0.9 / 1.1
    fastest_leader_real = lease_ms(core) / (1 - 0.1)
    slowest_voter_real = (CONFIG.election_timeout_min - tick) / (1 + 0.1)
    assert fastest_leader_real <= slowest_voter_real + 1e-9


def test_no_lease_once_a_timeout_now_was_sent() -> None:
    """§3.10: the transfer's target campaigns with voters' stickiness set aside, so the
    old leader cannot count on it any more: lease reads take a round for the rest of the
    term, even if the transfer is abandoned."""
    core = leader_with_commit()
    acknowledged_round_at(core, 1000.0)
    core.clock = 1000.0 + 1
    core.transfer_leadership(2, token=5)
    nows = [
        c.request
        for c in core.take_commands()
        if isinstance(c, Send) and isinstance(c.request, TimeoutNowRequest)
    ]
    assert nows == [TimeoutNowRequest(2, core.current_term, 1)]
    core.client_read(ClientRead("q", ReadPolicy.LEASE), token=7)
    commands = core.take_commands()
    assert queries(commands) == [] and heartbeats(commands)


def test_a_lone_voter_answers_read_index_at_once() -> None:
    """With a single voter, its own acknowledgement is the majority: a round confirms as
    it starts, and the read needs no write to release it."""
    core = make_core(1, members=(1,), term=1, entries=make_entries([1]), config=STICKY)
    core.tick(CONFIG.election_timeout_max + CONFIG.tick_interval)
    lead_when_durable(core, core.take_commands())
    core.log_written(core.log.last_log_id, None, leader=True)
    core.take_commands()
    assert core.leader is not None and core.commit_index == core.log.last_index
    core.client_read(ClientRead("q", ReadPolicy.READ_INDEX), token=7)
    assert queries(core.take_commands()) == [Query(((7, "q"),), 2)]


def test_without_stickiness_a_lease_read_takes_a_round() -> None:
    core = leader_with_commit(attrs.evolve(CONFIG, leader_stickiness=False))
    core.client_read(ClientRead("q", ReadPolicy.LEASE), token=7)
    commands = core.take_commands()
    assert queries(commands) == [] and heartbeats(commands)


# --- follower reads -----------------------------------------------------------------------


def follower() -> RaftCore:
    core = make_core(2, term=2, entries=make_entries([1, 2]))
    request = AppendEntriesRequest(2, 2, 1, 2, 2, (), 1)
    core.receive_append_entries(request, token=99)
    core.take_commands()
    return core


def test_follower_asks_the_leader_and_reads_once_applied_that_far() -> None:
    core = follower()
    core.client_read(ClientRead("q"), token=7)
    (send,) = of_type(core.take_commands(), Send)
    assert send.request == ReadIndexRequest(1, 2, 2)
    core.read_index_result(send.request, ReadIndexResponse(2, 2))
    assert queries(core.take_commands()) == []  # it has applied through 1 only
    core.receive_append_entries(AppendEntriesRequest(2, 2, 1, 2, 2, (), 2), token=98)
    assert queries(core.take_commands()) == [Query(((7, "q"),), 2)]


def test_follower_read_fails_retryably_when_the_leader_cannot_answer() -> None:
    core = follower()
    core.client_read(ClientRead("q"), token=7)
    (send,) = of_type(core.take_commands(), Send)
    core.read_index_result(send.request, ReadIndexResponse(2, None))
    (respond,) = responds(core.take_commands(), 7)
    assert isinstance(respond.error, ForwardToLeader)


def test_follower_read_fails_when_the_leader_never_answers() -> None:
    core = follower()
    core.client_read(ClientRead("q"), token=7)
    core.take_commands()
    core.tick(CONFIG.rpc_timeout)
    (respond,) = responds(core.take_commands(), 7)
    assert isinstance(respond.error, ForwardToLeader)


def test_follower_read_fails_when_the_node_never_catches_up_to_its_index() -> None:
    """A node given a read index it never applies through (it no longer learns the commit
    index: cut off, or removed from the cluster, which its leader stops telling) answers
    the read retryably after ``election_timeout_max`` instead of holding it forever."""
    core = follower()
    core.client_read(ClientRead("q"), token=7)
    (send,) = of_type(core.take_commands(), Send)
    core.read_index_result(send.request, ReadIndexResponse(2, 5))  # beyond what it holds
    core.tick(CONFIG.election_timeout_max - 1)
    assert responds(core.take_commands(), 7) == []
    core.tick(1)
    (respond,) = responds(core.take_commands(), 7)
    assert isinstance(respond.error, ForwardToLeader) and "read index 5" in str(respond.error)
    assert core.reads.ready == []


def test_leader_answers_a_read_index_after_a_round() -> None:
    core = leader_with_commit()
    core.receive_read_index(ReadIndexRequest(1, core.current_term, 3), token=7)
    commands = core.take_commands()
    assert responds(commands, 7) == []
    ack(core, heartbeats(commands)[0])
    (respond,) = responds(core.take_commands(), 7)
    assert respond.value == ReadIndexResponse(core.current_term, 2)


def test_a_non_leader_refuses_a_read_index() -> None:
    core = follower()
    core.receive_read_index(ReadIndexRequest(2, 2, 3), token=7)
    (respond,) = responds(core.take_commands(), 7)
    assert respond.value == ReadIndexResponse(2, None)


# --- stale reads and query errors ---------------------------------------------------------


def test_stale_read_is_local_and_immediate() -> None:
    core = follower()
    core.client_read(ClientRead("q", ReadPolicy.STALE), token=7)
    assert queries(core.take_commands()) == [Query(((7, "q"),), 1)]
    core.queries_answered(Query(((7, "q"),), 1), (ValueError("not a query"),), None)
    (respond,) = responds(core.take_commands(), 7)
    assert isinstance(respond.error, ApplicationError)
    assert isinstance(respond.error.error, ValueError)
    assert "rejected the query" in str(respond.error)


def test_a_state_machine_own_application_error_is_not_wrapped_again() -> None:
    core = follower()
    core.client_read(ClientRead("q", ReadPolicy.STALE), token=7)
    core.take_commands()
    refusal = ApplicationError(KeyError("k"), "query")
    core.queries_answered(Query(((7, "q"),), 1), (refusal,), None)
    (respond,) = responds(core.take_commands(), 7)
    assert respond.error is refusal


# --- while the membership is joint ---------------------------------------------------------

JOINT = MembershipConfig(members=(1, 2, 3), members_after_consensus=(3, 4, 5))


def _joint_leader_with_commit() -> RaftCore:
    """Node 1 (a voter of C_old only) leads term 2 under C_old,new and committed its blank.

    Its own write of the blank is still in flight (nodes 2 and 3 make the C_old majority),
    so the C_new entry that the commit of the joint one calls for waits in its proposals:
    the membership in effect stays joint."""
    core = make_core(1, (1, 2, 3), term=1, entries=(Entry(1, 1, EntryConfigChange(JOINT)),))
    elect(core, granting=[2, 4, 5])
    for peer in (2, 3, 4, 5):
        full = AppendEntriesRequest(peer, 2, 1, 0, 0, core.log.slice(1, 3), 0)
        core.append_entries_result(full, AppendEntriesResponse(2, True))
    core.take_commands()
    assert core.commit_index == 2
    assert core.membership == JOINT and core.log.last_index == 2
    return core


def _beats(commands: list[object]) -> dict[int, AppendEntriesRequest]:
    return {
        c.request.target: c.request
        for c in commands
        if isinstance(c, Send) and isinstance(c.request, AppendEntriesRequest)
    }


@pytest.mark.parametrize(
    ("partial", "completing"),
    [
        ((4, 5), 2),  # a majority of C_new, of C_old only the leader
        ((2, 3), 4),  # a majority of C_old, of C_new only node 3
    ],
)
def test_joint_read_round_needs_a_majority_of_both_configurations(
    partial: tuple[int, ...], completing: int
) -> None:
    """§6 with dissertation §6.4: while joint, leadership for a ReadIndex read is confirmed
    only by a round that a majority of C_old *and* a majority of C_new acknowledged (a
    later leader may be elected by either kind of majority the round did not reach)."""
    core = _joint_leader_with_commit()
    core.client_read(ClientRead("q"), token=7)
    beats = _beats(core.take_commands())
    assert sorted(beats) == [2, 3, 4, 5]
    for peer in partial:
        core.append_entries_result(beats[peer], AppendEntriesResponse(2, True))
    assert of_type(core.take_commands(), Query) == [], "confirmed by one configuration only"
    core.append_entries_result(beats[completing], AppendEntriesResponse(2, True))
    assert of_type(core.take_commands(), Query) == [Query(((7, "q"),), 2)]
