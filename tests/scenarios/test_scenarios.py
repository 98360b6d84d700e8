"""Scripted scenarios from the Raft literature, replayed step by step on ``RaftCore``.

Each scenario is a script over :mod:`scenario_net`: the test decides which message is
delivered, dropped, held and delivered late, or duplicated, when each node's storage
completes, and when nodes crash and restart. Everything is deterministic and runs in virtual
time. Every step is followed by the harness's safety checks (one leader per term, log
matching, committed entries never lost, state machine safety, durable votes and acks, the
client oracle), and each scenario ends with :meth:`Cluster.check_final`.

Each scenario is written as a ``run_*`` function that takes the core class: the tests run it
with :class:`RaftCore`, and ``test_broken_core_is_caught`` runs it again with a core that
breaks the rule the scenario is about, to show that the scenario (its harness checks) would
catch the bug. ``strict=False`` skips the scenario's own expectations about the protocol's
outcome, so that the broken run goes on until a harness invariant breaks.

References: Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", 2014 (cited as §x.y and Figures 2, 7 and 8); Ongaro, "Consensus:
Bridging Theory and Practice", PhD thesis, 2014 (cited as "thesis").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest
from scenario_net import Cluster, ScenarioViolation, entries

from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import DeleteLogsFrom, WriteLog
from pykka_raft.core.quorum import has_quorum, joint_quorum_index
from pykka_raft.errors import ForwardToLeader
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    VoteRequest,
    VoteResponse,
)

Factory = Callable[..., RaftCore]


class Expect:
    """The scenario's own expectations; ``strict=False`` (negative runs) skips them."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict

    def __call__(self, condition: bool, message: str = "") -> None:
        if self.strict:
            assert condition, message


def _term1_cluster(n: int, factory: Factory, skip: tuple[str, ...] = ()) -> Cluster:
    """``n`` nodes in term 1 that all hold and applied entry 1 of term 1."""
    return Cluster(
        n,
        terms=1,
        logs={i: entries([1]) for i in range(1, n + 1)},
        applied=1,
        factory=factory,
        skip_checks=skip,
    )


def _exchange(c: Cluster, leader: int, follower: int) -> None:
    """Deliver everything between ``leader`` and ``follower`` until they are quiet."""
    c.flush(among=(leader, follower))


# --- Scenario 1: Figure 8 -----------------------------------------------------------------


def run_figure8(
    factory: Factory = RaftCore,
    *,
    strict: bool = True,
    commit_in_term4: bool = False,
    skip: tuple[str, ...] = (),
) -> Cluster:
    """Figure 8 of the paper, S1..S5 = nodes 1..5, every node starting with entry 1/t1.

    A new leader's §8 blank entry plays the role of "the entry of its term": the blank of
    term 2 is the paper's entry 2/t2, the blank of term 3 is S5's entry 2/t3 and the blank
    of term 4 is S1's entry 3/t4, so the indexes and terms are exactly the figure's.
    """
    ok = Expect(strict)
    c = _term1_cluster(5, factory, skip)

    # (a) S1 leads term 2 and replicates its entry 2/t2 to S2 only.
    c.elect(1, voters=[2, 3])
    assert c[1].current_term == 2
    _exchange(c, 1, 2)
    c.drop_where(src=1)  # the probes to S3, S4 and S5 are lost
    assert [c.log_terms(i) for i in (1, 2, 3, 4, 5)] == [[1, 2], [1, 2], [1], [1], [1]]

    # (b) S1 crashes; S5 leads term 3 with the votes of S3, S4 and itself, and accepts a
    # different entry at index 2. (Its first timeout, term 2, finds S3 already voted.)
    c.crash(1)
    c.timeout(5)
    c.drop_where(src=5)
    c.elect(5, voters=[3, 4])
    assert c[5].current_term == 3
    assert c.log_terms(5) == [1, 3]
    c.drop_where(src=5)

    # (c) S5 crashes; S1 restarts and leads term 4 (votes of S2 and S3), and continues
    # replicating: entry 2/t2 reaches S3, a majority. S1's own entry 3/t4 is not durable
    # yet, so it replicates nothing of term 4.
    c.crash(5)
    c.restart(1)
    c.timeout(1)  # term 3: S3 and S4 voted for S5 in term 3; lost
    c.drop_where(src=1)
    c.timeout(1)
    c.hold_storage(1)
    c.campaign(1, voters=[2, 3])
    assert c[1].role is Role.LEADER and c[1].current_term == 4
    assert c[1].log.last_log_id.term == 4 and c.log_terms(1) == [1, 2]  # 3/t4 in memory only
    _exchange(c, 1, 2)
    _exchange(c, 1, 3)
    c.drop_where(src=1, dst=4)
    c.drop_where(src=1, dst=5)
    assert [c.log_terms(i) for i in (1, 2, 3)] == [[1, 2]] * 3, "2/t2 is on a majority"
    assert c[1].leader.progress[2].match_index == c[1].leader.progress[3].match_index == 2
    # §5.4.2: a leader never commits an entry of an earlier term by counting replicas.
    ok(c[1].commit_index == 1, f"S1 committed {c[1].commit_index} by counting replicas")
    ok(2 not in c.committed, "entry 2/t2 must not be committed yet")

    if commit_in_term4:
        # (e) S1 replicates its entry 3/t4 to a majority before crashing: 3/t4 commits, and
        # 2/t2 with it (indirectly, §5.4.2). S5 can then never be elected.
        c.release_storage(1)
        to2, to3 = c.one(AppendEntriesRequest, src=1, dst=2), c.one(AppendEntriesRequest, dst=3)
        assert [e.log_id.term for e in to2.body.entries] == [4]
        c.deliver(to2)
        c.deliver(*c.answers_to(to2))
        ok(c[1].commit_index == 1, "S1 and S2 are not a majority of five")
        c.deliver(to3)
        c.deliver(*c.answers_to(to3))
        ok(c[1].commit_index == 3, "3/t4 on S1, S2, S3 commits, with 2/t2 before it")
        assert c.committed[2].term == 2 and c.committed[3].term == 4
        c.crash(1)
        c.restart(5)
        for _ in range(2):  # term 4 (S2, S3 voted for S1), then term 5 (their logs are newer)
            c.timeout(5)
            term = c[5].current_term
            answers = c.campaign(5, voters=[2, 3, 4])
            granted = sorted(i for i, a in answers.items() if a.vote_granted)
            ok(granted == [4], f"term {term}: only S4 may vote for S5, got {granted}")
            ok(c[5].role is Role.CANDIDATE, f"S5 must not win term {term}")
        # S2 (which holds everything committed) is elected and repairs S5's log.
        c.elect(2, voters=[3, 4])
        c.flush(among=(2, 3, 4, 5))
        c.restart(1)
        c.heartbeat(2)
        c.flush()
        for i in range(1, 6):
            assert c.log_terms(i) == [1, 2, 4, c[2].current_term], f"S{i}: {c.log_terms(i)}"
    else:
        # (d) S1 crashes before its term-4 entry is durable anywhere; S5 restarts and is
        # elected in term 5 with the votes of S2, S3 and S4 (its last entry 2/t3 is newer
        # than their 2/t2), then overwrites 2/t2 everywhere: allowed, since it never
        # committed.
        c.crash(1)
        assert c.log_terms(1) == [1, 2], "S1's 3/t4 was never durable"
        c.restart(5)
        c.timeout(5)  # term 4: S2 and S3 voted for S1 in term 4; lost
        c.drop_where(src=5)
        c.elect(5, voters=[2, 3, 4])
        assert c[5].current_term == 5
        c.flush(among=(2, 3, 4, 5))
        for i in (2, 3):
            assert DeleteLogsFrom(2) in c.completed(i, DeleteLogsFrom), f"S{i} keeps 2/t2"
        c.restart(1)
        c.heartbeat(5)
        c.flush()
        for i in range(1, 6):
            assert c.log_terms(i) == [1, 3, 5], f"S{i}: {c.log_terms(i)}"
        assert c.committed[2].term == 3 and c[5].commit_index == 3
    c.check_final()
    return c


