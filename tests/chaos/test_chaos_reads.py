"""Chaos runs whose reads bypass the log (``ChaosOptions.reads``), and controls that show the
linearizability check really checks those reads.

A failing run's message holds the seed and the replay command
(``python -m pykka_raft.testing.chaos --seed N --reads``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import pytest

from pykka_raft.messages import ReadPolicy
from pykka_raft.statemachine import Put
from pykka_raft.testing.chaos import ChaosOptions, ChaosReport, run_chaos
from pykka_raft.testing.history import Op
from pykka_raft.testing.linearizability import check_kv
from pykka_raft.testing.plugs import RecordingKeyValueStateMachine, memory_storage

SEEDS = [int(s) for s in os.environ.get("PYKKA_RAFT_CHAOS_READ_SEEDS", "31,32").split(",")]


def _served(report: ChaosReport) -> Counter[str]:
    """Ok reads without the log, by how they were served: ``"lease"``, ``"read_index"``
    on the node the client took for the leader or elsewhere, ``"final"``."""
    return Counter(
        op.via.split("@")[0] for op in report.ops if op.via is not None and op.outcome == "ok"
    )


def _faults_happened(report: ChaosReport) -> None:
    """The nemesis partitioned, isolated or crashed a node at least once: the run did not
    pass without the faults it is about."""
    assert any(report.faults.get(kind) for kind in ("partition", "isolate", "crash")), (
        f"the nemesis injected no partition, isolation or crash: {report.faults}"
    )


def _put(value: str, invoke: float, ret: float, previous: str | None) -> Op:
    return Op(
        client=1,
        kind="put",
        key="x",
        value=value,
        invoke=invoke,
        ret=ret,
        outcome="ok",
        result=previous,
    )


def _read(via: str, invoke: float, ret: float, result: str | None) -> Op:
    return Op(
        client=2, kind="get", key="x", invoke=invoke, ret=ret, outcome="ok", result=result, via=via
    )


def test_a_read_that_misses_a_completed_write_is_not_linearizable() -> None:
    """The smallest stale read: ``put(x, b)`` returned before the lease read began, which
    still answers ``a``. The explanation names the read and how it was served."""
    history = [
        _put("a", 0.0, 1.0, None),
        _put("b", 2.0, 3.0, "a"),
        _read("lease@2", 4.0, 5.0, "a"),
    ]
    result = check_kv(history)
    assert not result.ok
    assert "[lease@2]" in result.explanation, result.explanation
    # The same read overlapping the write may see either value.
    assert check_kv([*history[:2], _read("lease@2", 2.5, 5.0, "a")]).ok
    assert check_kv([*history[:2], _read("read_index@3", 4.0, 5.0, "b")]).ok


def _inject_stale_read(ops: tuple[Op, ...]) -> tuple[tuple[Op, ...], Op]:
    """``ops`` with one ok read without the log answered as a stale node would: with the
    value its key held before the latest ok put that returned before the read began.

    The workload writes every value once and never writes ``None``, so no order can
    place that old value after the put: the history must be non-linearizable.
    """
    puts = [op for op in ops if op.kind == "put" and op.outcome == "ok"]
    for i, op in enumerate(ops):
        if op.via is None or op.outcome != "ok" or op.ret is None:
            continue
        before = [p for p in puts if p.key == op.key and p.ret is not None and p.ret < op.invoke]
        if not before:
            continue
        latest = max(before, key=lambda p: p.ret or 0.0)
        if latest.result == op.result:
            continue
        stale = attrs.evolve(op, result=latest.result)
        return (*ops[:i], stale, *ops[i + 1 :]), stale
    raise AssertionError("no read without the log followed an acknowledged put")


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_run_with_reads_is_linearizable_and_a_stale_answer_is_caught(seed: int) -> None:
    """Lease and read-index reads on the leader, read-index reads on the followers and
    stale reads, under partitions and crashes, all pass the check; then the same history
    with one read's answer replaced by a stale one fails it."""
    report = run_chaos(seed, ChaosOptions(nodes=3, duration=3.0, reads=True))
    assert report.ok, report.render()
    served = _served(report)
    assert served["lease"] > 10 and served["read_index"] > 10, f"{served}\n{report.summary()}"
    assert served["final"] == 3 * 3, served  # every key on every node, after healing
    assert report.stale_reads > 0, report.summary()
    policies = {(op.via or "").split("@")[0] for op in report.ops if op.via and op.outcome == "ok"}
    assert {ReadPolicy.LEASE.value, ReadPolicy.READ_INDEX.value} <= policies
    _faults_happened(report)

    ops, stale = _inject_stale_read(report.ops)
    result = check_kv(ops)
    assert not result.ok, f"a stale read went unnoticed: {stale.describe()} (seed {seed})"
    assert result.key == stale.key


def test_chaos_run_with_reads_and_membership_changes_is_linearizable() -> None:
    """Reads on learners, on new and on removed nodes while the membership changes."""
    report = run_chaos(33, ChaosOptions(nodes=3, duration=3.0, reads=True, membership=True))
    assert report.ok, report.render()
    assert report.faults.get("change"), f"no membership change proposed: {report.faults}"
    assert _served(report)["read_index"] > 10, report.summary()


class _StaleReadsMachine(RecordingKeyValueStateMachine):
    """A state machine that answers reads without the log from the state it had up to
    eight applied writes ago (a deliberately broken node: it serves reads from old
    state), while the log and its applies stay correct."""

    def __init__(self) -> None:
        super().__init__()
        self.past: list[dict[str, Any]] = []

    def apply(self, entry: Any) -> Any:
        if isinstance(getattr(entry.payload, "data", None), Put):
            self.past = [*self.past[-7:], dict(self.data)]
        return super().apply(entry)

    def query(self, query: Any) -> Any:
        answer = super().query(query)
        return self.past[0].get(query.key) if self.past else answer


def test_negative_control_a_node_that_reads_old_state_is_caught() -> None:
    """The same run on state machines whose reads lag behind their applies: the
    linearizability check must catch it, on a read without the log."""
    options = ChaosOptions(
        nodes=3, duration=2.0, reads=True, storage=memory_storage(_StaleReadsMachine)
    )
    report = run_chaos(31, options)
    assert not report.ok, "reads served from old state went unnoticed"
    lin = report.linearizability
    assert lin is not None and not lin.ok, report.render()
    assert any(op.via is not None for op in lin.ops), lin.explanation


def test_the_reads_example_of_docs_testing_runs() -> None:
    """The python block of docs/testing.md about reads runs as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "reads=True" in b]
    assert len(blocks) == 1, f"{len(blocks)} python blocks of testing.md run reads"
    namespace: dict[str, Any] = {"__name__": "docs_testing_reads"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "docs/testing.md", "exec"), namespace)
    report: ChaosReport = namespace["report"]
    assert report.ok and "ok reads without the log" in out.getvalue(), report.render()
    assert _served(report)["lease"] > 0, report.summary()
    _faults_happened(report)
