"""A bounded slice of the counter runs (``make counters SEEDS=N`` runs many): increments
resent under crashes and partitions are applied exactly once; and the control, resending
without sessions, is caught applying some twice."""

from __future__ import annotations

import pytest

from pykka_raft.client import Outcome
from pykka_raft.testing.counters import CounterOptions, main, run_counters

SLICE = CounterOptions(duration=3.0, attempt_timeout=0.2)


def test_increments_resent_under_faults_are_applied_exactly_once() -> None:
    # Whether a fault costs an answer depends on thread timing too: runs go on until two
    # of them really resent something (most do), each checked whatever it did.
    resent = []
    for seed in range(1, 9):
        report = run_counters(seed, SLICE)
        assert report.ok, report.render()  # the report names the seed and how to replay it
        assert report.count(Outcome.APPLIED) > 100
        assert report.timeline, "the nemesis injected no fault"
        assert sum(report.finals.values()) >= report.count(Outcome.APPLIED)
        if report.resends > 0:
            resent.append(seed)
            if len(resent) == 2:
                return
    pytest.fail(f"only seeds {resent} of 1-8 lost an answer and resent it")


def test_resending_without_sessions_is_caught_applying_increments_twice() -> None:
    control = CounterOptions(duration=3.0, attempt_timeout=0.1, naive=True)
    reports = []
    for seed in range(21, 26):  # most seeds show it; a few faults may all miss
        report = run_counters(seed, control)
        reports.append(report)
        if report.twice:
            assert not report.ok
            assert any("more than once" in p for p in report.problems)
            assert f"--seed {seed} --naive" in report.render()  # how to replay it
            return
    pytest.fail(
        "no naive run applied an increment twice:\n" + "\n".join(r.summary() for r in reports)
    )


def test_the_command_line_prints_the_seed_of_each_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seed", "4", "--duration", "1"]) == 0
    out = capsys.readouterr().out
    assert "[1/1] seed 4: ok;" in out
    assert "1 seeds in" in out and "1 passed, 0 failed" in out
