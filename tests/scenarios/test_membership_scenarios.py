"""Scripted membership-change scenarios (§6 of the Raft paper) on ``RaftCore``.

Like ``test_scenarios.py``, each test is a script over :mod:`scenario_net`: the test decides
which message is delivered or dropped, which node crashes, and how much virtual time passes.
Every step is followed by the harness's checks, made membership-aware: majorities are those
of the configuration in effect (both voter sets while it is joint), configuration entries
change the voters only through joint consensus and one at a time, a new leader holds the
votes of a majority of each voter set of its configuration, and a ``ConfigChangeResponse``
names the committed configuration entry.

The flow on the leader (``RaftCore.propose_config_change`` / ``_drive_membership``): new nodes
join as non-voters (a configuration entry); once every new voter caught up, the joint
configuration ``C_old,new``; then the final one. Each entry is appended only after the
previous one committed and after the leader committed an entry of its own term.

The actix-raft defects these scenarios cover (``docs/differences.md``): D3 (commit counted
non-voters and ignored the separate joint majorities), D9 (the non-voter sync barrier was a
no-op, and a new leader inheriting joint consensus never finalized), D10 (membership not
persisted: a grown single node that restarts elects itself alone) and D13 (duplicates in
the add list).

Tests that have a negative counterpart take the core class as a defaulted ``factory``
argument: ``test_broken_core_is_caught_by_the_harness`` and
``test_broken_core_fails_the_scenario`` replay them with a core that breaks the rule they
are about, to show that the scenario can fail.

References: Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", 2014, §6; Ongaro, "Consensus: Bridging Theory and Practice", 2014, §4.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pytest
from scenario_net import CONFIG, Cluster, Msg, ScenarioViolation, describe_membership

from pykka_raft.admin import (
    ConfigChangeResponse,
    TransferLeadership,
    TransferLeadershipResponse,
)
from pykka_raft.config import Config
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.quorum import has_quorum, joint_quorum_index
from pykka_raft.errors import (
    CatchUpTimeout,
    ChangeInProgress,
    ForwardToLeader,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
    TransferFailed,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    MembershipConfig,
    ResponseMode,
    TimeoutNowRequest,
    VoteRequest,
    VoteResponse,
)

Factory = Callable[..., RaftCore]
M = MembershipConfig
CHECKS = ("election-quorum",)


# --- helpers ------------------------------------------------------------------------------


def formed(
    n: int,
    pristine: int = 0,
    *,
    leader: int = 1,
    config: Config = CONFIG,
    factory: Factory = RaftCore,
) -> Cluster:
    """``n`` formed voters (empty logs) and ``pristine`` pristine nodes; ``leader`` wins
    term 1, commits its first entry (the configuration ``voters[1..n]``) and every formed
    node holds it."""
    c = Cluster(n, pristine=pristine, config=config, factory=factory, checks=CHECKS)
    if n == 1:
        c.timeout(leader)
    else:
        c.elect(leader, voters=[i for i in c.formed if i != leader])
    settle(c, leader, c.formed)
    assert c[leader].role is Role.LEADER
    assert c.commit_index == 1
    return c


def settle(c: Cluster, leader: int, among: Iterable[int] | None = None, rounds: int = 3) -> None:
    """``rounds`` heartbeats of ``leader``, each followed by a flush among ``among``."""
    group = tuple(c.ids if among is None else among)
    for _ in range(rounds):
        c.heartbeat(leader)
        c.flush(group)


def flush_until(
    c: Cluster, done: Callable[[], bool], among: Iterable[int] | None = None, limit: int = 500
) -> None:
    """Deliver the oldest message among ``among`` (default: all) one at a time until
    ``done()``."""
    group = set(c.ids if among is None else among)
    for _ in range(limit):
        if done():
            return
        ready = [m for m in c.pool if m.src in group and m.dst in group and c.nodes[m.dst].up]
        assert ready, "the network went quiet first"
        c.deliver(ready[0])
    raise AssertionError(f"not done after {limit} messages")


def configs(c: Cluster, nid: int) -> list[str]:
    """The configuration entries of ``nid``'s durable log, described."""
    return [describe_membership(m) for _, m in c.configs(nid)]


def config_index(c: Cluster, nid: int, membership: MembershipConfig) -> int:
    """The index of the configuration entry ``membership`` in ``nid``'s durable log."""
    found = [i for i, m in c.configs(nid) if m == membership]
    assert len(found) == 1, f"n{nid}: {configs(c, nid)}"
    return found[0]


def carries(*indexes: int) -> Callable[[Msg], bool]:
    """A filter: an AppendEntries whose entries include one of ``indexes``."""

    def match(m: Msg) -> bool:
        r = m.body
        return isinstance(r, AppendEntriesRequest) and any(
            r.prev_log_index < i <= r.last_index for i in indexes
        )

    return match


def hand_over(c: Cluster, old: int, among: Iterable[int] | None = None) -> int:
    """A leader that is no voter of its committed configuration hands over (dissertation
    §3.10): it tells the most caught-up voter to campaign now (``TimeoutNow``), which wins;
    the old leader steps down at the first answer carrying the newer term. Delivers what it
    takes and returns the new leader."""
    group = tuple(c.ids if among is None else among)

    def leader() -> int | None:
        return next((n for n in group if n != old and c[n].role is Role.LEADER), None)

    for _ in range(20):
        if c[old].role is Role.LEADER:
            c.heartbeat(old)
        c.flush(group)
        new = leader()
        if new is not None and c[old].role is not Role.LEADER:
            return new
    raise AssertionError(f"n{old} did not hand leadership over")


def deliver_and_answer(c: Cluster, msgs: Iterable[Msg], answer: bool = True) -> None:
    """Deliver each request and, if ``answer``, its answers at once (else drop them)."""
    for msg in list(msgs):
        c.deliver(msg)
        for reply in c.answers_to(msg):
            if answer:
                c.deliver(reply)
            else:
                c.drop(reply)


