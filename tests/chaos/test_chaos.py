"""Seeded chaos runs of real actor clusters, and negative controls that prove the checks bite.

A failing run's message holds the seed, the fault timeline and the part of the history
that is not linearizable; replay it with ``python -m pykka_raft.testing.chaos --seed N``.
"""

from __future__ import annotations

import os

import attrs
import pytest

from pykka_raft.config import SnapshotPolicy
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.chaos import DEFAULT_CONFIG, ChaosOptions, run_chaos
from pykka_raft.testing.crash import CrashableMemStore

SEEDS = [int(s) for s in os.environ.get("PYKKA_RAFT_CHAOS_SEEDS", "1,2,3").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_three_node_chaos_run_is_safe_and_linearizable(seed: int) -> None:
    report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0))
    assert report.ok, report.render()
    assert sum(1 for op in report.ops if op.outcome == "ok") > 20, report.summary()
    assert report.timeline, "the nemesis injected no fault"


def test_five_node_chaos_run_is_safe_and_linearizable() -> None:
    report = run_chaos(11, ChaosOptions(nodes=5, duration=3.0))
    assert report.ok, report.render()


def test_power_outage_loses_no_acknowledged_write() -> None:
    report = run_chaos(21, ChaosOptions(nodes=3, duration=2.0, outage=True))
    assert report.ok, report.render()
    assert any("power outage" in line for line in report.timeline)


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


def test_negative_control_storage_that_acks_before_persisting_is_caught() -> None:
    report = run_chaos(21, ChaosOptions(nodes=3, duration=2.0, outage=True, storage=_lossy_storage))
    assert not report.ok, "a storage that loses acknowledged writes went unnoticed"
    assert report.problems


@pytest.mark.parametrize("seed", [5, 6])
def test_chaos_run_with_membership_changes_is_safe_and_linearizable(seed: int) -> None:
    report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0, membership=True))
    assert report.ok, report.render()
    assert any("change" in line for line in report.timeline), "no membership change proposed"


def test_chaos_run_with_snapshots_and_membership_changes() -> None:
    """Compaction every 100 entries and 2 KiB chunks: lagging, restarted and new nodes
    catch up through snapshots while the nemesis partitions, crashes and reconfigures."""
    config = attrs.evolve(
        DEFAULT_CONFIG, snapshot_policy=SnapshotPolicy.every(100), snapshot_max_chunk_size=2048
    )
    report = run_chaos(7, ChaosOptions(nodes=3, duration=3.0, membership=True, config=config))
    assert report.ok, report.render()
