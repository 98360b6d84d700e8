"""Real processes killed with SIGKILL: SqliteStore keeps every acknowledged write.

The child (``crash_child.py``) runs a 3-node cluster on SqliteStore under a client load;
``crashloop.py`` kills it and checks the directories and the restarted cluster. ``make
crash KILLS=N`` runs the same loop for longer.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from crashloop import ChildProcess, Cluster, inspect, one_round, run_crash_loop

from pykka_raft import StorageError

KILLS = int(os.environ.get("PYKKA_RAFT_CRASH_KILLS", "6"))


def test_no_acknowledged_write_is_lost_across_sigkills(tmp_path: Path) -> None:
    seed = int(os.environ.get("PYKKA_RAFT_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash loop seed {seed} (replay: PYKKA_RAFT_CRASH_SEED={seed})")
    summary = run_crash_loop(KILLS, seed, tmp_path, progress=print)
    assert summary.kills == KILLS
    assert summary.modes == {"fsync-durable": (KILLS + 1) // 2, "os-memory": KILLS // 2}
    assert summary.acks > 0
    # The kills did land while snapshots were being written or installed.
    assert summary.in_create + summary.in_install >= 1, summary.render()


def test_a_damaged_node_refuses_to_start_and_the_others_go_on(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "cluster", "fsync-durable")
    new, _ = one_round(cluster, seed=5, rng=random.Random(5), kind=None)
    assert new > 0
    database = cluster.directory / "node3" / "raft.sqlite3"
    # The disk returned garbage for the whole database file and its WAL. (Damage to the
    # file alone is not always seen: when the WAL was not checkpointed yet, it can hold
    # every page the node reads, the header included.)
    noise = random.Random(5)
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            path.write_bytes(noise.randbytes(path.stat().st_size))
    child = ChildProcess(cluster.directory, cluster.runs, 5, cluster.mode, verify=True)
    try:
        settled = child.wait_for(lambda line: line == "SETTLED", 90)
        refused = [line for line in child.lines if line.startswith("REFUSED ")]
        assert len(refused) == 1 and refused[0].startswith("REFUSED 3 "), child.lines[:5]
        assert str(database) in refused[0] and "corrupt" in refused[0]
        # Nodes 1 and 2 elected a leader, committed a new entry, and hold every
        # acknowledged write.
        assert cluster.check_settled(child, settled) == 2
    finally:
        child.kill()
    for node_id in (1, 2):
        dump = inspect(cluster.directory, node_id, cluster.machine)
        assert all(dump.state_machine[a.key] == a.value for a in cluster.acks.values())
    try:
        inspect(cluster.directory, 3, cluster.machine)
    except StorageError as exc:
        assert "corrupt" in str(exc)  # still refused: nothing was wiped
    else:
        raise AssertionError("the damaged directory opened")
