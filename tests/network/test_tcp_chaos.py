"""A seeded chaos run whose RPCs travel over real loopback sockets (one CURVE-secured
TcpNetwork per node behind the fault network): same faults, same checks.

Replay a failing seed with ``python -m pykka_raft.testing.chaos --tcp --seed N``.
"""

from __future__ import annotations

import logging
import os

import pytest

from pykka_raft.testing.chaos import ChaosOptions, run_chaos

SEEDS = [int(s) for s in os.environ.get("PYKKA_RAFT_TCP_CHAOS_SEEDS", "5").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_over_tcp_is_safe_and_linearizable(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pykka_raft.net"):
        report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0, tcp=True))
    assert report.ok, report.render()
    assert sum(1 for op in report.ops if op.outcome == "ok") > 20, report.summary()
    assert report.timeline, "the nemesis injected no fault"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("listens on" in m and "(CURVE)" in m for m in messages) == 3
    assert any("connected to node" in m for m in messages), "no RPC went over a socket"
