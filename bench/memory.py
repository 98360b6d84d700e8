"""Memory of a 3-node cluster over a long run of writes, with and without compaction.

Writes ``--writes`` key-value puts (50 keys, 100-byte values, so the state machine stays
the same size) through the leader of an in-process cluster and reports, at checkpoints,
the Python heap traced by ``tracemalloc`` and the longest log any node holds. With a
snapshot policy both stay flat; with snapshots disabled they grow with every entry.

    python bench/memory.py --writes 40000 --every 1000
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from typing import Any

from pykka_raft import ClientPayload, Config, Put, ResponseMode, SnapshotPolicy
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing import Cluster
from pykka_raft.testing.crash import CrashableMemStore


def _storage(node_id: int, data: MemStoreData) -> Any:
    if not data.log and data.snapshot_meta is None:
        data.state_machine = KeyValueStateMachine(keep_history=False)
    return CrashableMemStore.start(data=data)


def measure(policy: SnapshotPolicy, writes: int, window: int = 500) -> list[tuple[int, int, int]]:
    """(writes so far, traced KiB, longest log) at each doubling checkpoint."""
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        snapshot_policy=policy,
    )
    checkpoints = sorted({writes // 8, writes // 4, writes // 2, writes})
    rows = []
    with Cluster([1, 2, 3], config=config, storage=_storage) as cluster:
        cluster.initialize()
        leader = cluster.nodes[cluster.leader()]
        tracemalloc.start()
        done = 0
        for target in checkpoints:
            while done < target:
                batch = min(window, target - done)
                futures = [
                    leader.ask(
                        ClientPayload.new(
                            Put(f"k{(done + i) % 50}", "x" * 100), ResponseMode.APPLIED
                        ),
                        block=False,
                    )
                    for i in range(batch)
                ]
                for future in futures:
                    future.get(timeout=60)
                done += batch
            cluster.hub.history.clear()  # the test harness's own record, not the nodes'
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            rows.append((done, current // 1024, max(len(d.log) for d in cluster.data.values())))
        tracemalloc.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=40_000)
    parser.add_argument("--every", type=int, default=1000, help="snapshot policy threshold")
    args = parser.parse_args()
    for name, policy in (
        (f"SnapshotPolicy.every({args.every})", SnapshotPolicy.every(args.every)),
        ("SnapshotPolicy.disabled()", SnapshotPolicy.disabled()),
    ):
        print(f"{name}:")
        print(f"  {'writes':>8} {'heap KiB':>9} {'longest log':>12}")
        for done, kib, longest in measure(policy, args.writes):
            print(f"  {done:>8} {kib:>9} {longest:>12}", flush=True)


if __name__ == "__main__":
    main()
