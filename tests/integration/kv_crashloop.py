"""Kill -9 loop for the key-value service: three ``serve`` processes under an HTTP client
workload, a random node (often the leader) killed with SIGKILL and restarted, again and
again.

    python tests/integration/kv_crashloop.py --kills 50 [--seed 7] [--clients 4]

(``make crash-kv KILLS=N``). Each round waits until the workload has acknowledged some
writes, picks a victim (the leader in the first round, then the leader with probability
0.6, else another node), SIGKILLs it
(exit status -9, checked), waits for a leader among the others if the leader died, and
restarts the victim on the same directory and ports. At the end the whole history is
checked with ``pykka_raft.testing.check_kv`` (linearizability), every node is stopped
with SIGTERM (exit status 0, checked), and each node's data directory is opened in this
process: every acknowledged write must be there, on every node, and the replicas must be
identical. A failure prints the seed; the same seed replays the same choices (the timing
of the processes differs).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from kv_workload import HttpWorkload

from pykka_raft.kv.launcher import ProcessCluster
from pykka_raft.kv.store import KvStateMachine, decode_value
from pykka_raft.storage.sqlite import SqliteStore
from pykka_raft.testing import check_kv
from pykka_raft.testing.history import render

RAFT = {
    "election_timeout_min": 300,
    "election_timeout_max": 600,
    "heartbeat_interval": 50,
    "snapshot_policy": 500,  # snapshots (and their transfers) happen within a run
}
HTTP = {"request_timeout": 3.0, "shutdown_grace": 2.0}
IDS = (1, 2, 3)


class KvCrashCheckFailed(AssertionError):
    """A check failed: the history is not linearizable, or an acknowledged write is
    missing from a node, or the replicas disagree."""


@attrs.define
class Kill:
    node_id: int
    was_leader: bool
    exit_status: int
    old_pid: int
    new_pid: int
    failover: float | None  # seconds to a new leader (leader kills only)


@attrs.define
class Report:
    seed: int
    kills: list[Kill] = attrs.Factory(list)
    ops: int = 0
    acknowledged: int = 0
    unknown: int = 0
    verdict: str = ""
    final_terms: dict[int, int] = attrs.Factory(dict)
    stop_statuses: dict[int, int] = attrs.Factory(dict)
    keys_checked: int = 0
    elapsed: float = 0.0

    @property
    def leader_kills(self) -> int:
        return sum(k.was_leader for k in self.kills)

    def render(self) -> str:
        failovers = [k.failover for k in self.kills if k.failover is not None]
        worst = f"{max(failovers):.2f} s" if failovers else "-"
        return (
            f"seed {self.seed}: {len(self.kills)} SIGKILLs ({self.leader_kills} of the "
            f"leader, worst failover {worst}), {self.ops} ops, {self.acknowledged} "
            f"acknowledged, {self.unknown} unknown; {self.verdict}; {self.keys_checked} "
            f"acknowledged writes found on every node; final terms {self.final_terms}; "
            f"{self.elapsed:.1f} s"
        )


def read_directory(cluster: ProcessCluster, node_id: int) -> dict[str, Any]:
    """Open a stopped node's data directory here and return its key-value data."""
    machine = KvStateMachine()
    store = SqliteStore.start(str(cluster.data_dir(node_id)), node_id, machine)
    try:
        return dict(machine.data)
    finally:
        store.stop()


