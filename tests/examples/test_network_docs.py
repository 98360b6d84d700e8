"""The wire-format example of docs/network.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_json_wire_example_round_trips_a_request_with_bytes() -> None:
    text = (DOCS / "network.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "encode(request" in b]
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/network.md", "exec"), namespace)
    assert b'"__bytes__"' in namespace["wire"]  # the bytes value travelled tagged
