"""The wire-format and keygen examples of docs/network.md run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_json_wire_example_round_trips_a_request_with_bytes() -> None:
    text = (DOCS / "network.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "encode(request" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/network.md", "exec"), namespace)
    assert b'"__bytes__"' in namespace["wire"]  # the bytes value travelled tagged


def test_the_keygen_example_writes_a_pair_and_refuses_to_replace_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (DOCS / "network.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "main([" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/network.md", "exec"), {})
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("wrote ") and lines[0].endswith("node-1.key (copy it to every node)")
    assert lines[2].startswith("public key of node 1: ")
    assert lines[3] == "node-1.key node-1.key_secret"
    assert err.startswith("error: ") and "node-1.key exists" in err
