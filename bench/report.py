"""Summaries, targets, tables and the chart of a ``make bench`` run.

Every figure is the median of the valid runs of its (system, setting), with the range
(lowest, highest) beside it. A run is valid when it failed no write, saw no leader change
and ended with identical state machines on every node; an invalid run is listed with its
reason and left out of the medians. Each ratio is computed per repetition, from the runs
made side by side, and reported as the median and range of those ratios (the ratio of
the two medians when no repetition has both).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cluster import PHASE_LABELS, TIMERS
from bench.common import spread

THROUGHPUT_PHASES = ("w256", "w4096", "w256_1k", "w4096_1k")
DOCS_START = "<!-- bench:results:start -->"
DOCS_END = "<!-- bench:results:end -->"

Runs = list[dict[str, Any]]


# --- validity and one-line progress ---------------------------------------------------------


def problems(record: dict[str, Any]) -> list[str]:
    """Why a run does not count (empty: it counts)."""
    if "error" in record:
        return [f"error: {record['error'][:200]}"]
    r = record["result"]
    out = []
    group = record["group"]
    if group in ("tcp", "failover"):
        if r.get("failed_writes"):
            out.append(f"{r['failed_writes']} failed writes")
        if r["state_machines"].get("identical") is not True:
            out.append(_state_machines(r["state_machines"]))
    if group == "tcp" and r.get("leader_changes"):
        out.append(f"{r['leader_changes']} leader changes")
    if group == "failover":
        if r.get("first_commit_ms") is None:
            out.append("no write committed after the kill")
        if not r.get("new_leader_is_survivor"):
            out.append("no survivor became leader")
    if group == "inproc" and "elections_during_run" in r:
        if r["elections_during_run"]:
            out.append(f"{r['elections_during_run']} elections")
        if r.get("failed_writes"):
            out.append(f"{r['failed_writes']} failed writes")
        if r["state_machines"].get("identical") is not True:
            out.append("state machines differ")
    return out


def _state_machines(check: dict[str, Any]) -> str:
    """Why the end-of-run check failed: a node that had not caught up by the deadline, or
    (a safety failure) different state machines at the same index."""
    nodes = check.get("nodes") or []
    applied = [n["last_applied"] for n in nodes]
    if applied and len(set(applied)) > 1:
        return (
            f"a node had applied {min(applied)} of {max(applied)} entries "
            f"{check.get('after_s', 0):.0f} s after the load"
        )
    return "STATE MACHINES DIFFER at the same index"


def _k(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def progress(record: dict[str, Any]) -> str:
    """A short summary of one run for its progress line."""
    if "error" in record:
        return "ERROR " + record["error"][:50]
    r, group = record["result"], record["group"]
    bad = problems(record)
    status = "ok" if not bad else "INVALID: " + ", ".join(bad)
    if group == "tcp":
        p = r["phases"]
        parts = []
        if "seq" in p:
            parts.append(f"seq p50 {p['seq']['latency']['p50_ms']:.2f} ms")
        for name in ("w256", "w4096"):
            if name in p:
                parts.append(f"{name[1:]}: {_k(p[name]['throughput_per_s'])}/s")
        return ", ".join(parts) + f"; {status}"
    if group == "failover":
        first = r["first_commit_ms"]
        return (
            f"new leader {r['new_leader_ms']:.0f} ms, first write "
            f"{'-' if first is None else f'{first:.0f}'} ms; {status}"
        )
    if group == "floor":
        floors = r["floor_full"]
        return ", ".join(f"batch {b}: {_k(f['rows_per_s'])} rows/s" for b, f in floors.items())
    if "chain3_inflight100_per_s" in r:
        return (
            f"chain {_k(r['chain3_inflight100_per_s'])}/s, ask p50 "
            f"{r['sequential_ask']['p50_ms'] * 1000:.0f} µs"
        )
    return (
        f"10 B {_k(r['throughput_10B_per_s'])}/s, seq p50 {r['sequential']['p50_ms']:.2f} ms; "
        f"{status}"
    )


# --- summaries --------------------------------------------------------------------------


def _valid(runs: Runs, group: str, key: str) -> Runs:
    return [x for x in runs if x["group"] == group and x["key"] == key and not problems(x)]


def _all(runs: Runs, group: str, key: str) -> Runs:
    return [x for x in runs if x["group"] == group and x["key"] == key]


def _get(record: dict[str, Any], path: str) -> Any:
    value: Any = record["result"]
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _spread_of(runs: Runs, path: str) -> dict[str, Any]:
    return spread(_get(x, path) for x in runs)


def _summary_common(runs: Runs, group: str, key: str) -> dict[str, Any]:
    everything = _all(runs, group, key)
    valid = _valid(runs, group, key)
    return {
        "label": everything[0].get("setting", {}).get("label", everything[0]["label"]),
        "setting": everything[0].get("setting", {}),
        "runs": len(everything),
        "valid": len(valid),
        "invalid": [{"rep": x["rep"], "why": problems(x)} for x in everything if problems(x)],
        "probe_ms": spread(x["probe_ms"] for x in everything),
    }


def summarize_tcp(runs: Runs, key: str) -> dict[str, Any]:
    valid = _valid(runs, "tcp", key)
    out = _summary_common(runs, "tcp", key)
    phases: dict[str, Any] = {}
    names = valid[0]["result"]["phases"] if valid else {}
    for name in names:
        base = f"phases.{name}"
        phases[name] = {
            "throughput_per_s": _spread_of(valid, f"{base}.throughput_per_s"),
            "p50_ms": _spread_of(valid, f"{base}.latency.p50_ms"),
            "p99_ms": _spread_of(valid, f"{base}.latency.p99_ms"),
            "cpu_us_per_write": _spread_of(valid, f"{base}.cpu_us_per_write"),
            "leader_cpu_us_per_write": _spread_of(valid, f"{base}.leader_cpu_us_per_write"),
            "leader_cpu_share": _spread_of(valid, f"{base}.leader_cpu_share"),
            "leader_entries_per_commit": _spread_of(valid, f"{base}.leader_entries_per_commit"),
        }
    out["phases"] = phases
    out["threads"] = {
        name: _thread_medians(valid, name) for name in names if name in ("seq", "w4096")
    }
    out["memory_mib"] = {
        m: _spread_of(valid, f"memory_mib.{m}")
        for m in ("at_rest_leader", "at_rest_max", "peak_leader", "peak_max")
    }
    return out


def _thread_medians(valid: Runs, phase: str) -> dict[str, dict[str, list[float]]]:
    """Per role (leader, follower) and thread: median CPU µs and context switches per
    write over the valid runs."""
    out: dict[str, dict[str, list[float]]] = {}
    for role in ("leader", "follower"):
        tables = [_get(x, f"phases.{phase}.threads.{role}") or {} for x in valid]
        names = {n for t in tables for n in t}
        out[role] = {
            n: [
                spread(t[n][0] for t in tables if n in t)["median"],
                spread(t[n][1] for t in tables if n in t)["median"],
            ]
            for n in names
        }
        out[role] = dict(sorted(out[role].items(), key=lambda kv: -(kv[1][0] or 0)))
    return out


def summarize_failover(runs: Runs, key: str) -> dict[str, Any]:
    valid = _valid(runs, "failover", key)
    out = _summary_common(runs, "failover", key)
    out["new_leader_ms"] = _spread_of(valid, "new_leader_ms")
    out["first_commit_ms"] = _spread_of(valid, "first_commit_ms")
    return out


def summarize_inproc(runs: Runs, key: str) -> dict[str, Any]:
    valid = _valid(runs, "inproc", key)
    out = _summary_common(runs, "inproc", key)
    paths = (
        [
            "chain3_inflight100_per_s",
            "cpu_us_per_round_trip",
            "sequential_ask.p50_ms",
            "sequential_ask.p99_ms",
            "sequential_chain3.p50_ms",
            "peak_rss_mib",
        ]
        if key == "pykka"
        else [
            "throughput_10B_per_s",
            "throughput_1KiB_per_s",
            "cpu_us_per_write_10B",
            "sequential.p50_ms",
            "sequential.p99_ms",
            "sequential_ask_baseline.p50_ms",
            "peak_rss_mib",
        ]
    )
    out["figures"] = {p: _spread_of(valid, p) for p in paths}
    return out


# --- targets ------------------------------------------------------------------------------


def _paired(
    runs: Runs,
    a: tuple[str, str],
    b: tuple[str, str],
    fa: Callable[[dict[str, Any]], float | None],
    fb: Callable[[dict[str, Any]], float | None],
) -> list[float]:
    """fa(A)/fb(B) for each repetition in which both A and B have a valid run."""
    by_rep = {x["rep"]: x for x in _valid(runs, *b)}
    out = []
    for x in _valid(runs, *a):
        y = by_rep.get(x["rep"])
        if y is None:
            continue
        va, vb = fa(x), fb(y)
        if va is not None and vb:
            out.append(va / vb)
    return out


def _target(
    name: str, value: float | None, pairs: list[float], goal: str, met: bool | None
) -> dict[str, Any]:
    """A tracked ratio: the median of the ratios of the runs made side by side, with
    their range (``value``, the ratio of the two medians, stands in without pairs)."""
    if pairs:
        value = spread(pairs)["median"]
        if met is not None and value is not None:
            met = _meets(value, goal)
    return {
        "target": name,
        "value": value,
        "range": [min(pairs), max(pairs)] if pairs else None,
        "goal": goal,
        "met": met,
    }


def _meets(value: float, goal: str) -> bool | None:
    operator, _, number = goal.partition(" ")
    limit = float(number)
    checks = {">": value > limit, ">=": value >= limit, "<=": value <= limit}
    return checks.get(operator)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets(doc: dict[str, Any], runs: Runs) -> list[dict[str, Any]]:
    tcp, out = doc["tcp"], []
    tput = lambda name: lambda x: _get(x, f"phases.{name}.throughput_per_s")  # noqa: E731
    p50 = lambda name: lambda x: _get(x, f"phases.{name}.latency.p50_ms")  # noqa: E731

    def median(key: str, phase: str, figure: str) -> float | None:
        s = tcp.get(key, {}).get("phases", {}).get(phase, {}).get(figure)
        return None if s is None else s["median"]

    for cls, store in (("memory", "mem"), ("os", "os")):
        for n in (3, 5):
            raft = f"raft{n}_{store}"
            if raft not in tcp:
                continue
            psos = [
                k
                for k, v in tcp.items()
                if v["setting"].get("system") == "pysyncobj"
                and v["setting"].get("durability") == cls
                and v["setting"].get("nodes") == n
            ]
            for phase in THROUGHPUT_PHASES:
                scored = [(median(k, phase, "throughput_per_s") or 0.0, k) for k in psos]
                if not scored or max(scored)[0] == 0:
                    continue
                best, pso = max(scored)
                value = _ratio(median(raft, phase, "throughput_per_s"), best)
                pairs = _paired(runs, ("tcp", raft), ("tcp", pso), tput(phase), tput(phase))
                out.append(
                    _target(
                        f"{cls} class, {n} nodes, {PHASE_LABELS[phase]}: pykka_raft writes/s / "
                        f"best PySyncObj ({tcp[pso]['label'].split(', ', 2)[-1]})",
                        value,
                        pairs,
                        "> 2",
                        None if value is None else value > 2,
                    )
                )
            for pso in psos:
                if tcp[pso]["setting"].get("batch", True):
                    continue  # the latency target is against PySyncObj with batching off
                value = _ratio(median(pso, "seq", "p50_ms"), median(raft, "seq", "p50_ms"))
                pairs = _paired(runs, ("tcp", pso), ("tcp", raft), p50("seq"), p50("seq"))
                out.append(
                    _target(
                        f"{cls} class, {n} nodes: sequential write p50, PySyncObj batching off / "
                        "pykka_raft",
                        value,
                        pairs,
                        ">= 1",
                        None if value is None else value >= 1,
                    )
                )
    if "raft3_mem" in tcp and "raft3_mem_insecure" in tcp:
        for phase in ("w4096", "seq"):
            figure = "p50_ms" if phase == "seq" else "throughput_per_s"
            f = p50(phase) if phase == "seq" else tput(phase)
            value = _ratio(
                median("raft3_mem", phase, figure), median("raft3_mem_insecure", phase, figure)
            )
            pairs = _paired(runs, ("tcp", "raft3_mem"), ("tcp", "raft3_mem_insecure"), f, f)
            what = "sequential p50" if phase == "seq" else f"writes/s, {PHASE_LABELS[phase]}"
            out.append(
                _target(
                    f"the cost of CURVE: {what}, with / without", value, pairs, "(measured)", None
                )
            )
    out += shape_figures(tcp, runs)
    out += durable_targets(doc, runs)
    inproc = doc["inproc"]
    if "pykka" in inproc and "raft3" in inproc:
        ceiling = inproc["pykka"]["figures"]["chain3_inflight100_per_s"]["median"]
        raft3 = inproc["raft3"]["figures"]
        value = _ratio(raft3["throughput_10B_per_s"]["median"], ceiling)
        pairs = _paired(
            runs,
            ("inproc", "raft3"),
            ("inproc", "pykka"),
            lambda x: _get(x, "throughput_10B_per_s"),
            lambda x: _get(x, "chain3_inflight100_per_s"),
        )
        out.append(
            _target(
                "in-process, 3 nodes, 256 in flight, 10 B: writes/s / Pykka chain-of-3 "
                "round trips/s",
                value,
                pairs,
                ">= 0.75",
                None if value is None else value >= 0.75,
            )
        )
        seq = [
            _ratio(_get(x, "sequential.p50_ms"), _get(x, "sequential_ask_baseline.p50_ms"))
            for x in _valid(runs, "inproc", "raft3")
        ]
        value = spread(seq)["median"]
        out.append(
            _target(
                "in-process, 3 nodes: sequential write p50 / sequential ask p50 (same process)",
                value,
                [v for v in seq if v is not None],
                "<= 10",
                None if value is None else value <= 10,
            )
        )
    if "raft3" in inproc and "raft5" in inproc:
        f3, f5 = inproc["raft3"]["figures"], inproc["raft5"]["figures"]
        value = _ratio(f5["throughput_10B_per_s"]["median"], f3["throughput_10B_per_s"]["median"])
        f = lambda x: _get(x, "throughput_10B_per_s")  # noqa: E731
        pairs = _paired(runs, ("inproc", "raft5"), ("inproc", "raft3"), f, f)
        out.append(
            _target(
                "in-process, 256 in flight, 10 B: 5 nodes writes/s / 3 nodes",
                value,
                pairs,
                ">= 0.7",
                None if value is None else value >= 0.7,
            )
        )
    limit = 1.5 * TIMERS["election_max_ms"]
    for key, f in doc["failover"].items():
        ms = f["new_leader_ms"]["median"]
        value = None if ms is None else ms / TIMERS["election_max_ms"]
        runs_ms = [_get(x, "new_leader_ms") for x in _valid(runs, "failover", key)]
        pairs = [v / TIMERS["election_max_ms"] for v in runs_ms if v is not None]
        system = f["setting"].get("system")
        out.append(
            _target(
                f"failover, {f['label']}: new leader after the kill / election_timeout_max "
                f"({TIMERS['election_max_ms']} ms)",
                value,
                pairs,
                "<= 1.5" if system == "pykka_raft" else "(reference)",
                None if value is None or system != "pykka_raft" else ms <= limit,
            )
        )
    return out


def shape_figures(tcp: dict[str, Any], runs: Runs) -> list[dict[str, Any]]:
    """What the shape alone allows (bench/shape.py), against the targets' references:
    PySyncObj's sequential p50 with batching off over the fewest hand-offs the shape
    allows (below 1, the latency target is out of the shape's reach on this machine), the
    shape's throughput over the best PySyncObj's, and pykka_raft against the shape."""
    out: list[dict[str, Any]] = []

    def figure(key: str, phase: str) -> tuple[float | None, Callable[[dict[str, Any]], Any]]:
        name = "p50_ms" if phase == "seq" else "throughput_per_s"
        path = f"phases.{phase}.latency.p50_ms" if phase == "seq" else f"phases.{phase}.{name}"
        median = tcp.get(key, {}).get("phases", {}).get(phase, {}).get(name)
        return (None if median is None else median["median"]), lambda x: _get(x, path)

    def ratio(name: str, a: str, b: str, phase: str) -> None:
        if a in tcp and b in tcp:
            (va, fa), (vb, fb) = figure(a, phase), figure(b, phase)
            pairs = _paired(runs, ("tcp", a), ("tcp", b), fa, fb)
            out.append(_target(name, _ratio(va, vb), pairs, "(measured)", None))

    best = max(
        ("pso3_mem", "pso3_mem_nobatch"),
        key=lambda k: figure(k, "w4096")[0] or 0.0,
    )
    ratio(
        "the shape alone: sequential p50, PySyncObj batching off / the shape with the fewest "
        "hand-offs (no Raft work)",
        "pso3_mem_nobatch",
        "shape3_lean",
        "seq",
    )
    ratio(
        "the shape alone: sequential p50, pykka_raft (MemStore) / the shape as pykka_raft "
        "passes a write",
        "raft3_mem",
        "shape3",
        "seq",
    )
    ratio(
        f"the shape alone: writes/s, {PHASE_LABELS['w4096']}, the shape as pykka_raft passes "
        "a write / best PySyncObj",
        "shape3",
        best,
        "w4096",
    )
    ratio(
        f"the shape alone: writes/s, {PHASE_LABELS['w4096']}, pykka_raft (MemStore) / the "
        "shape as pykka_raft passes a write",
        "raft3_mem",
        "shape3",
        "w4096",
    )
    return out


def _floor_for(floor: dict[str, Any], batch: float | None) -> dict[str, Any] | None:
    if batch is None:
        return None
    result: dict[str, Any] | None = floor["floor_full"].get(str(max(1, round(batch))))
    return result


def durable_targets(doc: dict[str, Any], runs: Runs) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    fsync = {x["rep"]: x for x in _valid(runs, "tcp", "raft3_fsync")}
    floors = {x["rep"]: x for x in runs if x["group"] == "floor" and "error" not in x}
    for phase in ("w256", "w4096"):
        ratios, batches = [], []
        for rep, x in fsync.items():
            if rep not in floors:
                continue
            p = x["result"]["phases"].get(phase, {})
            f = _floor_for(floors[rep]["result"], p.get("leader_entries_per_commit"))
            if f:
                ratios.append(p["throughput_per_s"] / f["rows_per_s"])
                batches.append(p["leader_entries_per_commit"])
        value = spread(ratios)["median"]
        out.append(
            _target(
                f'fsync class, 3 nodes, {PHASE_LABELS[phase]}: SqliteStore "fsync" writes/s / '
                "plain SQLite FULL rows/s at the leader's batch size "
                f"(median {spread(batches)['median'] or 0:.0f} entries per commit)",
                value,
                ratios,
                ">= 0.5",
                None if value is None else value >= 0.5,
            )
        )
    seq = []
    for rep, x in fsync.items():
        if rep in floors and "seq" in x["result"]["phases"]:
            one = floors[rep]["result"]["floor_full"].get("1")
            if one:
                seq.append(
                    x["result"]["phases"]["seq"]["latency"]["p50_ms"]
                    / one["single_commit"]["p50_ms"]
                )
    value = spread(seq)["median"]
    out.append(
        _target(
            "fsync class, 3 nodes: sequential write p50 / one FULL single-row commit p50",
            value,
            seq,
            "<= 3",
            None if value is None else value <= 3,
        )
    )
    bursts = [
        x["result"]["burst_group_commit_on"]["calls_per_s"]
        / x["result"]["burst_group_commit_off"]["calls_per_s"]
        for x in floors.values()
        if "burst_group_commit_on" in x["result"]
    ]
    value = spread(bursts)["median"]
    out.append(
        _target(
            "one SqliteStore, queued single-entry writes/s: group commit on / off",
            value,
            bursts,
            "(measured)",
            None,
        )
    )
    return out


# --- the document -------------------------------------------------------------------------


def build(info: dict[str, Any], runs: Runs, timing: dict[str, Any], repeats: int) -> dict[str, Any]:
    def keys(group: str) -> list[str]:
        seen: list[str] = []
        for x in runs:
            if x["group"] == group and x["key"] not in seen:
                seen.append(x["key"])
        return seen

    doc: dict[str, Any] = {
        "machine": info,
        "timers_ms": TIMERS,
        "timing": timing,
        "repeats": repeats,
        "tcp": {k: summarize_tcp(runs, k) for k in keys("tcp")},
        "failover": {k: summarize_failover(runs, k) for k in keys("failover")},
        "inproc": {k: summarize_inproc(runs, k) for k in keys("inproc")},
        "floor": {
            "probe_ms": spread(x["probe_ms"] for x in runs if x["group"] == "floor"),
            "runs": len([x for x in runs if x["group"] == "floor"]),
        },
    }
    doc["targets"] = targets(doc, runs)
    doc["probe_ms"] = spread(x["probe_ms"] for x in runs)
    doc["runs"] = runs
    return doc


# --- markdown -----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _us(value: float | None) -> str:
    """Microseconds: one decimal below 100, whole numbers above."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _cell(s: dict[str, Any] | None, digits: int = 2) -> str:
    """``median (min-max)``."""
    if not s or s.get("median") is None:
        return "-"
    if s["n"] == 1:
        return _fmt(s["median"], digits)
    return f"{_fmt(s['median'], digits)} ({_fmt(s['min'], digits)}-{_fmt(s['max'], digits)})"


def markdown(doc: dict[str, Any]) -> str:
    info = doc["machine"]
    lines = [
        f"Run of {info['date']} on {info['cpu']} ({info['cores']} cores), Python "
        f"{info['python']}, pykka {info['pykka']}, pysyncobj {info['pysyncobj']}; load "
        f"average at the start {_fmt(info['load_average_at_start'])}; "
        f"{doc['repeats']} runs of each setting, interleaved; CPU probe "
        f"{_cell(doc['probe_ms'], 0)} ms; {doc.get('elapsed_s', 0):.0f} s in all. "
        "Each cell: median (lowest-highest) of the valid runs.",
        "",
    ]
    tcp = doc["tcp"]
    if tcp:
        lines += [
            "**Over loopback TCP, one process per node, one client process** (writes/s; "
            "latency ms; CPU µs per write of all node processes together)",
            "",
            "| system and setting | class | valid runs | "
            + " | ".join(PHASE_LABELS[p] for p in THROUGHPUT_PHASES)
            + " | 1 in flight p50 / p99 ms | 1 in flight, 1 KiB p50 / p99 ms | "
            "256 in flight p50 / p99 ms | "
            "CPU µs/write (4,096, 10 B) | RSS MiB at rest / peak | CPU probe ms |",
            "|---|---|---:|" + "---:|" * len(THROUGHPUT_PHASES) + "---:|---:|---:|---:|---:|---:|",
        ]
        for s in tcp.values():

            def g(name: str, figure: str, p: dict[str, Any] = s["phases"]) -> Any:
                return p.get(name, {}).get(figure)

            lines.append(
                f"| {s['label']} | {s['setting'].get('durability', '')} | "
                f"{s['valid']}/{s['runs']} | "
                + " | ".join(_cell(g(ph, "throughput_per_s"), 0) for ph in THROUGHPUT_PHASES)
                + f" | {_cell(g('seq', 'p50_ms'))} / {_cell(g('seq', 'p99_ms'))} | "
                f"{_cell(g('seq_1k', 'p50_ms'))} / {_cell(g('seq_1k', 'p99_ms'))} | "
                f"{_cell(g('w256', 'p50_ms'), 1)} / {_cell(g('w256', 'p99_ms'), 1)} | "
                f"{_cell(g('w4096', 'cpu_us_per_write'), 0)} | "
                f"{_fmt(s['memory_mib']['at_rest_max']['median'], 0)} / "
                f"{_fmt(s['memory_mib']['peak_max']['median'], 0)} | {_cell(s['probe_ms'], 0)} |"
            )
        lines.append("")
    thread_rows = [
        (s["label"], phase, role, threads)
        for key in (
            "raft3_mem",
            "pso3_mem",
            "pso3_mem_nobatch",
            "shape3",
            "shape3_lean",
            "raft3_os",
            "raft3_fsync",
        )
        if key in tcp
        for s in (tcp[key],)
        for phase in ("w4096", "seq")
        if phase in s.get("threads", {})
        for role, threads in s["threads"][phase].items()
    ]
    if thread_rows:
        lines += [
            "**Where a write's CPU goes**, thread by thread (each Pykka actor has its own "
            "thread): CPU µs and context switches per write, medians of the valid runs",
            "",
            "| system and setting | phase | node | CPU µs/write | switches/write | "
            "CPU µs/write by thread |",
            "|---|---|---|---:|---:|---|",
        ]
        for label, phase, role, threads in thread_rows:
            cpu = sum(c or 0 for c, _ in threads.values())
            switches = sum(w or 0 for _, w in threads.values())
            parts = ", ".join(
                f"{name} {_us(c)}" for name, (c, _) in threads.items() if (c or 0) >= 0.5
            )
            lines.append(
                f"| {label} | {PHASE_LABELS[phase]} | {role} | {_us(cpu)} | "
                f"{_fmt(switches, 1)} | {parts} |"
            )
        lines.append("")
    if doc["failover"]:
        lines += [
            f"**Failover**: SIGKILL of the leader with 256 writes in flight; election timeout "
            f"{TIMERS['election_min_ms']}-{TIMERS['election_max_ms']} ms and heartbeat "
            f"{TIMERS['heartbeat_ms']} ms on both",
            "",
            "| system | valid runs | new leader after the kill, ms | first write committed "
            "after the kill, ms |",
            "|---|---:|---:|---:|",
        ]
        for f in doc["failover"].values():
            lines.append(
                f"| {f['label']} | {f['valid']}/{f['runs']} | {_cell(f['new_leader_ms'], 0)} | "
                f"{_cell(f['first_commit_ms'], 0)} |"
            )
        lines.append("")
    inproc = doc["inproc"]
    if inproc:
        lines += [
            "**In one process** (the protocol against the Pykka substrate; client in the process)",
            "",
            "| system | valid runs | writes/s 10 B (256 in flight) | writes/s 1 KiB | sequential "
            "p50 / p99 ms | ask baseline p50 µs | CPU µs/write | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, s in inproc.items():
            f = s["figures"]
            if key == "pykka":
                ask = f["sequential_ask.p50_ms"]
                lines.append(
                    f"| {s['label']} | {s['valid']}/{s['runs']} | "
                    f"{_cell(f['chain3_inflight100_per_s'], 0)} round trips/s (100 in flight) | | "
                    f"chain {_cell(f['sequential_chain3.p50_ms'], 3)} | "
                    f"{_fmt((ask['median'] or 0) * 1000, 0)} | "
                    f"{_cell(f['cpu_us_per_round_trip'], 1)} per round trip | "
                    f"{_fmt(f['peak_rss_mib']['median'], 0)} |"
                )
            else:
                ask = f["sequential_ask_baseline.p50_ms"]
                lines.append(
                    f"| {s['label']} | {s['valid']}/{s['runs']} | "
                    f"{_cell(f['throughput_10B_per_s'], 0)} | "
                    f"{_cell(f['throughput_1KiB_per_s'], 0)} | "
                    f"{_cell(f['sequential.p50_ms'])} / {_cell(f['sequential.p99_ms'])} | "
                    f"{_fmt((ask['median'] or 0) * 1000, 0)} | "
                    f"{_cell(f['cpu_us_per_write_10B'], 1)} | "
                    f"{_fmt(f['peak_rss_mib']['median'], 0)} |"
                )
        lines.append("")
    lines += [
        "**Targets** (each ratio computed from the runs made side by side, repetition by "
        "repetition: median and range)",
        "",
        "| ratio | value (range) | goal | |",
        "|---|---:|---|---|",
    ]
    for t in doc["targets"]:
        rng = t["range"]
        value = _fmt(t["value"])
        if rng and len(rng) == 2:
            value += f" ({_fmt(rng[0])}-{_fmt(rng[1])})"
        met = "" if t["met"] is None else "met" if t["met"] else "**not met**"
        lines.append(f"| {t['target']} | {value} | {t['goal']} | {met} |")
    invalid = [
        f"- {s['label']}, run {i['rep']}: {', '.join(i['why'])}"
        for group in ("tcp", "failover", "inproc")
        for s in doc[group].values()
        for i in s["invalid"]
    ]
    if invalid:
        lines += ["", "Runs left out of the medians:", "", *invalid]
    return "\n".join(lines)


# --- chart and files ----------------------------------------------------------------------


def chart(doc: dict[str, Any], path: Path) -> bool:
    """Throughput and latency by system and setting, error bars from the range."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in doc["tcp"].values() if s["phases"]]
    if not rows:
        return False
    names = ["\n".join(s["label"].split(", ")) for s in rows]

    def series(phase: str, figure: str) -> tuple[list[float], list[list[float]]]:
        med, err_lo, err_hi = [], [], []
        for s in rows:
            x = s["phases"].get(phase, {}).get(figure) or {}
            m = x.get("median") or 0.0
            med.append(m)
            err_lo.append(max(0.0, m - (x.get("min") or m)))
            err_hi.append(max(0.0, (x.get("max") or m) - m))
        return med, [err_lo, err_hi]

    fig, (left, right) = plt.subplots(2, 1, figsize=(14, 10.5))
    ys = list(range(len(rows)))
    width = 0.2
    for i, phase in enumerate(THROUGHPUT_PHASES):
        med, err = series(phase, "throughput_per_s")
        left.bar(
            [y + (i - 1.5) * width for y in ys],
            med,
            width,
            yerr=err,
            capsize=2,
            label=PHASE_LABELS[phase],
        )
    left.set_xticks(ys, names, fontsize=7)
    left.set_ylabel("writes answered per second")
    left.set_title("Throughput over loopback TCP, one process per node (higher is better)")
    left.legend(fontsize=8)
    for i, (phase, figure, label) in enumerate(
        (
            ("seq", "p50_ms", "p50, 1 in flight"),
            ("seq", "p99_ms", "p99, 1 in flight"),
            ("w256", "p50_ms", "p50, 256 in flight"),
            ("w256", "p99_ms", "p99, 256 in flight"),
        )
    ):
        med, err = series(phase, figure)
        right.bar([y + (i - 1.5) * width for y in ys], med, width, yerr=err, capsize=2, label=label)
    right.set_yscale("log")
    right.set_xticks(ys, names, fontsize=7)
    right.set_ylabel("ms (log scale)")
    right.set_title("Write latency, 10 B values (lower is better)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(doc: dict[str, Any], text: str, out: Path, chart_path: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # The summary indented for reading; the runs (every figure of every run, from which
    # `python -m bench --from` rebuilds the report) one compact line each.
    summary = json.dumps({k: v for k, v in doc.items() if k != "runs"}, indent=1)
    runs = ",\n".join(json.dumps(run, separators=(",", ":")) for run in doc.get("runs", []))
    (out / "results.json").write_text(f'{summary[:-2]},\n "runs": [\n{runs}\n ]\n}}\n')
    (out / "results.md").write_text(text + "\n")
    chart(doc, chart_path)


def update_docs(path: Path, text: str) -> None:
    """Replace the results section of docs/benchmarks.md (between its two markers)."""
    doc = path.read_text()
    if DOCS_START not in doc or DOCS_END not in doc:
        raise RuntimeError(f"{path} has no {DOCS_START} ... {DOCS_END} section")
    pattern = re.compile(re.escape(DOCS_START) + ".*?" + re.escape(DOCS_END), re.S)
    path.write_text(pattern.sub(lambda _: f"{DOCS_START}\n{text}\n{DOCS_END}", doc))
