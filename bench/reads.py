"""Reads on 3 nodes in one process: through the log, READ_INDEX and LEASE.

``python -m bench.reads [--quick] [--repeats N]`` prints one JSON object. On two clusters
in turn, one on ``MemStore`` and one on ``SqliteStore(durability="fsync")`` (the store a
deployment uses), each policy's throughput (256 reads in flight, on the leader) and
sequential latency are measured ``repeats`` times, interleaved (log, READ_INDEX, LEASE,
log, ...), each read a ``Get`` of one of 1,000 keys written first, in turn. Two
baselines, measured in the same runs: the latency of a plain ``ask`` of the leader's
storage actor answering the same queries (``QueryStateMachine``), and the
throughput of that same call with 256 in flight (the ceiling of this client: one
hand-off to an actor and one back, no Raft at all), and of the client alone (each call
answered at once, on the client's thread: what the client's own work allows). Targets
(docs/reads.md): READ_INDEX at least 5x the log-read throughput, LEASE p50 at most 2x the
storage ask.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

from bench.workers import Window, latency_summary, sequential

STORES = ("memory", "sqlite_fsync")
KEYS = 1000


def run(quick: bool, repeats: int) -> dict[str, Any]:
    """Measure the three read paths on each store; return medians, ranges and ratios."""
    out: dict[str, Any] = {}
    for store in STORES:
        with tempfile.TemporaryDirectory(prefix="bench-reads-") as directory:
            out[store] = _run_store(store, directory, quick, repeats)
    # The figures of the in-memory cluster stay at the top level (earlier results' shape).
    return {**out["memory"], "stores": out}


def _run_store(store: str, directory: str, quick: bool, repeats: int) -> dict[str, Any]:
    import bench.workers as workers
    from pykka_raft import (
        Call,
        ClientPayload,
        ClientRead,
        Config,
        Get,
        MemStore,
        Put,
        QueryStateMachine,
        ReadPolicy,
        ResponseMode,
        SqliteStore,
    )
    from pykka_raft.testing import Cluster

    duration, warmup = (1.0, 0.2) if quick else (2.0, 0.4)
    config = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)

    def storage(node_id: int, data: Any) -> Any:
        # Plain stores: the testing harness's default storage keeps the state machine's
        # whole history for its checks, which would slow the log-read baseline.
        if store == "memory":
            return MemStore.start()
        return SqliteStore.start(f"{directory}/n{node_id}", node_id, durability="fsync")

    cluster = Cluster([1, 2, 3], config=config, storage=storage)
    try:
        cluster.initialize()
        leader = cluster.leader()
        ref, storage_ref = cluster.nodes[leader], cluster.storages[leader]
        # Reads cycle through KEYS keys, all written first (built before the runs: the
        # client's cost per read is the same on every path).
        keys = [f"key{i}" for i in range(KEYS)]
        written = [ref.ask(ClientPayload.new(Put(k, "0123456789")), block=False) for k in keys]
        for future in written:
            future.get(timeout=30)
        messages: dict[str, list[Any]] = {
            "log": [ClientPayload.new(Get(k), ResponseMode.APPLIED) for k in keys],
            "read_index": [ClientRead(Get(k), ReadPolicy.READ_INDEX) for k in keys],
            "lease": [ClientRead(Get(k), ReadPolicy.LEASE) for k in keys],
        }
        queries = [QueryStateMachine((Get(k),)) for k in keys]
        figures: dict[str, list[float]] = {}

        def throughput(target: Any, cycle: list[Any]) -> float:
            following = itertools.cycle(cycle).__next__

            def submit(done: Callable[[], None]) -> None:
                target.tell(Call(following(), workers._Notify(done)))

            return Window(256).run(submit, warmup, duration)

        def p50(target: Any, cycle: list[Any], count: int) -> float:
            following = itertools.cycle(cycle).__next__
            ms: float = latency_summary(
                sequential(lambda: target.ask(following(), timeout=10), count)
            )["p50_ms"]
            return ms

        for _ in range(repeats):
            for name, cycle in messages.items():
                figures.setdefault(f"{name}_per_s", []).append(throughput(ref, cycle))
                figures.setdefault(f"{name}_p50_ms", []).append(
                    p50(ref, cycle, 300 if quick else 1000)
                )
            figures.setdefault("storage_ask_p50_ms", []).append(p50(storage_ref, queries, 1000))
            figures.setdefault("storage_call_per_s", []).append(throughput(storage_ref, queries))
            figures.setdefault("client_alone_per_s", []).append(
                Window(256).run(
                    lambda done: Call(queries[0], workers._Notify(done)).reply.set(None),
                    warmup,
                    duration,
                )
            )
        medians = {k: statistics.median(v) for k, v in figures.items()}
        ranges = {k: (min(v), max(v)) for k, v in figures.items()}
        return {
            "median": medians,
            "range": ranges,
            "read_index_over_log": medians["read_index_per_s"] / medians["log_per_s"],
            "read_index_over_ceiling": medians["read_index_per_s"] / medians["storage_call_per_s"],
            "lease_p50_over_storage_ask": medians["lease_p50_ms"] / medians["storage_ask_p50_ms"],
            "leader_changes": len(cluster.hub.leaders_by_term()) - 1,
            "failed": workers._Notify.failures,
        }
    finally:
        cluster.shutdown()


NAMES = {
    "log_per_s": "reads through the log, per second",
    "read_index_per_s": "`READ_INDEX`, per second",
    "lease_per_s": "`LEASE`, per second",
    "storage_call_per_s": "the client's ceiling: storage `QueryStateMachine` calls, per second",
    "client_alone_per_s": "the client alone, each call answered at once on its own thread",
    "log_p50_ms": "p50 through the log, ms",
    "read_index_p50_ms": "p50 `READ_INDEX`, ms",
    "lease_p50_ms": "p50 `LEASE`, ms",
    "storage_ask_p50_ms": "p50 of a plain storage `ask`, ms",
}


def table(result: dict[str, Any]) -> str:
    """A markdown table of the medians and ranges on each store, and the tracked ratios."""
    stores = result.get("stores", {"memory": result})
    titles = {"memory": "`MemStore`", "sqlite_fsync": '`SqliteStore` "fsync"'}
    header = " | ".join(f"{titles[s]}: median (range)" for s in stores)
    rows = [f"| reads, 3 nodes in one process | {header} |", "|---|" + "---:|" * len(stores)]

    def cell(figures: dict[str, Any], key: str) -> str:
        if key not in figures["median"]:
            return ""
        low, high = figures["range"][key]
        spec = ",.3f" if key.endswith("_ms") else ",.0f"  # latencies in ms, rates per second
        return f"{figures['median'][key]:{spec}} ({low:{spec}} to {high:{spec}})"

    for key, name in NAMES.items():
        rows.append(f"| {name} | " + " | ".join(cell(f, key) for f in stores.values()) + " |")
    ratios = {
        "read_index_over_log": "`READ_INDEX` / log throughput (target >= 5)",
        "read_index_over_ceiling": "`READ_INDEX` / the client's ceiling",
        "lease_p50_over_storage_ask": "`LEASE` p50 / storage `ask` p50 (target <= 2)",
    }
    for key, name in ratios.items():
        values = [f"{f[key]:.2f}" if key in f else "" for f in stores.values()]
        rows.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.repeats), indent=2))


if __name__ == "__main__":
    main()
