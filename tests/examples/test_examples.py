"""The examples run to completion as scripts, as a reader would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, timeout: float = 60) -> str:
    """Run ``examples/<name>`` with this interpreter; return its output if it exits 0."""
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / name)],
            cwd=EXAMPLES.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not end within {timeout}s; output so far:\n{exc.stdout}")
    assert done.returncode == 0, (
        f"{name} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


def test_embed_writes_through_the_leader() -> None:
    out = run_example("embed.py")
    assert "leads; the Put was applied at log index 2" in out


def test_demo_writes_the_keys_it_announces() -> None:
    """examples/demo.py (``make demo-embedded``): what it announces is what it writes; it
    survives the leader's isolation with every write acknowledged once and equal state
    machines holding every client key and "failover"."""
    out = run_example("demo.py", timeout=180)
    assert "4 clients start writing 1000 keys, 250 each" in out
    assert "writes acknowledged: 1000 of 1000, distinct log indexes: 1000" in out
    for node_id in (1, 2, 3):
        assert re.search(
            rf"node {node_id}: \d+ log entries, applied through \d+, 1001 keys", out
        ), f"node {node_id} does not hold the 1001 keys:\n{out}"
    assert "state machines identical: yes" in out
    # a leader before the partition and another after it
    assert re.search(r"leader history: term \d+: node \d+, term \d+: node \d+", out), out


def test_membership_tells_the_whole_story() -> None:
    out = run_example("membership.py")
    for line in (
        "node 1 leads a one-node cluster; wrote color=red at index 2",
        "entry 3: voters [1], non-voters [2, 3]",
        "entry 4: voters [1] AND voters [1, 2, 3] (joint)",
        "membership is now voters [1, 2, 3] (committed at 5)",
        "node 4 is a non_voter",
        "membership is now voters [1, 2, 3, 4]",
        "membership is now voters [2, 3, 4]",
        "node 1 is a non-voter outside the membership",
        "all members hold the same data",
        "done",
    ):
        assert line in out, f"missing {line!r} in:\n{out}"
    assert "FAILED" not in out