def pass_time(c: Cluster, leader: int, ms: int, among: Iterable[int]) -> None:
    """``ms`` of heartbeats on ``leader``: ``among`` exchange everything, messages to
    anyone else are lost."""
    group = set(among)
    for _ in range(ms // c.config.heartbeat_interval):
        c.heartbeat(leader)
        c.drop_where(where=lambda m: m.dst not in group or m.src not in group)
        c.flush(group)


def grow_one_to_three(c: Cluster) -> None:
    """Node 1 (formed alone, leading) adds the pristine nodes 2 and 3 and finishes."""
    call = c.propose(1, add=[2, 3])
    settle(c, 1)
    assert call.outcome == "ok", call


# --- grow, catch up -----------------------------------------------------------------------


def test_grow_one_to_three_learners_joint_final(factory: Factory = RaftCore) -> None:
    """§6 / D9: a node formed alone adds two pristine nodes. They join as non-voters, and
    the joint configuration follows only once both caught up; then the final configuration.
    The answer is the committed final configuration, at its index."""
    c = formed(1, pristine=2, factory=factory)
    assert c[2].role is Role.NON_VOTER and c[2].is_pristine
    call = c.propose(1, add=[2, 3])

    # The learner configuration commits at once (node 1 is the only voter), but nothing
    # reached 2 and 3, so the joint configuration waits.
    assert configs(c, 1) == ["voters[1]", "voters[1]+nv[2,3]"]
    assert c[1].commit_index == 2 and call.outcome == "pending"
    c.heartbeat(1)
    assert configs(c, 1) == ["voters[1]", "voters[1]+nv[2,3]"]

    # Node 2 catches up alone: still no joint configuration (3 is behind).
    c.flush(among=(1, 2))
    assert configs(c, 2) == ["voters[1]", "voters[1]+nv[2,3]"]
    assert c[2].role is Role.NON_VOTER
    assert configs(c, 1) == ["voters[1]", "voters[1]+nv[2,3]"]

    # Node 3 catches up: joint, then (once the joint one committed on 1 and a majority of
    # {1,2,3}) the final configuration.
    flush_until(c, lambda: c[1].membership.is_in_joint_consensus)
    joint = config_index(c, 1, M([1], [1, 2, 3]))
    assert c[1].commit_index < joint
    settle(c, 1)
    assert call.outcome == "ok", call
    for nid in (1, 2, 3):
        assert configs(c, nid) == [
            "voters[1]",
            "voters[1]+nv[2,3]",
            "joint[1|1,2,3]",
            "voters[1,2,3]",
        ]
    assert call.value == ConfigChangeResponse(4, M([1, 2, 3]))
    assert [c[i].role for i in (1, 2, 3)] == [Role.LEADER, Role.FOLLOWER, Role.FOLLOWER]
    assert all(c[i].commit_index == 4 for i in (1, 2, 3))

    # A write now needs two of the three: not 1 alone, 1 and 2 will do.
    w = c.write(1, "after-grow")
    c.drop_where(dst=3)
    assert w.outcome == "pending" and c[1].commit_index == 4
    c.flush(among=(1, 2))
    assert w.outcome == "committed"
    c.check_final()


def test_catch_up_barrier_holds_the_joint_configuration_until_caught_up(
    factory: Factory = RaftCore,
) -> None:
    """D9: the joint configuration is not appended while a new voter is behind: neither
    while it has heard nothing, nor once it answers but still lags by more than
    ``Config.catch_up_lag``. It is appended once the node caught up."""
    c = formed(3, pristine=1, config=attrs.evolve(CONFIG, catch_up_lag=2), factory=factory)
    call = c.propose(1, add=[4])
    learners = ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]
    assert configs(c, 1) == learners

    # 4 rejects the first probe (its log is empty); the next probe carries entries 1..2 (up
    # to the learner configuration) and is held in the network.
    deliver_and_answer(c, c.msgs(AppendEntriesRequest, dst=4))
    held = c.one(AppendEntriesRequest, dst=4)
    assert held.body.last_index == 2

    # Without 4, the learner configuration and four writes commit (entries 3..6).
    for i in range(4):
        c.write(1, f"w{i}")
    settle(c, 1, among=(1, 2, 3))
    c.drop_where(dst=4, where=lambda m: m is not held)
    assert c.commit_index == 6 and configs(c, 1) == learners

    # 4 answers: it holds the learner configuration, but lags by 4 > catch_up_lag.
    deliver_and_answer(c, [held])
    assert c[1].leader.progress[4].match_index == 2
    assert configs(c, 1) == learners and call.outcome == "pending"
    c.drop_where(dst=4)

    # 4 catches up: the joint configuration, then the final one.
    settle(c, 1, rounds=8)
    assert configs(c, 1) == [
        *learners,
        "joint[1,2,3|1,2,3,4]",
        "voters[1,2,3,4]",
    ]
    assert call.value == ConfigChangeResponse(8, M([1, 2, 3, 4]))
    assert c[4].role is Role.FOLLOWER
    c.check_final()


def test_catch_up_timeout_leaves_the_new_node_a_non_voter() -> None:
    """D9: a new voter that does not catch up within ``Config.catch_up_timeout`` (virtual
    time on the leader) fails the change with ``CatchUpTimeout``; no joint configuration
    is appended and the node stays a non-voter. Proposed again once it caught up, it is
    promoted (joint, then final: no second learner step)."""
    timeout = 600
    c = formed(3, pristine=1, config=attrs.evolve(CONFIG, catch_up_timeout=timeout))
    start = c[1].now
    call = c.propose(1, add=[4])
    learners = ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]
    while c[1].now - start < timeout - CONFIG.heartbeat_interval:
        pass_time(c, 1, CONFIG.heartbeat_interval, among=(1, 2, 3))
        assert call.outcome == "pending"
    pass_time(c, 1, CONFIG.heartbeat_interval, among=(1, 2, 3))
    assert c[1].now - start == timeout
    assert call.outcome == "error" and isinstance(call.error, CatchUpTimeout), call
    assert call.error.nodes == (4,)
    assert c[1].role is Role.LEADER
    assert configs(c, 1) == learners
    assert c[1].membership == M([1, 2, 3], None, [4])

    # 4 now catches up, but nothing is appended until someone proposes again.
    settle(c, 1)
    assert c[4].role is Role.NON_VOTER and configs(c, 4) == learners
    again = c.propose(1, add=[4])
    settle(c, 1)
    assert configs(c, 1) == [*learners, "joint[1,2,3|1,2,3,4]", "voters[1,2,3,4]"]
    assert again.value == ConfigChangeResponse(4, M([1, 2, 3, 4]))
    assert c[4].role is Role.FOLLOWER
    c.check_final()


# --- joint consensus: both majorities -----------------------------------------------------


def _replace_until_joint(c: Cluster) -> int:
    """Leader 3 replaces {1,2,3} by {3,4,5}; deliver until the joint configuration is in
    its log (it is not committed yet). Returns its index."""
    call = c.propose(3, add=[4, 5], remove=[1, 2])
    flush_until(c, lambda: c[3].membership.is_in_joint_consensus)
    joint = config_index(c, 3, M([1, 2, 3], [3, 4, 5]))
    assert configs(c, 3) == ["voters[1,2,3]", "voters[1,2,3]+nv[4,5]", "joint[1,2,3|3,4,5]"]
    assert c[3].commit_index < joint and call.outcome == "pending"
    return joint


@pytest.mark.parametrize("first", ["C_new", "C_old"])
def test_joint_entry_commits_only_with_both_majorities(
    first: str, factory: Factory = RaftCore
) -> None:
    """§6 / D3: with C_old = {1,2,3} and C_new = {3,4,5}, an entry of the joint
    configuration (the joint entry itself and a write after it) is not committed when only
    a majority of one set holds it; it is once a majority of the other one does too."""
    c = formed(3, pristine=2, leader=3, factory=factory)
    joint = _replace_until_joint(c)
    w = c.write(3, "in-joint")
    assert c[3].log.last_index == joint + 1
    one, other = ((4, 5), (1,)) if first == "C_new" else ((1, 2), (4,))
    c.flush(among=(3, *one))  # a full majority of one set: 3 and both others
    assert c[3].log.last_index == joint + 1
    assert all(c[3].leader.progress[n].match_index == joint + 1 for n in one)
    assert c.commit_index < joint and c[3].commit_index < joint
    assert w.outcome == "pending"
    c.flush(among=(3, *other))  # one more node of the other set: both majorities
    assert c.commit_index >= joint + 1 and w.outcome == "committed"
    # The joint configuration committed, so the final one is appended.
    assert c[3].membership == M([3, 4, 5])
    c.check_final()


@pytest.mark.parametrize(
    ("candidate", "voters"),
    [pytest.param(1, (2, 4, 5), id="C_old-member"), pytest.param(4, (5, 1, 2), id="C_new-member")],
)
def test_election_in_joint_configuration_needs_both_majorities(
    candidate: int, voters: tuple[int, int, int], factory: Factory = RaftCore
) -> None:
    """§6: in C_old,new = {1,2,3},{3,4,5} a candidate needs a majority of each set: the
    votes of one whole set's majority are not enough. The leader 3 crashes once the joint
    entry reached 1, 2, 4 and 5 (uncommitted). The new leader then finishes the change
    (D9): its blank entry commits with both majorities, then it appends and commits C_new;
    a leader outside C_new steps down to NON_VOTER after that."""
    c = formed(3, pristine=2, leader=3, factory=factory)
    joint = _replace_until_joint(c)
    c.crash(3)
    deliver_and_answer(c, c.msgs(AppendEntriesRequest, src=3, where=carries(joint)))
    assert all(c.log(n)[-1].index == joint for n in (1, 2, 4, 5))
    c.drop_where(src=3)

    c.timeout(candidate)
    term = c[candidate].current_term
    asked = {m.dst for m in c.msgs(VoteRequest, src=candidate)}
    assert asked == {1, 2, 3, 4, 5} - {candidate}  # every voter of both sets
    first, second, third = voters
    c.campaign(candidate, [first], drop_others=False)
    assert c[candidate].role is Role.CANDIDATE  # a majority of one set only
    c.campaign(candidate, [second], drop_others=False)
    assert c[candidate].role is Role.CANDIDATE  # still a majority of one set only
    c.campaign(candidate, [third])
    assert c[candidate].role is Role.LEADER and c[candidate].current_term == term

    # D9: the new leader appends the final configuration only after its own blank entry
    # committed (with both majorities), and commits it.
    log = c[candidate].log
    assert log.config_index == joint and log.last_index == joint + 1
    settle(c, candidate, among=(1, 2, 4, 5))
    final = config_index(c, 4, M([3, 4, 5]))
    assert final == joint + 2
    assert c.commit_index >= final
    if candidate == 1:
        # 1 is not in C_new: it led until C_new committed, then handed over and stepped down.
        leader = hand_over(c, 1, among=(1, 2, 4, 5))
        assert c[1].role is Role.NON_VOTER
        settle(c, leader, among=(1, 2, 4, 5))
    else:
        leader = candidate
    # 1 and 2 hold the configuration that removed them. One that has not learned it
    # committed may campaign once (§4.2.2: it could still be needed); C_new's voters do not
    # know it, and it goes quiet without disturbing them.
    for removed in (1, 2):
        if c[removed].role is not Role.NON_VOTER:
            term = c[leader].current_term
            c.timeout(removed)
            answers = c.campaign(removed, [3, 4, 5])
            assert all(a is None or a.is_candidate_unknown for a in answers.values())
            assert c[leader].role is Role.LEADER and c[leader].current_term == term
    assert c[1].role is Role.NON_VOTER and c[2].role is Role.NON_VOTER
    assert c[leader].leader.progress.keys() == {3, 5}  # no longer replicating to 1 and 2
    c.restart(3)
    settle(c, leader, rounds=8)
    assert c[3].role is Role.FOLLOWER and c.log(3) == c.log(leader)
    c.check_final()


