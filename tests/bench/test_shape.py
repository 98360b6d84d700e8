"""bench/shape.py, the shape alone, in one process: a write is answered even when the
followers acknowledge it before the leader's own append completes (the lean variant sends
before it stores). Nothing timed is asserted."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pykka_raft.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the bench package lives beside the library, not in it
from bench import shape  # noqa: E402


class _Gateway:
    def __init__(self, submit: Callable[..., None]) -> None:
        self.submit = submit
        self.answers: list[tuple[int, str | None]] = []

    def answer(self, client: bytes, write_id: int, error: str | None) -> None:
        self.answers.append((write_id, error))


class _HeldStore(shape.ShapeStore):
    """Holds the lean leader's own appends (the only appends without a follow-up) until
    the test lets them through."""

    release = threading.Event()

    def on_receive(self, message: Any) -> None:
        kind, _, _, then = message
        if kind == "append" and then is None:
            self.release.wait(30)
        super().on_receive(message)


@pytest.fixture
def lean_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[shape.ShapeNode]]:
    _HeldStore.release.clear()
    monkeypatch.setattr(shape, "ShapeStore", _HeldStore)
    options = {"lean": True, "timers": {"heartbeat_ms": 50}}
    nodes = [shape.ShapeNode(dict(options, id=i), _Gateway, lambda event: None) for i in (1, 2, 3)]
    try:
        book = {str(i + 1): n.raft_address for i, n in enumerate(nodes)}
        for n in nodes:
            n.command("init", book)
        yield nodes
    finally:
        _HeldStore.release.set()
        for n in nodes:
            n.stop()


def test_a_write_acknowledged_before_the_leader_stored_it_is_answered(
    lean_cluster: list[shape.ShapeNode],
) -> None:
    leader = lean_cluster[0]
    leader.submit("k", "v", b"client", 7)
    actor = leader.node.proxy()
    # The fault: both followers hold and acknowledge the write, the leader has not stored it.
    wait_until(lambda: actor.match.get(timeout=5) == {2: 1, 3: 1}, 20, "both acknowledgements")
    assert actor.stored.get(timeout=5) == 0
    assert actor.commit.get(timeout=5) == 1
    assert leader.gateway.answers == []
    _HeldStore.release.set()
    wait_until(lambda: leader.gateway.answers == [(7, None)], 20, "the write's answer")
    assert actor.applied.get(timeout=5) == 1
