"""The benchmark harness runs and reports every figure. Nothing timed is asserted here:
performance is judged by ``make bench`` as ratios within one run (docs/benchmarks.md)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the bench package lives beside the library, not in it
from bench import report  # noqa: E402
from bench.common import cpu_probe, spread  # noqa: E402

SHORT = {"warmup": 0.05, "duration": 0.3, "sequential": 50}


def run_worker(group: str, options: dict[str, object]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.workers", group, json.dumps({**SHORT, **options})],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_pykka_ceiling_group_reports_rates_and_latencies() -> None:
    result = run_worker("pykka", {})
    assert result["chain3_inflight100_per_s"] > 0
    assert result["cpu_us_per_round_trip"] > 0
    assert result["sequential_ask"]["count"] == 50
    assert result["sequential_chain3"]["count"] == 50


@pytest.mark.parametrize("nodes", [3, 5])
def test_in_process_group_reports_every_figure_and_checks_the_state_machines(
    nodes: int,
) -> None:
    result = run_worker("pykka_raft", {"nodes": nodes})
    for key in (
        "throughput_10B_per_s",
        "throughput_1KiB_per_s",
        "cpu_us_per_write_10B",
        "cpu_us_per_write_1KiB",
        "peak_rss_mib",
    ):
        assert result[key] > 0, key
    assert result["sequential"]["count"] == 50
    assert result["sequential_ask_baseline"]["count"] == 1000
    assert result["failed_writes"] == 0
    assert result["state_machines"]["identical"] is True
    assert result["state_machines"]["last_applied"] > 50  # the writes of the run and more
    assert isinstance(result["elections_during_run"], int)


def test_cpu_probe_and_spread() -> None:
    assert cpu_probe() > 0
    assert spread([3.0, None, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([None])["median"] is None


# --- the report, from runs made up in the shape the harness records ------------------------


def _phase(throughput: float, p50: float) -> dict[str, Any]:
    return {
        "throughput_per_s": throughput,
        "latency": {"p50_ms": p50, "p99_ms": p50 * 2, "mean_ms": p50, "count": 10},
        "failed": 0,
        "answered": 10,
        "cpu_us_per_write": 40.0,
        "leader_cpu_us_per_write": 20.0,
        "leader_cpu_share": 0.7,
        "follower_cpu_share": 0.2,
        "leader_entries_per_commit": 64.0,
    }


def _tcp(key: str, system: str, nodes: int, durability: str, rep: int, scale: float, **kw: Any):
    phases = {
        "seq": _phase(500 * scale, 1.0 / scale),
        **{p: _phase(20000 * scale, 10.0) for p in report.THROUGHPUT_PHASES},
    }
    return {
        "group": "tcp",
        "key": key,
        "label": key,
        "rep": rep,
        "probe_ms": 30.0,
        "setting": {
            "label": key,
            "system": system,
            "nodes": nodes,
            "durability": durability,
            "batch": kw.get("batch", True),
        },
        "result": {
            "leader_changes": 0,
            "failed_writes": 0,
            "phases": phases,
            "state_machines": {"identical": True},
            "memory_mib": {
                "at_rest_leader": 30,
                "at_rest_max": 31,
                "peak_leader": 60,
                "peak_max": 61,
            },
        },
    }


def made_up_runs() -> list[dict[str, Any]]:
    runs = []
    for rep in (1, 2):
        runs += [
            _tcp("raft3_mem", "pykka_raft", 3, "memory", rep, 3.0),
            _tcp("pso3_mem", "pysyncobj", 3, "memory", rep, 1.0),
            _tcp("pso3_mem_nobatch", "pysyncobj", 3, "memory", rep, 1.5, batch=False),
            _tcp("raft3_mem_insecure", "pykka_raft", 3, "memory", rep, 3.3),
            _tcp("raft3_os", "pykka_raft", 3, "os", rep, 2.0),
            _tcp("pso3_journal", "pysyncobj", 3, "os", rep, 1.0),
            _tcp("raft3_fsync", "pykka_raft", 3, "fsync", rep, 1.0),
        ]
        runs.append(
            {
                "group": "floor",
                "key": "floor",
                "label": "floor",
                "rep": rep,
                "probe_ms": 30.0,
                "result": {
                    "floor_full": {
                        "1": {"batch": 1, "rows_per_s": 15000.0, "single_commit": {"p50_ms": 0.05}},
                        "64": {"batch": 64, "rows_per_s": 200000.0, "single_commit": {}},
                    },
                    "burst_group_commit_on": {"calls_per_s": 20000.0},
                    "burst_group_commit_off": {"calls_per_s": 4000.0},
                },
            }
        )
        for key, system, ms in (("raft3", "pykka_raft", 500.0), ("pso3", "pysyncobj", 400.0)):
            runs.append(
                {
                    "group": "failover",
                    "key": key,
                    "label": f"failover: {key}",
                    "rep": rep,
                    "probe_ms": 30.0,
                    "setting": {"label": key, "system": system},
                    "result": {
                        "new_leader_ms": ms,
                        "first_commit_ms": ms + 20,
                        "failed_writes": 0,
                        "state_machines": {"identical": True},
                        "new_leader_is_survivor": True,
                    },
                }
            )
        runs.append(
            {
                "group": "inproc",
                "key": "pykka",
                "label": "Pykka ceiling",
                "rep": rep,
                "probe_ms": 30.0,
                "result": {
                    "chain3_inflight100_per_s": 100000.0,
                    "cpu_us_per_round_trip": 8.0,
                    "sequential_ask": {"p50_ms": 0.03, "p99_ms": 0.06},
                    "sequential_chain3": {"p50_ms": 0.05},
                    "peak_rss_mib": 16.0,
                },
            }
        )
        for key, rate in (("raft3", 80000.0), ("raft5", 60000.0)):
            runs.append(
                {
                    "group": "inproc",
                    "key": key,
                    "label": key,
                    "rep": rep,
                    "probe_ms": 30.0,
                    "result": {
                        "throughput_10B_per_s": rate,
                        "throughput_1KiB_per_s": rate * 0.8,
                        "cpu_us_per_write_10B": 12.0,
                        "sequential": {"p50_ms": 0.3, "p99_ms": 0.5},
                        "sequential_ask_baseline": {"p50_ms": 0.025},
                        "elections_during_run": 0,
                        "failed_writes": 0,
                        "state_machines": {"identical": True},
                        "peak_rss_mib": 40.0,
                    },
                }
            )
    return runs


def test_report_gives_medians_ranges_targets_and_leaves_out_invalid_runs(tmp_path: Path) -> None:
    runs = made_up_runs()
    bad = copy.deepcopy(next(x for x in runs if x["key"] == "raft3_mem"))
    bad["rep"] = 3
    bad["result"]["failed_writes"] = 2
    bad["result"]["phases"]["w256"]["throughput_per_s"] = 1e9  # must not reach the median
    runs.append(bad)
    lagging = copy.deepcopy(next(x for x in runs if x["key"] == "pso3_mem"))
    lagging["rep"] = 3
    lagging["result"]["state_machines"] = {
        "identical": False,
        "after_s": 20.0,
        "nodes": [{"last_applied": 90}, {"last_applied": 100}, {"last_applied": 100}],
    }
    runs.append(lagging)
    info = {
        "date": "today",
        "cpu": "cpu",
        "cores": 2,
        "python": "3",
        "pykka": "4",
        "pysyncobj": "0.3",
        "load_average_at_start": 0.5,
    }
    doc = report.build(info, runs, {}, 2)
    raft = doc["tcp"]["raft3_mem"]
    assert (raft["runs"], raft["valid"]) == (3, 2)
    assert raft["invalid"] == [{"rep": 3, "why": ["2 failed writes"]}]
    assert raft["phases"]["w256"]["throughput_per_s"]["max"] == 60000.0
    targets = {t["target"]: t for t in doc["targets"]}
    ratio = next(t for name, t in targets.items() if name.startswith("memory class, 3 nodes, 256"))
    assert ratio["value"] == pytest.approx(2.0)  # against the better PySyncObj mode (1.5x)
    assert ratio["met"] is False  # the goal is more than 2x
    latency = next(t for name, t in targets.items() if "batching off / pykka_raft" in name)
    assert latency["value"] == pytest.approx(2.0) and latency["met"] is True
    fsync = next(t for name, t in targets.items() if name.startswith("fsync class, 3 nodes, 256"))
    assert fsync["value"] == pytest.approx(20000 / 200000)
    assert next(t for n, t in targets.items() if "Pykka chain-of-3" in n)["met"] is True
    assert next(t for n, t in targets.items() if "5 nodes writes/s / 3" in n)["met"] is True
    failover = next(t for n, t in targets.items() if n.startswith("failover, raft3"))
    assert failover["value"] == pytest.approx(500 / 600) and failover["met"] is True
    text = report.markdown(doc)
    for label in ("raft3_mem", "pso3_journal", "raft3_fsync", "Pykka ceiling", "raft5"):
        assert label in text
    assert "raft3_mem, run 3: 2 failed writes" in text
    assert "pso3_mem, run 3: a node had applied 90 of 100 entries 20 s after the load" in text
    for figure in ("seq", "w256"):
        assert report.progress(next(x for x in runs if x["group"] == "tcp")).count(figure[1:])
    report.write(doc, text, tmp_path, tmp_path / "chart.png")
    assert json.loads((tmp_path / "results.json").read_text())["repeats"] == 2
    assert (tmp_path / "results.md").read_text().startswith("Run of today")
    try:
        import matplotlib  # noqa: F401 - the bench extra brings it; make test may not
    except ImportError:
        return
    assert (tmp_path / "chart.png").stat().st_size > 0


def test_report_is_rebuilt_from_saved_runs(tmp_path: Path) -> None:
    info = {"date": "d", "cpu": "c", "cores": 2, "python": "3", "pykka": "4", "pysyncobj": "0"}
    doc = report.build({**info, "load_average_at_start": 1.0}, made_up_runs(), {}, 2)
    text = report.markdown(doc)
    report.write(doc, text, tmp_path / "first", tmp_path / "first" / "chart.png")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    saved, again = tmp_path / "first" / "results.json", tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--from", str(saved), "--out", str(again)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "again" / "results.md").read_text() == text + "\n"


def test_publish_replaces_only_the_results_section(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"intro\n{report.DOCS_START}\nold\n{report.DOCS_END}\nafter\n")
    report.update_docs(page, "new table")
    assert page.read_text() == f"intro\n{report.DOCS_START}\nnew table\n{report.DOCS_END}\nafter\n"


def test_command_line_prints_a_line_per_run_and_the_total_and_keeps_git_files(
    tmp_path: Path,
) -> None:
    tracked = ROOT / "bench" / "results" / "results.json"
    before = tracked.read_bytes() if tracked.exists() else None
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "inproc", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    progress = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == 3 and all("probe" in line for line in progress), proc.stdout
    assert "total" in proc.stdout.splitlines()[-1]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert set(doc["inproc"]) == {"pykka", "raft3", "raft5"}
    assert (tracked.read_bytes() if tracked.exists() else None) == before
