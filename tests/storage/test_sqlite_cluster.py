"""Raft clusters on SqliteStore: replication, compaction, snapshot transfer and restarts,
with the durable key-value machine and with an in-memory one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    Config,
    GetMetrics,
    KeyValueStateMachine,
    Put,
    SnapshotPolicy,
    SqliteStore,
)
from pykka_raft.testing import Cluster
from pykka_raft.testing.conformance import (
    RejectingKeyValueStateMachine,
    RejectingSqliteKeyValueStateMachine,
)

CONFIG = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_policy=SnapshotPolicy.every(20),
    snapshot_max_chunk_size=64,
)


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.mark.parametrize("machine", ["durable", "memory"])
def test_a_follower_catches_up_through_a_snapshot_and_everyone_restarts(
    tmp_path: Path, machine: str
) -> None:
    def storage(node_id: int, _: object) -> Any:
        if machine == "durable":
            return SqliteStore.start(tmp_path / f"n{node_id}", node_id)
        state = KeyValueStateMachine(keep_history=False)
        return SqliteStore.start(tmp_path / f"n{node_id}", node_id, state, durability="os")

    cluster = Cluster([1, 2, 3], config=CONFIG, storage=storage)
    try:
        cluster.initialize()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        cluster.isolate(follower)
        behind = cluster.nodes[follower].ask(GetMetrics(), timeout=10).last_log_index
        last = 0
        for i in range(120):
            last = cluster.write(Put(f"k{i % 7}", {"i": i, "t": (i, "x")})).index
        # The leader compacts past what the follower holds (snapshots build in the background).
        cluster.hub.wait_for(
            lambda m: m[leader].snapshot_index > behind + 1, 30, "the leader to compact"
        )
        cluster.restore(follower)
        cluster.wait_applied(last, timeout=30)
        states = {n: cluster.dump(n).state_machine for n in (1, 2, 3)}
        assert states[1] == states[2] == states[3]
        assert states[1]["k0"] == {"i": 119, "t": (119, "x")}
        installed = cluster.dump(follower).snapshot
        assert installed is not None and installed.last_included.index > behind

        for node_id in (1, 2, 3):
            cluster.stop_node(node_id)
        for node_id in (1, 2, 3):
            cluster.start_node(node_id)
        cluster.leader(timeout=20)
        after = cluster.write(Put("after restart", 1)).index
        cluster.wait_applied(after, timeout=30)
        for node_id in (1, 2, 3):
            state = cluster.dump(node_id).state_machine
            assert state.pop("after restart") == 1
            assert state == states[node_id]
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("machine", ["durable", "memory"])
def test_an_entry_refused_at_apply_is_answered_with_the_error_everywhere(
    tmp_path: Path, machine: str
) -> None:
    """The client gets the ApplicationError; every node records the same outcome (no
    effect) and goes on, also after a restart."""

    def storage(node_id: int, _: object) -> Any:
        state: Any = (
            RejectingSqliteKeyValueStateMachine()
            if machine == "durable"
            else RejectingKeyValueStateMachine()
        )
        return SqliteStore.start(tmp_path / f"n{node_id}", node_id, state)

    cluster = Cluster([1, 2, 3], config=CONFIG, storage=storage)
    try:
        cluster.initialize()
        cluster.write(Put("a", 1))
        with pytest.raises(ApplicationError):  # the writer gets the refusal, as documented
            cluster.write(Put("reject-this", 2))
        last = cluster.write(Put("b", 3)).index
        cluster.wait_applied(last, timeout=30)
        for node_id in (1, 2, 3):
            assert cluster.dump(node_id).state_machine == {"a": 1, "b": 3}
        cluster.stop_node(2)
        cluster.start_node(2)
        cluster.wait_applied(last, nodes=[2], timeout=30)
        assert cluster.dump(2).state_machine == {"a": 1, "b": 3}
    finally:
        cluster.shutdown()
