"""``make bench``: pykka_raft against PySyncObj, the Pykka substrate and the disk, in one run.

Every (system, setting) is measured several times, interleaved (A B C ... A B C ...), each
run in fresh processes, with a CPU-speed probe before each run; the report gives the
median and the range, and the ratios the project tracks (docs/benchmarks.md).

    python -m bench [--quick] [--repeats N] [--only tcp,failover,durable,inproc,reads,kv]
                    [--settings KEY,KEY] [--out DIR] [--publish] [--profile SETTING]

Results go to ``build/bench/`` (not tracked by git); ``--publish`` also writes
``bench/results/results.json`` and ``results.md``, ``docs/benchmarks.png`` and the results
section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import kv as bench_kv
from bench import reads as bench_reads
from bench import report
from bench.cluster import PHASES, Setting, failover, measure
from bench.common import cpu_probe

ROOT = Path(__file__).resolve().parent.parent
ALL_PHASES = ("seq", "seq_1k", "w256", "w4096", "w256_1k", "w4096_1k")


def _tcp(
    key: str, label: str, system: str, nodes: int, store: str, durability: str, **kw: Any
) -> Setting:
    return Setting(key, label, system, nodes, store, durability, phases=ALL_PHASES, **kw)


TCP_SETTINGS = [
    # The memory class: no disk on either side.
    _tcp("raft3_mem", "pykka_raft, 3 nodes, MemStore", "pykka_raft", 3, "mem", "memory"),
    _tcp("pso3_mem", "PySyncObj, 3 nodes, in memory", "pysyncobj", 3, "mem", "memory"),
    _tcp(
        "pso3_mem_nobatch",
        "PySyncObj, 3 nodes, in memory, batching off",
        "pysyncobj",
        3,
        "mem",
        "memory",
        batch=False,
    ),
    _tcp(
        "raft3_mem_insecure",
        "pykka_raft, 3 nodes, MemStore, no CURVE",
        "pykka_raft",
        3,
        "mem",
        "memory",
        insecure=True,
    ),
    # pykka_raft's threads and hand-offs with no Raft work: what the shape itself allows.
    _tcp("shape3", "the shape alone, 3 nodes (no Raft work)", "shape", 3, "mem", "memory"),
    _tcp(
        "shape3_lean",
        "the shape alone, 3 nodes, fewest hand-offs",
        "shape",
        3,
        "mem",
        "memory",
        lean=True,
    ),
    _tcp("raft5_mem", "pykka_raft, 5 nodes, MemStore", "pykka_raft", 5, "mem", "memory"),
    _tcp("pso5_mem", "PySyncObj, 5 nodes, in memory", "pysyncobj", 5, "mem", "memory"),
    # (PySyncObj with batching off is left out at 5 nodes: with 4,096 writes in flight its
    # leader falls behind its own heartbeats, elections follow and the run does not count.)
    # The "os" class: written to the OS at each commit, survives a process crash.
    _tcp("raft3_os", 'pykka_raft, 3 nodes, SqliteStore "os"', "pykka_raft", 3, "os", "os"),
    _tcp("pso3_journal", "PySyncObj, 3 nodes, journal", "pysyncobj", 3, "journal", "os"),
    _tcp("raft5_os", 'pykka_raft, 5 nodes, SqliteStore "os"', "pykka_raft", 5, "os", "os"),
    _tcp("pso5_journal", "PySyncObj, 5 nodes, journal", "pysyncobj", 5, "journal", "os"),
    # The "fsync" class: against the disk's own floor, measured right after.
    _tcp(
        "raft3_fsync", 'pykka_raft, 3 nodes, SqliteStore "fsync"', "pykka_raft", 3, "fsync", "fsync"
    ),
]
QUICK_TCP = {
    "raft3_mem",
    "pso3_mem",
    "pso3_mem_nobatch",
    "shape3",
    "shape3_lean",
    "raft3_os",
    "pso3_journal",
    "raft3_fsync",
}
FAILOVER_SETTINGS = [
    Setting("raft3", "pykka_raft, 3 nodes, MemStore", "pykka_raft", 3, "mem", "memory"),
    Setting("pso3", "PySyncObj, 3 nodes, in memory", "pysyncobj", 3, "mem", "memory"),
]
INPROC = [
    ("pykka", "Pykka ceiling (chain of 3 actors)", "pykka", {}),
    ("raft3", "pykka_raft, 3 nodes in one process", "pykka_raft", {"nodes": 3}),
    ("raft5", "pykka_raft, 5 nodes in one process", "pykka_raft", {"nodes": 5}),
]


@dataclass(frozen=True)
class Timing:
    """Seconds of each phase: warm-up and measured part of a load phase, and of an
    in-process throughput phase; writes of the in-process sequential phase."""

    warmup: float
    duration: float
    inproc_warmup: float
    inproc_duration: float
    inproc_sequential: int
    floor_duration: float
    repeats: int


FULL = Timing(0.2, 0.6, 0.3, 1.0, 300, 0.3, 5)
QUICK = Timing(0.1, 0.3, 0.1, 0.3, 100, 0.1, 1)


# --- extra groups: run once after the comparison ------------------------------------------
# A group here is (name, run(quick) -> dict, table(result) -> markdown). Its result is kept
# under "extra" in the results JSON and its table printed after the others.
EXTRA_GROUPS: list[
    tuple[str, Callable[[bool], dict[str, Any]], Callable[[dict[str, Any]], str]]
] = [
    ("reads", lambda quick: bench_reads.run(quick, 1 if quick else 3), bench_reads.table),
    ("kv", lambda quick: bench_kv.run(quick), bench_kv.table),
]


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
        "pyzmq": version("pyzmq"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run_python(module: str, options: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
    """``python -m module '<json>'`` in a fresh process; its last JSON line."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    args = [sys.executable, "-m", module, *options.pop("_args", []), json.dumps(options)]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class Job:
    group: str  # tcp, floor, failover, inproc
    key: str
    label: str
    run: Callable[[], dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def groups(args: argparse.Namespace) -> set[str]:
    """The groups ``--only`` selects (all by default)."""
    every = {"tcp", "durable", "failover", "inproc"} | {name for name, _, _ in EXTRA_GROUPS}
    return set(args.only.split(",")) if args.only else every


def plan(args: argparse.Namespace, timing: Timing, last_fsync: dict[str, Any]) -> list[Job]:
    """The jobs of one repetition, in the order they run."""
    only = groups(args)
    jobs: list[Job] = []

    def tcp_job(s: Setting) -> Job:
        def run() -> dict[str, Any]:
            with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-") as tmp:
                result = measure(s, Path(tmp), timing.warmup, timing.duration)
            if s.durability == "fsync":
                last_fsync.clear()
                last_fsync.update(result)
            return result

        return Job("tcp", s.key, s.label, run, asdict(s))

    for s in TCP_SETTINGS:
        if args.quick and s.key not in QUICK_TCP:
            continue
        if args.skip_pysyncobj and s.system == "pysyncobj":
            continue
        if args.settings and s.key not in args.settings.split(","):
            continue
        if s.durability == "fsync" and "durable" not in only:
            continue
        if s.durability != "fsync" and "tcp" not in only:
            continue
        jobs.append(tcp_job(s))
        if s.durability == "fsync":

            def floor() -> dict[str, Any]:
                batches = [1.0] + [
                    p.get("leader_entries_per_commit", 1.0)
                    for p in last_fsync.get("phases", {}).values()
                ]
                return run_python(
                    "bench.durable",
                    {
                        "batches": batches,
                        "duration": timing.floor_duration,
                        "calls": 3000 if not args.quick else 500,
                    },
                )

            label = "plain SQLite commits (the disk's floor)"
            jobs.append(Job("floor", "floor", label, floor, {"label": label}))
    if "failover" in only:
        for s in FAILOVER_SETTINGS:
            if args.skip_pysyncobj and s.system == "pysyncobj":
                continue

            def fail(s: Setting = s) -> dict[str, Any]:
                with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-") as tmp:
                    return failover(s, Path(tmp), before=0.3 if args.quick else 0.6)

            jobs.append(Job("failover", s.key, f"failover: {s.label}", fail, asdict(s)))
    if "inproc" in only:
        for key, label, group, options in INPROC:
            opts = {
                **options,
                "warmup": timing.inproc_warmup,
                "duration": timing.inproc_duration,
                "sequential": timing.inproc_sequential,
            }

            def inproc(group: str = group, opts: dict[str, Any] = opts) -> dict[str, Any]:
                return run_python("bench.workers", {"_args": [group], **opts})

            jobs.append(Job("inproc", key, label, inproc, {"label": label}))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    parser.add_argument("--repeats", type=int, help="runs of each setting (default 5, quick 1)")
    parser.add_argument("--only", help="comma-separated: tcp, durable, failover, inproc, reads, kv")
    parser.add_argument("--skip-pysyncobj", action="store_true")
    parser.add_argument(
        "--settings", metavar="KEY,KEY", help="only these TCP settings (keys as in TCP_SETTINGS)"
    )
    parser.add_argument("--out", default=str(ROOT / "build" / "bench"))
    parser.add_argument(
        "--publish",
        action="store_true",
        help="also update bench/results/, docs/benchmarks.png and docs/benchmarks.md",
    )
    parser.add_argument("--verbose", action="store_true", help="with --profile: full listings")
    parser.add_argument(
        "--profile",
        metavar="SETTING",
        help="run one TCP setting (KEY or KEY:PHASE) once under cProfile, every thread of "
        "every node process; prints where each process spends its time",
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="RESULTS_JSON",
        help="measure nothing: rebuild the tables and the chart from the runs a previous "
        "run saved (with --publish, publish them)",
    )
    args = parser.parse_args(argv)
    if args.from_file:
        return rerender(Path(args.from_file), Path(args.out), args.publish)
    if args.profile:
        return profile(args.profile, QUICK if args.quick else FULL, args.verbose)
    timing = QUICK if args.quick else FULL
    repeats = args.repeats or timing.repeats

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['os']}")
    print(
        f"pykka {info['pykka']}, pysyncobj {info['pysyncobj']}, "
        f"load average {info['load_average_at_start']:.2f}"
    )
    last_fsync: dict[str, Any] = {}
    jobs = plan(args, timing, last_fsync)
    total = len(jobs) * repeats
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    number = 0
    for rep in range(1, repeats + 1):
        for job in jobs:
            number += 1
            probe = cpu_probe()
            t0 = time.monotonic()
            record: dict[str, Any] = {
                "group": job.group,
                "key": job.key,
                "label": job.label,
                "setting": job.meta,
                "rep": rep,
                "probe_ms": probe,
                "load_average": os.getloadavg()[0],
            }
            try:
                record["result"] = job.run()
            except Exception as exc:
                record["error"] = f"{exc!r}"
                traceback.print_exc()
            record["seconds"] = time.monotonic() - t0
            runs.append(record)
            print(
                f"[{number:>3}/{total}] rep {rep}/{repeats} {job.label:<45} probe {probe:4.0f} ms  "
                f"{report.progress(record):<60} {record['seconds']:5.1f} s "
                f"({time.monotonic() - started:4.0f} s total)",
                flush=True,
            )
    extra = {}
    for name, run, _ in EXTRA_GROUPS:
        if name not in groups(args):
            continue
        print(f"[extra] {name} ...", flush=True)
        extra[name] = run(args.quick)
    document = report.build(info, runs, timing.__dict__, repeats)
    document["extra"] = extra
    document["elapsed_s"] = time.monotonic() - started
    text = render(document)
    out = Path(args.out)
    report.write(document, text, out, out / "benchmarks.png")
    print()
    print(text)
    if args.publish:
        report.write(document, text, ROOT / "bench" / "results", ROOT / "docs" / "benchmarks.png")
        report.update_docs(ROOT / "docs" / "benchmarks.md", text)
        print("\npublished to bench/results/, docs/benchmarks.png and docs/benchmarks.md")
    print(f"\nwrote {out}/results.json, results.md and benchmarks.png")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