# --- non-voters ---------------------------------------------------------------------------


def test_learners_added_in_one_entry_and_never_counted(factory: Factory = RaftCore) -> None:
    """``add_non_voters`` is one configuration entry (no joint configuration: the voters
    do not change). D3: non-voters never count toward a commit: a write held by the leader
    and both learners (3 of 5 nodes) is not committed; it is once a voter holds it. And
    toward an election: learners never campaign, a candidate does not ask them, and a
    vote they grant is not counted."""
    c = formed(3, pristine=2, factory=factory)
    call = c.propose(1, non_voters=[4, 5])
    settle(c, 1)
    assert configs(c, 1) == ["voters[1,2,3]", "voters[1,2,3]+nv[4,5]"]
    assert call.value == ConfigChangeResponse(2, M([1, 2, 3], None, [4, 5]))
    assert c[4].role is Role.NON_VOTER and c[5].role is Role.NON_VOTER

    w = c.write(1, "x")
    at = c[1].log.last_index
    c.flush(among=(1, 4, 5))
    assert all(c[1].leader.progress[n].match_index == at for n in (4, 5))
    assert w.outcome == "pending" and c.commit_index < at
    c.flush(among=(1, 2))
    assert w.outcome == "committed"
    settle(c, 1)

    # Learners never time out.
    term = c[4].current_term
    for _ in range(100):
        c.tick(4, 10)
    assert c[4].role is Role.NON_VOTER and c[4].current_term == term
    assert not c.msgs(VoteRequest)

    # A candidate asks the voters only; grants from the learners do not elect it.
    c.crash(1)
    c.timeout(2)
    assert {m.dst for m in c.msgs(VoteRequest, src=2)} == {1, 3}
    request = c.msgs(VoteRequest, src=2)[0].body
    for learner in (4, 5):
        msg = c.inject(2, learner, attrs.evolve(request, target=learner))
        c.deliver(msg)
        (answer,) = c.answers_to(msg)
        assert isinstance(answer.body, VoteResponse) and answer.body.vote_granted
        c.deliver(answer)
    assert c[2].role is Role.CANDIDATE  # {2,4,5} is 3 of 5 nodes but 1 of 3 voters
    c.campaign(2, [3])
    assert c[2].role is Role.LEADER
    c.check_final()


def test_learner_promoted_later_and_voter_demoted() -> None:
    """A learner named in ``add_members`` is promoted: joint, then final (it is in the
    cluster already, so no learner step). A voter named in ``add_non_voters`` is demoted: it
    ends a non-voter of the committed final configuration."""
    c = formed(3, pristine=1)
    c.propose(1, non_voters=[4])
    settle(c, 1)
    promote = c.propose(1, add=[4])
    settle(c, 1)
    assert configs(c, 1) == [
        "voters[1,2,3]",
        "voters[1,2,3]+nv[4]",
        "joint[1,2,3|1,2,3,4]",
        "voters[1,2,3,4]",
    ]
    assert promote.value == ConfigChangeResponse(4, M([1, 2, 3, 4]))
    assert c[4].role is Role.FOLLOWER

    demote = c.propose(1, non_voters=[3])
    settle(c, 1)
    assert demote.outcome == "ok", demote
    assert demote.value.membership == M([1, 2, 4], None, [3])
    assert c[1].membership == M([1, 2, 4], None, [3])
    assert c[3].role is Role.NON_VOTER and c[3].membership == M([1, 2, 4], None, [3])
    assert c.configs(1)[4][1].voter_sets() == ((1, 2, 3, 4), (1, 2, 4))
    # The demoted node still receives the log.
    w = c.write(1, "after-demotion")
    settle(c, 1)
    assert w.outcome == "committed" and c.log(3) == c.log(1)

    # Removing a learner is one configuration entry.
    before = len(c.configs(1))
    removed = c.propose(1, remove=[3])
    settle(c, 1)
    assert len(c.configs(1)) == before + 1
    assert removed.value.membership == M([1, 2, 4])
    assert c[3].role is Role.NON_VOTER and 3 not in c[1].leader.progress
    c.check_final()


def test_config_entries_wait_for_an_entry_of_the_leaders_term() -> None:
    """A new leader appends no configuration entry before it committed an entry of its own
    term (its blank entry): a change proposed at once waits for that."""
    c = formed(3, pristine=1)
    c.timeout(2)
    c.campaign(2, [3])
    assert c[2].role is Role.LEADER and c[2].current_term == 2
    c.drop_where(src=2)  # the blank entry reaches nobody yet
    call = c.propose(2, add=[4])
    assert call.outcome == "pending" and len(c.configs(2)) == 1
    for _ in range(4):
        c.heartbeat(2)  # heartbeats: no entry reaches anyone, nothing commits
        c.drop_where(dst=4)
        c.flush(among=(1, 2, 3), limit=50)
        assert len(c.configs(2)) == 1 and c.commit_index == 1
    c.tick(2, CONFIG.rpc_timeout)  # the lost blank entry is sent again
    c.drop_where(dst=4)
    c.flush(among=(2, 1))  # the leader of term 1 learns of term 2; the blank commits
    assert c[1].role is Role.FOLLOWER
    assert configs(c, 2) == ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]
    assert config_index(c, 2, M([1, 2, 3], None, [4])) == 3  # after the blank entry
    settle(c, 2)
    assert call.value == ConfigChangeResponse(5, M([1, 2, 3, 4]))
    c.check_final()


@pytest.mark.parametrize("demoted", [3, 1], ids=["follower", "leader"])
def test_demoted_voter_stays_in_every_configuration(demoted: int) -> None:
    """§6: demoting a voter to learner is joint -> final; the node is part of every
    configuration on the way (it is never removed), and a leader that demotes itself steps
    down once that final configuration committed, without appending anything more, and
    stays as a learner."""
    c = formed(3)
    call = c.propose(1, non_voters=[demoted])
    settle(c, 1)
    assert call.outcome == "ok", call
    rest = (2, 3) if demoted == 1 else (1, 2)
    target = M(rest, None, [demoted])
    found = [m for _, m in c.configs(2)]
    assert [m.voter_sets() for m in found] == [((1, 2, 3),), ((1, 2, 3), rest), (rest,)]
    assert all(m.contains(demoted) for m in found)
    assert found[-1] == target
    assert call.value == ConfigChangeResponse(3, target)
    if demoted == 1:
        new = hand_over(c, 1)
        settle(c, new)
        assert c.log(1) == c.log(new)  # the learner still receives the log
    assert c[demoted].role is Role.NON_VOTER and c[demoted].membership == target
    c.check_final()


