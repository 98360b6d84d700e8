"""Reads on 3 nodes in one process: through the log, READ_INDEX and LEASE.

``python -m bench.reads [--quick] [--repeats N]`` prints one JSON object. Each policy's
throughput (256 reads in flight, on the leader) and sequential latency are measured
``repeats`` times, interleaved (log, READ_INDEX, LEASE, log, ...), in one cluster; the
latency baseline is a plain ``ask`` of the leader's storage actor answering the same query
(``QueryStateMachine``), measured in the same run. Targets (docs/reads.md): READ_INDEX at
least 5x the log-read throughput, LEASE p50 at most 2x the storage ask.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from typing import Any

from bench.workers import Window, latency_summary, sequential


def run(quick: bool, repeats: int) -> dict[str, Any]:
    """Measure the three read paths; return medians and ranges."""
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
    )
    from pykka_raft.testing import Cluster

    duration, warmup = (1.0, 0.2) if quick else (2.0, 0.4)
    config = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
    # Plain MemStores: the testing harness's default storage keeps the state machine's
    # whole history for its checks, which would slow the log-read baseline.
    cluster = Cluster([1, 2, 3], config=config, storage=lambda node_id, data: MemStore.start())
    try:
        cluster.initialize()
        leader = cluster.leader()
        cluster.write(Put("k", "v"))
        ref, storage = cluster.nodes[leader], cluster.storages[leader]
        messages: dict[str, Any] = {
            "log": ClientPayload.new(Get("k"), ResponseMode.APPLIED),
            "read_index": ClientRead(Get("k"), ReadPolicy.READ_INDEX),
            "lease": ClientRead(Get("k"), ReadPolicy.LEASE),
        }
        query = QueryStateMachine((Get("k"),))
        figures: dict[str, list[float]] = {}
        for _ in range(repeats):
            for name, message in messages.items():

                def submit(done: Callable[[], None], message: Any = message) -> None:
                    ref.tell(Call(message, workers._Notify(done)))

                rate = Window(256).run(submit, warmup, duration)
                p50 = latency_summary(
                    sequential(lambda m=message: ref.ask(m, timeout=10), 300 if quick else 1000)
                )["p50_ms"]
                figures.setdefault(f"{name}_per_s", []).append(rate)
                figures.setdefault(f"{name}_p50_ms", []).append(p50)
            figures.setdefault("storage_ask_p50_ms", []).append(
                latency_summary(sequential(lambda: storage.ask(query), 1000))["p50_ms"]
            )
        medians = {k: statistics.median(v) for k, v in figures.items()}
        ranges = {k: (min(v), max(v)) for k, v in figures.items()}
        return {
            "median": medians,
            "range": ranges,
            "read_index_over_log": medians["read_index_per_s"] / medians["log_per_s"],
            "lease_p50_over_storage_ask": medians["lease_p50_ms"] / medians["storage_ask_p50_ms"],
            "leader_changes": len(cluster.hub.leaders_by_term()) - 1,
        }
    finally:
        cluster.shutdown()


def table(result: dict[str, Any]) -> str:
    """A markdown table of the medians and ranges, and the two tracked ratios."""
    names = {
        "log_per_s": "reads through the log, per second",
        "read_index_per_s": "`READ_INDEX`, per second",
        "lease_per_s": "`LEASE`, per second",
        "log_p50_ms": "p50 through the log, ms",
        "read_index_p50_ms": "p50 `READ_INDEX`, ms",
        "lease_p50_ms": "p50 `LEASE`, ms",
        "storage_ask_p50_ms": "p50 of a plain storage `ask`, ms",
    }
    rows = ["| reads, 3 nodes in one process | median | range |", "|---|---:|---:|"]
    for key, name in names.items():
        low, high = result["range"][key]
        rows.append(f"| {name} | {result['median'][key]:,.3f} | {low:,.3f} to {high:,.3f} |")
    rows.append(
        f"| `READ_INDEX` / log throughput (target >= 5) | {result['read_index_over_log']:.2f} | |"
    )
    lease = result["lease_p50_over_storage_ask"]
    rows.append(f"| `LEASE` p50 / storage `ask` p50 (target <= 2) | {lease:.2f} | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.repeats), indent=2))


if __name__ == "__main__":
    main()
