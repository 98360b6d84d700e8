"""Membership changes on live clusters: grow, shrink, replace, learners, faults.

A background writer runs during every change; at the end every write it saw acknowledged
must be in the state machine of every member of the final configuration.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import attrs
import pytest
from conftest import TEST_CONFIG

from pykka_raft import (
    CatchUpTimeout,
    ChangeInProgress,
    Config,
    ConfigChangeResponse,
    GetMetrics,
    InoperableConfig,
    MembershipConfig,
    NodeNotLeader,
    Noop,
    ProposeConfigChange,
    Put,
    RaftMetrics,
    ShuttingDown,
    State,
)
from pykka_raft.metrics import MetricsHub
from pykka_raft.testing import Cluster
from pykka_raft.testing.faultnet import Direction, FaultNetwork, Heal, LinkRule, SetLinkRule


class Writer:
    """Writes unique keys through the leader in a thread; remembers what was acknowledged."""

    def __init__(self, cluster: Cluster, prefix: str = "w") -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.acked: dict[str, int] = {}
        self.unknown = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the writer did not stop"

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key = f"{self.prefix}{i}"
            i += 1
            try:
                self.cluster.write(Put(key, i), timeout=10)
            except (TimeoutError, ShuttingDown):
                self.unknown += 1  # outcome unknown: may or may not be applied
                continue
            with self._cond:
                self.acked[key] = i
                self._cond.notify_all()

    def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` more writes were acknowledged."""
        with self._cond:
            target = len(self.acked) + count
            ok = self._cond.wait_for(lambda: len(self.acked) >= target, timeout)
        assert ok, f"only {len(self.acked)} of {target} writes acknowledged in {timeout}s"


def check_nothing_lost(cluster: Cluster, writer: Writer, members: Iterable[int]) -> None:
    """Every acknowledged write is applied by every member of the final configuration."""
    members = sorted(members)
    last = cluster.write(Put("final", 0))
    cluster.wait_applied(last.index, nodes=members, timeout=30)
    for node_id in members:
        state = cluster.dump(node_id).state_machine
        missing = [k for k in writer.acked if k not in state]
        assert not missing, f"node {node_id} lacks acknowledged writes {missing[:5]}"
    assert len(writer.acked) > 0


def wait_membership(
    cluster: Cluster, nodes: Iterable[int], expected: MembershipConfig, timeout: float = 30.0
) -> None:
    ids = sorted(nodes)
    cluster.hub.wait_for(
        lambda m: all(n in m and m[n].membership_config == expected for n in ids),
        timeout,
        f"nodes {ids} to hold membership {expected}",
    )


def metrics(cluster: Cluster, node_id: int) -> RaftMetrics:
    result: RaftMetrics = cluster.nodes[node_id].ask(GetMetrics(), timeout=10)
    return result


def grown(cluster: Cluster, *new: int) -> None:
    for node_id in new:
        cluster.start_node(node_id)


# --- growing and shrinking -----------------------------------------------------------------


def test_grow_one_to_three_while_writing(make_cluster):
    cluster = make_cluster([1])
    cluster.initialize([1])
    cluster.leader()
    with Writer(cluster) as writer:
        writer.wait_acked(20)
        grown(cluster, 2, 3)
        response = cluster.change_membership(add=[2, 3])
        assert response == ConfigChangeResponse(response.index, MembershipConfig((1, 2, 3)))
        writer.wait_acked(20)
    wait_membership(cluster, [1, 2, 3], MembershipConfig((1, 2, 3)))
    check_nothing_lost(cluster, writer, [1, 2, 3])
    assert {metrics(cluster, n).state for n in (1, 2, 3)} >= {State.LEADER, State.FOLLOWER}


def test_grow_three_to_five_then_shrink_to_three(formed):
    with Writer(formed) as writer:
        writer.wait_acked(10)
        grown(formed, 4, 5)
        assert formed.change_membership(add=[4, 5]).membership == MembershipConfig(range(1, 6))
        writer.wait_acked(10)
        # Shrink by two of the original members; one of them may be the leader.
        response = formed.change_membership(remove=[1, 2])
        assert response.membership == MembershipConfig((3, 4, 5))
        writer.wait_acked(10)
    wait_membership(formed, [3, 4, 5], MembershipConfig((3, 4, 5)))
    assert formed.leader() in (3, 4, 5)
    check_nothing_lost(formed, writer, [3, 4, 5])
    for removed in (1, 2):
        formed.hub.wait_for(
            lambda m, r=removed: m[r].state is State.NON_VOTER, 20, f"node {removed} to go quiet"
        )


