"""Kill -9 loop over the key-value service (``kv_crashloop.py``): an HTTP client workload
while a random node, often the leader, is killed with SIGKILL and restarted; the history
must be linearizable and every acknowledged write must be on every node's disk.

A bounded number of kills here (``PYKKA_RAFT_KV_KILLS``, 5 by default); ``make crash-kv
KILLS=N`` runs the same loop for longer. The seed is printed; replay it with
``PYKKA_RAFT_KV_SEED=N`` (or ``kv_crashloop.py --seed N``).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from kv_crashloop import KvCrashCheckFailed, Report, check_directories, run

from pykka_raft.kv.launcher import ProcessCluster

KILLS = int(os.environ.get("PYKKA_RAFT_KV_KILLS", "5"))

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


def test_sigkill_loop_keeps_every_acknowledged_write_and_linearizability(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("PYKKA_RAFT_KV_SEED", random.randrange(1 << 30)))
    print(f"kv crash loop seed {seed} (replay: PYKKA_RAFT_KV_SEED={seed})")
    report = run(KILLS, seed, tmp_path, clients=4, progress=print)
    # The faults happened: every kill was a SIGKILL of a running process, each restart a
    # new process on the same directory, and the leader was among the victims.
    assert len(report.kills) == KILLS
    assert all(k.exit_status == -9 and k.new_pid not in (0, k.old_pid) for k in report.kills)
    assert report.leader_kills >= 1
    assert report.acknowledged > 0 and report.keys_checked > 0
    assert report.verdict.startswith("linearizable")
    assert report.stop_statuses == {1: 0, 2: 0, 3: 0}  # SIGTERM: clean stops
    # The check of the directories can fail: a write that was never made is missed.
    cluster = ProcessCluster(tmp_path)
    with pytest.raises(KvCrashCheckFailed, match="lacks 1 acknowledged"):
        check_directories(cluster, {"u/never/written": 1}, Report(seed))
