"""The durable benchmark group runs and reports every figure (no timing is asserted:
``make bench`` judges performance as ratios within one run)."""

from __future__ import annotations

from bench import durable


def test_durable_group_reports_every_figure_and_ratio() -> None:
    result = durable.run(quick=True)
    for key in ("fsync", "fsync_no_group_commit", "os"):
        assert result[key]["throughput_per_s"] > 0, key
        assert result[key]["sequential"]["count"] == 100, key
        assert result[key]["elections_during_run"] == 0, f"{key}: the leader was deposed"
    assert result["fsync"]["leader_entries_per_log_commit"] >= 1
    assert result["floor_full"]["rows_per_s"] > 0
    assert result["floor_full"]["batch"] == round(result["fsync"]["leader_entries_per_log_commit"])
    on, off = result["burst_group_commit_on"], result["burst_group_commit_off"]
    assert off["commits"] == off["calls"]  # one transaction per call without group commit
    assert on["commits"] < on["calls"]  # queued calls shared transactions
    assert len(durable.ratios(result)) == 5
    assert "plain SQLite loop, synchronous=FULL" in durable.table(result)
