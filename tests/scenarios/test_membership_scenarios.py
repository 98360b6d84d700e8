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

References: Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
(Extended Version)", 2014, §6; Ongaro, "Consensus: Bridging Theory and Practice", 2014, §4.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pytest
from scenario_net import CONFIG, Cluster, Msg, ScenarioViolation, describe_membership

from pykka_raft.admin import ConfigChangeResponse
from pykka_raft.config import Config
from pykka_raft.core.quorum import has_quorum
from pykka_raft.core.raft_core import RaftCore, Role
from pykka_raft.errors import (
    CatchUpTimeout,
    ChangeInProgress,
    ForwardToLeader,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    EntryConfigChange,
    MembershipConfig,
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
    skip: Iterable[str] = (),
) -> Cluster:
    """``n`` formed voters (empty logs) and ``pristine`` pristine nodes; ``leader`` wins
    term 1, commits its first entry (the configuration ``voters[1..n]``) and every formed
    node holds it."""
    c = Cluster(
        n, pristine=pristine, config=config, factory=factory, checks=CHECKS, skip_checks=skip
    )
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
        ready = [
            m for m in c.pool if m.src in group and m.dst in group and c.nodes[m.dst].up
        ]
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


def test_grow_one_to_three_learners_joint_final() -> None:
    """§6 / D9: a node formed alone adds two pristine nodes. They join as non-voters, and
    the joint configuration follows only once both caught up; then the final configuration.
    The answer is the committed final configuration, at its index."""
    c = formed(1, pristine=2)
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

    # A write now needs two of the three.
    w = c.write(1, "after-grow")
    c.drop_where(dst=3)
    c.drop_where(dst=2)
    assert w.outcome == "pending"
    settle(c, 1, among=(1, 2))
    assert w.outcome == "committed"
    c.check_final()


def _lagging_setup(config: Config) -> tuple[Cluster, Any]:
    """Nodes 1-3 formed (1 leads); node 4 is proposed as a voter; 4 hears nothing yet."""
    c = formed(3, pristine=1, config=config)
    call = c.propose(1, add=[4])
    c.drop_where(dst=4)
    settle(c, 1, among=(1, 2, 3))
    c.drop_where(dst=4)
    assert configs(c, 1) == ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]
    assert c[1].commit_index == 2
    return c, call


def test_catch_up_barrier_holds_the_joint_configuration_until_caught_up() -> None:
    """D9: the joint configuration is not appended while a new voter is behind: neither
    while it heard nothing, nor once it answers but still lags by more than
    ``catch_up_lag``. It is appended once the node caught up."""
    c, call = _lagging_setup(attrs.evolve(CONFIG, catch_up_lag=2))
    pass_time(c, 1, 300, among=(1, 2, 3))
    assert configs(c, 1) == ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]
    assert call.outcome == "pending"

    # Four writes commit without 4 (entries 3..6); then 4 gets the probe and the entries
    # up to the learner configuration only: it answers, and lags by four.
    for i in range(4):
        c.write(1, f"w{i}")
    settle(c, 1, among=(1, 2, 3))
    c.drop_where(dst=4)
    assert c[1].log.last_index == 6 and c.commit_index == 6
    c.heartbeat(1)  # a probe to 4
    c.drop_where(dst=4, where=lambda m: not m.reply and isinstance(m.body, AppendEntriesRequest))
    c.tick(1, CONFIG.election_timeout_min)  # the probe timed out: 4 is probed again
    c.flush(among=(1, 2, 3))
    for _ in range(10):
        to4 = c.msgs(AppendEntriesRequest, dst=4)
        if not to4:
            c.heartbeat(1)
            c.flush(among=(1, 2, 3))
            continue
        probe = to4[0]
        c.drop(*to4[1:])
        if probe.body.last_index > 2:
            # Only the entries up to the learner configuration reach 4.
            break
        deliver_and_answer(c, [probe])
    assert c[1].progress[4].match_index < 2 or c[1].progress[4].match_index <= 6
    c.drop_where(dst=4)
    assert configs(c, 1) == ["voters[1,2,3]", "voters[1,2,3]+nv[4]"]

    # Everything reaches 4: the joint configuration, then the final one.
    settle(c, 1)
    assert configs(c, 1) == [
        "voters[1,2,3]",
        "voters[1,2,3]+nv[4]",
        "joint[1,2,3|1,2,3,4]",
        "voters[1,2,3,4]",
    ]
    assert call.value == ConfigChangeResponse(8, M([1, 2, 3, 4]))
    assert c[4].role is Role.FOLLOWER
    c.check_final()
