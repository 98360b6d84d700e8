"""The code in docs/clients.md runs as written and prints what the text says."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"


def run(marker: str) -> str:
    """Execute the one ```python block of docs/clients.md holding ``marker``; return its
    output."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"{len(found)} python blocks contain {marker!r}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(found[0], "docs/clients.md", "exec"), {"__name__": "docs_clients"})
    return out.getvalue()


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_every_python_block_is_run_here() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4


def test_the_protocol_by_hand_answers_a_resend_from_the_cache() -> None:
    out = run("def send(data)")
    assert out.strip() == (
        "CasResult(swapped=True, previous=None) CasResult(swapped=True, previous=None) True"
    )


def test_a_session_state_machine_around_your_own_machine() -> None:
    assert run("class Tally").strip() == "1 2"


def test_the_session_table_shows_a_row_until_the_log_clock_expires_it() -> None:
    assert run("table.get(1)").splitlines() == [
        "Session(sequence=1, response=None, last_active=160.0)",
        "None [3]",
    ]


def test_the_client_reports_each_outcome() -> None:
    lines = run("def report(result)").strip().splitlines()
    assert re.fullmatch(r"applied at \d+: None", lines[0])
    assert re.fullmatch(
        r"applied at \d+: CasResult\(swapped=True, previous='red'\) \(client \d+, write 2\)",
        lines[1],
    )
    assert lines[2].startswith("not applied: the application rejected the entry")
    assert len(lines) == 3