def test_new_leader_finishing_a_demotion_keeps_the_learner() -> None:
    """D9 with a demotion: leader 1 demotes 4 in {1,2,3,4}; the joint entry reaches 2, 3
    and 4 and 1 is cut off. The new leader 2 (votes of {2,3,4} of C_old and {2,3} of C_new
    = {1,2,3}) finishes the change: its final configuration keeps 4 as a learner."""
    c = formed(4)
    call = c.propose(1, non_voters=[4])
    joint = c[1].log.config_index
    assert c[1].membership.voter_sets() == ((1, 2, 3, 4), (1, 2, 3))
    deliver_and_answer(c, c.msgs(AppendEntriesRequest, src=1, where=carries(joint)), False)
    c.drop_where(src=1)
    c.timeout(2)
    c.campaign(2, [3, 4])
    assert c[2].role is Role.LEADER
    settle(c, 2, among=(2, 3, 4))
    assert c[2].membership == M([1, 2, 3], None, [4])
    assert c[4].role is Role.NON_VOTER and c[4].membership == M([1, 2, 3], None, [4])
    w = c.write(2, "after")
    settle(c, 2)
    assert w.outcome == "committed" and c.log(4) == c.log(2) == c.log(1)
    assert isinstance(call.error, LeadershipLost) and call.error.leader_id == 2
    c.check_final()


# --- the leader removed by the change -----------------------------------------------------


def test_removed_leader_leads_until_c_new_commits_then_steps_down(
    factory: Factory = RaftCore,
) -> None:
    """§6: leader 1 removes itself from {1,2,3}. In C_old,new = {1,2,3},{2,3} it counts
    itself in C_old only: a write held by 1 and 2 is not committed (C_new needs 2 and 3).
    Once C_new = {2,3} is in its log it refuses client writes (ForwardToLeader) but keeps
    leading, until C_new commits (on 2 and 3, without itself); then it answers the change
    and steps down to NON_VOTER. Nobody replicates to it or asks it for votes any more."""
    c = formed(3, factory=factory)
    call = c.propose(1, remove=[1])
    assert configs(c, 1) == ["voters[1,2,3]", "joint[1,2,3|2,3]"]  # no new node: no learners
    joint = config_index(c, 1, M([1, 2, 3], [2, 3]))
    w1 = c.write(1, "in-joint")
    c.flush(among=(1, 2))
    assert c[1].leader.progress[2].match_index == joint + 1
    assert c.commit_index < joint and w1.outcome == "pending"
    flush_until(c, lambda: w1.outcome == "committed", among=(1, 3))
    final = config_index(c, 1, M([2, 3]))
    assert final == joint + 2 and c[1].role is Role.LEADER

    # C_new is in its log: client writes are refused, the leader still leads.
    w2 = c.write(1, "refused")
    assert isinstance(w2.error, ForwardToLeader) and w2.error.leader_id is None
    assert c[1].role is Role.LEADER

    c.flush(among=(1, 2))  # C_new on 2 only: not committed, 1 does not count in C_new
    assert c[1].leader.progress[2].match_index == final
    assert c.commit_index < final and c[1].role is Role.LEADER
    assert call.outcome == "pending"
    c.flush(among=(1, 3))
    assert c[1].commit_index == final
    assert call.value == ConfigChangeResponse(final, M([2, 3]))
    # It hands over to the most caught-up voter (dissertation §3.10), which asks only its
    # own configuration's voters; 1 steps down at the newer term in 2's next answer.
    assert c[1].role is Role.LEADER
    handovers = c.msgs(TimeoutNowRequest, src=1)
    assert [m.dst for m in handovers] == [2], "the removed leader did not hand over"
    handover = handovers[0]
    c.deliver(handover)
    assert {m.dst for m in c.msgs(VoteRequest, src=2)} == {3}
    new = hand_over(c, 1, among=(1, 2, 3))
    assert new == 2 and c[1].role is Role.NON_VOTER and c[1].leader_id is None

    # 1 never campaigns.
    for _ in range(100):
        c.tick(1, 10)
    assert c[1].role is Role.NON_VOTER and not c.msgs(src=1)
    settle(c, 2)
    assert not c.msgs(dst=1) and 1 not in c[2].leader.progress
    assert c.commit_index == final + 1
    c.check_final()


def test_a_lone_voter_leads_only_once_its_term_is_durable(factory: Factory = RaftCore) -> None:
    """Leader 2 demotes itself; node 1 holds C_new = voters[1] (not committed) and is its
    only voter. 2 crashes; 1 times out with its storage held: a candidate of term 2 that
    does not lead until its term and vote are durable. 1 crashes with them unwritten. After
    both restart, 2 (a voter of the configuration before the uncommitted one, §4.2.2) wins
    term 2 with 1's vote; had 1 led term 2 before its crash, the term had two leaders (a
    membership simulation seed found it)."""
    c = formed(2, leader=2, factory=factory)
    c.propose(2, non_voters=[2])
    final = M([1], None, [2])
    flush_until(c, lambda: final in [m for _, m in c.configs(1)])
    assert c.commit_index < config_index(c, 1, final)
    c.drop_where()  # 1's acknowledgement is lost: C_new stays uncommitted
    c.crash(2)
    c.hold_storage(1)
    c.timeout(1)
    assert c[1].current_term == 2
    c.crash(1)
    assert c.nodes[1].durable.hard_state.current_term == 1  # term 2 was lost
    c.drop_where()
    c.restart(1)
    c.restart(2)
    c.timeout(2)
    flush_until(c, lambda: c.leaders.get(2) == 2)  # 2 leads term 2, the harness agrees
    for _ in range(5):
        c.heartbeat(2) if c[2].role is Role.LEADER else c.heartbeat(1)
        c.flush()
    assert c[1].role is Role.LEADER  # 2 handed over to the only voter of C_new
    c.check_final()


def test_removed_leader_does_not_forward_writes_to_itself() -> None:
    """A client refused by the leaving leader is not told to retry on that leader: no
    leader is known yet (``ForwardToLeader(leader_id=None)``)."""
    c = formed(3)
    c.propose(1, remove=[1])
    flush_until(c, lambda: c[1].membership == M([2, 3]))  # the joint one committed
    assert c[1].role is Role.LEADER and c[1].membership == M([2, 3])
    w = c.write(1, "refused")
    assert isinstance(w.error, ForwardToLeader) and w.error.leader_id is None


@pytest.mark.parametrize("how", ["replace", "learner-first"])
def test_a_one_node_cluster_moves_to_another_node(how: str) -> None:
    """The only voter 1 hands the cluster to node 2: in one change that adds 2 and removes
    1, or with 2 added as a learner first and then swapped with 1 (1 demoted). 1 leads
    until {2} commits, on 2 alone, then hands over; 2 leads and commits on its own."""
    c = formed(1, pristine=1)
    if how == "replace":
        call = c.propose(1, add=[2], remove=[1])
        expected = M([2])
    else:
        c.propose(1, non_voters=[2])
        settle(c, 1)
        call = c.propose(1, add=[2], non_voters=[1])
        expected = M([2], None, [1])
    settle(c, 1)
    assert call.outcome == "ok" and call.value.membership == expected, call
    assert hand_over(c, 1) == 2
    w = c.write(2, "after")
    settle(c, 2)
    assert w.outcome == "committed"
    c.check_final()


# --- a new leader inherits the joint configuration (D9) -----------------------------------


