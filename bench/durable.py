"""The durable group of ``make bench``: 3 nodes on SqliteStore against plain SQLite.

    python -m bench.durable ['<json options>']     # prints one JSON object, last line

Measured in one process, one after the other, on the disk under ``$TMPDIR``:

* pykka_raft, 3 nodes on :class:`~pykka_raft.SqliteStore` with the durable key-value
  machine: ``durability="fsync"``, the same without group commit, and ``"os"``. 256
  writes in flight (``ResponseMode.APPLIED``, 10-byte values) for the throughput, then
  sequential writes for the latency. Each store counts its transactions, so the leader's
  entries per fsynced commit (its batch size) are known.
* the floor: a plain SQLite loop on a table like the store's log (WAL, the same row
  size), committing transactions of the leader's batch size with ``synchronous=FULL``
  (``NORMAL`` for ``os``); and the p50 of one single-row commit.

Targets: fsync writes/s at least 0.5x the floor's rows/s at the same batch size;
sequential write p50 at most 3x one commit's p50.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pykka

from bench.workers import (
    DURATION,
    SEQUENTIAL,
    Window,
    _Notify,
    latency_summary,
    peak_rss_mib,
    sequential,
)

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    ("fsync", {"durability": "fsync"}),
    ("fsync_no_group_commit", {"durability": "fsync", "group_commit": False}),
    ("os", {"durability": "os"}),
)


def raft_run(directory: Path, store_options: dict[str, Any]) -> dict[str, Any]:
    """Throughput and sequential latency of 3 nodes on SqliteStore."""
    from pykka_raft import (
        Call,
        ClientPayload,
        Config,
        InitWithConfig,
        Put,
        Raft,
        RaftRouter,
        Register,
        ResponseMode,
        SqliteStore,
        State,
    )
    from pykka_raft.testing import MetricsHub

    config = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
    router = RaftRouter.start()
    hub = MetricsHub()
    nodes, storages = {}, {}
    for node_id in (1, 2, 3):
        storages[node_id] = SqliteStore.start(directory / f"n{node_id}", node_id, **store_options)
        nodes[node_id] = Raft.start(node_id, config, router, storages[node_id], hub)
        router.ask(Register(node_id, nodes[node_id]))
    try:
        hub.wait_for(lambda m: len(m) == 3, 10, "every node to start")
        for ref in nodes.values():
            ref.ask(InitWithConfig([1, 2, 3]))
        leader_id = hub.wait_for(
            lambda m: next((i for i, x in m.items() if x.state is State.LEADER), None),
            15,
            "a leader",
        )
        leader = nodes[leader_id]
        start_term = max(m.current_term for m in hub.snapshot().values())
        counter = iter(range(1 << 62))

        def submit(done: Any) -> None:
            payload = ClientPayload.new(
                Put(f"k{next(counter) % 1000}", "x" * 10), ResponseMode.APPLIED
            )
            leader.tell(Call(payload, _Notify(done)))

        before = storages[leader_id].proxy().commit_stats().get()
        window = Window(256)
        throughput = window.run(submit, DURATION)
        after = storages[leader_id].proxy().commit_stats().get()
        synced = max(1, after.synced_commits - before.synced_commits)
        written = after.entries - before.entries
        seq = latency_summary(
            sequential(
                lambda: leader.ask(
                    ClientPayload.new(Put("seq", "x" * 10), ResponseMode.APPLIED), timeout=10
                ),
                SEQUENTIAL,
            )
        )
        return {
            "throughput_per_s": throughput,
            "cpu_us_per_write": window.cpu_per_op_us,
            "sequential": seq,
            "leader_entries_per_log_commit": written / synced
            if store_options.get("durability") == "fsync"
            else None,
            "leader_commits": after.commits - before.commits,
            "leader_messages": after.messages - before.messages,
            "leader_entries": written,
            "elections_during_run": max(m.current_term for m in hub.snapshot().values())
            - start_term,
        }
    finally:
        pykka.ActorRegistry.stop_all()


def storage_burst(directory: Path, group_commit: bool, calls: int = 3000) -> dict[str, Any]:
    """One SqliteStore (fsync) sent ``calls`` single-entry ``ReplicateToLog`` calls at once,
    as a follower receiving many small AppendEntries is: calls answered per second, and
    the transactions it took."""
    import threading

    from pykka_raft import Call, Entry, EntryNormal, Put, ReplicateToLog, SqliteStore

    store = SqliteStore.start(directory / f"burst-{group_commit}", 1, group_commit=group_commit)
    try:
        entries = [
            Entry(1, i, EntryNormal(Put(f"k{i % 1000}", "x" * 10))) for i in range(1, calls + 1)
        ]
        done = threading.Semaphore(0)
        start = time.perf_counter()
        for entry in entries:
            store.tell(Call(ReplicateToLog((entry,)), _Notify(done.release)))
        for _ in entries:
            done.acquire(timeout=60)
        elapsed = time.perf_counter() - start
        stats = store.proxy().commit_stats().get()
        return {"calls_per_s": calls / elapsed, "commits": stats.commits, "calls": calls}
    finally:
        store.stop()


def sqlite_floor(directory: Path, batch: int, synchronous: str, row: bytes) -> dict[str, Any]:
    """Rows/s of a plain loop committing ``batch`` rows per transaction, and the latency of
    one single-row commit, on a table like the store's log."""
    path = directory / f"floor-{synchronous}.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER, entry BLOB)")
    index = 0

    def commit(rows: int) -> None:
        nonlocal index
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO log VALUES (?, 1, ?)", [(index + i, row) for i in range(1, rows + 1)]
        )
        db.execute("COMMIT")
        index += rows

    for _ in range(50):
        commit(batch)  # warm up
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < DURATION / 2:
        commit(batch)
        count += batch
    rate = count / (time.perf_counter() - start)
    single = latency_summary(sequential(lambda: commit(1), 2000))
    db.close()
    return {"batch": batch, "rows_per_s": rate, "single_commit": single}


