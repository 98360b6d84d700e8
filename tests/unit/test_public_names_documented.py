"""Every public name of the package is documented: each name in the ``__all__`` of a
public module appears, as a whole word, in README.md or a page of docs/.

A name counts as documented wherever it appears (a table, a sentence, a code block): the
test finds names that no page mentions at all, not whether the mention says enough.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_MODULES = (
    "pykka_raft",
    "pykka_raft.net",
    "pykka_raft.sessions",
    "pykka_raft.testing",
    "pykka_raft.kv",
    "pykka_raft.client",
    "pykka_raft.storage",
)


def documentation() -> str:
    """README.md and every page of docs/, as one text."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def mentioned(name: str, text: str) -> bool:
    """Whether ``name`` appears in ``text`` as a whole word (not inside a longer name:
    ``Session`` in ``SessionTable`` does not count)."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_documented(module: str) -> None:
    names = importlib.import_module(module).__all__
    assert names, f"{module}.__all__ is empty"
    text = documentation()
    missing = sorted(name for name in names if not mentioned(name, text))
    assert not missing, (
        f"public names of {module} that no page of docs/*.md or README.md mentions: "
        f"{', '.join(missing)}"
    )


def test_a_name_counts_only_as_a_whole_word() -> None:
    assert mentioned("Session", "a `Session` row")
    assert mentioned("main", "pykka_raft.net.main(argv)")
    assert not mentioned("Session", "SessionTable and MemorySessions")
    assert not mentioned("main", "the domain of main_loop")
