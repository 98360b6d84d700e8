"""The code in docs/snapshots.md runs as written and does what the text says."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import pykka
import pytest

from pykka_raft import (
    Config,
    DumpStorage,
    Entry,
    EntryBlank,
    EntryNormal,
    GetMetrics,
    HardState,
    Put,
    SnapshotMeta,
    SnapshotPolicy,
    StorageDump,
)
from pykka_raft.testing import Cluster

DOCS = Path(__file__).resolve().parents[2] / "docs"


def block(doc: str, marker: str) -> str:
    """The one ```python block of ``docs/<doc>`` that contains ``marker``."""
    text = (DOCS / doc).read_text()
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(found) == 1, f"{len(found)} python blocks of {doc} contain {marker!r}"
    return found[0]


def run(doc: str, marker: str, namespace: dict[str, Any]) -> str:
    """Execute a block in ``namespace``; return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block(doc, marker), f"docs/{doc}", "exec"), namespace)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _stop_actors() -> Any:
    yield
    pykka.ActorRegistry.stop_all()


def test_policy_and_trigger_snapshot_example() -> None:
    out = run("snapshots.md", "TriggerSnapshot()", {}).split()
    meta_index, metrics_index = int(out[0]), int(out[1])
    # 251 unless a policy snapshot was still being built when TriggerSnapshot arrived.
    assert 200 <= meta_index <= 251
    assert metrics_index == meta_index


def test_counter_state_machine_example() -> None:
    ns: dict[str, Any] = {}
    run("snapshots.md", "class Counter", ns)
    counter = ns["Counter"]()
    counter.apply(Entry(1, 1, EntryBlank()))
    for index, key in enumerate(["a", "b", "a"], start=2):
        counter.apply(Entry(1, index, EntryNormal(key)))
    serialize = counter.snapshot()
    counter.apply(Entry(1, 5, EntryNormal("a")))  # after the capture: not in the snapshot
    restored = ns["Counter"]()
    restored.restore(serialize())
    assert restored.counts == {"a": 2, "b": 1}
    assert counter.counts == {"a": 3, "b": 1}


def test_file_backed_store_example(tmp_path: Path) -> None:
    ns: dict[str, Any] = {}
    run("storage.md", "class MyStore(", ns)
    run("snapshots.md", "class MySnapshotStore", ns)

    class DumpableStore(ns["MySnapshotStore"]):  # type: ignore[misc, name-defined]
        def handle_other(self, message: Any) -> Any:
            if isinstance(message, DumpStorage):
                data = dict(self.state_machine.data)
                return StorageDump(HardState(), (), 0, data, self.meta)
            return super().handle_other(message)

    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        snapshot_policy=SnapshotPolicy.every(20),
        snapshot_max_chunk_size=64,
        snapshot_dir=str(tmp_path / "snapshots"),
    )
    assert config.snapshot_dir is not None
    snapshot_dir = config.snapshot_dir

    def node_dir(node_id: int) -> str:
        return os.path.join(snapshot_dir, f"node{node_id}")

    def storage(node_id: int, _: object) -> Any:
        return DumpableStore.start(str(tmp_path / f"node{node_id}.sqlite"), node_dir(node_id))

    cluster = Cluster([1, 2, 3], config=config, storage=storage)
    try:
        cluster.initialize()
        leader = cluster.leader()
        follower = next(n for n in cluster.nodes if n != leader)
        cluster.isolate(follower)
        behind = cluster.nodes[follower].ask(GetMetrics(), timeout=10).last_log_index
        last = 0
        for i in range(150):
            last = cluster.write(Put(f"k{i % 7}", i)).index
        # The leader no longer holds the entries the follower lacks (snapshots build in the
        # background: the last write's answer does not mean one is done) ...
        cluster.hub.wait_for(
            lambda m: m[leader].snapshot_index > behind + 1, 30, "the leader to compact"
        )
        cluster.restore(follower)  # ... so it catches up through the leader's snapshot
        cluster.wait_applied(last, timeout=30)
        states = {n: cluster.dump(n).state_machine for n in (1, 2, 3)}
        assert states[1] == states[2] == states[3]
        assert len(states[1]) == 7
        metas: dict[int, SnapshotMeta] = {n: cluster.dump(n).snapshot for n in (1, 2, 3)}
        assert all(meta is not None for meta in metas.values())
        for node_id in (1, 2, 3):  # one file per node: older snapshots were removed
            assert os.listdir(node_dir(node_id)) == [f"{metas[node_id].snapshot_id}.snap"]

        for node_id in (1, 2, 3):
            cluster.stop_node(node_id)
        for node_id in (1, 2, 3):
            cluster.start_node(node_id)
        cluster.leader(timeout=20)
        for node_id in (1, 2, 3):  # restored from the snapshot, not from the log
            metrics = cluster.nodes[node_id].ask(GetMetrics(), timeout=10)
            assert metrics.snapshot_index == metas[node_id].last_included.index
        after = cluster.write(Put("after restart", 1)).index
        cluster.wait_applied(after, timeout=30)
        for node_id in (1, 2, 3):
            state = cluster.dump(node_id).state_machine
            assert state.pop("after restart") == 1
            assert state == states[node_id]
    finally:
        cluster.shutdown()
