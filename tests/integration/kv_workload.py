"""A client workload over the key-value service's HTTP API that records its history.

Several client threads, each with its own ``pykka_raft.kv.Client``, run a seeded mix of
operations:

- ``put`` of a unique key (``u/<client>/<n>``): the durability probe; every acknowledged
  one must be on every node at the end;
- ``put`` of a unique value on a few shared keys (``s/<k>``), linearizable ``get`` of them,
  and ``cas`` from the value last seen: contention that the linearizability checker of
  ``pykka_raft.testing`` can judge.

Every operation is recorded with its invoke and return times in a ``HistoryRecorder``.
Outcomes follow ``pykka_raft.testing.history``: an answer is ``ok``; a definite refusal
(``503``: no leader, not leader, busy, shutting down; no node reachable before sending) is
``fail``; an answer lost after the request was sent (``504``, a broken connection) is
``unknown``. A read that did not get an answer is ``fail``: it changed nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pykka_raft import CasResult
from pykka_raft.kv import (
    CasFailed,
    Client,
    ClusterUnreachable,
    KeyNotFound,
    KvError,
    Unavailable,
    UnknownOutcome,
)
from pykka_raft.testing import HistoryRecorder, Op


class HttpWorkload:
    """Client threads writing and reading through the HTTP API.

    Args:
        urls: returns the base URLs to use (asked again by each new ``Client``).
        clients: how many threads.
        seed: the seed of every thread's choices.
        shared_keys: how many contended keys.
    """

    def __init__(
        self, urls: Callable[[], list[str]], clients: int, seed: int, shared_keys: int = 3
    ) -> None:
        self.urls = urls
        self.seed = seed
        self.shared = [f"s/{k}" for k in range(shared_keys)]
        self.recorder = HistoryRecorder()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self._acks = 0
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(c,), name=f"kv-workload-{c}", daemon=True)
            for c in range(1, clients + 1)
        ]

    def start(self) -> None:
        """Start every client thread."""
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float = 30.0) -> None:
        """Stop the clients and wait for them."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    @property
    def acks(self) -> int:
        """Writes acknowledged so far."""
        with self._lock:
            return self._acks

    def wait_for_acks(self, more: int, timeout: float) -> None:
        """Wait until ``more`` writes past the current count were acknowledged."""
        target = self.acks + more
        deadline = time.monotonic() + timeout
        while self.acks < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {more} writes acknowledged in {timeout} s")
            time.sleep(0.05)  # the clients are other threads talking to other processes

    def _run(self, client_id: int) -> None:
        rng = random.Random(self.seed * 1000 + client_id)
        client = Client(self.urls(), timeout=3.0, deadline=6.0)
        seen: dict[str, Any] = {}
        n = 0
        while not self.stop.is_set():
            n += 1
            roll = rng.random()
            try:
                if roll < 0.45:
                    self._put(client, client_id, f"u/{client_id}/{n}", n)
                elif roll < 0.7:
                    key = rng.choice(self.shared)
                    self._put(client, client_id, key, f"{client_id}-{n}")
                elif roll < 0.88:
                    key = rng.choice(self.shared)
                    seen[key] = self._get(client, client_id, key)
                else:
                    key = rng.choice(self.shared)
                    self._cas(client, client_id, key, seen.get(key), f"{client_id}-{n}")
            except Exception as exc:  # a bug in the workload itself: report it
                self.errors.append(f"client {client_id}: {type(exc).__name__}: {exc}")
                return
            if n % 50 == 0:
                client = Client(self.urls(), timeout=3.0, deadline=6.0)  # current members

    def _done(self) -> None:
        with self._lock:
            self._acks += 1

    def _put(self, client: Client, client_id: int, key: str, value: Any) -> None:
        handle = self.recorder.invoke(client_id, "put", key, value)
        try:
            answer = client.put(key, value)
        except UnknownOutcome:
            self.recorder.complete(handle, "unknown")
            return
        except (Unavailable, ClusterUnreachable):
            self.recorder.complete(handle, "fail")
            return
        except KvError as exc:
            self.recorder.complete(handle, "unknown")
            self.errors.append(f"put {key}: {exc}")
            return
        self.recorder.complete(handle, "ok", answer["previous"])
        self._done()

    def _get(self, client: Client, client_id: int, key: str) -> Any:
        handle = self.recorder.invoke(client_id, "get", key)
        try:
            value = client.get(key)
        except KeyNotFound:
            self.recorder.complete(handle, "ok", None)
            return None
        except KvError:
            self.recorder.complete(handle, "fail")  # a read changes nothing
            return None
        self.recorder.complete(handle, "ok", value)
        return value

    def _cas(self, client: Client, client_id: int, key: str, expected: Any, new: Any) -> None:
        handle = self.recorder.invoke(client_id, "cas", key, new, expected)
        try:
            if expected is None:
                answer = client.cas(key, new=new)
            else:
                answer = client.cas(key, expected, new)
        except CasFailed as exc:
            current = exc.current if exc.exists else None
            self.recorder.complete(handle, "ok", CasResult(False, current))
            return
        except UnknownOutcome:
            self.recorder.complete(handle, "unknown")
            return
        except (Unavailable, ClusterUnreachable):
            self.recorder.complete(handle, "fail")
            return
        except KvError as exc:
            self.recorder.complete(handle, "unknown")
            self.errors.append(f"cas {key}: {exc}")
            return
        self.recorder.complete(handle, "ok", CasResult(True, answer["previous"]))
        self._done()

    def ops(self) -> tuple[Op, ...]:
        """The history so far."""
        return self.recorder.ops()

    def acknowledged_unique(self) -> dict[str, Any]:
        """Every acknowledged put of a unique key: key -> value."""
        return {
            op.key: op.value
            for op in self.ops()
            if op.kind == "put" and op.outcome == "ok" and op.key.startswith("u/")
        }
