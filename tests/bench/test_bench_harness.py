"""The benchmark harness runs and reports every figure (no timing is asserted here:
performance is judged by ``make bench`` as ratios within one run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_worker(group: str, options: dict[str, object]) -> dict[str, object]:
    env = dict(os.environ, PYKKA_RAFT_BENCH_QUICK="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.workers", group, json.dumps(options)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_pykka_ceiling_group_reports_rates_and_latencies() -> None:
    result = run_worker("pykka", {})
    assert result["chain3_inflight100_per_s"] > 0  # type: ignore[operator]
    assert result["sequential_ask"]["count"] == 2000  # type: ignore[index]


@pytest.mark.parametrize("nodes", [3, 5])
def test_pykka_raft_group_reports_every_figure(nodes: int) -> None:
    result = run_worker("pykka_raft", {"nodes": nodes, "rate": 200})
    for key in ("throughput_10B_per_s", "throughput_1KiB_per_s", "cpu_us_per_write_10B"):
        assert result[key] > 0, key  # type: ignore[operator]
    assert result["fixed_load"]["count"] == 200  # type: ignore[index]
    assert result["sequential"]["count"] == 100  # type: ignore[index]
    assert result["elections_during_run"] == 0, "the leader was deposed under load"