def test_figure8_previous_term_entry_is_not_committed_by_counting() -> None:
    """Raft paper §5.4.2, Figure 8 (a)-(d): S1, leader of term 4, has replicated entry 2 of
    term 2 to a majority (S1, S2, S3) but must not commit it; S1 then crashes, S5 is
    elected in term 5 and overwrites entry 2 on every node, which is safe precisely
    because it was never committed."""
    run_figure8()


def test_figure8_entry_of_current_term_commits_the_earlier_one() -> None:
    """Raft paper §5.4.2, Figure 8 (e): once S1's entry of term 4 is on a majority, it and
    entry 2/t2 before it commit (not one step before: S1 + S2 is not enough), and S5 can no
    longer be elected: S2 and S3 refuse it in terms 4 and 5 (§5.4.1)."""
    run_figure8(commit_in_term4=True)


# --- Scenario 2: a leader partitioned in the minority -----------------------------------


def _crossing(side: set[int]) -> Callable[[Any], bool]:
    """Messages between ``side`` and the rest of the cluster."""
    return lambda m: (m.src in side) != (m.dst in side)


def _leader_of_term2(factory: Factory, skip: tuple[str, ...]) -> Cluster:
    """Five nodes; S1 leads term 2 and every node holds and knows committed 1/t1, 2/t2
    (blank) and 3/t2 (a client write)."""
    c = _term1_cluster(5, factory, skip)
    c.elect(1, voters=[2, 3, 4, 5])
    c.flush()
    w0 = c.write(1, "w0")
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert w0.outcome == "committed" and w0.index == 3
    assert all(c[i].commit_index == 3 for i in range(1, 6))
    return c


def _forwarded_to(write: Any, leader: int) -> bool:
    return (
        write.outcome == "forward"
        and isinstance(write.error, ForwardToLeader)
        and write.error.leader_id == leader
        and write.error.payload == write.payload
    )


