"""Raft nodes in separate processes over loopback TCP: formation, failover, restarts,
membership changes and partitions (each process killed and reaped at the end)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from tcp_cluster import NodeError, ProcessCluster

from pykka_raft import Call, Config, FutureReply, Unreachable, VoteRequest
from pykka_raft.net import (
    CurveKeys,
    GetNetworkMetrics,
    TcpNetwork,
    generate_keypair,
    load_keypair,
    load_public_keys,
    secret_key_path,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def tcp_cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    cluster = ProcessCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()
        assert all(not node.alive() for node in cluster.all)


def test_three_processes_commit_writes_sent_to_any_node(tcp_cluster: ProcessCluster) -> None:
    leader = tcp_cluster.form([1, 2, 3])
    follower = next(n for n in (1, 2, 3) if n != leader)
    with pytest.raises(NodeError) as refused:
        tcp_cluster.nodes[follower].cmd("put", key="a", value=1)
    assert refused.value.kind == "ForwardToLeader" and refused.value.leader == leader
    last = 0
    for i, node in enumerate([1, 2, 3] * 3):
        last = tcp_cluster.write(f"k{i}", i, via=node)
    tcp_cluster.wait_applied(last, [1, 2, 3])
    for node in (1, 2, 3):
        data = tcp_cluster.nodes[node].cmd("data")
        assert data == {f"k{i}": i for i in range(9)}
    net = tcp_cluster.nodes[leader].cmd("net")
    assert net["secure"] is True
    peers = {p["node_id"]: p for p in net["peers"]}
    assert set(peers) == {1, 2, 3} - {leader}
    for peer in peers.values():
        assert peer["state"] == "connected"
        assert peer["responses_received"] > 0 and peer["rtt_ms_p50"] is not None
    assert net["errors"] == []


@pytest.mark.parametrize("catch_up", ["log", "snapshot"])
def test_leader_killed_new_leader_commits_and_old_one_catches_up(
    tcp_cluster: ProcessCluster, catch_up: str
) -> None:
    tcp_cluster.snapshot_every = 20 if catch_up == "snapshot" else 0
    leader = tcp_cluster.form([1, 2, 3])
    before = tcp_cluster.write("before", 1)
    tcp_cluster.wait_applied(before, [1, 2, 3])
    old_term = tcp_cluster.metrics()[leader]["current_term"]

    assert tcp_cluster.kill(leader) == -9  # SIGKILL did it
    rest = [n for n in (1, 2, 3) if n != leader]
    new_leader = tcp_cluster.leader(among=rest)
    assert new_leader != leader
    assert tcp_cluster.metrics()[new_leader]["current_term"] > old_term
    after = tcp_cluster.write("after", 2, via=rest[0])
    extra = 45 if catch_up == "snapshot" else 0
    for i in range(extra):  # enough for the survivors to compact their logs
        after = tcp_cluster.write(f"x{i}", i, via=new_leader)
    tcp_cluster.wait_applied(after, rest)
    if catch_up == "snapshot":
        tcp_cluster.wait(
            lambda: tcp_cluster.metrics()[new_leader]["snapshot_index"] > before,
            30,
            "the new leader to compact the entries the old one lacks",
        )

    # The old leader comes back on its address with an empty MemStore and catches up
    # from the new leader's log.
    restarted_node = tcp_cluster.restart(leader)
    # Asked at once and first (metrics() asks the others before it, and skips a node that
    # does not answer): the leader may reach it and send it entries at any moment now.
    assert restarted_node.cmd("metrics")["last_applied"] == 0
    tcp_cluster.wait_applied(after, [1, 2, 3])
    expected = {"before": 1, "after": 2, **{f"x{i}": i for i in range(extra)}}
    assert tcp_cluster.nodes[leader].cmd("data") == expected
    restarted = tcp_cluster.metrics()[leader]
    if catch_up == "snapshot":
        assert restarted["snapshot_index"] > before  # it was sent a snapshot, not the log
    else:
        assert restarted["snapshot_index"] == 0
    assert tcp_cluster.leader() == new_leader


def test_a_node_is_added_and_removed_across_processes(tcp_cluster: ProcessCluster) -> None:
    leader = tcp_cluster.form([1, 2, 3])
    first = tcp_cluster.write("first", 1)
    # Node 4 starts knowing nobody; its key lands in the shared key directory, which the
    # running nodes read again when they meet a node whose key they lack.
    node4 = tcp_cluster.start(4)
    change = tcp_cluster.nodes[leader].cmd("change", add=[4], addresses={"4": node4.address})
    assert sorted(change["membership"]["members"]) == [1, 2, 3, 4]
    assert [4, node4.address] in change["membership"]["addresses"]
    second = tcp_cluster.write("second", 2)
    tcp_cluster.wait_applied(max(first, second), [1, 2, 3, 4])
    assert node4.cmd("data") == {"first": 1, "second": 2}
    for node_id in (1, 2, 3, 4):  # every member learned every address from the log
        members = tcp_cluster.nodes[node_id].cmd("metrics")["membership_config"]
        assert dict(map(tuple, members["addresses"]))[4] == node4.address
    net4 = node4.cmd("net")
    assert {p["node_id"] for p in net4["peers"]} >= {leader}

    leader = tcp_cluster.leader()
    change = tcp_cluster.nodes[leader].cmd("change", remove=[4])
    assert sorted(change["membership"]["members"]) == [1, 2, 3]
    third = tcp_cluster.write("third", 3)
    tcp_cluster.wait_applied(third, [1, 2, 3])
    assert "third" not in node4.cmd("data")
    for node_id in (1, 2, 3):
        assert tcp_cluster.nodes[node_id].cmd("metrics")["membership_config"]["members"] == [
            1,
            2,
            3,
        ]


def test_isolated_node_loses_leadership_and_rejoins(tcp_cluster: ProcessCluster) -> None:
    leader = tcp_cluster.form([1, 2, 3])
    tcp_cluster.write("before", 1)
    tcp_cluster.nodes[leader].cmd("isolate", node=leader)
    rest = [n for n in (1, 2, 3) if n != leader]
    new_leader = tcp_cluster.leader(among=rest)
    assert new_leader != leader
    during = tcp_cluster.write("during", 2, via=new_leader)
    tcp_cluster.wait_applied(during, rest)
    cut_off = tcp_cluster.nodes[leader].cmd("metrics")
    assert cut_off["last_applied"] < during  # it really heard nothing
    net = tcp_cluster.nodes[leader].cmd("net")
    assert net["isolated"] is True
    assert dict(map(tuple, net["errors"])).get("dropped_isolated", 0) > 0

    tcp_cluster.nodes[leader].cmd("restore", node=leader)
    tcp_cluster.wait_applied(during, [1, 2, 3])
    final = tcp_cluster.leader()
    assert final in (1, 2, 3)
    after = tcp_cluster.write("after", 3)
    tcp_cluster.wait_applied(after, [1, 2, 3])
    for node_id in (1, 2, 3):
        assert tcp_cluster.nodes[node_id].cmd("data") == {"before": 1, "during": 2, "after": 3}


def _vote(target: int, candidate: int) -> VoteRequest:
    return VoteRequest(
        target=target, term=1, candidate_id=candidate, last_log_index=0, last_log_term=0
    )


def test_a_peer_with_a_wrong_key_is_refused_and_logged(
    tcp_cluster: ProcessCluster, tmp_path: Path
) -> None:
    leader = tcp_cluster.form([1, 2, 3])
    target = leader
    address = tcp_cluster.addresses[target]
    # An intruder with a key pair of its own, which the cluster never listed. It knows
    # the target's public key, so only its own key can be the reason it is refused.
    intruder_keys = tmp_path / "intruder"
    generate_keypair(intruder_keys, 9)
    public, secret = load_keypair(secret_key_path(intruder_keys, 9))
    cluster_keys = load_public_keys(tcp_cluster.keys)
    intruder = TcpNetwork.start(
        9,
        config=Config(election_timeout_min=300, election_timeout_max=600),
        addresses={target: address},
        keys=CurveKeys(public, secret, cluster_keys),
    )
    plain = TcpNetwork.start(8, addresses={target: address}, insecure=True)
    try:
        for net, who in ((intruder, 9), (plain, 8)):
            deadline = time.monotonic() + 20
            while True:  # each try is refused at once or times out: never a response
                future = pykka.ThreadingFuture()
                net.tell(Call(_vote(target, who), FutureReply(future)))
                with pytest.raises(Unreachable):
                    future.get(timeout=5)
                peer = net.ask(GetNetworkMetrics()).peer(target)
                if peer.state == "refused" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # let the handshake run before the next try
            assert peer.state == "refused"
            assert peer.responses_received == 0
        errors = dict(map(tuple, tcp_cluster.nodes[target].cmd("net")["errors"]))
        assert errors.get("auth_refused", 0) >= 1  # the intruder's unknown key
        assert errors.get("handshake_failed", 0) >= 1  # the insecure peer
        log = tcp_cluster.nodes[target].log_text()
        assert "[auth_refused]" in log and "unknown key" in log
        assert "[handshake_failed]" in log
        # The cluster never heard a vote from them and still works.
        metrics = tcp_cluster.metrics()
        assert all(m["current_leader"] == leader for m in metrics.values())
        tcp_cluster.write("still", "working")
    finally:
        intruder.stop()
        plain.stop()