def test_new_leader_finishes_inherited_joint_configuration(
    factory: Factory = RaftCore,
) -> None:
    """D9: leader 1 grows {1,2,3} to {1..5}; the joint configuration reaches 2..5 but no
    answer comes back, and 1 is cut off. 2 wins with votes of both majorities, commits its
    blank entry (only then, with both majorities) and appends and commits C_new itself.
    A further change is refused (ChangeInProgress) while it is joint. The original
    proposer learns of the new leader and its call gets LeadershipLost."""
    c = formed(3, pristine=2, factory=factory)
    call = c.propose(1, add=[4, 5])
    flush_until(c, lambda: c[1].membership.is_in_joint_consensus)
    joint = config_index(c, 1, M([1, 2, 3], [1, 2, 3, 4, 5]))
    c.drop_where(reply=True)
    deliver_and_answer(c, c.msgs(AppendEntriesRequest, src=1, where=carries(joint)), False)
    c.drop_where(src=1)
    assert all(c.log(n)[-1].index == joint for n in (2, 3, 4, 5))
    assert c.commit_index < joint

    c.timeout(2)
    c.campaign(2, [3, 4])  # {2,3} of C_old, {2,3,4} of C_new
    assert c[2].role is Role.LEADER
    refused = c.propose(2, add=[1])
    assert isinstance(refused.error, ChangeInProgress), refused
    blank = joint + 1
    assert c[2].log.last_index == blank

    # The blank entry on 3: a majority of C_old, not of C_new: nothing is committed and
    # the final configuration waits.
    c.flush(among=(2, 3))
    assert c.commit_index < joint and c[2].log.last_index == blank
    c.flush(among=(2, 4))  # now {2,3,4}: both majorities
    assert c.commit_index >= blank
    final = config_index(c, 2, M([1, 2, 3, 4, 5]))
    assert final == blank + 1
    settle(c, 2, among=(2, 3, 4, 5))
    assert c.commit_index == final
    assert [m for _, m in c.configs(5)][-2:] == [M([1, 2, 3], [1, 2, 3, 4, 5]), M([1, 2, 3, 4, 5])]

    # The old leader hears of the new term: its call gets LeadershipLost, naming 2.
    assert call.outcome == "pending"
    settle(c, 2, rounds=8)
    assert c[1].role is Role.FOLLOWER and c[1].leader_id == 2
    assert call.outcome == "error" and isinstance(call.error, LeadershipLost), call
    assert call.error.leader_id == 2
    assert c.log(1) == c.log(2)
    c.check_final()


def test_a_joint_entry_truncated_by_a_new_leader_takes_the_membership_back() -> None:
    """Leader 1 promotes learner 4; the joint entry reaches 4 only, and 1 is cut off. 2 is
    elected by {2, 3} (it never saw the joint entry) and overwrites it on 4, which goes
    back to the learner configuration and to NON_VOTER (a node's membership is the latest
    configuration entry in its log, committed or not, §6). The change proposed again
    completes, and 1 comes back with the leader's log."""
    c = formed(3, pristine=1)
    c.propose(1, add=[4])
    flush_until(c, lambda: c[1].membership.is_in_joint_consensus)
    joint = c[1].log.config_index
    deliver_and_answer(c, c.msgs(AppendEntriesRequest, src=1, dst=4, where=carries(joint)), False)
    c.drop_where(src=1)
    c.drop_where(dst=1)
    c.crash(1)
    assert c[4].role is Role.FOLLOWER and c[4].membership.is_in_joint_consensus
    assert not c[2].membership.is_in_joint_consensus
    c.timeout(2)
    c.campaign(2, [3])
    assert c[2].role is Role.LEADER
    settle(c, 2, among=(2, 3, 4))
    assert c[4].membership == M([1, 2, 3], None, [4]) and c[4].role is Role.NON_VOTER
    again = c.propose(2, add=[4])
    settle(c, 2, among=(2, 3, 4), rounds=6)
    assert again.outcome == "ok", again
    assert c[4].role is Role.FOLLOWER
    c.restart(1)
    settle(c, 2, rounds=6)
    assert c.log(1) == c.log(2)
    c.check_final()


# --- D10: the membership survives a restart -----------------------------------------------


@pytest.mark.parametrize("crash_after", ["final", "joint"])
def test_grown_single_node_restarted_does_not_elect_itself_alone(
    crash_after: str, factory: Factory = RaftCore
) -> None:
    """D10: a node formed alone, grown to {1,2,3}, crashes and restarts from its durable
    state (hard state membership: {1}). Its membership comes from its log (the final, or
    the uncommitted joint, configuration): after its timeout it asks 2 and 3 for votes and
    does not lead alone. The pristine-added nodes take their membership from the log too."""
    c = formed(1, pristine=2, factory=factory)
    if crash_after == "final":
        grow_one_to_three(c)
        expected = M([1, 2, 3])
    else:
        c.propose(1, add=[2, 3])
        flush_until(c, lambda: c[1].membership.is_in_joint_consensus)
        c.drop_where()
        expected = M([1], [1, 2, 3])
        assert c.commit_index < config_index(c, 1, expected)
    assert c.nodes[1].durable.hard_state.membership == M([1])
    for nid in (1, 2, 3):
        c.crash(nid)
    c.restart(1)
    c.timeout(1)
    assert c[1].role is Role.CANDIDATE and c[1].membership == expected
    assert {m.dst for m in c.msgs(VoteRequest, src=1)} == {2, 3}
    for nid in (2, 3):
        c.restart(nid)
        assert c[nid].membership == c.configs(nid)[-1][1]  # from the log
        assert c.nodes[nid].durable.hard_state.membership == M()
    c.campaign(1, [2])
    assert c[1].role is Role.LEADER
    settle(c, 1)
    assert c[1].membership == M([1, 2, 3])
    c.check_final()


# --- addresses travel with the configuration ---------------------------------------------


def test_every_configuration_entry_carries_the_addresses_of_its_nodes() -> None:
    """A network between processes learns addresses from the configuration in effect, so
    each configuration entry carries the address of every voter and non-voter of its own.
    {1,2,3}, with addresses, is replaced by {4,5,6}: 1, 2 and 3 still vote in the learner
    and the joint entries, which carry their addresses; the final entry carries only 4, 5
    and 6. Node 5, which knew nobody, restarted in the joint step, knows from its log where
    every voter it must reach is."""
    book = {n: f"10.0.0.{n}:7001" for n in range(1, 7)}
    c = formed(3, pristine=3)
    c.propose(1, addresses={n: book[n] for n in (1, 2, 3)})
    settle(c, 1, among=(1, 2, 3))
    call = c.propose(1, add=[4, 5, 6], remove=[1, 2, 3], addresses={n: book[n] for n in (4, 5, 6)})
    flush_until(c, lambda: all(c[n].membership.is_in_joint_consensus for n in c.ids))
    c.crash(5)
    c.restart(5)
    assert c[5].membership == M([1, 2, 3], [4, 5, 6], addresses=book)
    settle(c, 1)
    assert call.value.membership == M([4, 5, 6], addresses={n: book[n] for n in (4, 5, 6)})
    assert configs(c, 4)[1:] == [
        "voters[1,2,3]",
        "voters[1,2,3]+nv[4,5,6]",
        "joint[1,2,3|4,5,6]",
        "voters[4,5,6]",
    ]
    for _, m in c.configs(4)[1:]:
        assert m.address_book() == {n: book[n] for n in m.all_nodes()}, m
    c.check_final()


# --- a removed node that missed its removal -----------------------------------------------


@pytest.mark.parametrize("holds", ["C_old", "joint"])
def test_removed_node_that_missed_the_final_configuration_goes_quiet(
    holds: str, factory: Factory = RaftCore
) -> None:
    """Leader 1 removes 3 while 3 hears nothing past C_old (or past the joint entry). C_new
    = {1,2} commits without it. 3 times out and campaigns: 1 and 2 answer
    is_candidate_unknown without taking its term, 3 goes quiet (NON_VOTER) and starts no
    further election. The leader ignores 3's higher term (3 is departing) and stops
    replicating to it."""
    c = formed(3, factory=factory)
    call = c.propose(1, remove=[3])
    joint = config_index(c, 1, M([1, 2, 3], [1, 2]))
    if holds == "joint":
        deliver_and_answer(c, c.msgs(AppendEntriesRequest, dst=3, where=carries(joint)))
    c.drop_where(dst=3)
    settle(c, 1, among=(1, 2))
    c.drop_where(dst=3)
    assert call.value == ConfigChangeResponse(joint + 1, M([1, 2]))
    assert c[3].membership == (M([1, 2, 3], [1, 2]) if holds == "joint" else M([1, 2, 3]))
    assert 3 in c[1].leader.departing
    terms = (c[1].current_term, c[2].current_term)

    c.timeout(3)
    answers = c.campaign(3, [1, 2])
    assert (c[1].current_term, c[2].current_term) == terms
    assert c[1].role is Role.LEADER
    assert all(isinstance(a, VoteResponse) and a.is_candidate_unknown for a in answers.values())
    assert not any(a.vote_granted for a in answers.values())
    assert c[3].role is Role.NON_VOTER
    term3 = c[3].current_term
    for _ in range(100):
        c.tick(3, 10)
    assert c[3].current_term == term3 and not c.msgs(src=3)

    # The leader reaches 3: 3 answers with its higher term, which the leader ignores.
    c.heartbeat(1)
    deliver_and_answer(c, c.msgs(dst=3))
    assert c[1].role is Role.LEADER and c[1].current_term == terms[0]
    assert 3 not in c[1].leader.progress and 3 not in c[1].leader.departing
    settle(c, 1)
    assert not c.msgs(dst=3)
    w = c.write(1, "after")
    c.flush()
    assert w.outcome == "committed"
    c.check_final()


