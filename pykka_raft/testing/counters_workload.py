"""The counter runs' workload: the :class:`Increment` write, the :class:`Counters` state
machine that records every tag it applies, and the worker threads that send increments.

An increment is the write that must not be applied twice, and the state machine keeps
its own record of the tags it applied (apart from the session layer in front of it), so
the checks of :mod:`~pykka_raft.testing.counters_checks` can see a duplicate the sessions
let through. The workers share two clients and, in the naive control run, resend unknown
increments without sessions.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from pykka_raft.client import Outcome, RaftClient, WriteResult
from pykka_raft.codec import decode, encode, register_app_type
from pykka_raft.errors import ApplicationError
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.counters_options import Attempted, CounterOptions

__all__ = ["Counters", "Increment", "Workers"]

# --- the state machine ---------------------------------------------------------------------


@register_app_type
@attrs.frozen
class Increment:
    """Add one to ``counter``; ``tag`` names this increment (unique per increment, the
    same on every resend). Responds with the counter's new value."""

    counter: str
    tag: str


class Counters:
    """Counters driven by :class:`Increment`, recording every tag it applies.

    ``tags`` (``(index, tag)`` in apply order) is the record the checks read: kept by
    the state machine itself, apart from the session layer in front of it.
    """

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.tags: list[tuple[int, str]] = []

    def apply(self, entry: Entry) -> Any:
        payload = entry.payload
        if not isinstance(payload, EntryNormal):
            return None
        increment = payload.data
        if not isinstance(increment, Increment):
            raise ApplicationError(TypeError(f"not an Increment: {increment!r}"))
        value = self.data.get(increment.counter, 0) + 1
        self.data[increment.counter] = value
        self.tags.append((entry.index, increment.tag))
        return value

    def validate(self, entry: Entry) -> None:
        payload = entry.payload
        if isinstance(payload, EntryNormal) and not isinstance(payload.data, Increment):
            raise TypeError(f"expected an Increment, got {type(payload.data).__name__}")

    def snapshot(self) -> Callable[[], bytes]:
        doc = {"data": dict(self.data), "tags": list(self.tags)}
        return lambda: encode(doc, Any, wrapped=True)

    def restore(self, data: bytes) -> None:
        doc: Any = decode(data, Any, wrapped=True)
        self.data = dict(doc["data"])
        self.tags = [(index, tag) for index, tag in doc["tags"]]


# --- the workers ---------------------------------------------------------------------------


class Workers:
    """``options.workers`` threads incrementing random counters through two shared clients,
    each recording what became of every increment it sent (:attr:`done`)."""

    def __init__(self, cluster: Cluster, seed: int, options: CounterOptions) -> None:
        self.options = options
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done: list[Attempted] = []
        self.naive_resends = 0
        sessions = not options.naive
        self.clients = [
            RaftClient(
                cluster.nodes,
                timeout=options.op_timeout,
                attempt_timeout=options.attempt_timeout,
                sessions=sessions,
                rng=random.Random(seed * 31 + c),
            )
            for c in range(2)
        ]
        self.threads = [
            threading.Thread(target=self._run, args=(w, random.Random(seed * 7 + w)), daemon=True)
            for w in range(options.workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def resends(self) -> int:
        return self.naive_resends + sum(client.stats.resends for client in self.clients)

    def _run(self, worker: int, rng: random.Random) -> None:
        client = self.clients[worker % len(self.clients)]
        n = 0
        while not self.stop.is_set():
            n += 1
            increment = Increment(f"c{rng.randrange(self.options.counters)}", f"w{worker}-{n}")
            result = self._naive(client, increment) if self.options.naive else None
            if result is None:
                result = client.write(increment)
            with self.lock:
                self.done.append(
                    Attempted(increment.counter, increment.tag, result.outcome, result.response)
                )

    def _naive(self, client: RaftClient, increment: Increment) -> WriteResult:
        """Without sessions, resend whatever ended unknown, until the deadline."""
        deadline = time.monotonic() + self.options.op_timeout
        unknown: WriteResult | None = None
        while True:
            result = client.write(increment, timeout=max(0.01, deadline - time.monotonic()))
            if result.outcome is Outcome.UNKNOWN:
                unknown = result
            elif result.outcome is Outcome.APPLIED or unknown is None:
                return result
            if time.monotonic() >= deadline:
                return unknown  # an earlier copy may still be applied
            with self.lock:
                self.naive_resends += 1
