"""``make bench``: pykka_raft against the Pykka substrate and PySyncObj, in one run.

Runs each group (:mod:`bench.workers`) in its own process, one after the other, prints a
table with every figure and the ratios the project tracks, and writes
``bench/results/results.json``, ``bench/results/results.md`` and
``docs/benchmarks.png``. Ratios compare figures of this run only: absolute numbers
depend on the machine.

    python -m bench [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import durable
from bench import kv as kv_group
from bench import tcp as tcp_group

ROOT = Path(__file__).resolve().parent.parent
FIXED_RATE = 1000  # writes/s offered in the fixed-load phase (below every system's saturation)

GROUPS: list[tuple[str, str, dict[str, Any]]] = [
    ("pykka", "Pykka ceiling (chain of 3 actors)", {}),
    ("pykka_raft", "pykka_raft, 3 nodes", {"nodes": 3, "rate": FIXED_RATE}),
    ("pykka_raft", "pykka_raft, 5 nodes", {"nodes": 5, "rate": FIXED_RATE}),
    ("pysyncobj", "PySyncObj, 3 nodes (defaults)", {"nodes": 3, "rate": FIXED_RATE}),
    ("pysyncobj", "PySyncObj, 3 nodes (tuned)", {"nodes": 3, "rate": FIXED_RATE, "tuned": True}),
]
KEYS = ["pykka", "raft3", "raft5", "pso", "pso_tuned"]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "pykka": version("pykka"),
        "pysyncobj": version("pysyncobj"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run_group(group: str, options: dict[str, Any], quick: bool) -> dict[str, Any]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    if quick:
        env["PYKKA_RAFT_BENCH_QUICK"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.workers", group, json.dumps(options)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark group {group} {options} failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def ratios(r: dict[str, dict[str, Any]]) -> list[tuple[str, float, str, bool | None]]:
    """(description, value, target text, met) for each tracked ratio."""
    ceiling = r["pykka"]["chain3_inflight100_per_s"]
    raft3, raft5 = r["raft3"], r["raft5"]
    ask = raft3["sequential_ask_baseline"]["p50_ms"]  # same process, just before
    out: list[tuple[str, float, str, bool | None]] = [
        (
            "pykka_raft 3 nodes writes/s (10 B) / Pykka chain-of-3 round trips/s",
            raft3["throughput_10B_per_s"] / ceiling,
            ">= 0.5",
            raft3["throughput_10B_per_s"] / ceiling >= 0.5,
        ),
        (
            "pykka_raft 3 nodes sequential write p50 / sequential Pykka ask p50 (same process)",
            raft3["sequential"]["p50_ms"] / ask,
            "<= 20",
            raft3["sequential"]["p50_ms"] / ask <= 20,
        ),
        (
            "pykka_raft 5 nodes writes/s / 3 nodes writes/s (10 B)",
            raft5["throughput_10B_per_s"] / raft3["throughput_10B_per_s"],
            ">= 0.6",
            raft5["throughput_10B_per_s"] / raft3["throughput_10B_per_s"] >= 0.6,
        ),
    ]
    for key, name in (("pso", "defaults"), ("pso_tuned", "tuned")):
        if key not in r:
            continue
        pso = r[key]
        for size in ("10B", "1KiB"):
            value = raft3[f"throughput_{size}_per_s"] / pso[f"throughput_{size}_per_s"]
            out.append(
                (
                    f"pykka_raft 3 nodes writes/s ({size}) / PySyncObj {name}",
                    value,
                    "> 1",
                    value > 1,
                )
            )
        value = pso["sequential"]["p50_ms"] / raft3["sequential"]["p50_ms"]
        out.append(
            (f"PySyncObj {name} sequential p50 / pykka_raft 3 nodes", value, "> 1", value > 1)
        )
    return out


def fmt(value: float, digits: int = 1) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def table(r: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    head = (
        "| system | writes/s 10 B | writes/s 1 KiB | sequential p50 / p99 ms | "
        f"at {FIXED_RATE}/s p50 / p99 ms | CPU µs/write | peak RSS MiB | ask baseline p50 µs |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    p = r["pykka"]
    rows.append(
        f"| {labels['pykka']} | {fmt(p['chain3_inflight100_per_s'])} round trips/s (100 in "
        f"flight) | | ask {p['sequential_ask']['p50_ms'] * 1000:.0f} / "
        f"{p['sequential_ask']['p99_ms'] * 1000:.0f} µs; chain "
        f"{p['sequential_chain3']['p50_ms'] * 1000:.0f} / "
        f"{p['sequential_chain3']['p99_ms'] * 1000:.0f} µs | | "
        f"{fmt(p['cpu_us_per_round_trip'])} per round trip | {fmt(p['peak_rss_mib'])} | |"
    )
    for key in KEYS[1:]:
        if key not in r:
            continue
        x = r[key]
        fixed = x.get("fixed_load", {})
        ask = x.get("sequential_ask_baseline")
        baseline = f"{ask['p50_ms'] * 1000:.0f}" if ask else ""
        rows.append(
            f"| {labels[key]} | {fmt(x['throughput_10B_per_s'])} | "
            f"{fmt(x['throughput_1KiB_per_s'])} | {fmt(x['sequential']['p50_ms'], 2)} / "
            f"{fmt(x['sequential']['p99_ms'], 2)} | {fmt(fixed.get('p50_ms', float('nan')), 2)} / "
            f"{fmt(fixed.get('p99_ms', float('nan')), 2)} | {fmt(x['cpu_us_per_write_10B'])} | "
            f"{fmt(x['peak_rss_mib'])} | {baseline} |"
        )
    return "\n".join(rows)


def chart(r: dict[str, dict[str, Any]], labels: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in KEYS[1:] if k in r]
    names = [labels[k].replace(", ", "\n") for k in keys]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.38
    xs = range(len(keys))
    left.bar(
        [x - width / 2 for x in xs],
        [r[k]["throughput_10B_per_s"] for k in keys],
        width,
        label="10 B",
    )
    left.bar(
        [x + width / 2 for x in xs],
        [r[k]["throughput_1KiB_per_s"] for k in keys],
        width,
        label="1 KiB",
    )
    left.axhline(
        r["pykka"]["chain3_inflight100_per_s"],
        color="grey",
        linestyle="--",
        label="Pykka chain-of-3 ceiling",
    )
    left.set_xticks(list(xs), names, fontsize=8)
    left.set_ylabel("applied writes per second")
    left.set_title("Throughput (higher is better)")
    left.legend(fontsize=8)
    right.bar(
        [x - width / 2 for x in xs],
        [r[k]["sequential"]["p50_ms"] for k in keys],
        width,
        label="sequential p50",
    )
    right.bar(
        [x + width / 2 for x in xs],
        [r[k].get("fixed_load", {}).get("p99_ms", 0) for k in keys],
        width,
        label=f"p99 at {FIXED_RATE} writes/s",
    )
    right.set_yscale("log")
    right.set_xticks(list(xs), names, fontsize=8)
    right.set_ylabel("milliseconds (log scale)")
    right.set_title("Write latency (lower is better)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.png"))
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    parser.add_argument("--skip-pysyncobj", action="store_true")
    parser.add_argument("--skip-durable", action="store_true", help="no SqliteStore group")
    parser.add_argument("--skip-tcp", action="store_true", help="skip the TCP group (bench/tcp.py)")
    parser.add_argument("--skip-kv", action="store_true", help="skip the HTTP group (bench/kv.py)")
    args = parser.parse_args()

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['os']}")
    print(f"pykka {info['pykka']}, pysyncobj {info['pysyncobj']}")
    groups = [g for g in GROUPS if not (args.skip_pysyncobj and g[0] == "pysyncobj")]
    labels = dict(zip(KEYS, (label for _, label, _ in GROUPS), strict=True))
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for number, ((group, label, options), key) in enumerate(
        zip(groups, [KEYS[GROUPS.index(g)] for g in groups], strict=True), 1
    ):
        print(f"[{number}/{len(groups)}] {label} ...", end=" ", flush=True)
        t0 = time.monotonic()
        results[key] = run_group(group, options, args.quick)
        print(f"done in {time.monotonic() - t0:.0f}s", flush=True)

    durable_result = None
    if not args.skip_durable:  # SqliteStore against plain SQLite on this disk (bench.durable)
        print("[durable] SqliteStore, 3 nodes, against plain SQLite ...", end=" ", flush=True)
        t0 = time.monotonic()
        durable_result = durable.run(args.quick)
        print(f"done in {time.monotonic() - t0:.0f}s", flush=True)
    tcp = {} if args.skip_tcp else tcp_group.run(args.quick, args.skip_pysyncobj)
    kv = {} if args.skip_kv else kv_group.run(args.quick, tcp.get("tcp_raft_secure"))
    tracked = ratios(results) if "raft5" in results else []
    if durable_result is not None:
        results["durable"] = durable_result
        tracked += durable.ratios(durable_result)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "fixed_load_rate_per_s": FIXED_RATE,
        "results": results,
        "ratios": [
            {"ratio": name, "value": value, "target": target, "met": met}
            for name, value, target, met in tracked
        ],
        "tcp": tcp,
        "kv": kv,
        "elapsed_s": time.monotonic() - started,
    }
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    text = table(results, labels) + (f"\n\n{tcp_group.table(tcp)}" if tcp else "")
    text += f"\n\n{kv_group.table(kv)}" if kv else ""
    if durable_result is not None:
        text += "\n\n" + durable.table(durable_result)
    ratio_lines = ["| ratio | value | target |", "|---|---:|---|"] + [
        f"| {name} | {value:.2f} | {target} {'' if met is None else 'met' if met else 'NOT met'} |"
        for name, value, target, met in tracked
    ]
    markdown = (
        f"Run of {info['date']} on {info['cpu']} ({info['cores']} cores), Python "
        f"{info['python']}, pykka {info['pykka']}, pysyncobj {info['pysyncobj']}.\n\n"
        + text
        + "\n\n"
        + "\n".join(ratio_lines)
        + "\n"
    )
    (out / "results.md").write_text(markdown)
    print()
    print(text)
    print()
    print("\n".join(ratio_lines))
    try:
        chart(results, labels, Path(args.chart))
        print(f"\nwrote {out / 'results.json'}, {out / 'results.md'} and {args.chart}")
    except ImportError:
        print(f"\nwrote {out / 'results.json'} and {out / 'results.md'} (no matplotlib: no chart)")
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