def measure(options: dict[str, Any]) -> dict[str, Any]:
    from pykka_raft import Entry, EntryNormal, Put
    from pykka_raft.codec import encode

    row = encode(Entry(1, 1000, EntryNormal(Put("k123", "x" * 10))))
    base = Path(tempfile.mkdtemp(prefix="pykka-raft-bench-"))
    results: dict[str, Any] = {"row_bytes": len(row), "directory": str(base)}
    try:
        for name, store_options in VARIANTS:
            results[name] = raft_run(base / name, store_options)
        for group_commit in (True, False):
            key = f"burst_group_commit_{'on' if group_commit else 'off'}"
            results[key] = storage_burst(base, group_commit)
        batch = max(1, round(results["fsync"]["leader_entries_per_log_commit"] or 1))
        results["floor_full"] = sqlite_floor(base, batch, "FULL", row)
        results["floor_normal"] = sqlite_floor(base, batch, "NORMAL", row)
        results["peak_rss_mib"] = peak_rss_mib()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def run(quick: bool) -> dict[str, Any]:
    """Measure in a process of its own (as the other groups); return the figures."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    if quick:
        env["PYKKA_RAFT_BENCH_QUICK"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.durable"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"durable benchmark failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def ratios(r: dict[str, Any]) -> list[tuple[str, float, str, bool | None]]:
    """(description, value, target, met) for the durable group."""
    fsync, floor = r["fsync"], r["floor_full"]
    out: list[tuple[str, float, str, bool | None]] = []
    value = fsync["throughput_per_s"] / floor["rows_per_s"]
    out.append(
        (
            "SqliteStore fsync 3 nodes writes/s / plain SQLite FULL rows/s "
            f"at batch {floor['batch']}",
            value,
            ">= 0.5",
            value >= 0.5,
        )
    )
    value = fsync["sequential"]["p50_ms"] / floor["single_commit"]["p50_ms"]
    out.append(
        ("SqliteStore fsync sequential write p50 / one FULL commit p50", value, "<= 3", value <= 3)
    )
    value = fsync["throughput_per_s"] / r["fsync_no_group_commit"]["throughput_per_s"]
    out.append(
        ("SqliteStore fsync 3 nodes writes/s, group commit on / off", value, "(measured)", None)
    )
    on, off = r["burst_group_commit_on"], r["burst_group_commit_off"]
    value = on["calls_per_s"] / off["calls_per_s"]
    out.append(
        (
            f"one SqliteStore, {on['calls']} queued single-entry writes/s, group commit on "
            f"({on['commits']} commits) / off ({off['commits']})",
            value,
            "(measured)",
            None,
        )
    )
    value = r["os"]["throughput_per_s"] / r["floor_normal"]["rows_per_s"]
    out.append(
        (
            "SqliteStore os 3 nodes writes/s / plain SQLite NORMAL rows/s "
            f"at batch {floor['batch']}",
            value,
            "(measured)",
            None,
        )
    )
    return out


def table(r: dict[str, Any]) -> str:
    """A markdown table of the durable figures, each row with its durability class."""
    rows = [
        "| durable system | survives | writes/s | sequential p50 / p99 ms | CPU µs/write | "
        "leader entries per fsync |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {
        "fsync": ("SqliteStore 3 nodes, fsync", "power loss"),
        "fsync_no_group_commit": ("SqliteStore 3 nodes, fsync, no group commit", "power loss"),
        "os": ("SqliteStore 3 nodes, os", "process crash"),
    }
    for key, (label, survives) in labels.items():
        x = r[key]
        batch = x.get("leader_entries_per_log_commit")
        rows.append(
            f"| {label} | {survives} | {x['throughput_per_s']:,.0f} | "
            f"{x['sequential']['p50_ms']:.2f} / {x['sequential']['p99_ms']:.2f} | "
            f"{x['cpu_us_per_write']:.1f} | {'' if batch is None else f'{batch:.1f}'} |"
        )
    for key, label, survives in (
        ("floor_full", "plain SQLite loop, synchronous=FULL", "power loss"),
        ("floor_normal", "plain SQLite loop, synchronous=NORMAL", "process crash"),
    ):
        f = r[key]
        one = f["single_commit"]
        rows.append(
            f"| {label} ({f['batch']} rows per commit) | {survives} | "
            f"{f['rows_per_s']:,.0f} rows/s | one commit {one['p50_ms']:.3f} / "
            f"{one['p99_ms']:.3f} | | |"
        )
    return "\n".join(rows)


def main() -> None:
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    result = measure(options)
    print(table(result), file=sys.stderr)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