def test_removed_node_that_got_the_final_configuration_goes_quiet() -> None:
    """A removed node that receives C_new becomes NON_VOTER, and the leader stops
    replicating to it once it holds that entry."""
    c = formed(3)
    c.propose(1, remove=[3])
    settle(c, 1)
    assert c[3].role is Role.NON_VOTER and c[3].membership == M([1, 2])
    assert 3 not in c[1].leader.progress and not c[1].leader.departing
    settle(c, 1)
    assert not c.msgs(dst=3)
    for _ in range(100):
        c.tick(3, 10)
    assert not c.msgs(src=3)
    c.check_final()


def test_node_removed_while_down_wiped_and_added_again_catches_up() -> None:
    """3 is removed while down: the leader still keeps its progress (match 4) among the
    departing nodes. The operator wipes it and adds it again, pristine. The leader
    replicates to it from a fresh progress, from index 1, and the change completes (with
    the old progress it would probe after index 4 for ever, and 3 would get no entry). A
    late success that 3 sent before it was wiped counts for nothing."""
    c = formed(3)
    for i in range(3):
        c.write(1, f"w{i}")
    settle(c, 1)
    c.write(1, "w3")
    sent = c.msgs(AppendEntriesRequest, src=1, dst=3)
    c.deliver(*sent)
    late = [a for m in sent for a in c.answers_to(m)]  # 3 holds 5; the leader hears later
    c.flush(among=(1, 2))
    assert c[1].leader.progress[3].match_index == 4
    c.crash(3)
    removed = c.propose(1, remove=[3])
    settle(c, 1, among=(1, 2))
    assert removed.value.membership == M([1, 2]) and 3 in c[1].leader.departing
    c.wipe(3)
    c.restart(3)
    assert c[3].is_pristine
    again = c.propose(1, add=[3])
    c.deliver(*late)
    assert c[1].leader.progress[3].match_index == 0
    settle(c, 1)
    assert again.value.membership == M([1, 2, 3])
    assert c.log(3) == c.log(1)
    c.check_final()


def test_a_member_that_lost_its_log_is_probed_once_per_heartbeat_then_caught_up() -> None:
    """3 starts again empty under its own id, without leaving the membership (Raft does
    not allow it: 3 may have voted). It lacks entries it acknowledged, so it rejects the
    leader's probe at its match. The leader probes it again a heartbeat later, not at once
    (that was a tight loop of probes and rejections, for ever), and after three such
    rejections in a row takes the end of 3's log as its match: 3 catches up."""
    c = formed(3)
    for i in range(3):
        c.write(1, f"w{i}")
    settle(c, 1)
    assert c[1].leader.progress[3].match_index == 4
    c.crash(3)
    c.wipe(3)
    c.restart(3)
    c.heartbeat(1)
    assert c.flush() <= 4  # the probe, its rejection, and nothing more until a heartbeat
    assert c[1].leader.progress[3].lacking == 1 and c[3].log.last_index == 0
    settle(c, 1, rounds=3)
    assert c[1].leader.progress[3].match_index == 4
    assert c.log(3) == c.log(1)


# --- errors and request normalization -----------------------------------------------------


def test_node_not_leader_names_the_leader() -> None:
    """Only the leader takes changes: a follower answers NodeNotLeader with the leader it
    knows, a node that knows none (a candidate) with ``None``. Nothing is appended."""
    c = formed(3)
    call = c.propose(2, add=[4])
    assert isinstance(call.error, NodeNotLeader) and call.error.leader_id == 1
    c.crash(1)
    c.timeout(3)
    call = c.propose(3, add=[4])
    assert isinstance(call.error, NodeNotLeader) and call.error.leader_id is None
    assert all(len(c.configs(n)) == 1 for n in (2, 3))
    c.check_final()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({}, Noop, id="noop-empty"),
        pytest.param({"add": [2, 3]}, Noop, id="noop-add-voters"),
        pytest.param({"remove": [7]}, Noop, id="noop-remove-stranger"),
        pytest.param({"non_voters": [4]}, Noop, id="noop-learner-again"),
        pytest.param({"add": [1], "non_voters": [4]}, Noop, id="noop-combined"),
        pytest.param({"remove": [1, 2, 3]}, InoperableConfig, id="no-voters-left"),
        pytest.param(
            {"remove": [1, 2, 3], "non_voters": [5]}, InoperableConfig, id="learners-only"
        ),
        pytest.param({"add": [5], "remove": [5]}, InoperableConfig, id="add-and-remove"),
        pytest.param({"non_voters": [5], "remove": [5]}, InoperableConfig, id="learn-and-remove"),
        pytest.param({"add": [5], "non_voters": [5]}, InoperableConfig, id="voter-and-learner"),
    ],
)
def test_refused_changes_append_nothing(change: dict[str, list[int]], error: type) -> None:
    """Noop (nothing to change) and InoperableConfig (no voter left, or a node listed in
    two fields): answered at once, nothing is appended, and a valid change is taken right
    after. (Learner 4 is in the cluster already.)"""
    c = formed(3, pristine=2)
    c.propose(1, non_voters=[4])
    settle(c, 1)
    before = c.log(1)
    call = c.propose(1, **change)
    assert call.outcome == "error" and isinstance(call.error, error), call
    assert c.log(1) == before and c[1].leader.change is None
    ok = c.propose(1, add=[5])
    settle(c, 1)
    assert ok.value.membership == M([1, 2, 3, 5], None, [4])
    c.check_final()


def test_below_min_voters_refused() -> None:
    """``Config.min_voters=3``: removing one of three voters is InoperableConfig; replacing
    it (add one, remove one) is taken."""
    c = formed(3, pristine=1, config=attrs.evolve(CONFIG, min_voters=3))
    call = c.propose(1, remove=[3])
    assert isinstance(call.error, InoperableConfig), call
    assert "min_voters" in str(call.error)
    ok = c.propose(1, add=[4], remove=[3])
    settle(c, 1)
    assert ok.value == ConfigChangeResponse(4, M([1, 2, 4]))
    assert c[3].role is Role.NON_VOTER
    c.check_final()


def test_min_voters_refuses_only_changes_that_shrink() -> None:
    """``Config.min_voters=3`` guards against shrinking: a cluster formed with one node
    still grows, a learner and then a voter, while it has fewer than three voters; a change
    that would leave it fewer voters than now (a removal, a demotion) is refused, and one
    that keeps their number (a replacement) is taken."""
    c = formed(1, pristine=2, config=attrs.evolve(CONFIG, min_voters=3))
    learner = c.propose(1, non_voters=[2])
    settle(c, 1)
    assert learner.outcome == "ok" and learner.value.membership == M([1], None, [2]), learner
    grow = c.propose(1, add=[2])
    settle(c, 1)
    assert grow.outcome == "ok" and grow.value.membership == M([1, 2]), grow
    for change in ({"remove": [2]}, {"non_voters": [2]}):
        call = c.propose(1, **change)
        assert isinstance(call.error, InoperableConfig), call
    swap = c.propose(1, add=[3], remove=[2])
    settle(c, 1)
    assert swap.value.membership == M([1, 3])
    c.check_final()


def test_change_in_progress_until_answered() -> None:
    """One change at a time: while one waits for catch-up, during its joint step, and after
    its final entry (until it committed), another is refused with ChangeInProgress. Once the
    first is answered, the next is taken."""
    c = formed(3, pristine=2)
    first = c.propose(1, add=[4])
    c.flush(among=(1, 2, 3))  # the learner entry commits; 4 hears nothing
    assert c.commit_index == 2 and first.outcome == "pending"
    seen = []

    def refused() -> bool:
        call = c.propose(1, add=[5])
        seen.append(describe_membership(c[1].membership))
        return isinstance(call.error, ChangeInProgress)

    assert refused()
    flush_until(c, lambda: c[1].membership.is_in_joint_consensus)
    assert refused()
    flush_until(c, lambda: not c[1].membership.is_in_joint_consensus)
    assert refused() and first.outcome == "pending"
    settle(c, 1)
    assert first.value == ConfigChangeResponse(4, M([1, 2, 3, 4]))
    assert seen == ["voters[1,2,3]+nv[4]", "joint[1,2,3|1,2,3,4]", "voters[1,2,3,4]"]
    second = c.propose(1, add=[5])
    settle(c, 1)
    assert second.value == ConfigChangeResponse(7, M([1, 2, 3, 4, 5]))
    assert all(isinstance(call.error, ChangeInProgress) for call in c.calls[1:4])
    c.check_final()