def render(document: dict[str, Any]) -> str:
    """The markdown of a run: the report, then the table of each extra group it ran."""
    text = report.markdown(document)
    for name, _, table in EXTRA_GROUPS:
        if name in document["extra"]:
            text += f"\n\n{table(document['extra'][name])}"
    return text


def rerender(source: Path, out: Path, publish: bool) -> int:
    """The report of the runs saved in ``source``, written again (and published)."""
    saved = json.loads(source.read_text())
    document = report.build(saved["machine"], saved["runs"], saved["timing"], saved["repeats"])
    document["extra"] = saved.get("extra", {})
    document["elapsed_s"] = saved.get("elapsed_s", 0)
    text = render(document)
    report.write(document, text, out, out / "benchmarks.png")
    if publish:
        report.write(document, text, ROOT / "bench" / "results", ROOT / "docs" / "benchmarks.png")
        report.update_docs(ROOT / "docs" / "benchmarks.md", text)
    print(text)
    return 0


def profile(key: str, timing: Timing, verbose: bool = False) -> int:
    """One run of a TCP setting with every node process under cProfile; prints where each
    process spends its time. The profiler slows Python code several times: read shares."""
    import pstats

    from bench.profiling import print_summary

    if key in ("inproc3", "inproc5"):
        with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-prof-") as tmp:
            path = str(Path(tmp) / "inproc.prof")
            result = run_python(
                "bench.workers",
                {
                    "_args": ["pykka_raft"],
                    "nodes": int(key[-1]),
                    "warmup": timing.inproc_warmup,
                    "duration": timing.inproc_duration * 3,
                    "sequential": timing.inproc_sequential,
                    "profile": path,
                },
            )
            print(
                f"{result['throughput_10B_per_s']:,.0f} writes/s (10 B) under the profiler; "
                f"sequential p50 {result['sequential']['p50_ms']:.2f} ms"
            )
            print_summary(f"{key}: every node in one process", path)
        return 0
    key, _, phase = key.partition(":")
    setting = next((s for s in TCP_SETTINGS if s.key == key), None)
    if setting is None or (phase and phase not in PHASES):
        print(
            f"unknown setting {key!r}; one of inproc3, inproc5, "
            f"{', '.join(s.key for s in TCP_SETTINGS)}"
        )
        print(f"(add :PHASE for one of {', '.join(PHASES)}; default w4096)")
        return 2
    setting = replace(setting, phases=(phase or "w4096",))
    with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-prof-") as tmp:
        result = measure(setting, Path(tmp), timing.warmup, timing.duration * 3, profile=True)
        for name, phase in result["phases"].items():
            print(
                f"{name}: {phase['throughput_per_s']:,.0f} writes/s under the profiler, "
                f"leader {phase['leader_cpu_us_per_write']:.0f} µs CPU per write"
            )
            for role, threads in phase["threads"].items():
                print(f"  {role} threads: CPU µs per write, context switches per write")
                for thread, (cpu, switches) in threads.items():
                    print(f"    {thread:<28} {cpu:8.1f} {switches:8.2f}")
        for name, path in (result["profiles"] or {}).items():
            print_summary(name, path)
            if verbose:
                pstats.Stats(path).sort_stats("tottime").print_stats(40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
