"""``make demo`` (``pykka-raft-kv demo``) runs to its summary, as a reader runs it, in a
shorter version: no write lost, the leader really killed, every process stopped and the
directory removed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def test_the_demo_tells_the_whole_story() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pykka_raft.kv", "demo", "--seconds", "1", "--clients", "2"],
        capture_output=True,
        text=True,
        timeout=200,
    )
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    for line in (
        "cluster formed: node ",
        "writing: ",
        "SIGKILL the leader, node ",
        "(exit status -9)",
        "leads now (",
        "voters [1, 2, 3, 4]",
        "removing the dead node ",
        "writes acknowledged",
        "lost                 0 (every acknowledged key read back",
        "failover time",
        "final members",
    ):
        assert line in out, f"missing {line!r} in:\n{out}"
    acknowledged = int(re.search(r"writes acknowledged\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert acknowledged > 0
    statuses = re.search(r"exit statuses \{(.*)\}; removing (\S+)", out)
    assert statuses is not None, out
    assert set(re.findall(r"\d+: (-?\d+)", statuses.group(1))) == {"0"}  # SIGTERM: clean
    assert not Path(statuses.group(2)).exists()
