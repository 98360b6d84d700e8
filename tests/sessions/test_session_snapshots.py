"""Sessions survive in snapshots: a restart from a snapshot (SqliteStore, with the durable
and the in-memory key-value machine) and a new node that joins through one still answer
a resend from the cache, and refuse an older sequence."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pykka_raft import (
    ApplicationError,
    CasResult,
    CompareAndSet,
    Config,
    GetMetrics,
    KeyValueStateMachine,
    Put,
    RegisterClient,
    SessionCommand,
    SnapshotPolicy,
    SqliteStore,
    StaleSequence,
    TransferLeadership,
    TriggerSnapshot,
)
from pykka_raft.storage.sqlite import DATABASE
from pykka_raft.testing import Cluster

CONFIG = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_policy=SnapshotPolicy.disabled(),  # snapshots when the test says
    snapshot_max_chunk_size=256,
)
SWAP = CompareAndSet("x", None, 1)
SWAPPED = CasResult(True, None)


def sessions_with_history(cluster: Cluster) -> tuple[int, int]:
    """A session with two writes applied; returns (client id, index of the last write)."""
    client_id = cluster.write(RegisterClient()).data
    assert cluster.write(SessionCommand(client_id, 1, SWAP)).data == SWAPPED
    last = cluster.write(SessionCommand(client_id, 2, Put("y", "two"))).index
    return client_id, last


def snapshot_everywhere(cluster: Cluster, through: int) -> None:
    cluster.wait_applied(through)
    for node_id, ref in cluster.nodes.items():
        meta = ref.ask(TriggerSnapshot(), timeout=30)
        assert meta.last_included.index >= through, f"node {node_id}"


def check_resends(cluster: Cluster, client_id: int) -> None:
    """Write 2 is answered from the cache (None was the previous value of y: applied
    again it would answer "two"); write 1 is older than the cache: refused."""
    assert cluster.write(SessionCommand(client_id, 2, Put("y", "two"))).data is None
    with pytest.raises(ApplicationError) as caught:
        cluster.write(SessionCommand(client_id, 1, SWAP))
    assert isinstance(caught.value.error, StaleSequence)


@pytest.mark.parametrize("machine", ["durable", "memory"])
def test_a_restart_from_a_snapshot_keeps_the_sessions(
    tmp_path: Path, machine: str, make_cluster: Callable[..., Cluster]
) -> None:
    def storage(node_id: int, _: object) -> Any:
        if machine == "durable":
            return SqliteStore.start(tmp_path / f"n{node_id}", node_id)
        state = KeyValueStateMachine(keep_history=False)
        return SqliteStore.start(tmp_path / f"n{node_id}", node_id, state, durability="os")

    cluster = make_cluster([1, 2, 3], config=CONFIG, storage=storage)
    cluster.initialize()
    client_id, last = sessions_with_history(cluster)
    snapshot_everywhere(cluster, last)
    for node_id in (1, 2, 3):
        cluster.stop_node(node_id)
    for node_id in (1, 2, 3):
        cluster.start_node(node_id)
    cluster.leader(timeout=20)
    for ref in cluster.nodes.values():  # started from the snapshot, not by replaying the log
        assert ref.ask(GetMetrics(), timeout=10).snapshot_index >= last
    check_resends(cluster, client_id)
    after = cluster.write(Put("after", 1)).index
    cluster.wait_applied(after)
    for node_id in (1, 2, 3):
        assert cluster.dump(node_id).state_machine == {"x": 1, "y": "two", "after": 1}
    if machine == "durable":  # the rows are in the database files, the same in each
        cluster.shutdown()
        rows = []
        for node_id in (1, 2, 3):
            with sqlite3.connect(tmp_path / f"n{node_id}" / DATABASE) as db:
                rows.append(db.execute("SELECT client_id, sequence FROM sessions").fetchall())
        assert rows[0] == rows[1] == rows[2] == [(client_id, 2)]


@pytest.mark.parametrize("machine", ["durable", "memory"])
def test_a_node_that_joins_through_a_snapshot_answers_resends_from_the_cache(
    tmp_path: Path, machine: str, make_cluster: Callable[..., Cluster]
) -> None:
    def storage(node_id: int, _: object) -> Any:
        return SqliteStore.start(tmp_path / f"n{node_id}", node_id)

    durable = machine == "durable"
    cluster = make_cluster([1, 2, 3], config=CONFIG, storage=storage if durable else None)
    cluster.initialize()
    client_id, last = sessions_with_history(cluster)
    snapshot_everywhere(cluster, last)  # the log before it is gone: a newcomer needs it
    cluster.start_node(4)
    cluster.change_membership(add=[4])
    metrics = cluster.hub.wait_for(
        lambda m: 4 in m and m[4].snapshots_installed >= 1 and m[4], 30, "node 4's install"
    )
    assert metrics.snapshot_index >= last
    leader = cluster.leader()
    cluster.nodes[leader].ask(TransferLeadership(4), timeout=30)
    assert cluster.leader(timeout=20) == 4
    check_resends(cluster, client_id)  # answered by node 4's own state machine
    # The refused resend went through the log too: every node applies it before the tables
    # are compared (its time is each session's last_active).
    cluster.wait_applied(cluster.write(Put("after", 1)).index)
    if durable:
        cluster.shutdown()
        tables = {}
        for node_id in (1, 2, 3, 4):
            with sqlite3.connect(tmp_path / f"n{node_id}" / DATABASE) as db:
                tables[node_id] = db.execute("SELECT * FROM sessions").fetchall()
    else:
        tables = {n: cluster.data[n].state_machine.sessions.dump() for n in cluster.nodes}  # type: ignore[attr-defined]
    assert tables[4] == tables[1] == tables[2] == tables[3]
    assert len(tables[4]) == 1