def test_remove_a_follower_it_goes_quiet_and_the_term_stays(formed):
    leader = formed.leader()
    term = metrics(formed, leader).current_term
    follower = next(n for n in formed.nodes if n != leader)
    with Writer(formed) as writer:
        writer.wait_acked(10)
        response = formed.change_membership(remove=[follower])
        assert set(response.membership.members) == {1, 2, 3} - {follower}
        formed.hub.wait_for(
            lambda m: (
                m[follower].state is State.NON_VOTER
                and not m[follower].membership_config.contains(follower)
            ),
            20,
            "the removed follower to learn it was removed",
        )
        writer.wait_acked(30)
    rest = sorted(set(formed.nodes) - {follower})
    check_nothing_lost(formed, writer, rest)
    assert metrics(formed, leader).state is State.LEADER
    assert metrics(formed, leader).current_term == term, "the removal disturbed the leader"


def test_remove_the_leader_it_steps_down_after_the_final_config(formed):
    old = formed.leader()
    old_term = metrics(formed, old).current_term
    with Writer(formed) as writer:
        writer.wait_acked(10)
        response = formed.nodes[old].ask(ProposeConfigChange(remove_members=[old]), timeout=30)
        assert old not in response.membership.voters()
        # It led until the final configuration was committed: that entry is of its term.
        final_entry = formed.dump(old).log[response.index - 1]
        assert final_entry.term == old_term
        formed.hub.wait_for(
            lambda m: m[old].state is State.NON_VOTER and m[old].current_leader != old,
            20,
            "the removed leader to step down",
        )
        new = formed.leader(timeout=20)
        assert new != old
        writer.wait_acked(20)
    check_nothing_lost(formed, writer, set(formed.nodes) - {old})


def test_replace_all_three_members_in_one_change(formed):
    old_leader = formed.leader()
    with Writer(formed) as writer:
        writer.wait_acked(10)
        grown(formed, 4, 5, 6)
        response = formed.change_membership(add=[4, 5, 6], remove=[1, 2, 3])
        assert response.membership == MembershipConfig((4, 5, 6))
        writer.wait_acked(20)
    new_leader = formed.leader(timeout=20)
    assert new_leader in (4, 5, 6)
    check_nothing_lost(formed, writer, [4, 5, 6])
    formed.hub.wait_for(
        lambda m: all(m[n].state is State.NON_VOTER for n in (1, 2, 3)),
        20,
        f"the old members (leader {old_leader}) to go quiet",
    )


def test_change_while_a_minority_is_partitioned(formed):
    leader = formed.leader()
    cut_off = next(n for n in formed.nodes if n != leader)
    formed.isolate(cut_off)
    with Writer(formed) as writer:
        writer.wait_acked(10)
        grown(formed, 4, 5)
        response = formed.change_membership(add=[4, 5])
        assert response.membership == MembershipConfig(range(1, 6))
        writer.wait_acked(10)
    formed.restore(cut_off)
    wait_membership(formed, range(1, 6), MembershipConfig(range(1, 6)))
    check_nothing_lost(formed, writer, range(1, 6))


# --- faults during a change ----------------------------------------------------------------


def test_leader_crash_in_the_joint_phase_the_new_leader_finishes(make_cluster):
    network = FaultNetwork.start(seed=3)
    cluster = make_cluster([1, 2, 3], network=network)
    cluster.initialize()
    leader = cluster.leader()
    cluster.start_node(4)
    cluster.change_membership(non_voters=[4])  # 4 replicates first, as a learner
    followers = [n for n in (1, 2, 3, 4) if n != leader]
    # The leader's requests still arrive but the old voters' answers never come back: they
    # store the joint entry and the leader cannot commit it (4 answers, so the leader
    # knows it caught up; it is no majority of the old voters).
    for node_id in followers[:2]:
        network.ask(
            SetLinkRule(node_id, leader, LinkRule(block=True, direction=Direction.RESPONSES))
        )
    cluster.nodes[leader].ask(ProposeConfigChange(add_members=[4]), block=False)
    joint = MembershipConfig((1, 2, 3), (1, 2, 3, 4))
    wait_membership(cluster, followers, joint, timeout=20)
    cluster.crash(leader)
    network.ask(Heal())
    final = MembershipConfig((1, 2, 3, 4))
    wait_membership(cluster, followers, final, timeout=30)
    new = cluster.leader(timeout=20)
    assert new != leader
    cluster.start_node(leader)
    wait_membership(cluster, (1, 2, 3, 4), final, timeout=30)
    assert metrics(cluster, 4).state in (State.FOLLOWER, State.LEADER)


def test_removed_node_restarted_with_old_data_does_not_disturb_the_cluster(formed):
    leader = formed.leader()
    removed = next(n for n in formed.nodes if n != leader)
    formed.crash(removed)  # it never hears of its removal
    response = formed.change_membership(remove=[removed])
    assert removed not in response.membership.all_nodes()
    term = metrics(formed, leader).current_term
    formed.write(Put("before restart", 1))
    formed.start_node(removed)  # its log still says it is a voter
    formed.hub.wait_for(
        lambda m: removed in m and m[removed].state is State.NON_VOTER,
        30,
        "the removed node to go quiet",
    )
    for i in range(20):
        formed.write(Put("after restart", i))
    assert metrics(formed, leader).state is State.LEADER
    assert metrics(formed, leader).current_term == term
    terms = {m.current_term for m in formed.hub.history if m.id != removed}
    assert max(terms) == term, "a node of the cluster adopted the removed node's term"


