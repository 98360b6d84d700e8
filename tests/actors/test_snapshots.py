"""Snapshots and log compaction on live clusters (§7).

Lagging, isolated and new nodes catch up through InstallSnapshot; transfers survive
partitions and restarts; restarts after compaction keep everything; logs stay bounded.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from pykka_raft import (
    Config,
    GetMetrics,
    InstallSnapshotRequest,
    MembershipConfig,
    Put,
    RaftMetrics,
    RaftRouter,
    SnapshotMeta,
    SnapshotPolicy,
    SnapshotsUnsupported,
    State,
    TriggerSnapshot,
)
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage import RaftStorage
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing import Cluster, wait_until
from pykka_raft.testing.crash import CrashableMemStore
from pykka_raft.testing.faultnet import (
    Direction,
    FaultNetwork,
    GetTrace,
    Heal,
    LinkRule,
    Partition,
    SetLinkRule,
)

BASE = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


def snapshot_config(every: int = 100, chunk: int = 4096) -> Config:
    return attrs.evolve(
        BASE, snapshot_policy=SnapshotPolicy.every(every), snapshot_max_chunk_size=chunk
    )


def metrics(cluster: Cluster, node_id: int) -> RaftMetrics:
    result: RaftMetrics = cluster.nodes[node_id].ask(GetMetrics(), timeout=10)
    return result


def write_many(cluster: Cluster, count: int, prefix: str = "k", keys: int = 50) -> int:
    last = 0
    for i in range(count):
        last = cluster.write(Put(f"{prefix}{i % keys}", i)).index
    return last


def assert_identical(cluster: Cluster, nodes: list[int], index: int) -> None:
    """Every node applied through ``index`` and holds the same state and applied history."""
    cluster.wait_applied(index, nodes=nodes, timeout=30)
    states = {n: cluster.dump(n).state_machine for n in nodes}
    first = states[nodes[0]]
    assert all(state == first for state in states.values()), states
    histories = {n: cluster.data[n].state_machine.applied for n in nodes}  # type: ignore[attr-defined]
    shortest = min(len(h) for h in histories.values())
    assert shortest >= index
    assert all(h[:shortest] == histories[nodes[0]][:shortest] for h in histories.values())


def installs(network: object) -> int:
    trace = network.ask(GetTrace())  # type: ignore[attr-defined]
    return sum(1 for e in trace if e.event == "deliver" and "InstallSnapshotRequest" in e.summary)


def slow_down(network: object, leader: int, follower: int) -> None:
    """Delay every request from the leader to the follower: a transfer of many small
    chunks then takes seconds, so a fault can hit it half-way."""
    rule = LinkRule(delay_ms=(25, 25), direction=Direction.REQUESTS)
    network.ask(SetLinkRule(leader, follower, rule))  # type: ignore[attr-defined]


def test_isolated_follower_catches_up_through_a_snapshot(make_cluster):
    network = FaultNetwork.start(seed=1, trace_size=500_000)
    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=100), network=network)
    cluster.initialize()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.isolate(follower)
    behind = metrics(cluster, follower).last_log_index
    last = write_many(cluster, 2000)
    leader_snapshot = metrics(cluster, leader).snapshot_index
    assert leader_snapshot > behind + 1000, "the leader kept the entries the follower lacks"
    assert len(cluster.data[leader].log) <= 100 + 400  # compacted (plus a batch or so)
    cluster.restore(follower)
    assert_identical(cluster, [1, 2, 3], last)
    assert metrics(cluster, follower).snapshot_index >= leader_snapshot
    assert installs(network) >= 1


def test_new_node_added_to_a_long_lived_cluster_is_seeded_by_a_snapshot(make_cluster):
    network = FaultNetwork.start(seed=2, trace_size=500_000)
    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=100), network=network)
    cluster.initialize()
    cluster.leader()
    write_many(cluster, 1000)
    cluster.start_node(4)
    response = cluster.change_membership(add=[4])
    assert response.membership == MembershipConfig((1, 2, 3, 4))
    last = cluster.write(Put("after", 1)).index
    assert_identical(cluster, [1, 2, 3, 4], last)
    assert installs(network) >= 1
    assert cluster.dump(4).snapshot is not None


def test_restart_after_compaction_keeps_state_and_log(make_cluster):
    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=50))
    cluster.initialize()
    cluster.leader()
    last = write_many(cluster, 400)
    cluster.wait_applied(last, timeout=30)
    before = {n: cluster.dump(n).state_machine for n in (1, 2, 3)}
    assert all(cluster.dump(n).snapshot is not None for n in (1, 2, 3))
    for node_id in (1, 2, 3):
        cluster.stop_node(node_id)
    for node_id in (1, 2, 3):
        cluster.start_node(node_id)
    cluster.leader(timeout=20)
    after = cluster.write(Put("after restart", 1)).index
    assert after > last
    cluster.wait_applied(after, timeout=30)
    for node_id in (1, 2, 3):
        state = cluster.dump(node_id).state_machine
        assert {k: v for k, v in state.items() if k != "after restart"} == before[node_id]
        assert metrics(cluster, node_id).snapshot_index > 0


@attrs.define
class Lagging:
    """A 3-node cluster on a FaultNetwork whose follower missed ``last`` entries while
    isolated; the leader compacted them away."""

    network: Any
    cluster: Cluster
    leader: int
    follower: int
    last: int


def lagging_follower(make_cluster: Any, seed: int, chunk: int, slow: bool = False) -> Lagging:
    """Build a :class:`Lagging` and reconnect the follower, so a transfer starts. With
    ``slow``, requests to it are delayed so that the transfer takes seconds."""
    network = FaultNetwork.start(seed=seed, trace_size=500_000)
    config = snapshot_config(every=50, chunk=chunk)
    cluster = make_cluster([1, 2, 3], config=config, network=network)
    cluster.initialize()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.isolate(follower)
    last = write_many(cluster, 300)
    if slow:
        slow_down(network, leader, follower)
    cluster.restore(follower)
    return Lagging(network, cluster, leader, follower, last)


def wait_transfer_under_way(lag: Lagging) -> None:
    # Polled: chunk deliveries are no metric, and a transfer pushes no metrics until it
    # ends (waiting on the hub saw the fifth chunk only seconds later, near the end).
    wait_until(lambda: installs(lag.network) >= 5, 20, "a transfer to start", interval=0.02)
    assert metrics(lag.cluster, lag.follower).snapshot_index == 0, "it finished already"


def test_many_small_chunks(make_cluster):
    lag = lagging_follower(make_cluster, seed=4, chunk=64)
    assert_identical(lag.cluster, [1, 2, 3], lag.last)
    snapshot = lag.cluster.dump(lag.leader).snapshot
    assert snapshot is not None and snapshot.size > 20 * 64
    assert installs(lag.network) >= snapshot.size // 64


def test_transfer_interrupted_by_a_partition_then_resumed(make_cluster):
    lag = lagging_follower(make_cluster, seed=5, chunk=16, slow=True)
    wait_transfer_under_way(lag)
    others = tuple(n for n in (1, 2, 3) if n != lag.follower)
    lag.network.ask(Partition(((lag.follower,), others)))
    during = installs(lag.network)
    more = write_many(lag.cluster, 100, prefix="p")
    lag.network.ask(Heal())
    assert_identical(lag.cluster, [1, 2, 3], max(lag.last, more))
    assert installs(lag.network) > during


def test_follower_crash_during_a_transfer_restarts_it_cleanly(make_cluster):
    lag = lagging_follower(make_cluster, seed=6, chunk=16, slow=True)
    wait_transfer_under_way(lag)
    lag.cluster.crash(lag.follower)  # it forgets the chunks it was answering for
    lag.network.ask(Heal())
    lag.cluster.start_node(lag.follower)
    assert_identical(lag.cluster, [1, 2, 3], lag.last)


def test_trigger_snapshot_and_metrics(formed):
    last = write_many(formed, 30)
    formed.wait_applied(last)
    leader = formed.leader()
    meta = formed.nodes[leader].ask(TriggerSnapshot(), timeout=10)
    assert isinstance(meta, SnapshotMeta)
    assert meta.last_included.index >= last
    assert meta.membership == MembershipConfig((1, 2, 3))
    formed.hub.wait_for(
        lambda m: m[leader].snapshot_index == meta.last_included.index, 10, "metrics to show it"
    )
    # Nothing new applied: the same snapshot again.
    assert formed.nodes[leader].ask(TriggerSnapshot(), timeout=10) == meta
    assert len(formed.data[leader].log) == 0


def test_log_stays_bounded_over_a_long_run(make_cluster):
    every = 200

    def storage(node_id: int, data: MemStoreData) -> object:
        if not data.log and data.snapshot_meta is None:
            data.state_machine = KeyValueStateMachine(keep_history=False)
        return CrashableMemStore.start(data=data)

    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=every), storage=storage)
    cluster.initialize()
    cluster.leader()
    peaks = []
    for round_ in range(5):
        last = write_many(cluster, 1000, prefix=f"r{round_}-")
        cluster.wait_applied(last, timeout=30)
        peaks.append(max(len(cluster.data[n].log) for n in (1, 2, 3)))
    # 5000 entries were written; no node ever holds much more than the policy allows.
    assert max(peaks) <= every + 400, peaks
    assert all(cluster.data[n].offset >= 4000 for n in (1, 2, 3))


class _NoSnapshotStorage(CrashableMemStore):
    """A storage that implements none of the snapshot methods."""

    store_snapshot = RaftStorage.store_snapshot  # type: ignore[assignment]
    read_snapshot_chunk = RaftStorage.read_snapshot_chunk  # type: ignore[assignment]
    write_snapshot_chunk = RaftStorage.write_snapshot_chunk  # type: ignore[assignment]
    install_snapshot = RaftStorage.install_snapshot  # type: ignore[assignment]


def test_storage_without_snapshots_keeps_the_node_running(make_cluster):
    def storage(node_id: int, data: MemStoreData) -> object:
        return _NoSnapshotStorage.start(data=data)

    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=20), storage=storage)
    cluster.initialize()
    leader = cluster.leader()
    last = write_many(cluster, 100)  # the policy asks five times; each is refused
    cluster.wait_applied(last)
    with pytest.raises(SnapshotsUnsupported, match="does not implement snapshots"):
        cluster.nodes[leader].ask(TriggerSnapshot(), timeout=10)
    assert cluster.write(Put("still", "running")).index > last
    assert all(metrics(cluster, n).snapshot_index == 0 for n in (1, 2, 3))


def test_follower_that_cannot_store_a_snapshot_stops_instead_of_acknowledging_it(make_cluster):
    """Only the node's own compaction may be skipped: a chunk its storage cannot keep is a
    storage failure, never an acknowledgement (it once claimed an install it never made)."""

    def storage(node_id: int, data: MemStoreData) -> object:
        cls = _NoSnapshotStorage if node_id == 3 else CrashableMemStore
        return cls.start(data=data)

    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=20), storage=storage)
    cluster.initialize()
    cluster.isolate(3)
    last = write_many(cluster, 60)
    cluster.restore(3)
    cluster.hub.wait_for(lambda m: m[3].state is State.SHUTDOWN, 20, "node 3 to stop")
    assert cluster.data[3].snapshot_meta is None and cluster.data[3].last_applied < last
    assert cluster.write(Put("still", "running")).index > last  # 1 and 2 go on


class _PlainStateMachine:
    """A state machine written before snapshots existed: apply and validate only."""

    def __init__(self) -> None:
        self.count = 0

    def apply(self, entry: object) -> None:
        self.count += 1

    def validate(self, entry: object) -> None:
        return None


def test_state_machine_without_snapshots_keeps_the_cluster_running(make_cluster):
    def storage(node_id: int, data: MemStoreData) -> object:
        data.state_machine = _PlainStateMachine()  # type: ignore[assignment]
        return CrashableMemStore.start(data=data)

    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=20), storage=storage)
    cluster.initialize()
    leader = cluster.leader()
    last = write_many(cluster, 100)  # the policy asks five times; each is refused
    cluster.wait_applied(last)
    with pytest.raises(SnapshotsUnsupported, match="_PlainStateMachine"):
        cluster.nodes[leader].ask(TriggerSnapshot(), timeout=10)
    assert all(cluster.nodes[n].is_alive() for n in (1, 2, 3))


def test_a_snapshot_transfer_starting_and_ending_is_pushed_at_once(make_cluster):
    """``ReplicationMetrics.snapshotting`` is pushed when a transfer starts and when it
    ends, not at the next periodic push: with the periodic push out of reach, nothing else
    changes when the transfer to an isolated follower starts (after the compaction)."""
    config = attrs.evolve(BASE, metrics_rate=10**9)  # no periodic push during the test
    cluster = make_cluster([1, 2, 3], config=config)
    cluster.initialize()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.isolate(follower)
    last = write_many(cluster, 30)
    cluster.wait_applied(last, nodes=[n for n in cluster.nodes if n != follower])
    meta = cluster.nodes[leader].ask(TriggerSnapshot(), timeout=10)
    assert isinstance(meta, SnapshotMeta) and meta.last_included.index >= last

    def snapshotting(m: dict[int, RaftMetrics]) -> bool:
        return any(r.node_id == follower and r.snapshotting for r in m[leader].replication)

    # The compaction is pushed at once (the snapshot point); the transfer to the follower
    # starts on a later heartbeat, and is pushed on its own.
    started = cluster.hub.wait_for(
        lambda m: snapshotting(m) and m[leader], 10, "the transfer start to be pushed"
    )
    assert started.snapshots_sent == 0 and started.snapshot_index == meta.last_included.index
    cluster.restore(follower)
    ended = cluster.hub.wait_for(
        lambda m: not snapshotting(m) and m[leader].snapshots_sent >= 1 and m[leader],
        20,
        "the transfer end to be pushed",
    )
    assert any(r.node_id == follower and r.matched >= last for r in ended.replication)


class _DamagingRouter(RaftRouter):
    """Flips every byte of the first chunk of the first two snapshot transfers (each
    chunk keeps its size): what a faulty link could deliver."""

    def __init__(self) -> None:
        super().__init__()
        self.damaged = 0  # the leader's thread alone sends snapshot chunks

    def send(self, request: Any, reply: Any) -> None:
        if (
            isinstance(request, InstallSnapshotRequest)
            and request.offset == 0
            and request.target not in self._isolated  # it will be delivered
            and self.damaged < 2
        ):
            self.damaged += 1
            request = attrs.evolve(request, data=bytes(b ^ 0xFF for b in request.data))
        super().send(request, reply)


def test_a_snapshot_damaged_on_the_way_is_refused_and_sent_again(make_cluster, caplog):
    """Bytes of the right size but not the leader's: before the digest, the follower
    installed them, its restore failed and it stopped. Now it refuses them, keeps
    running, and installs the transfer the leader starts over."""
    network = _DamagingRouter.start()
    cluster = make_cluster([1, 2, 3], config=snapshot_config(every=50, chunk=256), network=network)
    cluster.initialize()
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes if n != leader)
    cluster.isolate(follower)
    last = write_many(cluster, 300)
    cluster.restore(follower)
    assert_identical(cluster, [1, 2, 3], last)
    assert network.proxy().damaged.get(timeout=10) == 2  # the fault happened, twice
    # Each damaged transfer is refused at its last chunk (unless a newer snapshot
    # replaced it first); one whole transfer then installed.
    refused = metrics(cluster, follower).snapshots_refused
    assert 1 <= refused <= 2 and metrics(cluster, follower).snapshots_installed >= 1
    assert all(m.state is not State.SHUTDOWN for m in cluster.hub.snapshot().values())
    assert "does not match its digest" in caplog.text
