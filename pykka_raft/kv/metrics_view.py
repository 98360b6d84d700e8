"""What a key-value node keeps of its Raft node's metrics: the latest push and the recent
leader changes, which the HTTP layer, the log filter and the node's own threads read."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import attrs

from pykka_raft import NodeId, RaftMetrics

T = TypeVar("T")


@attrs.frozen
class LeaderChange:
    """A leader this node saw take over: at ``at`` (Unix time), ``leader_id`` led
    ``term``."""

    at: float
    term: int
    leader_id: NodeId


class MetricsView:
    """The node's metrics subscriber: keeps the latest :class:`RaftMetrics` and the recent
    leader changes, and lets threads wait for a condition on them.

    ``tell`` runs on the Raft node's thread, so it only stores and notifies; the log line
    for a role change is written after the lock is released (the log filter reads the
    view too).
    """

    def __init__(self, node_id: NodeId, keep: int = 20) -> None:
        self.node_id = node_id
        self._cond = threading.Condition()
        self._latest: RaftMetrics | None = None
        self._changes: deque[LeaderChange] = deque(maxlen=keep)
        self.leader_changes_total = 0
        self.started_at = time.time()

    def tell(self, metrics: RaftMetrics) -> None:
        """Record one push from the Raft node."""
        with self._cond:
            self._latest = metrics
            leader = metrics.current_leader
            last = self._changes[-1] if self._changes else None
            if leader is not None and (
                last is None or (last.term, last.leader_id) != (metrics.current_term, leader)
            ):
                self._changes.append(LeaderChange(time.time(), metrics.current_term, leader))
                self.leader_changes_total += 1
            self._cond.notify_all()

    def latest(self) -> RaftMetrics | None:
        """The latest metrics (``None`` while the node is starting)."""
        with self._cond:
            return self._latest

    def leader_changes(self) -> list[LeaderChange]:
        """The recent leader changes, oldest first."""
        with self._cond:
            return list(self._changes)

    def poke(self) -> None:
        """Wake the threads waiting in :meth:`wait_for` (to let them see a stop flag)."""
        with self._cond:
            self._cond.notify_all()

    def wait_for(
        self, predicate: Callable[[RaftMetrics | None], T], timeout: float | None
    ) -> T | None:
        """Wait until ``predicate(latest)`` is truthy and return it; ``None`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self._latest)
                if value:
                    return value
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