def run_minority_leader(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """A leader cut off with a minority keeps accepting writes it cannot commit."""
    ok = Expect(strict)
    c = _leader_of_term2(factory, skip)
    minority = {1, 2}

    # The partition {S1, S2} | {S3, S4, S5}: S1 accepts w2 and w3 and replicates them to S2;
    # its AppendEntries to the majority are lost.
    w2, w3 = c.write(1, "w2"), c.write(1, "w3")
    c.flush(among=minority)
    c.drop_where(where=_crossing(minority))
    assert c[1].role is Role.LEADER and c.log_terms(1) == c.log_terms(2) == [1, 2, 2, 2, 2]
    ok(c[1].commit_index == 3, "S1 and S2 are no majority: nothing commits")
    assert w2.outcome == w3.outcome == "pending"

    # The majority elects S3 in term 3 and commits its blank (4/t3) and a write (5/t3).
    # S3's probes to S1 and S2 are held by the partition.
    c.elect(3, voters=[4, 5])
    c.flush(among=(3, 4, 5))
    w4 = c.write(3, "w4")
    c.flush(among=(3, 4, 5))
    assert w4.outcome == "committed" and w4.index == 5
    assert c.log_terms(3) == [1, 2, 2, 3, 3]

    # S1 still believes it leads term 2 and keeps accepting writes.
    w5 = c.write(1, "w5")
    c.flush(among=minority)
    c.drop_where(where=lambda m: m.src in minority and m.dst not in minority)
    assert c[1].role is Role.LEADER and c[1].current_term == 2
    ok(c[1].commit_index == 3, "the minority leader commits nothing")
    assert [w.outcome for w in (w2, w3, w5)] == ["pending"] * 3

    # The partition heals. S3's held probe (term 3, no entries, leader_commit 3) reaches S1
    # first: S1 steps down, but stepping down decides none of its writes.
    probe = c.one(AppendEntriesRequest, src=3, dst=1)
    c.deliver(probe)
    assert c[1].role is Role.FOLLOWER and c[1].current_term == 3 and c[1].leader_id == 3
    ok([w.outcome for w in (w2, w3, w5)] == ["pending"] * 3, "stepping down decides nothing")
    # S3 then sends 4/t3, 5/t3 with leader_commit 5: S1 truncates its 4..6/t2 and learns
    # that different entries are committed at 4 and 5: only now are w2, w3 and w5 (a term-2
    # entry can never commit after a committed term-3 one) answered ForwardToLeader(S3).
    c.deliver(*c.answers_to(probe))
    catch_up = c.one(AppendEntriesRequest, src=3, dst=1)
    assert [e.term for e in catch_up.body.entries] == [3, 3]
    assert catch_up.body.leader_commit == 5
    c.deliver(catch_up)
    assert c.completed(1, DeleteLogsFrom)[-1] == DeleteLogsFrom(4)
    ok(all(_forwarded_to(w, 3) for w in (w2, w3, w5)), f"{[w.outcome for w in (w2, w3, w5)]}")
    c.flush()
    c.heartbeat(3)
    c.flush()
    for i in range(1, 6):
        assert c.log_terms(i) == [1, 2, 2, 3, 3], f"S{i}: {c.log_terms(i)}"
    c.check_final()
    return c


def test_leader_in_minority_partition_cannot_commit_and_steps_down() -> None:
    """Raft paper §5.1, §5.3 and §8 (and thesis chapter 6, client interaction): a leader
    cut off in a minority keeps accepting writes it cannot commit; the majority elects a new
    leader that commits; when the partition heals, the old leader steps down on the higher term,
    its uncommitted entries are truncated, and its clients learn that their writes failed
    (ForwardToLeader naming the new leader) only once a different entry is committed at
    their index, not when it steps down."""
    run_minority_leader()


def test_minority_leader_writes_stay_pending_after_truncation_until_commit() -> None:
    """Raft paper §5.3 / §5.4.2: truncating an entry does not prove that it failed (another
    node may hold it and commit it later). Here the old leader S1 rejoins while the new
    leader S3 (term 3) has not committed anything yet: S1's entries are truncated, but its
    clients are answered only when S1 learns that S3's different entry committed there."""
    c = _leader_of_term2(RaftCore, ())
    minority = {1, 2}
    w2, w3 = c.write(1, "w2"), c.write(1, "w3")
    c.flush(among=minority)
    c.drop_where(where=_crossing(minority))

    # S3 wins term 3 with S4 and S5, writes its blank 4/t3, but replicates it to nobody
    # yet: its probes to S4 and S5 are acknowledged, its entries still in flight.
    c.elect(3, voters=[4, 5])
    for i in (4, 5):
        probe = c.one(AppendEntriesRequest, src=3, dst=i)
        c.deliver(probe)
        c.deliver(*c.answers_to(probe))
    assert c[3].commit_index == 3

    # The partition heals for S1: S3's probe, then 4/t3 (leader_commit 3) reach it.
    _exchange(c, 3, 1)
    assert c.log_terms(1) == [1, 2, 2, 3]
    assert DeleteLogsFrom(4) in c.completed(1, DeleteLogsFrom)
    assert c[1].commit_index == 3
    assert w2.outcome == w3.outcome == "pending", "truncation alone decides nothing"
    assert c[3].commit_index == 3, "S3 and S1 alone are no majority"

    # S3 commits 4/t3 once S4 holds it too (S3, S1 and S4 are a majority).
    c.flush(among=(3, 4))
    assert c[3].commit_index == 4
    assert w2.outcome == w3.outcome == "pending", "S1 has not heard of the commit yet"
    c.heartbeat(3)
    c.deliver(c.one(AppendEntriesRequest, src=3, dst=1))
    assert c[1].commit_index == 4
    assert _forwarded_to(w2, 3), "a different entry (4/t3) committed at w2's index"
    assert _forwarded_to(w3, 3), "a term-2 entry can never commit after 4/t3"
    c.flush()
    c.check_final()


def run_old_leader_write_survives(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """The deposed leader's uncommitted write is committed by the next leader."""
    ok = Expect(strict)
    c = _leader_of_term2(factory, skip)
    # S1 is cut off alone after it replicated w2 (4/t2) to S2 only.
    w2 = c.write(1, "w2")
    _exchange(c, 1, 2)
    c.drop_where(where=_crossing({1}))
    assert c.log_terms(2) == [1, 2, 2, 2]
    # S2, whose log is the most up to date, wins term 3 with S3 and S4 and commits its blank
    # 5/t3, and so w2's 4/t2 indirectly.
    c.elect(2, voters=[3, 4])
    c.flush(among=(2, 3, 4, 5))
    assert c[2].commit_index == 5 and c.committed[4].payload == w2.payload.entry
    assert c[1].role is Role.LEADER and w2.outcome == "pending"
    # S1 rejoins: S2's held probe makes it step down (still undecided), then the commit
    # index reaches it: w2 is answered "committed" by S1, now a follower.
    probe = c.one(AppendEntriesRequest, src=2, dst=1)
    c.deliver(probe)
    assert c[1].role is Role.FOLLOWER
    ok(w2.outcome == "pending", f"w2 answered {w2.outcome} when S1 stepped down")
    c.flush()
    ok(w2.outcome == "committed" and w2.index == 4, f"w2: {w2.outcome} at {w2.index}")
    c.check_final()
    return c


def test_deposed_leader_write_can_still_commit() -> None:
    """Raft paper §5.4.2 / Figure 8 and thesis chapter 6: an entry of a deposed leader is not
    lost just because its leader lost office; the next leader may hold it and commit it.
    So the old leader must not fail the client on stepping down: here S1 answers its
    client "committed" after it became a follower."""
    run_old_leader_write_survives()


def run_truncated_write_restored(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """The deposed leader's entry is truncated on it, then comes back and commits."""
    ok = Expect(strict)
    c = _leader_of_term2(factory, skip)
    w2 = c.write(1, "w2")  # 4/t2, replicated to S2 only
    _exchange(c, 1, 2)
    c.drop_where(src=1)
    # S3 wins term 3 with S4 and S5; its blank 4/t3 reaches S1 only, replacing S1's 4/t2.
    c.elect(3, voters=[4, 5])
    _exchange(c, 3, 1)
    c.drop_where(src=3)
    assert c.log_terms(1) == [1, 2, 2, 3] and DeleteLogsFrom(4) in c.completed(1, DeleteLogsFrom)
    ok(w2.outcome == "pending", f"w2 answered {w2.outcome} when its entry was truncated")
    # S3 crashes before 4/t3 commits. S2, which still holds 4/t2, wins term 4 with S4 and
    # S5 (S1 refuses: its 4/t3 is newer) and commits its blank 5/t4, and 4/t2 with it.
    c.crash(3)
    c.timeout(2)  # term 3: S4 and S5 voted for S3; lost
    c.drop_where(src=2)
    c.timeout(2)
    answers = c.campaign(2, voters=[1, 4, 5])
    assert {i: a.vote_granted for i, a in answers.items()} == {1: False, 4: True, 5: True}
    c.flush(among=(2, 4, 5))
    assert c[2].commit_index == 5 and c.committed[4].payload == w2.payload.entry
    # S2 repairs S1: 4/t3 goes, 4/t2 comes back; when S1 learns it is committed, it answers
    # its client "committed", although it truncated that very entry before.
    c.flush()
    ok(w2.outcome == "committed" and w2.index == 4, f"w2: {w2.outcome} at {w2.index}")
    c.restart(3)
    c.heartbeat(2)
    c.flush()
    assert all(c.log_terms(i) == [1, 2, 2, 2, 4] for i in range(1, 6))
    c.check_final()
    return c


def test_truncated_write_of_deposed_leader_can_still_commit() -> None:
    """Raft paper §5.3/§5.4.2: a deleted uncommitted entry may still exist on other servers
    and be committed by a later leader. S1's entry 4/t2 is replaced on S1 by S3's 4/t3,
    S3 crashes, and S2, which still holds 4/t2, is elected and commits it. So neither the
    step-down nor the truncation may fail S1's client: S1 answers "committed" once it
    learns that 4/t2 committed."""
    run_truncated_write_restored()


# --- Scenario 3: a paused ("zombie") leader -----------------------------------------------


def run_zombie_leader(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """A leader pauses; its messages of the old term arrive after a new leader committed."""
    ok = Expect(strict)
    c = _leader_of_term2(factory, skip)

    # S1 accepts w2 (4/t2) and sends it out; S2 stores it and acknowledges, but the ack is
    # held, and so are S1's AppendEntries to S3, S4 and S5. Then S1 pauses (a GC pause, a
    # frozen VM): the script simply stops driving it.
    w2 = c.write(1, "w2")
    to2 = c.one(AppendEntriesRequest, src=1, dst=2)
    c.deliver(to2)
    late_ack = c.one(AppendEntriesResponse, src=2, dst=1)
    late_requests = c.msgs(AppendEntriesRequest, src=1)
    assert sorted(m.dst for m in late_requests) == [3, 4, 5]

    # S3 wins term 3 with S4 and S5 (its VoteRequest to S1 is held too), commits its blank
    # 4/t3 and w3 (5/t3), and repairs S2, whose uncommitted 4/t2 is replaced.
    c.elect(3, voters=[4, 5], drop_others=False)
    late_vote_request = c.one(VoteRequest, src=3, dst=1)
    c.drop(c.one(VoteRequest, src=3, dst=2))
    c.flush(among=(3, 4, 5))
    w3 = c.write(3, "w3")
    c.flush(among=(2, 3, 4, 5))
    c.heartbeat(3)
    c.flush(among=(2, 3, 4, 5))
    assert w3.outcome == "committed" and w3.index == 5
    new_logs = {i: c.log(i) for i in (2, 3, 4, 5)}
    assert all(c.log_terms(i) == [1, 2, 2, 3, 3] for i in new_logs)
    commits = {i: c[i].commit_index for i in new_logs}
    assert commits == {2: 5, 3: 5, 4: 5, 5: 5}

    # The zombie wakes up, still leader of term 2: it accepts w4 (5/t2) and heartbeats.
    w4 = c.write(1, "w4")
    c.heartbeat(1)
    assert c[1].role is Role.LEADER and c[1].current_term == 2

    # Its late requests of term 2 (the held ones and the new ones) reach the others: each
    # rejects them with term 3 and changes nothing.
    zombie_requests = c.msgs(AppendEntriesRequest, src=1)
    assert set(late_requests) < set(zombie_requests)
    for msg in zombie_requests:
        c.deliver(msg)
        (answer,) = c.answers_to(msg)
        ok(answer.body == AppendEntriesResponse(3, False), f"{msg} answered {answer}")
    ok(all(c.log(i) == log for i, log in new_logs.items()), "a stale leader changed a log")
    ok(all(c[i].commit_index == 5 for i in new_logs), "a stale leader moved a commit index")
    ok(c[3].role is Role.LEADER and c[3].current_term == 3, "S3 must still lead term 3")

    # The late ack of S2 (term 2, for 4/t2) reaches the zombie before any rejection does:
    # S1 + S2 is no majority, so nothing commits on the zombie either.
    c.deliver(late_ack)
    ok(c[1].commit_index == 3, f"the zombie committed {c[1].commit_index}")
    assert w2.outcome == w4.outcome == "pending"

    # The rejections reach the zombie: it steps down to term 3.
    c.deliver(*c.msgs(AppendEntriesResponse, dst=1))
    assert c[1].role is Role.FOLLOWER and c[1].current_term == 3

    # The zombie now handles S3's held VoteRequest of term 3 and denies it (its log 5/t2 is
    # newer than S3's request, 3/t2); the late answer reaches S3, which already leads term
    # 3, and has no effect.
    c.deliver(late_vote_request)
    (late_answer,) = c.answers_to(late_vote_request)
    assert late_answer.body == VoteResponse(3, False)
    c.deliver(late_answer)
    ok(c[3].role is Role.LEADER and c[3].current_term == 3, "a late vote answer deposed S3")

    # S3 brings the zombie's log in line: w2 and w4 fail, nothing committed was lost.
    c.heartbeat(3)
    c.flush()
    c.heartbeat(3)
    c.flush()
    assert all(c.log_terms(i) == [1, 2, 2, 3, 3] for i in range(1, 6))
    assert _forwarded_to(w2, 3) and _forwarded_to(w4, 3)
    c.check_final()
    return c


def test_zombie_leader_messages_arrive_late() -> None:
    """Raft paper §5.1 ("if a server receives a request with a stale term number, it rejects
    the request"; "if a leader discovers that its term is out of date, it immediately reverts
    to follower state") and §5.2/§5.3, with a leader that pauses instead of crashing: it freezes
    after sending entries; a new leader is elected and commits. When the zombie's old-term
    AppendEntries arrive late (and its new ones after it wakes up), every follower rejects
    them with the higher term and changes nothing; a late ack to the zombie does not let
    it commit; its late vote answer to the new leader changes nothing; committed entries
    survive and the zombie's writes fail."""
    run_zombie_leader()


# --- Scenario 4: stale AppendEntries delivered after newer ones ---------------------------


def run_reordered_appends(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """S2 gets a long AppendEntries, then older shorter ones and duplicates."""
    ok = Expect(strict)
    c = _term1_cluster(3, factory, skip)
    c.elect(1, voters=[2, 3])
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert all(c[i].commit_index == 2 for i in (1, 2, 3))

    # w1 (3/t2) and w2 (4/t2) are pipelined to S2 in two requests, both held; S3 gets them
    # at once, so both commit.
    w1 = c.write(1, "w1")
    w2 = c.write(1, "w2")
    short_old, second_old = c.msgs(AppendEntriesRequest, src=1, dst=2)
    assert [e.index for e in short_old.body.entries] == [3]
    assert [e.index for e in second_old.body.entries] == [4]
    c.flush(among=(1, 3))
    assert w1.outcome == w2.outcome == "committed" and c[1].commit_index == 4

    # No answer from S2 within rpc_timeout: S1 probes again from S2's match index and sends
    # the longer request (3..4, leader_commit 4), plus a heartbeat.
    c.tick(1, 150)
    old = (short_old, second_old)
    (long_new,) = c.msgs(
        AppendEntriesRequest, src=1, dst=2, where=lambda m: bool(m.body.entries) and m not in old
    )
    assert long_new.body.prev_log_index == 2 and long_new.body.last_index == 4
    assert long_new.body.leader_commit == 4

    # Delivered newest first: S2 takes 3..4 and commits 4.
    long_dup = c.duplicate(long_new)
    c.deliver(long_new)
    assert c.log_terms(2) == [1, 2, 2, 2] and c[2].commit_index == 4
    writes_before = len(c.completed(2, WriteLog))
    # Then the old, shorter one (3 only, leader_commit 2), twice, and the other old one:
    # nothing is truncated, nothing rewritten, the commit index does not go back.
    short_dup = c.duplicate(short_old)
    for msg in (short_old, short_dup, second_old, long_dup):
        c.deliver(msg)
        ok(c.log_terms(2) == [1, 2, 2, 2], f"S2 log after {msg}: {c.log_terms(2)}")
        ok(c[2].commit_index == 4, f"S2 commit index went back to {c[2].commit_index}")
    ok(c.completed(2, DeleteLogsFrom) == [], "S2 truncated its log")
    ok(len(c.completed(2, WriteLog)) == writes_before, "S2 rewrote entries it had")

    # Every answer reaches S1, in reverse order: its view of S2 never goes backwards.
    answers = c.msgs(AppendEntriesResponse, src=2, dst=1)
    assert answers and all(a.body.success for a in answers)
    for answer in reversed(answers):
        c.deliver(answer)
        assert c[1].leader.progress[2].match_index == 4
    c.flush()
    w3 = c.write(1, "w3")
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert w3.outcome == "committed" and all(c.log_terms(i) == [1, 2, 2, 2, 2] for i in (1, 2, 3))
    assert all(c[i].commit_index == 5 for i in (1, 2, 3))
    c.check_final()
    return c


def test_stale_append_entries_after_newer_ones() -> None:
    """Raft paper Figure 2, AppendEntries receiver step 3 ("if an existing entry conflicts
    with a new one ... delete the existing entry and all that follow it": only a conflict
    truncates) and §5.5 ("Raft RPCs are idempotent"; thesis §3.7), here with requests
    reordered and duplicated by the network: an older, shorter AppendEntries delivered after a
    longer one must not truncate the follower's log, the follower's commit index never moves
    backwards, and duplicates change nothing."""
    run_reordered_appends()


# --- Scenario 5: votes lost or duplicated -------------------------------------------------


def run_lost_and_duplicated_votes(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """S1 needs 3 votes of 5; it gets one real grant, delivered several times."""
    ok = Expect(strict)
    c = _term1_cluster(5, factory, skip)

    # Term 2: S1's request to S2 is duplicated, and so is S2's grant (one more copy of the
    # grant is held back for later). Its requests to S3, S4 and S5 are lost.
    c.timeout(1)
    assert c[1].current_term == 2
    to2 = c.one(VoteRequest, src=1, dst=2)
    to2_again = c.duplicate(to2)
    c.deliver(to2)
    grant = c.one(VoteResponse, src=2, dst=1)
    assert grant.body == VoteResponse(2, True)
    copy, late_copy = c.duplicate(grant), c.duplicate(grant)
    c.deliver(grant, copy)
    c.deliver(to2_again)
    c.deliver(*c.msgs(VoteResponse, src=2, dst=1, where=lambda m: m is not late_copy))
    c.drop_where(VoteRequest, src=1)
    ok(c[1].role is Role.CANDIDATE, "one grant, counted more than once, made S1 leader")
    ok(c[1].election.votes_granted == {1, 2}, f"votes counted: {c[1].election.votes_granted}")

    # S3 also times out in term 2 and wins it with S4 and S5 (S2 and S1 refuse: they voted
    # for S1). Had S1 counted the duplicates, term 2 would now have two leaders. S3's
    # AppendEntries never get through.
    c.timeout(3)
    assert c[3].current_term == 2
    answers = c.campaign(3, voters=[1, 2, 4, 5])
    assert {i: a.vote_granted for i, a in answers.items()} == {1: False, 2: False, 4: True, 5: True}
    assert c[3].role is Role.LEADER
    c.drop_where(src=3)

    # The lost votes leave S1 without a majority: its election timeout starts term 3 with
    # new requests. The held copy of S2's term-2 grant arrives now and is not counted; S2's
    # term-3 grant is lost on the way back; S4 and S5 grant, and S1 wins term 3.
    c.timeout(1)
    assert c[1].role is Role.CANDIDATE and c[1].current_term == 3
    c.deliver(late_copy)
    ok(c[1].election.votes_granted == {1}, "a term-2 grant was counted in term 3")
    to2 = c.one(VoteRequest, src=1, dst=2)
    c.deliver(to2)
    c.drop(*c.answers_to(to2))
    assert c[1].role is Role.CANDIDATE
    answers = c.campaign(1, voters=[4, 5])
    assert all(a.vote_granted for a in answers.values())
    assert c[1].role is Role.LEADER and c[1].election.votes_granted == {1, 4, 5}
    # S3, still leader of term 2 with its uncommitted blank 2/t2, hears of term 3 through
    # S1's AppendEntries: it steps down and its blank is replaced by S1's 2/t3.
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert c[3].role is Role.FOLLOWER
    assert c.completed(3, DeleteLogsFrom) == [DeleteLogsFrom(2)]
    assert all(c.log_terms(i) == [1, 3] for i in range(1, 6))
    assert c.leaders == {2: 3, 3: 1}
    c.check_final()
    return c


def test_lost_and_duplicated_votes() -> None:
    """Raft paper §5.2 ("a candidate wins an election if it receives votes from a majority
    of the servers ... each server will vote for at most one candidate in a given term") and
    §5.5 (thesis §3.7) on retried and duplicated RPCs: S1 needs 3 of 5 votes; one real grant
    delivered three times (duplicated request and duplicated answer) must count once, so S1
    does not win, and S3 legitimately wins the same term. The lost votes make S1 time out
    and start a new election in a higher term, where a stale grant of the old term does not
    count."""
    run_lost_and_duplicated_votes()


# --- Scenario 6: a voter crashes right after voting ---------------------------------------


def test_voter_crash_after_durable_vote_refuses_second_candidate() -> None:
    """Raft paper Figure 2 ("Persistent state on all servers: currentTerm, votedFor ...
    updated on stable storage before responding to RPCs") and §5.2 (at most one vote per
    term): S3 grants S1 its term-2 vote; the grant is an after-durable answer, so it leaves
    S3 only once the vote is on disk. S3 crashes right after and restarts: it still knows it
    voted for S1 in term 2 and refuses S2, a second candidate of the same term."""
    c = _term1_cluster(3, RaftCore)
    c.timeout(1)
    c.drop(c.one(VoteRequest, src=1, dst=2))
    # S3's storage writes the new term, then the vote; the grant leaves with the vote.
    c.hold_storage(3)
    c.deliver(c.one(VoteRequest, src=1, dst=3))
    assert len(c.pending_storage(3)) == 2 and c.msgs(src=3) == []
    c.complete_storage(3, 1)
    assert c.msgs(src=3) == [], "the grant waits for the vote, not only for the term"
    c.complete_storage(3, 1)
    grant = c.one(VoteResponse, src=3, dst=1)
    assert grant.body == VoteResponse(2, True)
    assert c.nodes[3].durable.hard_state.current_term == 2
    assert c.nodes[3].durable.hard_state.voted_for == 1
    c.crash(3)
    c.restart(3)
    assert c[3].current_term == 2 and c[3].voted_for == 1

    c.timeout(2)
    assert c[2].current_term == 2
    answers = c.campaign(2, voters=[1, 3])
    assert answers == {1: VoteResponse(2, False), 3: VoteResponse(2, False)}
    assert c[2].role is Role.CANDIDATE

    c.deliver(grant)  # the grant that left S3 before the crash still counts
    assert c[1].role is Role.LEADER
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert c[2].role is Role.FOLLOWER and c.leaders == {2: 1}
    c.check_final()


def run_vote_lost_in_crash(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """S3 crashes before its vote for S1 is durable."""
    ok = Expect(strict)
    c = _term1_cluster(3, factory, skip)
    c.timeout(1)
    c.drop(c.one(VoteRequest, src=1, dst=2))
    c.hold_storage(3)
    c.deliver(c.one(VoteRequest, src=1, dst=3))
    assert c[3].voted_for == 1, "S3 granted the vote in memory"
    pending = c.pending_storage(3)  # the new term, then the vote
    assert [(p.hard_state.current_term, p.hard_state.voted_for) for p in pending] == [
        (2, None),
        (2, 1),
    ]
    ok(c.msgs(src=3) == [], "S3's grant left before the vote was durable")
    c.crash(3)
    # Whatever left S3 before the crash is delivered (with a correct core: nothing).
    c.deliver(*c.msgs(VoteResponse, src=3, dst=1))
    ok(c[1].role is Role.CANDIDATE, "S1 won with a vote that was never durable")
    assert c.nodes[3].durable.hard_state.current_term == 1
    assert c.nodes[3].durable.hard_state.voted_for is None

    # S3 restarts in term 1 with no vote: it may (and does) vote for S2 in term 2, and S2
    # wins. No one ever learned of S3's lost vote, so S2 is the only leader of term 2.
    c.restart(3)
    c.timeout(2)
    assert c[2].current_term == 2
    answers = c.campaign(2, voters=[3])
    assert answers == {3: VoteResponse(2, True)}
    assert c[2].role is Role.LEADER
    c.flush()
    c.heartbeat(2)
    c.flush()
    assert c[1].role is Role.FOLLOWER and c.leaders == {2: 2}
    assert all(c.log_terms(i) == [1, 2] for i in (1, 2, 3))
    c.check_final()
    return c


def test_voter_crash_before_durable_vote_sends_no_grant() -> None:
    """Raft paper Figure 2 (votedFor on stable storage before responding) and thesis §3.8:
    S3 grants S1 its vote in memory, but its storage has not written the vote when S3
    crashes. The grant is held by the durable barrier, so no VoteResponse left S3: after the
    restart S3 has no vote in term 2 and may vote for S2, which becomes the only leader of
    term 2."""
    run_vote_lost_in_crash()


# --- Scenario 7: a follower crashes with an append not yet durable ------------------------


def run_follower_crash_unacked_append(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """S2 crashes while its write of 4/t2 is pending; S3 is slow."""
    ok = Expect(strict)
    c = _term1_cluster(3, factory, skip)
    c.elect(1, voters=[2, 3])
    c.flush()
    w1 = c.write(1, "w1")
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert w1.outcome == "committed" and w1.index == 3
    assert all(c.log_terms(i) == [1, 2, 2] for i in (1, 2, 3))

    # w2 (4/t2): S2 receives it but its storage has not written it; S3's copy is held.
    w2 = c.write(1, "w2")
    c.hold_storage(2)
    c.deliver(c.one(AppendEntriesRequest, src=1, dst=2))
    assert c[2].log.last_index == 4, "S2 holds 4/t2 in memory"
    ok(c.msgs(AppendEntriesResponse, src=2) == [], "S2 acknowledged 4/t2 before it was durable")
    # Whatever S2 answered reaches S1 (with a correct core: nothing).
    c.deliver(*c.msgs(AppendEntriesResponse, src=2, dst=1))
    ok(c[1].commit_index == 3 and w2.outcome == "pending", "4/t2 committed without a majority")

    # S2 crashes: its pending write is lost; it restarts with 1..3 only. The leader never
    # counted it for 4.
    c.crash(2)
    assert c.log_terms(2) == [1, 2, 2], "everything S2 acknowledged is still there"
    c.restart(2)
    ok(c[1].leader.progress[2].match_index == 3, "S1 counted S2's unacknowledged append")
    assert c[1].commit_index == 3

    # No answer within rpc_timeout: S1 probes S2 again and replicates 4/t2 to it; now it
    # commits. S3's held copy arrives late and changes nothing.
    c.tick(1, 150)
    c.flush(among=(1, 2))
    assert w2.outcome == "committed" and w2.index == 4
    assert c.log_terms(2) == [1, 2, 2, 2]
    c.flush()
    c.heartbeat(1)
    c.flush()
    assert all(c.log_terms(i) == [1, 2, 2, 2] for i in (1, 2, 3))
    assert all(c[i].commit_index == 4 for i in (1, 2, 3))
    c.check_final()
    return c


def test_follower_crash_with_unacknowledged_append() -> None:
    """Raft paper Figure 2 (persistent state, the log included, is "updated on stable
    storage before responding to RPCs"), §5.3 (an entry is committed once the leader has
    replicated it on a majority) and thesis §3.8 on persisted state: S2 crashes while its
    write of a new entry is still pending. Its success answer was held by the durable
    barrier, so the leader never counted it and did not commit; after the restart S2 has
    every entry it acknowledged, the leader re-sends the missing one, and it commits then."""
    run_follower_crash_unacked_append()


# --- Scenario 8: Figure 7, divergent follower logs ----------------------------------------

FIGURE7 = {
    1: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],  # the leader-to-be
    2: [1, 1, 1, 4, 4, 5, 5, 6, 6],  # (a) missing an entry
    3: [1, 1, 1, 4],  # (b) missing many
    4: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],  # (c) an extra uncommitted entry of term 6
    5: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d) extra uncommitted entries of term 7
    6: [1, 1, 1, 4, 4, 4, 4],  # (e) extra entries of term 4, missing later ones
    7: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # (f) extra entries of terms 2 and 3
}
"""Figure 7 of the paper: the top log and the follower logs (a)-(f), node 1 = the top."""

FIGURE7_APPLIED = {1: 9, 2: 9, 3: 3, 4: 9, 5: 9, 6: 3, 7: 3}
"""Entries 1..9 are on four of seven logs (a majority): take them as committed in term 6."""


def run_figure7(
    factory: Factory = RaftCore, *, strict: bool = True, skip: tuple[str, ...] = ()
) -> Cluster:
    """Seven nodes with Figure 7's logs, all in term 7."""
    ok = Expect(strict)
    c = Cluster(
        7,
        terms=7,
        logs={i: entries(terms) for i, terms in FIGURE7.items()},
        applied=FIGURE7_APPLIED,
        factory=factory,
        skip_checks=skip,
    )
    committed = [c.committed[i] for i in range(1, 10)]

    # (f) times out first (term 8): its last entry 11/t3 is older than everyone's, so every
    # node refuses it (§5.4.1), although its log is among the longest.
    c.timeout(7)
    answers = c.campaign(7, voters=range(1, 7))
    ok(all(not a.vote_granted for a in answers.values()), f"(f) got votes: {answers}")
    ok(c[7].role is Role.CANDIDATE, "(f) must not lead: it lacks committed entries")

    # The top node times out (term 9): (a), (b), (e) and (f) grant, (c) and (d) refuse
    # (their logs are more up to date), and it wins with five of seven.
    c.timeout(1)
    answers = c.campaign(1, voters=range(2, 8))
    granted = sorted(i for i, a in answers.items() if a.vote_granted)
    assert c[1].role is Role.LEADER and c[1].current_term == 9
    assert granted == [2, 3, 6, 7], f"(c) and (d) must refuse: {granted}"

    # The leader brings every follower to its log, deleting the extra entries and filling
    # the missing ones (§5.3), then commits its blank 11/t9 and with it entry 10/t6.
    rejections: dict[int, int] = {}
    while c.pool:
        msg = c.pool[0]
        if isinstance(msg.body, AppendEntriesResponse) and not msg.body.success:
            rejections[msg.src] = rejections.get(msg.src, 0) + 1
        c.deliver(msg)
    c.heartbeat(1)
    c.flush()
    top = FIGURE7[1] + [9]
    for i in range(1, 8):
        assert c.log_terms(i) == top, f"node {i}: {c.log_terms(i)}"
        assert c[i].commit_index == 11 and len(c.nodes[i].durable.applied) == 11
    assert all(c.log(1)[i - 1] == e for i, e in enumerate(committed, start=1))
    # Only the uncommitted suffixes were deleted: (c) and (d) from 11, (e) from 6, (f) from 4.
    deleted = {i: c.completed(i, DeleteLogsFrom) for i in range(1, 8)}
    assert deleted == {
        1: [],
        2: [],
        3: [],
        4: [DeleteLogsFrom(11)],
        5: [DeleteLogsFrom(11)],
        6: [DeleteLogsFrom(6)],
        7: [DeleteLogsFrom(4)],
    }, deleted
    # With the conflict hint (§5.3, "the follower can include the term of the conflicting
    # entry and the first index it stores for that term") each follower that lacks entry
    # 10/t6 rejects exactly once, even (f) with its two foreign terms; (c) and (d) match
    # at the probe point and reject nothing.
    assert rejections == {2: 1, 3: 1, 6: 1, 7: 1}, rejections

    # Leader changes go on: the top node crashes, (d) wins term 10 with everything
    # committed, commits its own blank, and the top node catches up after restarting.
    c.crash(1)
    c.elect(5, voters=[2, 3, 4, 6, 7])
    c.flush()
    c.restart(1)
    c.heartbeat(5)
    c.flush()
    for i in range(1, 8):
        assert c.log_terms(i) == [*top, 10], f"node {i}: {c.log_terms(i)}"
    c.check_final()
    return c


def test_figure7_new_leader_repairs_divergent_logs() -> None:
    """Raft paper §5.3 and Figure 7 (followers missing entries, with extra uncommitted
    entries, or both, from terms 2-7), §5.4.1 (election restriction) and §5.4.3 (leader
    completeness): a follower whose log lacks committed entries cannot be elected; the
    leader elected in the next term forces every follower's log to match its own and
    commits; committed entries survive a further leader change."""
    run_figure7()


# --- negative checks: each scenario catches the bug it is about ---------------------------


class CountingLeader(RaftCore):
    """Commits whatever a majority holds, whatever its term (breaks §5.4.2, Figure 8)."""

    def _maybe_commit(self) -> None:
        def match(node: int) -> int:
            if node == self.id:
                return self.flushed_index
            pr = self.leader.progress.get(node) if self.leader else None
            return pr.match_index if pr else 0

        index = joint_quorum_index(self.membership.voter_sets(), match)
        if index > self.commit_index:
            self._advance_commit(index)


class StepDownFailsWrites(RaftCore):
    """Answers ForwardToLeader to its pending writes as soon as it stops leading."""

    def become_follower(self, term: int, leader_id: int | None, reset: bool = True) -> None:
        if self.role is Role.LEADER:
            for index in sorted(self.writes.pending):
                for pending in self.writes._take(index, lambda p: True):
                    error = ForwardToLeader(pending.payload, leader_id)
                    self.writes._answer(pending.token, error=error)
        super().become_follower(term, leader_id, reset)


class TruncationFailsWrites(RaftCore):
    """Answers ForwardToLeader to the pending writes whose entries it truncates."""

    def _truncate_from(self, index: int) -> None:
        for i in sorted(i for i in self.writes.pending if i >= index):
            for pending in self.writes._take(i, lambda p: True):
                self.writes._answer(pending.token, error=ForwardToLeader(pending.payload, None))
        super()._truncate_from(index)


class StaleTermAcceptor(RaftCore):
    """Handles an AppendEntries of an older term as if it were current (breaks §5.1)."""

    def receive_append_entries(self, request: AppendEntriesRequest, token: int) -> None:
        if request.term < self.current_term:
            request = attrs.evolve(request, term=self.current_term)
        super().receive_append_entries(request, token)


class SuffixTruncator(RaftCore):
    """Deletes whatever follows the last entry of an AppendEntries (a naive follower that
    treats every request as the whole log; breaks Figure 2 receiver step 3)."""

    def receive_append_entries(self, request: AppendEntriesRequest, token: int) -> None:
        if (
            request.term >= self.current_term
            and request.entries
            and self.log.term_at(request.prev_log_index) == request.prev_log_term
            and self.log.last_index > request.last_index
        ):
            self._truncate_from(request.last_index + 1)
        super().receive_append_entries(request, token)


class AnswerCountingCandidate(RaftCore):
    """Counts granted answers instead of distinct voters (breaks §5.2)."""

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        if (
            response is not None
            and response.vote_granted
            and self.role is Role.CANDIDATE
            and request.term == response.term == self.current_term
        ):
            answers = self.__dict__.setdefault("grant_answers", {})
            answers[self.current_term] = answers.get(self.current_term, 1) + 1
            if has_quorum(self.membership.voter_sets(), range(answers[self.current_term])):
                self.become_leader()
                return
        super().vote_result(request, response)


class EagerVoter(RaftCore):
    """Sends its vote before the vote is durable (breaks Figure 2's persistence rule)."""

    def respond(self, token: int, value: object = None, error: Any = None, **_: Any) -> None:
        durable = not isinstance(value, VoteResponse)
        super().respond(token, value, error, after_durable=durable)


class EagerAcker(RaftCore):
    """Acknowledges AppendEntries before the entries are durable (breaks Figure 2)."""

    def respond(self, token: int, value: object = None, error: Any = None, **_: Any) -> None:
        durable = not isinstance(value, AppendEntriesResponse)
        super().respond(token, value, error, after_durable=durable)


class LogBlindVoter(RaftCore):
    """Grants its vote whatever the candidate's log (breaks §5.4.1)."""

    def receive_vote(self, request: VoteRequest, token: int) -> None:
        super().receive_vote(attrs.evolve(request, last_log_term=10**9), token)


@pytest.mark.parametrize(
    ("run", "factory", "skip", "expected"),
    [
        pytest.param(run_figure8, CountingLeader, (), {"leader-completeness"}, id="1-fig8"),
        pytest.param(
            run_old_leader_write_survives,
            StepDownFailsWrites,
            (),
            {"client-oracle"},
            id="2-step-down-fails-writes",
        ),
        pytest.param(
            run_truncated_write_restored,
            TruncationFailsWrites,
            (),
            {"client-oracle"},
            id="2-truncation-fails-writes",
        ),
        pytest.param(
            run_zombie_leader,
            StaleTermAcceptor,
            (),
            {"core-raised", "committed-deleted", "committed-lost", "state-machine-safety"},
            id="3-stale-term",
        ),
        pytest.param(
            run_reordered_appends,
            SuffixTruncator,
            (),
            {"committed-deleted", "commit-monotonic"},
            id="4-truncate-suffix",
        ),
        pytest.param(
            run_lost_and_duplicated_votes,
            AnswerCountingCandidate,
            (),
            {"election-safety"},
            id="5-count-answers",
        ),
        pytest.param(run_vote_lost_in_crash, EagerVoter, (), {"vote-durable"}, id="6-eager-vote"),
        pytest.param(
            run_vote_lost_in_crash,
            EagerVoter,
            ("vote-durable", "vote-once"),
            {"election-safety"},
            id="6-eager-vote-two-leaders",
        ),
        pytest.param(
            run_follower_crash_unacked_append, EagerAcker, (), {"ack-durable"}, id="7-eager-ack"
        ),
        pytest.param(
            run_follower_crash_unacked_append,
            EagerAcker,
            ("ack-durable",),
            {"committed-lost"},
            id="7-eager-ack-loses-commit",
        ),
        pytest.param(run_figure7, LogBlindVoter, (), {"leader-completeness"}, id="8-log-blind"),
    ],
)
def test_broken_core_is_caught(
    run: Callable[..., Cluster], factory: Factory, skip: tuple[str, ...], expected: set[str]
) -> None:
    """Each scenario, replayed with a core that breaks the rule it exercises, ends in a
    harness violation (so the scenario's checks can fail)."""
    with pytest.raises(ScenarioViolation) as caught:
        run(factory, strict=False, skip=skip)
    assert caught.value.check in expected, str(caught.value)