def run(
    kills: int,
    seed: int,
    workdir: Path,
    clients: int = 4,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run the loop; raise :class:`KvCrashCheckFailed` if a check fails."""
    say = progress or (lambda text: None)
    rng = random.Random(seed)
    report = Report(seed)
    started = time.monotonic()
    cluster = ProcessCluster(workdir, secure=True, raft=RAFT, http=HTTP, durability="fsync")
    workload = HttpWorkload(lambda: cluster.urls(IDS), clients, seed)
    try:
        cluster.form(list(IDS))
        workload.start()
        for round_no in range(1, kills + 1):
            workload.wait_for_acks(10, timeout=60)
            leader = cluster.leader(IDS)
            was_leader = round_no == 1 or rng.random() < 0.6
            victim = leader if was_leader else rng.choice([n for n in IDS if n != leader])
            node = cluster.nodes[victim]
            old_pid = node.pid or 0
            status = node.kill(signal.SIGKILL)
            if status != -signal.SIGKILL:
                raise KvCrashCheckFailed(f"node {victim} ended with {status}, not by SIGKILL")
            killed_at = time.monotonic()
            failover = None
            if was_leader:
                cluster.leader([n for n in IDS if n != victim])
                failover = time.monotonic() - killed_at
            time.sleep(rng.uniform(0.0, 0.3))  # a random downtime (seeded)
            cluster.start(victim)
            kill = Kill(victim, was_leader, status, old_pid, node.pid or 0, failover)
            report.kills.append(kill)
            what = "leader" if was_leader else "follower"
            after = f", new leader in {failover:.2f} s" if failover is not None else ""
            say(
                f"kill {round_no}/{kills}: node {victim} ({what}, pid {old_pid}) -> exit "
                f"{status}{after}; restarted as pid {kill.new_pid}; {workload.acks} "
                "writes acknowledged"
            )
        workload.wait_for_acks(10, timeout=60)
        workload.finish()
        if workload.errors:
            raise KvCrashCheckFailed("workload errors: " + "; ".join(workload.errors[:5]))
        # Every node catches up with a last write, then stops cleanly.
        marker = cluster.client(IDS, deadline=30.0).put("final-marker", seed)
        cluster.wait_applied(marker["index"], IDS)
        report.final_terms = {n: s["term"] for n, s in cluster.statuses(IDS).items()}
        for node_id in IDS:
            report.stop_statuses[node_id] = cluster.kill(node_id, signal.SIGTERM)
        if set(report.stop_statuses.values()) != {0}:
            raise KvCrashCheckFailed(f"a node did not stop cleanly: {report.stop_statuses}")
        data = check_directories(cluster, workload.acknowledged_unique(), report)
        for key in workload.shared:  # what the replicas (identical) hold at the end: a read
            handle = workload.recorder.invoke(0, "get", key)
            workload.recorder.complete(handle, "ok", decode_value(data.get(key)))
        ops = workload.ops()
        report.ops = len(ops)
        report.acknowledged = sum(o.outcome == "ok" and o.kind != "get" for o in ops)
        report.unknown = sum(o.outcome == "unknown" for o in ops)
        result = check_kv(ops)
        report.verdict = result.explanation
        if not result.ok:
            failing = [o for o in ops if o.key == result.key]
            raise KvCrashCheckFailed(
                f"seed {seed}: not linearizable: {result.explanation}\n{render(failing[-40:])}"
            )
        report.elapsed = time.monotonic() - started
        say(report.render())
        return report
    finally:
        workload.stop.set()
        cluster.close()


def check_directories(
    cluster: ProcessCluster, acked: dict[str, Any], report: Report
) -> dict[str, Any]:
    """Every acknowledged unique write on every node's disk; identical replicas (whose
    data this returns)."""
    data = {n: read_directory(cluster, n) for n in IDS}
    for node_id, values in data.items():
        missing = [k for k, v in acked.items() if decode_value(values.get(k)) != v]
        if missing:
            raise KvCrashCheckFailed(
                f"seed {report.seed}: node {node_id} lacks {len(missing)} acknowledged "
                f"writes, e.g. {missing[:5]}"
            )
    if not data[1] == data[2] == data[3]:
        diff = {
            k for n in IDS for k in data[n] if any(data[n].get(k) != data[m].get(k) for m in IDS)
        }
        raise KvCrashCheckFailed(f"seed {report.seed}: the replicas differ on {sorted(diff)[:10]}")
    report.keys_checked = len(acked)
    return data[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keep", help="keep the working directory here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"kv crash loop: {args.kills} kills, seed {seed}", flush=True)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kv-crash-"))
    try:
        run(args.kills, seed, workdir, args.clients, lambda t: print(t, flush=True))
    except Exception as exc:
        print(f"FAILED (seed {seed}; replay: --seed {seed}): {exc}", flush=True)
        print(f"logs in {workdir}", flush=True)
        return 1
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
