"""Cluster formation with InitWithConfig (actix-raft's initialization and singlenode suites)."""

from __future__ import annotations

import pytest

from pykka_raft import (
    EntryConfigChange,
    GetMetrics,
    InitWithConfig,
    MembershipConfig,
    NotAllowed,
    Put,
    State,
)


def test_pristine_nodes_start_as_non_voters(make_cluster):
    cluster = make_cluster([1, 2, 3])
    cluster.wait_started()
    for node_id, ref in cluster.nodes.items():
        metrics = ref.ask(GetMetrics(), timeout=5)
        assert metrics.state is State.NON_VOTER
        assert metrics.last_log_index == 0
        assert metrics.current_term == 0
        assert metrics.id == node_id


def test_three_pristine_nodes_form_one_cluster(make_cluster):
    cluster = make_cluster([1, 2, 3])
    cluster.initialize()
    leader = cluster.leader()
    latest = cluster.hub.snapshot()
    assert [m.id for m in latest.values() if m.state is State.LEADER] == [leader]
    assert {m.current_term for m in latest.values()} == {latest[leader].current_term}
    for metrics in latest.values():
        assert metrics.membership_config == MembershipConfig(members=(1, 2, 3))
    # The first leader commits the configuration itself as entry 1.
    cluster.wait_applied(1)
    for node_id in cluster.nodes:
        first = cluster.dump(node_id).log[0]
        assert first.index == 1
        assert first.payload == EntryConfigChange(MembershipConfig(members=(1, 2, 3)))


def test_writes_after_formation_reach_every_node(make_cluster):
    cluster = make_cluster([1, 2, 3])
    cluster.initialize()
    for i in range(100):
        last = cluster.write(Put("key", i))
    cluster.wait_applied(last.index)
    latest = cluster.hub.snapshot()
    assert {m.last_log_index for m in latest.values()} == {last.index}
    for node_id in cluster.nodes:
        assert cluster.dump(node_id).state_machine == {"key": 99}


def test_single_node_becomes_leader_at_once_and_takes_writes(make_cluster):
    cluster = make_cluster([1])
    cluster.initialize()
    assert cluster.leader() == 1
    responses = [cluster.write(Put("k", i)) for i in range(100)]
    assert [r.index for r in responses] == list(range(2, 102))
    assert responses[-1].data == 98  # Put answers the previous value
    metrics = cluster.nodes[1].ask(GetMetrics(), timeout=5)
    assert metrics.state is State.LEADER
    assert metrics.last_log_index == metrics.commit_index == 101


def test_single_node_cluster_resumes_after_restart(make_cluster):
    cluster = make_cluster([1])
    cluster.initialize()
    cluster.write(Put("k", "before"))
    cluster.stop_node(1)
    cluster.start_node(1)
    assert cluster.leader() == 1
    response = cluster.write(Put("k", "after"))
    assert response.data == "before"


def test_init_on_a_formed_node_is_refused_unless_same_members(formed):
    leader = formed.leader()
    ref = formed.nodes[leader]
    assert ref.ask(InitWithConfig([1, 2, 3]), timeout=5) is None
    with pytest.raises(NotAllowed, match="not pristine"):
        ref.ask(InitWithConfig([1, 2]), timeout=5)
    # The node keeps working after the refusal.
    assert formed.write(Put("k", "v")).index > 0
