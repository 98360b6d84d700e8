"""The code in docs/testing.md runs as written: a storage of your own plugged into a chaos
run passes with no false failures, and so does SqliteStore through a power outage; a
history written by hand gets the verdicts the page gives."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def block(marker: str) -> str:
    """The one ```python block of docs/testing.md that contains ``marker``."""
    text = (DOCS / "testing.md").read_text()
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(found) == 1, f"{len(found)} python blocks of testing.md contain {marker!r}"
    return found[0]


def run(marker: str) -> tuple[dict[str, Any], str]:
    namespace: dict[str, Any] = {"__name__": "docs_testing"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block(marker), "docs/testing.md", "exec"), namespace)
    return namespace, out.getvalue()


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_a_storage_of_your_own_passes_a_chaos_run() -> None:
    namespace, out = run("class SlowDiskStore")
    report = namespace["report"]
    assert report.ok and report.storage == "slow-disk"
    assert "seed 7 (slow-disk): ok" in out
    assert sum(1 for op in report.ops if op.outcome == "ok") > 20, report.summary()
    assert report.faults, "the nemesis injected no fault"
    # The storage really was the one of the example: its data is what the nodes held.
    assert namespace["kept"] and all(
        data.log or data.snapshot_meta for data in namespace["kept"].values()
    )


def test_sqlite_storage_passes_a_chaos_run_through_a_power_outage() -> None:
    """The chaos seed of ``make test`` on SqliteStore (temporary directories): crashes
    through the plug's crash hook (the open transaction is lost, the committed ones stay),
    then every node at once."""
    namespace, _ = run("sqlite_storage()")
    report = namespace["report"]
    assert report.ok, report.render()
    assert report.storage == "sqlite"
    assert report.faults.get("outage") == 1 and report.faults.get("restart"), report.faults
    assert sum(1 for op in report.ops if op.outcome == "ok") > 20, report.summary()


def test_a_history_written_by_hand_is_checked() -> None:
    _, out = run("check_kv([put, read])")
    assert out.splitlines() == ["False x", "True"]