def test_duplicates_are_ignored() -> None:
    """D13: duplicate ids in the add and remove lists are dropped: each node is added once,
    and the change takes exactly one learner, one joint and one final entry."""
    c = formed(3, pristine=2)
    call = c.propose(1, add=[4, 5, 4, 5, 4], remove=[3, 3])
    assert call.request.add_members == (4, 5) and call.request.remove_members == (3,)
    settle(c, 1)
    assert configs(c, 1) == [
        "voters[1,2,3]",
        "voters[1,2,3]+nv[4,5]",
        "joint[1,2,3|1,2,4,5]",
        "voters[1,2,4,5]",
    ]
    assert call.value == ConfigChangeResponse(4, M([1, 2, 4, 5]))
    again = c.propose(1, add=[4, 4, 5], remove=[3, 3])
    assert isinstance(again.error, Noop), again
    c.check_final()


# --- a leadership transfer and a membership change: one at a time ------------------------


def test_a_transfer_is_refused_while_a_change_is_in_progress() -> None:
    """Leader 1 removes 3 and is asked to hand over to 3, or to the most caught-up voter,
    before the change is answered: both are refused at once (a configuration entry after
    TimeoutNow would leave the target behind, and the change may remove the target). Once
    the change is answered, a transfer goes through."""
    c = formed(3)
    change = c.propose(1, remove=[3])
    assert c[1].membership.is_in_joint_consensus
    for target in (3, None):
        call = c.ask(1, TransferLeadership(target))
        assert isinstance(call.error, TransferFailed), call
        assert "membership change is in progress" in str(call.error)
    assert not c.msgs(TimeoutNowRequest)
    settle(c, 1)
    assert change.value == ConfigChangeResponse(c[1].log.config_index, M([1, 2]))
    transfer = c.ask(1, TransferLeadership(None))
    settle(c, 1, among=(1, 2))
    assert transfer.value == TransferLeadershipResponse(2, c[2].current_term), transfer
    c.check_final()


def test_a_change_is_refused_while_a_transfer_is_in_progress() -> None:
    """A transfer to 2 waits for 2 to catch up; a change proposed meanwhile is refused
    with ChangeInProgress, and the new leader takes it afterwards."""
    c = formed(3, pristine=1)
    c.write(1, "not on 2 yet")
    transfer = c.ask(1, TransferLeadership(2))
    assert transfer.outcome == "pending"
    change = c.propose(1, add=[4])
    assert isinstance(change.error, ChangeInProgress), change
    assert "handed over" in str(change.error) and len(c.configs(1)) == 1
    settle(c, 1, among=(1, 2, 3))
    assert transfer.value == TransferLeadershipResponse(2, c[2].current_term), transfer
    again = c.propose(2, add=[4])
    settle(c, 2)
    assert again.value == ConfigChangeResponse(c[2].log.config_index, M([1, 2, 3, 4]))
    c.check_final()


def test_a_leader_the_joint_step_removes_refuses_a_transfer_and_hands_over_later() -> None:
    """Leader 1 removes itself; in the joint step it is asked to hand over to 2: refused at
    once (it would be answered as failed after 2 led, since 2 never contacts it), and it
    hands over on its own once its removal commits."""
    c = formed(3)
    change = c.propose(1, remove=[1])
    assert c[1].membership.is_in_joint_consensus
    call = c.ask(1, TransferLeadership(2))
    assert isinstance(call.error, TransferFailed), call
    settle(c, 1)
    assert change.value == ConfigChangeResponse(c[1].log.config_index, M([2, 3]))
    assert hand_over(c, 1) in (2, 3)
    c.check_final()


# --- negative checks: each scenario catches the bug it is about ---------------------------


def _match(core: RaftCore, node: int) -> int:
    if node == core.id:
        return core.flushed_index
    pr = core.leader.progress.get(node) if core.leader else None
    return pr.match_index if pr else 0


def _commit_on(core: RaftCore, voter_sets: Iterable[Iterable[int]]) -> None:
    index = joint_quorum_index([tuple(s) for s in voter_sets], lambda n: _match(core, n))
    if index > core.commit_index and core.log.term_at(index) == core.current_term:
        core._advance_commit(index)


class NonVoterCountingLeader(RaftCore):
    """D3 (actix-raft): commits on a majority of every node it replicates to, non-voters
    included, the joint sets ignored."""

    def _maybe_commit(self) -> None:
        _commit_on(self, [{self.id, *(self.leader.progress if self.leader else ())}])
        super()._maybe_commit()


class NewSetOnlyLeader(RaftCore):
    """D3 (actix-raft): while joint, commits on a majority of C_new alone."""

    def _maybe_commit(self) -> None:
        m = self.membership
        _commit_on(self, [m.members_after_consensus or m.members])
        super()._maybe_commit()


class SelfCountingLeader(RaftCore):
    """Counts itself in every voter set, also in C_new that does not contain it."""

    def _maybe_commit(self) -> None:
        _commit_on(self, [{self.id, *s} for s in self.membership.voter_sets()])
        super()._maybe_commit()


class OldSetCandidate(RaftCore):
    """While joint, wins an election on a majority of C_old alone."""

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        super().vote_result(request, response)
        if (
            self.role is Role.CANDIDATE
            and request.term == self.current_term
            and has_quorum([self.membership.members], self.election.votes_granted)
        ):
            self.become_leader()


class LearnerVoteCounter(RaftCore):
    """Wins an election on a majority of all nodes, non-voters' grants included (D3)."""

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        super().vote_result(request, response)
        everyone = self.membership.all_nodes()
        if (
            self.role is Role.CANDIDATE
            and request.term == self.current_term
            and len(self.election.votes_granted) * 2 > len(everyone)
        ):
            self.become_leader()


class DirectJumpLeader(RaftCore):
    """Goes from C_old straight to C_new, skipping the joint configuration (breaks §6)."""

    def _propose_config(self, membership: MembershipConfig) -> None:
        if membership.members_after_consensus is not None:
            membership = M(membership.members_after_consensus, None, membership.non_voters)
        super()._propose_config(membership)


class HardStateMembership(RaftCore):
    """D10 (actix-raft): a restarted node takes its membership from the hard state (what
    it was formed with), not from the configuration entries in its log."""

    restarted = False

    def start(self, initial: Any, entries: Iterable[Any]) -> None:
        entries = list(entries)
        super().start(initial, entries)
        self.restarted = bool(entries)

    @property
    def membership(self) -> MembershipConfig:
        return self.hard_membership if self.restarted else super().membership


class NoFinalizeLeader(RaftCore):
    """D9 (actix-raft): a leader that inherited a joint configuration never finalizes it."""

    def _drive_membership(self) -> None:
        leader = self.leader
        if leader is not None and leader.change is None and self.membership.is_in_joint_consensus:
            return
        super()._drive_membership()


class NoBarrierLeader(RaftCore):
    """D9 (actix-raft): the sync barrier passes whatever the new node's progress."""

    def _caught_up(self, node: int) -> bool:
        return True


class StayingLeader(RaftCore):
    """Keeps leading after the configuration without it committed, and does not hand
    over either (breaks §6)."""

    def _start_transfer(self, target: int, token: int | None) -> None:
        if token is not None:
            super()._start_transfer(target, token)

    def become_follower(self, term: int, leader_id: int | None, reset: bool = True) -> None:
        if (
            self.role is Role.LEADER
            and term == self.current_term
            and not self.membership.is_voter(self.id)
        ):
            return
        super().become_follower(term, leader_id, reset)


