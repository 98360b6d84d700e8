"""The code blocks about SqliteStore in README.md and docs/storage.md run as written."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from pykka_raft.testing.conformance import StorageConformance, key_value_machine

ROOT = Path(__file__).resolve().parents[2]


def block(path: str, marker: str) -> str:
    """The one ```python block of ``path`` that contains ``marker``."""
    text = (ROOT / path).read_text()
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(found) == 1, f"{len(found)} python blocks of {path} contain {marker!r}"
    return found[0]


def run(path: str, marker: str, namespace: dict[str, Any] | None = None) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block(path, marker), path, "exec"), namespace or {})
    return out.getvalue()


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_readme_durable_cluster_survives_its_restart() -> None:
    out = run("README.md", "def start_cluster")
    assert re.search(r"after the restart node \d leads and reads 'hello'", out), out


# The example stores of docs/storage.md and docs/snapshots.md keep the storage contract: the
# suite runs on them as written (the docs say so).
_examples: dict[str, Any] = {}
exec(compile(block("docs/storage.md", "class MyStore("), "docs/storage.md", "exec"), _examples)
exec(
    compile(block("docs/snapshots.md", "class MySnapshotStore"), "docs/snapshots.md", "exec"),
    _examples,
)

# The suite subclass exactly as docs/storage.md writes it, run on that page's example store
# (its MyStore); pytest collects its tests here.
_docs: dict[str, Any] = {"MyStore": _examples["MyStore"]}
exec(compile(block("docs/storage.md", "class TestMyStore"), "docs/storage.md", "exec"), _docs)
TestTheExampleStoreOfStorageMd = _docs["TestMyStore"]


class TestTheFileBackedStoreOfSnapshotsMd(StorageConformance):
    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        store = _examples["MySnapshotStore"]
        return store.start(
            str(place / "node.sqlite"), str(place / "snapshots"), key_value_machine(rejecting)
        )
