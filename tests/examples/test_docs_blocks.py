"""The code of the user guides runs as written and prints what the text says.

Each guide's ```python blocks run in order, in one namespace, as a reader following the
page would run them: docs/getting-started.md, docs/reads.md, docs/membership.md,
docs/configuration.md and docs/operations.md. Every link between the docs (and from the
README) to a page or a heading of this repository must lead somewhere.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

RUN_AS_A_WHOLE = (
    "getting-started.md",
    "reads.md",
    "membership.md",
    "configuration.md",
    "operations.md",
)


def python_blocks(doc: str) -> list[str]:
    """The ```python blocks of ``docs/<doc>``, in order."""
    return re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), re.S)


def run_page(doc: str) -> list[list[str]]:
    """Run every python block of ``docs/<doc>`` in order in one namespace; return the
    lines each block printed."""
    namespace: dict[str, Any] = {"__name__": f"docs_{doc.replace('-', '_')[:-3]}"}
    printed = []
    for number, block in enumerate(python_blocks(doc)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block, f"docs/{doc}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"block {number} of docs/{doc} failed: {exc!r}") from exc
        printed.append(out.getvalue().splitlines())
    return printed


@pytest.fixture(autouse=True)
def _clean_up() -> Iterator[None]:
    """Stop every actor a page left running, and undo its logging setup."""
    logger = logging.getLogger("pykka_raft")
    level, root_handlers = logger.level, list(logging.getLogger().handlers)
    yield
    pykka.ActorRegistry.stop_all()
    logger.setLevel(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)


def index_in(line: str, prefix: str) -> int:
    """The integer that follows ``prefix`` in ``line``."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", line)
    assert match is not None, f"{line!r} does not read {prefix}<index>"
    return int(match.group(1))


def test_getting_started_runs_and_prints_what_it_says() -> None:
    out = run_page("getting-started.md")
    assert len(out) == 11
    assert re.fullmatch(r"node [123] leads; the Put was applied at log index 2", out[0][0])
    assert out[2] == ["None", "red"]  # the two Puts' previous values
    assert out[3] == ['EncodeError data.value[2]["k"]']  # refused before anything appended
    # Entries 1-3 (configuration, two Puts); the refused write took no index. An election
    # meanwhile would add a blank entry, so only "at least" is certain.
    assert index_in(out[4][0], "write write-1 at index ") >= 4
    assert out[5][:2] == ["blue", "blue"] and out[5][2] in ("blue", "red")  # STALE: or older
    assert out[7][0].startswith("leader [")
    assert out[9] == ["yes"]  # the restarted node kept its state


def test_reads_runs_and_prints_what_it_says() -> None:
    out = run_page("reads.md")
    assert index_in(out[0][0], "hello at index ") >= 2
    assert [line.split(": ")[1] for line in out[0][1:]] == ["hello"] * 3
    assert [line.split(", ")[1].split(":")[0] for line in out[0][1:]] == [
        "READ_INDEX",
        "LEASE",
        "STALE",
    ]
    assert out[1] == ["hello"]  # through the helper that follows ForwardToLeader
    assert out[2] == ["2", "ValueError(\"unknown query 'sum'\")"]  # the custom state machine


def test_membership_runs_and_prints_what_it_says() -> None:
    out = run_page("membership.md")
    index, members = out[0][0].split(" ", 1)
    assert int(index) >= 5 and members == "(1, 2, 3)"
    assert out[1] == ["(1, 2, 4, 5)"]
    assert ["True True"] in out  # TransferLeadership reached its target


def test_configuration_runs_and_prints_what_it_says() -> None:
    out = run_page("configuration.md")
    assert out[0][0].startswith("heartbeat_interval - must be at most a third")
    assert out[1] == [
        "invalid Config.pre_vote: must be a bool, got 1",
        "invalid Config.max_clock_drift: must be a number in [0, 0.5), got 0.5",
        "invalid Config.storage_timeout: must be an int, got 1.5",
    ]
    # The page shows the printed lines as comments: they must be the real ones.
    block = python_blocks("configuration.md")[1]
    assert [c.removeprefix("# ") for c in re.findall(r"^# .*", block, re.M)] == out[1]


def test_operations_stuck_storage_example_stops_the_leader_and_the_cluster_goes_on() -> None:
    out = run_page("operations.md")
    assert out[1] == ["StorageError", "shutdown"]


def test_every_python_block_of_the_guides_is_run_here() -> None:
    """A guide that gains a block needs no change here; one that loses them all does."""
    for doc in RUN_AS_A_WHOLE:
        assert python_blocks(doc), f"docs/{doc} has no python block any more"
    assert not python_blocks("architecture.md")  # diagrams only
    assert not python_blocks("differences.md")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())  # `, *, punctuation go
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {github_anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        *(f"docs/{name}" for name in RUN_AS_A_WHOLE),
        "docs/architecture.md",
        "docs/differences.md",
    ],
)
def test_links_lead_to_pages_and_headings_that_exist(page: str) -> None:
    source = ROOT / page
    text = re.sub(r"```.*?```", "", source.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        file, _, anchor = target.partition("#")
        path = (source.parent / file).resolve() if file else source
        if not path.exists() or (path.suffix == ".md" and anchor and anchor not in anchors(path)):
            broken.append(target)
    assert not broken, f"{page} links to missing pages or headings: {broken}"
