"""The disk's own floor for the durable rows: ``python -m bench.durable '<json options>'``.

Run right after each ``SqliteStore`` ``fsync`` run, in a fresh process, in a temporary
directory on the same file system as the nodes' data (``$TMPDIR``):

* ``floor``: a plain SQLite loop on a table like the store's log (WAL, rows of the size
  of one encoded 10-byte write), committing transactions of each batch size the leader's
  store used in that run, with ``synchronous=FULL`` (one fsync per commit): rows per
  second. And the latency of one single-row commit.
* ``burst``: one ``SqliteStore`` (``fsync``) sent 3000 single-entry ``ReplicateToLog``
  calls at once, as a follower receiving many small AppendEntries is, with group commit
  on and off: calls answered per second and the transactions they took (what group
  commit buys).

Targets (``make bench``): the cluster's writes/s at least 0.5x the floor's rows/s at the
leader's batch size; sequential write p50 at most 3x one commit's p50.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import latency_summary


def sqlite_floor(
    directory: Path, batch: int, synchronous: str, row: bytes, duration: float
) -> dict[str, Any]:
    """Rows/s of a plain loop committing ``batch`` rows per transaction."""
    path = directory / f"floor-{synchronous}-{batch}.sqlite3"
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

    # Warm up to the steady state of a long-running store: the write-ahead log grown to
    # its full size and checkpointed at least once, so a commit rewrites WAL space that
    # exists (on a growing file, every fsync also commits the file's new size to the
    # file system's journal, several times slower).
    for _ in range(60):
        commit(1000)
    for _ in range(20):
        commit(batch)
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < duration:
        commit(batch)
        count += batch
    rate = count / (time.perf_counter() - start)
    single = [0.0] * 300
    for i in range(len(single)):
        t0 = time.perf_counter()
        commit(1)
        single[i] = time.perf_counter() - t0
    db.close()
    return {"batch": batch, "rows_per_s": rate, "single_commit": latency_summary(single)}


def storage_burst(directory: Path, group_commit: bool, calls: int = 3000) -> dict[str, Any]:
    """Calls/s of one SqliteStore sent ``calls`` single-entry writes at once."""
    import pykka

    from bench.workers import _Notify
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
        pykka.ActorRegistry.stop_all()


def measure(options: dict[str, Any]) -> dict[str, Any]:
    from pykka_raft import Entry, EntryNormal, Put
    from pykka_raft.codec import encode

    row = encode(Entry(1, 1000, EntryNormal(Put("k123", "x" * 10))))
    batches = sorted({max(1, round(b)) for b in options.get("batches", [1])})
    duration = float(options.get("duration", 0.5))
    base = Path(tempfile.mkdtemp(prefix="pykka-raft-bench-floor-"))
    try:
        floors = {str(b): sqlite_floor(base, b, "FULL", row, duration) for b in batches}
        result: dict[str, Any] = {"row_bytes": len(row), "floor_full": floors}
        if options.get("burst", True):
            for group_commit in (True, False):
                key = f"burst_group_commit_{'on' if group_commit else 'off'}"
                result[key] = storage_burst(base, group_commit, int(options.get("calls", 3000)))
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    print(json.dumps(measure(options)), flush=True)


if __name__ == "__main__":
    main()
