"""The ticker: Pykka has no timers, so one thread per node tells it a tick."""

from __future__ import annotations

import threading
from typing import Any

import attrs


@attrs.frozen
class Tick:
    """The ticker's heartbeat to the actor."""


class Ticker:
    """A thread that tells ``ref`` a :class:`Tick` every ``interval_ms``, never more than one
    queued (a busy actor gets one tick, not a backlog)."""

    def __init__(self, ref: Any, interval_ms: int) -> None:
        self._ref = ref
        self._interval = interval_ms / 1000
        self._stop = threading.Event()
        self.pending = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raft-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking (the thread ends within one interval)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.pending.is_set():
                continue
            self.pending.set()
            try:
                self._ref.tell(Tick())
            except Exception:  # the actor is gone
                return
