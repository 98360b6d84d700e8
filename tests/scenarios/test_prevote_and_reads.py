"""Scripted scenarios for PreVote and leader stickiness (dissertation §9.6, §4.2.3), reads
without the log (§6.4) and leadership transfer (§3.10).

Time passes on every node together (:func:`run`): each step ticks every node that is up,
then delivers the messages allowed by the links of the moment, drops the others. A node's
clock may run at another rate than the others (``rates``), to show what the read lease
assumes of clocks. The harness's ``read-oracle`` fails any read (but a STALE one) whose
answer misses a write acknowledged before the read was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import attrs
import pytest
from scenario_net import CONFIG, Cluster, Msg, ReadCall, ScenarioViolation

from pykka_raft.admin import TransferLeadership, TransferLeadershipResponse, TriggerElection
from pykka_raft.core import Role
from pykka_raft.messages import ReadPolicy, VoteRequest

STICKY = attrs.evolve(CONFIG, pre_vote=True, leader_stickiness=True)
STEP = 10  # ms per step

Links = Callable[[int, int], bool]


def everyone(a: int, b: int) -> bool:
    return True


def only(*pairs: tuple[int, int]) -> Links:
    """Links between the given pairs (both ways) only."""
    allowed = {frozenset(p) for p in pairs}
    return lambda a, b: frozenset((a, b)) in allowed


def groups(*sides: Iterable[int]) -> Links:
    """A partition: nodes talk within their side only."""
    side_of = {n: i for i, side in enumerate(sides) for n in side}
    return lambda a, b: side_of.get(a) == side_of.get(b)


def run(
    c: Cluster,
    ms: int,
    links: Links = everyone,
    rates: dict[int, float] | None = None,
    each: Callable[[], None] | None = None,
    held: Collection[Msg] = (),
) -> None:
    """``ms`` of time on every node that is up, messages delivered along ``links`` (but
    those ``held`` in the network)."""
    rates = rates or {}
    carry = {n: 0.0 for n in c.ids}
    for _ in range(ms // STEP):
        for n in c.ids:
            if c.nodes[n].up:
                carry[n] += STEP * rates.get(n, 1.0)
                whole = int(carry[n])
                if whole:
                    carry[n] -= whole
                    c.tick(n, whole)
        deliver_along(c, links, held)
        if each is not None:
            each()


def deliver_along(c: Cluster, links: Links, held: Collection[Msg] = ()) -> None:
    """Deliver, oldest first, every message allowed by ``links`` (and those they cause);
    drop the others. Messages ``held`` stay in flight."""
    while True:
        c.drop_where(where=lambda m: m not in held and not links(m.src, m.dst))
        ready = [m for m in c.pool if m not in held and c.nodes[m.dst].up]
        if not ready:
            return
        c.deliver(ready[0])


def cluster(n: int, config: object = STICKY) -> Cluster:
    """``n`` voters; node 1 elected leader (the paper's way), then time runs normally."""
    c = Cluster(n, config=config)  # type: ignore[arg-type]
    for node in c.ids:  # the scripted election of node 1 uses classic elections
        c[node].config = CONFIG
    c.elect(1, voters=[i for i in c.ids if i != 1])
    for node in c.ids:
        c[node].config = config  # type: ignore[assignment]
    run(c, 100)
    assert c[1].role is Role.LEADER
    return c


def terms(c: Cluster) -> set[int]:
    return {c[n].current_term for n in c.ids}


def write_and_commit(c: Cluster, leader: int, data: str, links: Links = everyone) -> None:
    w = c.write(leader, data)
    run(c, 200, links)
    assert w.outcome == "committed", w


# --- PreVote and stickiness ------------------------------------------------------------


@pytest.mark.parametrize("pre_vote", [True, False], ids=["prevote", "paper"])
def test_a_node_isolated_for_ten_election_timeouts_rejoins_without_a_new_term(
    pre_vote: bool,
) -> None:
    """§9.6: cut off, node 3 keeps asking for pre-votes without raising its term, so when
    it comes back the leader stays in office. With the paper's elections (the control) its
    term runs ahead and it deposes the leader."""
    config = attrs.evolve(STICKY, pre_vote=pre_vote, leader_stickiness=pre_vote)
    c = cluster(3, config)
    term = c[1].current_term
    run(c, 10 * CONFIG.election_timeout_max, groups((1, 2), (3,)))
    run(c, 1000)
    if pre_vote:
        assert terms(c) == {term} and c[1].role is Role.LEADER
        write_and_commit(c, 1, "after")
    else:
        assert c[3].current_term > term + 5 or max(terms(c)) > term  # the fault showed


def test_chain_connectivity_keeps_one_leader_in_one_term() -> None:
    """Node 3 reaches only node 2, which hears leader 1: 3 times out and asks for
    pre-votes, 2 refuses them (it hears a leader), and for ten election timeouts leader 1
    stays in office in the same term while writes commit."""
    c = cluster(3)
    term = c[1].current_term
    chain = only((1, 2), (2, 3))
    for i in range(10):
        w = c.write(1, f"w{i}")
        run(c, CONFIG.election_timeout_max, chain)
        assert w.outcome == "committed", w
    assert terms(c) == {term} and c[1].role is Role.LEADER
    assert c[3].role is Role.PRE_CANDIDATE  # it did time out: the fault really happened


def test_five_nodes_two_of_which_each_reach_one_follower() -> None:
    """Leader 1 reaches 2 and 3; node 4 reaches only 2, node 5 only 3. Neither can depose
    the leader, whose majority {1, 2, 3} keeps committing."""
    c = cluster(5)
    term = c[1].current_term
    links = only((1, 2), (1, 3), (2, 3), (2, 4), (3, 5))
    for i in range(10):
        w = c.write(1, f"w{i}")
        run(c, CONFIG.election_timeout_max, links)
        assert w.outcome == "committed", w
    assert terms(c) == {term} and c[1].role is Role.LEADER
    assert {c[4].role, c[5].role} == {Role.PRE_CANDIDATE}


# --- reads ------------------------------------------------------------------------------


def test_a_leader_cut_off_in_a_2_3_split_never_serves_an_overwritten_value() -> None:
    """Leader 1 and follower 2 are cut off from 3, 4, 5, which elect a leader and commit a
    write. Reads on 1 and 2 with every policy but STALE are sent all along: each is either
    answered with every acknowledged write (the read-oracle checks it) or fails; none is
    answered after the majority's write was acknowledged."""
    c = cluster(5)
    write_and_commit(c, 1, "before")
    split = groups((1, 2), (3, 4, 5))
    reads: list[ReadCall] = []

    def read_on_the_minority() -> None:
        for node in (1, 2):
            for policy in (ReadPolicy.READ_INDEX, ReadPolicy.LEASE):
                reads.append(c.read(node, policy))

    run(c, 2 * CONFIG.election_timeout_max, split, each=read_on_the_minority)
    new = next(n for n in (3, 4, 5) if c[n].role is Role.LEADER)
    w = c.write(new, "overwrite")
    run(c, 200, split, each=read_on_the_minority)
    assert w.outcome == "committed"
    assert any(r.outcome == "ok" for r in reads)  # served while the lease held
    late = reads[-8:]  # sent after the majority's write was acknowledged
    assert all(r.outcome != "ok" for r in late), late
    assert c[1].role is not Role.LEADER  # check-quorum: it stepped down


@pytest.mark.parametrize(
    ("rate", "stale"),
    [(1.0, False), (0.96, False), (0.25, True)],
    ids=["same-clock", "slow-within-margin", "slow-beyond-margin"],
)
def test_lease_reads_and_a_slow_leader_clock(rate: float, stale: bool) -> None:
    """The lease assumes clock rates differ by at most Config.max_clock_drift (5%). Leader
    1's clock runs at ``rate``; it is cut off and 2, 3 elect a leader and commit a write.
    Within the margin, a lease read on 1 after that is never served stale; at a quarter of
    the speed the lease outlives the new leader's write and the read-oracle catches the
    stale read: the caveat docs/reads.md states."""
    c = cluster(3)
    write_and_commit(c, 1, "before")
    split = groups((1,), (2, 3))
    while not any(c[n].role is Role.LEADER for n in (2, 3)):
        run(c, STEP, split, rates={1: rate})
    new = next(n for n in (2, 3) if c[n].role is Role.LEADER)
    w = c.write(new, "overwrite")
    while w.outcome == "pending":
        run(c, STEP, split, rates={1: rate})
    assert w.outcome == "committed" and c[1].role is Role.LEADER
    if stale:
        with pytest.raises(ScenarioViolation) as caught:
            c.read(1, ReadPolicy.LEASE)
        assert caught.value.check == "read-oracle"
    else:
        r = c.read(1, ReadPolicy.LEASE)
        assert r.outcome != "ok"


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet-after-restart", "control"])
def test_a_voter_restarted_within_the_lease_cannot_elect_a_leader_behind_it(quiet: bool) -> None:
    """§6.4.1 leases: 1 leads 5 nodes; 2 and 3 acknowledge its rounds, 4 and 5 are cut off
    from 1 and 2. Then 1 and 2 are cut off from everyone, and 3 restarts: it forgot that it
    heard 1. 4 campaigns at once with 3 and 5. A restarted voter stays quiet for
    election_timeout_min, so 4 cannot win while 1's lease holds, and 1's lease read is
    never stale. The control clears that quiet period: 4 wins, commits a write, and the
    read-oracle catches 1's stale lease read."""
    c = cluster(5)
    write_and_commit(c, 1, "before")
    sides = only((1, 2), (1, 3), (2, 3), (3, 4), (3, 5), (4, 5))
    run(c, 600, sides)  # 4 and 5 have long stopped hearing from a leader
    assert c[1].role is Role.LEADER
    cut = only((3, 4), (3, 5), (4, 5))
    deliver_along(c, cut)
    c.crash(3)
    c.restart(3)
    if not quiet:
        c[3].quiet_until = 0
    c.ask(4, TriggerElection())
    deliver_along(c, cut)
    run(c, 2 * STEP, cut)
    if quiet:
        assert c[4].role is not Role.LEADER and c[3].quiet_until > 0
        r = c.read(1, ReadPolicy.LEASE)
        run(c, 2 * STEP, cut)
        # Served (1 is cut off, so not after a round: from its lease), and not stale.
        assert r.outcome == "ok", r
        return
    assert c[4].role is Role.LEADER
    w = c.write(4, "behind the lease")
    while w.outcome == "pending":
        run(c, STEP, cut)
    assert w.outcome == "committed" and c[1].role is Role.LEADER
    leader = c[1].leader
    assert leader is not None and c[1].reads.in_lease(leader)  # its last round is recent
    with pytest.raises(ScenarioViolation) as caught:
        c.read(1, ReadPolicy.LEASE)
    assert caught.value.check == "read-oracle"


@pytest.mark.parametrize("sticky", [True, False], ids=["sticky", "control"])
def test_a_triggered_voter_that_hears_the_leader_does_not_count_its_own_vote(sticky: bool) -> None:
    """1 leads 3 nodes; 3 is cut off from 1, 2 hears 1 and acknowledges its rounds, so 1's
    lease counts on 2 helping elect no one, itself included. TriggerElection on 2 starts
    an election that 2 does not count its own vote in: 3's vote is not enough, and 1's
    lease read is served, not stale. The control turns stickiness off on 2: the same
    request makes 2 leader with 3's vote, 2 commits a write, and the read-oracle catches
    1's stale lease read."""
    c = cluster(3)
    write_and_commit(c, 1, "before")
    run(c, 600, only((1, 2), (2, 3)))  # 3 has long stopped hearing from a leader
    assert c[1].role is Role.LEADER and c[3].leader_id is None
    cut = only((2, 3))
    if not sticky:
        c[2].config = attrs.evolve(STICKY, leader_stickiness=False)
    trigger = c.ask(2, TriggerElection())
    deliver_along(c, cut)
    granted = set(c[2].election.votes_granted)
    run(c, 2 * STEP, cut)
    leader = c[1].leader
    assert leader is not None and c[1].reads.in_lease(leader)
    assert trigger.outcome == "ok", trigger  # the election started
    if sticky:
        assert c[2].role is not Role.LEADER and c[2].current_term == c[1].current_term
        assert granted == {3}  # 3 granted 2's pre-vote; without 2's own, not enough
        r = c.read(1, ReadPolicy.LEASE)
        run(c, STEP, cut)
        assert r.outcome == "ok", r  # from the lease (1 is cut off), and not stale
        return
    assert c[2].role is Role.LEADER
    w = c.write(2, "behind the lease")
    while w.outcome == "pending":
        run(c, STEP, cut)
    assert w.outcome == "committed" and c[1].reads.in_lease(leader)
    with pytest.raises(ScenarioViolation) as caught:
        c.read(1, ReadPolicy.LEASE)
    assert caught.value.check == "read-oracle"


@pytest.mark.parametrize("sticky", [True, False], ids=["sticky", "control"])
def test_a_late_answer_with_a_higher_term_leaves_a_follower_sticky(sticky: bool) -> None:
    """Stickiness counts the time since a node heard a leader, not whether it still names
    one. Classic elections (PreVote off): 2 campaigns in term 1 and its VoteRequest to 3
    is held in the network; 1 wins. 3 is cut off from 1 and keeps raising its term,
    refused by 2, which hears 1 and acknowledges its rounds. The held request then reaches
    3, whose answer carries 3's higher term: 2 takes that term and names no leader. When
    3 campaigns again, 2 still refuses (it heard 1 within election_timeout_min) and 1's
    lease read is not stale. The control forgets when 2 heard 1: 2 votes for 3, 3 commits
    a write, and the read-oracle catches 1's stale lease read."""
    paper = attrs.evolve(CONFIG, pre_vote=False, leader_stickiness=True)
    c = Cluster(3, config=CONFIG)
    c.timeout(2)
    held = [m for m in c.msgs(VoteRequest, src=2) if m.dst == 3]
    c.drop_where(VoteRequest, src=2, dst=1)
    c.elect(1, voters=[3])
    for node in c.ids:
        c[node].config = paper
    first = c.write(1, "before")
    run(c, 200, held=held)
    assert first.outcome == "committed" and c[2].leader_id == 1
    cut3 = only((1, 2), (2, 3))
    run(c, 800, cut3, held=held)
    assert c[1].role is Role.LEADER and c[3].current_term > c[2].current_term
    while c[3].election.timeout - c[3].election.elapsed > 2 * STEP:  # 3 campaigns soon
        run(c, STEP, cut3, held=held)
    cut = only((2, 3))
    (late,) = held
    c.deliver(late)
    (answer,) = c.answers_to(late)
    c.deliver(answer)
    assert c[2].current_term == c[3].current_term and c[2].leader_id is None  # the fault
    if not sticky:
        c[2].heard_leader_at = None
    run(c, 6 * STEP, cut)
    leader = c[1].leader
    assert leader is not None and c[1].reads.in_lease(leader)
    if sticky:
        assert c[3].role is not Role.LEADER
        r = c.read(1, ReadPolicy.LEASE)
        run(c, STEP, cut)
        assert r.outcome == "ok", r  # from the lease, and not stale
        return
    assert c[3].role is Role.LEADER
    w = c.write(3, "behind the lease")
    while w.outcome == "pending":
        run(c, STEP, cut)
    assert w.outcome == "committed" and c[1].reads.in_lease(leader)
    with pytest.raises(ScenarioViolation) as caught:
        c.read(1, ReadPolicy.LEASE)
    assert caught.value.check == "read-oracle"


def test_the_read_oracle_holds_a_read_to_what_an_earlier_read_saw() -> None:
    """Real-time order covers reads: a read sent after a linearizable read was answered
    must hold what that read saw, acknowledged or not (a STALE read promises nothing).
    Here the earlier read "saw" a write no node holds, so the new read's answer fails."""
    c = cluster(3)
    write_and_commit(c, 1, "x")
    saw = ReadCall(0, 1, ReadPolicy.READ_INDEX, frozenset(), "ok", ("x", "unacknowledged"))
    stale = ReadCall(0, 1, ReadPolicy.STALE, frozenset(), "ok", ("x", "stale-only"))
    c.reads.extend([saw, stale])
    r = c.read(1, ReadPolicy.READ_INDEX)
    assert r.required == {"x", "unacknowledged"}
    with pytest.raises(ScenarioViolation, match="unacknowledged") as caught:
        run(c, 100)
    assert caught.value.check == "read-oracle"


def test_reads_of_every_policy_on_a_healthy_cluster() -> None:
    c = cluster(3)
    write_and_commit(c, 1, "x")
    calls = [c.read(n, p) for n in (1, 2, 3) for p in ReadPolicy]
    run(c, 100)
    assert all(r.outcome == "ok" for r in calls), calls
    assert all("x" in (r.value or ()) for r in calls if r.policy is not ReadPolicy.STALE)


# --- leadership transfer ----------------------------------------------------------------


def test_transfer_under_write_load_loses_nothing_and_the_target_leads() -> None:
    c = cluster(3)
    transfer = None
    writes = []
    for i in range(30):
        leader = next(n for n in c.ids if c[n].role is Role.LEADER)
        writes.append(c.write(leader, f"w{i}"))
        if i == 10:
            transfer = c.ask(1, TransferLeadership(3))
        run(c, 20)
    run(c, 500)
    assert transfer is not None and transfer.outcome == "ok", transfer
    assert isinstance(transfer.value, TransferLeadershipResponse)
    assert transfer.value.leader_id == 3 and c[3].role is Role.LEADER
    # Every write was answered: committed, or refused (Busy during the hand-over, or
    # ForwardToLeader); the harness's client-oracle already checked each answer.
    assert all(w.outcome in ("committed", "error", "forward") for w in writes), writes
    assert sum(w.outcome == "committed" for w in writes) >= 20
    c.check_final()
