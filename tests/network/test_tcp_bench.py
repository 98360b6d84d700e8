"""The TCP benchmark (one process per node, one client process) runs and reports every
figure, for pykka_raft and for PySyncObj, and the failover run measures both times.
Nothing timed is asserted: ``make bench`` judges performance as ratios within one run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the bench package lives beside the library, not in it
from bench.cluster import PHASES, Setting, failover, measure  # noqa: E402

RAFT = Setting("raft3_mem", "pykka_raft", "pykka_raft", 3, "mem", "memory", phases=tuple(PHASES))
PSO = dataclasses.replace(RAFT, key="pso3_mem", label="PySyncObj", system="pysyncobj")


def check_every_figure(result: dict[str, Any], phases: tuple[str, ...]) -> None:
    assert set(result["phases"]) == set(phases)
    for name, phase in result["phases"].items():
        assert phase["inflight"] == PHASES[name].inflight
        assert phase["value_bytes"] == PHASES[name].value_bytes
        assert phase["answered"] > 0, name
        # On a loaded machine a short phase may end before its first window of writes
        # returns: how many count is timing, the bench's business, not this test's.
        assert phase["throughput_per_s"] >= 0, name
        assert (phase["latency"]["count"] > 0) == (phase["throughput_per_s"] > 0), name
        # CPU time comes in 10 ms ticks: a phase this short may see none
        assert 0 <= phase["leader_cpu_us_per_write"] <= phase["cpu_us_per_write"], name
        if result["leader_changes"] == 0:  # a write may fail while a new leader is elected
            assert phase["failed"] == 0, (name, phase["errors"])
    memory = result["memory_mib"]
    assert 0 < memory["at_rest_leader"] <= memory["at_rest_max"] <= memory["peak_max"]
    assert result["leader_changes"] >= 0
    assert result["state_machines"]["identical"] is True, result["state_machines"]
    assert result["state_machines"]["keys"] > 0


@pytest.mark.timeout(180)
def test_tcp_run_reports_every_phase_and_checks_the_state_machines(tmp_path: Path) -> None:
    result = measure(RAFT, tmp_path, warmup=0.05, duration=0.2)
    check_every_figure(result, RAFT.phases)


@pytest.mark.timeout(180)
def test_failover_run_measures_the_new_leader_and_the_first_write(tmp_path: Path) -> None:
    result = failover(RAFT, tmp_path, before=0.3)
    assert result["new_leader_is_survivor"] is True
    assert result["new_term"] > result["old_term"]
    assert result["new_leader_ms"] > 0
    assert result["first_commit_ms"] is not None and result["first_commit_ms"] > 0
    assert result["writes_before_kill"] > 0
    assert result["state_machines"]["identical"] is True


@pytest.mark.timeout(180)
def test_pysyncobj_runs_through_the_same_harness(tmp_path: Path) -> None:
    pytest.importorskip("pysyncobj")  # the bench extra: make bench installs it
    phases = ("seq", "w256")
    result = measure(dataclasses.replace(PSO, phases=phases), tmp_path / "load", 0.05, 0.2)
    check_every_figure(result, phases)
    result = failover(PSO, tmp_path / "failover", before=0.3)
    assert result["new_leader_is_survivor"] is True
    assert result["first_commit_ms"] is not None
    assert result["state_machines"]["identical"] is True


@pytest.mark.timeout(180)
@pytest.mark.parametrize("lean", [False, True], ids=["as-pykka-raft", "lean"])
def test_the_shape_alone_runs_through_the_same_harness(tmp_path: Path, lean: bool) -> None:
    """bench/shape.py: pykka_raft's threads with no Raft work; its runs count only when
    every node applied the same writes, like the others'."""
    shape = dataclasses.replace(
        RAFT, key="shape3", label="shape", system="shape", lean=lean, phases=("seq", "w256")
    )
    result = measure(shape, tmp_path, warmup=0.05, duration=0.2)
    check_every_figure(result, shape.phases)
    assert result["leader_changes"] == 0
    assert result["state_machines"]["last_applied"] >= sum(
        p["answered"] for p in result["phases"].values()
    )
