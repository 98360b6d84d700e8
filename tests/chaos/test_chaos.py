"""Seeded chaos runs of real actor clusters, and negative controls that prove the checks bite.

A failing run's message holds the seed, the fault timeline and the part of the history
that is not linearizable; replay it with ``python -m pykka_raft.testing.chaos --seed N``.

Each test also asserts that the faults it is about really happened (``ChaosReport.faults``
counts them by kind; thread timing varies from run to run, but the nemesis draws its
schedule from the seed), and the snapshot run that its followers caught up through
snapshots (``ChaosReport.snapshots_installed``).
"""

from __future__ import annotations

import os

import attrs
import pytest

from pykka_raft.config import Config, SnapshotPolicy
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.chaos import DEFAULT_CONFIG, ChaosOptions, ChaosReport, run_chaos
from pykka_raft.testing.crash import CrashableMemStore

SEEDS = [int(s) for s in os.environ.get("PYKKA_RAFT_CHAOS_SEEDS", "1,2,3").split(",")]


def _happened(report: ChaosReport, *kinds: str) -> None:
    """Every fault kind of ``kinds`` was injected at least once."""
    missing = [kind for kind in kinds if not report.faults.get(kind)]
    assert not missing, f"the nemesis injected no {missing}: {report.faults}\n{report.render()}"


def _some(report: ChaosReport, *kinds: str) -> None:
    """At least one fault of ``kinds`` was injected."""
    assert any(report.faults.get(kind) for kind in kinds), (
        f"the nemesis injected none of {kinds}: {report.faults}\n{report.render()}"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_three_node_chaos_run_is_safe_and_linearizable(seed: int) -> None:
    report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0))
    assert report.ok, report.render()
    assert sum(1 for op in report.ops if op.outcome == "ok") > 20, report.summary()
    assert report.timeline, "the nemesis injected no fault"
    _some(report, "partition", "isolate", "crash")


def test_five_node_chaos_run_is_safe_and_linearizable() -> None:
    report = run_chaos(11, ChaosOptions(nodes=5, duration=3.0))
    assert report.ok, report.render()
    _some(report, "partition", "isolate", "crash")


def test_power_outage_loses_no_acknowledged_write() -> None:
    report = run_chaos(21, ChaosOptions(nodes=3, duration=2.0, outage=True))
    assert report.ok, report.render()
    assert any("power outage" in line for line in report.timeline)
    _happened(report, "outage", "restart")


def _lossy_storage(node_id: int, data: MemStoreData) -> object:
    """Storage that acknowledged log writes it never flushed: on every restart the last 30
    entries are gone and the state machine is rebuilt from what is left (a deliberately
    broken storage: it acknowledges before persisting)."""
    keep = max(0, len(data.log) - 30)
    del data.log[keep:]
    data.last_applied = min(keep, data.last_applied)
    data.state_machine = KeyValueStateMachine(keep_history=True)
    for entry in data.log[: data.last_applied]:
        data.state_machine.apply(entry)
    return CrashableMemStore.start(data=data)


FAST = Config(election_timeout_min=150, election_timeout_max=300, heartbeat_interval=30)
"""Shorter election timeouts: the liveness check of a run that cannot recover (the negative
control) gives up after 20 of them."""


def test_negative_control_storage_that_acks_before_persisting_is_caught() -> None:
    options = ChaosOptions(nodes=3, duration=2.0, outage=True, storage=_lossy_storage, config=FAST)
    report = run_chaos(21, options)
    assert not report.ok, "a storage that loses acknowledged writes went unnoticed"
    safety = [p for p in report.problems if not p.startswith("liveness")]
    assert safety, f"only liveness suffered, no safety check caught it:\n{report.render()}"
    _happened(report, "outage")


@pytest.mark.parametrize("seed", [5, 6])
def test_chaos_run_with_membership_changes_is_safe_and_linearizable(seed: int) -> None:
    report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0, membership=True))
    assert report.ok, report.render()
    assert any("change" in line for line in report.timeline), "no membership change proposed"
    _happened(report, "change")
    _some(report, "partition", "isolate", "crash")


def test_chaos_run_with_snapshots_and_membership_changes() -> None:
    """Compaction every 30 entries and 2 KiB chunks: lagging, restarted and new nodes
    catch up through snapshots while the nemesis partitions, isolates and reconfigures."""
    config = attrs.evolve(
        DEFAULT_CONFIG, snapshot_policy=SnapshotPolicy.every(30), snapshot_max_chunk_size=2048
    )
    report = run_chaos(7, ChaosOptions(nodes=3, duration=3.0, membership=True, config=config))
    assert report.ok, report.render()
    _happened(report, "change")
    _some(report, "partition", "isolate", "crash")
    assert report.snapshots_installed > 0, f"no follower installed a snapshot\n{report.render()}"