def test_grown_single_node_restarted_alone_cannot_elect_itself(make_cluster):
    """D10: the membership comes from the log, not from what the node was formed with.
    PreVote is off so that each failed election shows as a new term."""
    config = attrs.evolve(TEST_CONFIG, pre_vote=False)
    cluster = make_cluster([1], config=config)
    cluster.initialize([1])
    cluster.leader()
    grown(cluster, 2, 3)
    cluster.change_membership(add=[2, 3])
    wait_membership(cluster, (1, 2, 3), MembershipConfig((1, 2, 3)))
    for node_id in (1, 2, 3):
        cluster.stop_node(node_id)
    cluster.start_node(1)
    start_term = cluster.hub.get(1).current_term if cluster.hub.get(1) else 0
    # It campaigns (twice) and never wins alone: {1} is not a majority of {1, 2, 3}.
    cluster.hub.wait_for(
        lambda m: m[1].state is State.CANDIDATE and m[1].current_term >= start_term + 2,
        30,
        "node 1 to campaign twice",
    )
    leaders = cluster.hub.leaders_by_term()
    assert not any(t > start_term for t in leaders), f"node 1 led alone: {leaders}"
    cluster.start_node(2)
    assert cluster.leader(timeout=30) in (1, 2)


# --- learners ---------------------------------------------------------------------------


def test_learner_replicates_without_voting_then_is_promoted(formed):
    formed.start_node(4)
    response = formed.change_membership(non_voters=[4])
    assert response.membership == MembershipConfig((1, 2, 3), None, (4,))
    last = formed.write(Put("k", "for the learner"))
    formed.wait_applied(last.index, nodes=[4])
    learner = metrics(formed, 4)
    assert learner.state is State.NON_VOTER
    assert learner.voters == {1, 2, 3} and learner.non_voters == {4}
    assert formed.dump(4).state_machine == {"k": "for the learner"}
    # A learner never counts: with two voters gone, nothing commits.
    leader = formed.leader()
    others = [n for n in (1, 2, 3) if n != leader]
    formed.isolate(others[0])
    formed.isolate(others[1])
    future = formed.nodes[leader].ask(ProposeConfigChange(add_members=[4]), block=False)
    formed.restore(others[0])
    formed.restore(others[1])
    response = future.get(timeout=30)
    assert response.membership == MembershipConfig((1, 2, 3, 4))
    formed.hub.wait_for(lambda m: m[4].state is State.FOLLOWER, 20, "node 4 to vote")
    # ... and demoted again.
    response = formed.change_membership(non_voters=[4])
    assert response.membership == MembershipConfig((1, 2, 3), None, (4,))
    formed.hub.wait_for(lambda m: m[4].state is State.NON_VOTER, 20, "node 4 to be a learner")


# --- errors -----------------------------------------------------------------------------


def test_change_errors_are_typed_and_leave_the_cluster_working(make_cluster):
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        catch_up_timeout=1500,
        min_voters=2,
    )
    cluster = make_cluster([1, 2, 3], config=config)
    cluster.initialize()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    with pytest.raises(NodeNotLeader) as not_leader:
        cluster.nodes[follower].ask(ProposeConfigChange(add_members=[4]), timeout=10)
    assert not_leader.value.leader_id == leader
    with pytest.raises(Noop, match="nothing to add or remove"):
        cluster.nodes[leader].ask(ProposeConfigChange(add_members=[1, 1, 2]), timeout=10)
    with pytest.raises(InoperableConfig, match="min_voters"):
        cluster.nodes[leader].ask(ProposeConfigChange(remove_members=[1, 2]), timeout=10)
    with pytest.raises(InoperableConfig, match="listed twice"):
        cluster.nodes[leader].ask(ProposeConfigChange((4,), (4,)), timeout=10)
    # Node 9 never starts: it cannot catch up, so the change times out ...
    slow = cluster.nodes[leader].ask(ProposeConfigChange(add_members=[9, 9]), block=False)
    with pytest.raises(ChangeInProgress):
        cluster.nodes[leader].ask(ProposeConfigChange(add_members=[5]), timeout=10)
    with pytest.raises(CatchUpTimeout, match="node\\(s\\) 9 did not catch up"):
        slow.get(timeout=30)
    # ... and 9 stays a non-voter, which a later change removes.
    assert metrics(cluster, leader).non_voters == {9}
    response = cluster.change_membership(remove=[9])
    assert response.membership == MembershipConfig((1, 2, 3))
    assert cluster.write(Put("k", "still working")).index > response.index


def test_metrics_hub_sees_voters_and_non_voters(formed):
    formed.start_node(4)
    formed.change_membership(non_voters=[4])
    hub: MetricsHub = formed.hub
    hub.wait_for(
        lambda m: all(
            n in m and m[n].voters == {1, 2, 3} and m[n].non_voters == {4} for n in (1, 2, 3, 4)
        ),
        20,
        "every node to report voters and non-voters",
    )
