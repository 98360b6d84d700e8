"""The key-value service group of ``make bench``: HTTP writes through ``pykka-raft-kv``.

Three ``serve`` processes on 127.0.0.1 (TCP with CURVE keys), written to over HTTP by
client threads in this process, each on its own keep-alive connection to the leader
(``PUT /v1/kv/<key>``, 10-byte JSON string values, answered once applied):

- throughput: writes answered per second with ``CLIENTS`` requests in flight;
- latency: one write at a time, p50 and p99;

for the service on ``MemStore`` (to compare like with like with the raw library) and on
``SqliteStore`` with fsync (what ``serve`` runs by default). Beside them, the raw library
over TCP measured by :mod:`bench.cluster` in the same run (three node processes with
MemStore and CURVE, one client process, 256 writes in flight and one at a time): the ratios
show what the HTTP layer costs. Figures are from one run on one machine; only the ratios
mean something elsewhere.

    python -m bench.kv [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CLIENTS = 32
RAFT = {"election_timeout_min": 300, "election_timeout_max": 600, "heartbeat_interval": 50}
HTTP = {"threads": CLIENTS + 8}
SYSTEMS: list[tuple[str, str, dict[str, Any]]] = [
    ("kv_http_memory", "pykka-raft-kv over HTTP, MemStore", {"storage": "memory"}),
    ("kv_http_sqlite", "pykka-raft-kv over HTTP, SqliteStore fsync", {"storage": "sqlite"}),
]


class _Connection:
    """One keep-alive HTTP connection to the leader."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def put(self, key: str, value: str) -> bool:
        body = json.dumps({"value": value}).encode()
        self.conn.request("PUT", "/v1/kv/" + key, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        response.read()
        return response.status == 200


def _throughput(url: str, seconds: float) -> tuple[float, int]:
    """Writes per second with ``CLIENTS`` in flight; and the failed ones."""
    stop = threading.Event()
    counts = [0] * CLIENTS
    failures = [0] * CLIENTS

    def client(i: int) -> None:
        conn = _Connection(url)
        n = 0
        while not stop.is_set():
            n += 1
            if conn.put(f"t{i}/{n}", "x" * 10):
                counts[i] += 1
            else:
                failures[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 5)  # warm-up: connections made, the pipeline full
    base, t0 = sum(counts), time.perf_counter()
    time.sleep(seconds)  # the measured phase
    done, elapsed = sum(counts) - base, time.perf_counter() - t0
    stop.set()
    for thread in threads:
        thread.join(30)
    return done / elapsed, sum(failures)


def run_service(options: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Three ``serve`` processes; HTTP load on the leader; stopped at the end."""
    from bench.workers import latency_summary, sequential
    from pykka_raft.kv.launcher import ProcessCluster

    duration, count = (0.5, 100) if options.pop("quick", False) else (2.0, 500)

    cluster = ProcessCluster(workdir, secure=True, raft=RAFT, http=HTTP, **options)
    try:
        leader = cluster.form([1, 2, 3])
        url = cluster.nodes[leader].url
        terms = {n: s["term"] for n, s in cluster.statuses().items()}
        per_second, failed = _throughput(url, duration)
        conn = _Connection(url)
        numbers = iter(range(1 << 30))
        seq = sequential(lambda: conn.put(f"seq/{next(numbers)}", "x" * 10), count)
        after = {n: s["term"] for n, s in cluster.statuses().items()}
        return {
            "throughput_10B_per_s": per_second,
            "in_flight": CLIENTS,
            "failed_writes": failed,
            "sequential": latency_summary(seq),
            "leader_changes": max(after.values()) - max(terms.values()),
        }
    finally:
        cluster.close()


def raw_library(workdir: Path, quick: bool) -> dict[str, Any]:
    """The raw library's figures over TCP, the way the comparison measures it."""
    from bench.cluster import Setting, measure

    setting = Setting("raft3_mem", "raw", "pykka_raft", 3, "mem", "memory", phases=("seq", "w256"))
    result = measure(setting, workdir, 0.1 if quick else 0.2, 0.3 if quick else 0.6)
    seq, window = result["phases"]["seq"], result["phases"]["w256"]
    return {
        "throughput_10B_per_s": window["throughput_per_s"],
        "in_flight": 256,
        "failed_writes": result["failed_writes"],
        "sequential": seq["latency"],
        "leader_changes": result["leader_changes"],
    }


def run(quick: bool = False) -> dict[str, dict[str, Any]]:
    """The service's systems and the raw TCP figure, measured one after the other."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-kv-") as tmp:
        print("[kv] raw library over TCP + CURVE ...", end=" ", flush=True)
        t0 = time.monotonic()
        raw = raw_library(Path(tmp) / "raw", quick)
        print(f"done in {time.monotonic() - t0:.0f}s", flush=True)
        results["tcp_raft_secure"] = {"label": "pykka_raft over TCP + CURVE (no HTTP)", **raw}
        for key, label, options in SYSTEMS:
            print(f"[kv] {label} ...", end=" ", flush=True)
            t0 = time.monotonic()
            run_options = {**options, "quick": quick}
            results[key] = {"label": label, **run_service(run_options, Path(tmp) / key)}
            print(f"done in {time.monotonic() - t0:.0f}s", flush=True)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table of the group, and the ratios that show the HTTP layer's cost."""
    rows = [
        "| system (3 processes, loopback) | writes/s | in flight | sequential p50 / p99 ms "
        "| failed | leader changes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results.values():
        seq = r["sequential"]
        rows.append(
            f"| {r['label']} | {r['throughput_10B_per_s']:,.0f} | {r.get('in_flight', 256)} | "
            f"{seq['p50_ms']:.2f} / {seq['p99_ms']:.2f} | {r['failed_writes']} | "
            f"{r['leader_changes']} |"
        )
    raw, mem = results.get("tcp_raft_secure"), results.get("kv_http_memory")
    lines = ["", "| ratio | value |", "|---|---:|"]
    if raw and mem:
        lines.append(
            "| HTTP service writes/s (MemStore) / raw library writes/s over TCP | "
            f"{mem['throughput_10B_per_s'] / raw['throughput_10B_per_s']:.2f} |"
        )
        lines.append(
            "| HTTP service sequential p50 (MemStore) / raw library sequential p50 | "
            f"{mem['sequential']['p50_ms'] / raw['sequential']['p50_ms']:.2f} |"
        )
    disk = results.get("kv_http_sqlite")
    if mem and disk:
        lines.append(
            "| HTTP service writes/s, SqliteStore fsync / MemStore | "
            f"{disk['throughput_10B_per_s'] / mem['throughput_10B_per_s']:.2f} |"
        )
    return "\n".join(rows + lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    args = parser.parse_args()
    results = run(args.quick)
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
