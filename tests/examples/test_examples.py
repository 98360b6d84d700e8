"""The examples run to completion as scripts, as a reader would run them."""

from __future__ import annotations

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