class UnknownIgnoringCandidate(RaftCore):
    """Takes "candidate unknown" for a plain refusal, and campaigns on."""

    def vote_result(self, request: VoteRequest, response: VoteResponse | None) -> None:
        if response is not None and response.is_candidate_unknown:
            response = attrs.evolve(response, is_candidate_unknown=False)
        super().vote_result(request, response)


class StrangerVoter(RaftCore):
    """Handles a vote request from a node outside its membership like any other: it adopts
    the stranger's term (D11 without the unknown-candidate rule)."""

    def receive_vote(self, request: VoteRequest, token: int) -> None:
        if not self.membership.contains(request.candidate_id) and self.role is not (
            Role.INITIALIZING
        ):
            if request.term > self.current_term:
                self.become_follower(request.term, None)
            self.respond(token, value=VoteResponse(self.current_term, False), after_durable=True)
            return
        super().receive_vote(request, token)


class EagerLoneVoter(RaftCore):
    """A lone voter leads the term it just took, before that term is durable."""

    def become_candidate(self, transfer: bool = False) -> None:
        super().become_candidate(transfer)
        if self.role is Role.CANDIDATE and self.election.won():
            self.become_leader()


class DepartingTermLeader(RaftCore):
    """Steps down on a higher term from a removed node it still replicates to."""

    def append_entries_result(self, request: AppendEntriesRequest, response: Any) -> None:
        if response is not None and response.term > self.current_term and self.leader:
            self.leader.departing.pop(request.target, None)
        super().append_entries_result(request, response)


@pytest.mark.parametrize(
    ("scenario", "factory", "expected"),
    [
        pytest.param(
            test_learners_added_in_one_entry_and_never_counted,
            NonVoterCountingLeader,
            {"committed-lost"},
            id="D3-non-voters-count",
        ),
        pytest.param(
            test_learners_added_in_one_entry_and_never_counted,
            LearnerVoteCounter,
            {"election-quorum"},
            id="D3-learner-votes-count",
        ),
        pytest.param(
            functools.partial(test_joint_entry_commits_only_with_both_majorities, "C_new"),
            NewSetOnlyLeader,
            {"committed-lost"},
            id="D3-C_new-majority-only",
        ),
        pytest.param(
            test_removed_leader_leads_until_c_new_commits_then_steps_down,
            SelfCountingLeader,
            {"committed-lost"},
            id="leader-counts-itself-in-C_new",
        ),
        pytest.param(
            functools.partial(
                test_election_in_joint_configuration_needs_both_majorities, 1, (2, 4, 5)
            ),
            OldSetCandidate,
            {"election-quorum"},
            id="C_old-majority-elects",
        ),
        pytest.param(
            test_a_lone_voter_leads_only_once_its_term_is_durable,
            EagerLoneVoter,
            {"election-safety"},
            id="lone-voter-leads-before-its-term-is-durable",
        ),
        pytest.param(
            test_grow_one_to_three_learners_joint_final,
            DirectJumpLeader,
            {"config-transition"},
            id="no-joint-step",
        ),
        pytest.param(
            functools.partial(
                test_grown_single_node_restarted_does_not_elect_itself_alone, "final"
            ),
            HardStateMembership,
            {"election-quorum"},
            id="D10-membership-from-hard-state",
        ),
    ],
)
def test_broken_core_is_caught_by_the_harness(
    scenario: Callable[..., None], factory: Factory, expected: set[str]
) -> None:
    """Each scenario, replayed with a core that breaks the rule it is about, ends in a
    harness violation (a membership-aware invariant), before the scenario's own checks."""
    with pytest.raises(ScenarioViolation) as caught:
        scenario(factory=factory)
    assert caught.value.check in expected, str(caught.value)


@pytest.mark.parametrize(
    ("scenario", "factory"),
    [
        pytest.param(
            test_new_leader_finishes_inherited_joint_configuration,
            NoFinalizeLeader,
            id="D9-inherited-joint-never-final",
        ),
        pytest.param(
            test_catch_up_barrier_holds_the_joint_configuration_until_caught_up,
            NoBarrierLeader,
            id="D9-no-sync-barrier",
        ),
        pytest.param(
            test_removed_leader_leads_until_c_new_commits_then_steps_down,
            StayingLeader,
            id="removed-leader-stays",
        ),
        pytest.param(
            functools.partial(
                test_removed_node_that_missed_the_final_configuration_goes_quiet, "C_old"
            ),
            UnknownIgnoringCandidate,
            id="removed-node-campaigns-on",
        ),
        pytest.param(
            functools.partial(
                test_removed_node_that_missed_the_final_configuration_goes_quiet, "C_old"
            ),
            StrangerVoter,
            id="voters-take-a-strangers-term",
        ),
        pytest.param(
            functools.partial(
                test_removed_node_that_missed_the_final_configuration_goes_quiet, "joint"
            ),
            DepartingTermLeader,
            id="leader-takes-a-departing-term",
        ),
    ],
)
def test_broken_core_fails_the_scenario(scenario: Callable[..., None], factory: Factory) -> None:
    """Bugs that break no safety invariant (liveness, §6's protocol) fail the scenario's
    own expectations."""
    with pytest.raises(AssertionError) as caught:
        scenario(factory=factory)
    assert not isinstance(caught.value, ScenarioViolation), str(caught.value)


def test_quorum_check_ignores_non_voters() -> None:
    """D3: the leader's quorum check counts voters only: a leader that hears from its two
    learners but from no other voter steps down after an election timeout; one that hears
    from one other voter (a majority with itself) and from no learner stays."""
    c = formed(3, pristine=2)
    c.propose(1, non_voters=[4, 5])
    settle(c, 1)
    pass_time(c, 1, 2 * CONFIG.election_timeout_max, among=(1, 2))
    assert c[1].role is Role.LEADER
    pass_time(c, 1, 2 * CONFIG.election_timeout_max, among=(1, 4, 5))
    assert c[1].role is Role.FOLLOWER
    c.check_final()


def test_removed_deposed_leader_answers_its_committed_applied_write() -> None:
    """A deposed leader learns in one AppendEntries that its APPLIED write committed and
    that it was removed: the write is answered by its apply, not OutcomeUnknown (only
    writes still undecided are abandoned)."""
    c = Cluster(3)
    c.elect(1, voters=[2, 3])
    c.flush()
    w = c.write(1, "w1", ResponseMode.APPLIED)
    for m in c.msgs(AppendEntriesRequest, src=1, dst=2):
        c.deliver(m)  # the entry reaches 2 only; 1 never hears back
    c.drop_where(src=1)
    c.drop_where(dst=1)
    c.elect(2, voters=[3])  # 2 holds w1 and commits it with its own blank entry
    c.flush(among=[2, 3])
    call = c.propose(2, remove=[1])
    c.flush(among=[2, 3])
    c.flush()  # 1 hears of the commit and of its removal at once
    assert call.value.membership == M([2, 3])
    assert w.outcome == "applied" and w.index == 2
    c.check_final()


@pytest.mark.parametrize("lagging", [True, False], ids=["lagging-voter", "control"])
def test_a_voter_that_missed_a_change_votes_for_a_node_it_added(lagging: bool) -> None:
    """1 adds 4 and 5 to {1, 2, 3} while 3 is cut off, so 3 still holds {1, 2, 3}. Then 1
    and 2 crash for good: 3, 4 and 5 are a majority of five. 3 does not know 4 and 5, but
    their logs are newer than its own, so it does not refuse them as "candidate unknown"
    (it would for ever, and no leader could be elected) and one of them leads. The
    control: 3 got the change too."""
    c = formed(3, pristine=2)
    call = c.propose(1, add=[4, 5])
    for _ in range(10):
        c.heartbeat(1)
        if lagging:
            c.drop_where(where=lambda m: 3 in (m.src, m.dst))
        c.flush((1, 2, 4, 5) if lagging else None)
    assert call.outcome == "ok", call
    assert c[3].membership.contains(4) is not lagging  # 3 missed the change, or not
    c.crash(1)
    c.crash(2)
    live = (3, 4, 5)
    for _ in range(60):
        for n in live:
            c.tick(n, 50)
        c.drop_where(where=lambda m: m.dst in (1, 2))
        c.flush(live)
        if any(c[n].role is Role.LEADER for n in live):
            break
    leader = next(n for n in live if c[n].role is Role.LEADER)
    assert c[leader].membership.voters() == {1, 2, 3, 4, 5}
