"""The TCP benchmark group runs and reports every figure (nothing timed is asserted)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_tcp_group_reports_throughput_latency_failures_and_leader_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYKKA_RAFT_BENCH_QUICK", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(ROOT))
    try:
        from bench import tcp
    finally:
        sys.path.remove(str(ROOT))
    result = tcp.run_system({"system": "pykka_raft"}, tmp_path)
    assert result["throughput_10B_per_s"] > 0
    assert result["sequential"]["count"] == 100
    assert result["failed_writes"] == 0
    shares = result["cpu_share_of_a_core"]
    assert len(shares) == 3 and "leader" in shares
    table = tcp.table({"tcp_raft_secure": {"label": "pykka_raft", **result}})
    assert "pykka_raft" in table
