"""The clients of a chaos run: threads running a seeded random workload of reads, writes and
compare-and-sets on a few keys, recording what they observe (the history the
linearizability check reads)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pykka

from pykka_raft.errors import ClientError, ForwardToLeader, ShuttingDown
from pykka_raft.messages import ClientPayload, ResponseMode
from pykka_raft.metrics import State
from pykka_raft.statemachine import CompareAndSet, Get, Put
from pykka_raft.testing.chaos_options import ChaosOptions
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.history import HistoryRecorder, OpHandle
from pykka_raft.testing.values import ChaosValue, random_value
from pykka_raft.types import NodeId

_WRITTEN_KEPT = 64
"""Values mode: how many recent written values a cas may expect."""


class Workload:
    """Client threads running a seeded random workload and recording the history.

    Every written value is unique (``c<client>-<n>``, or a
    :class:`~pykka_raft.testing.values.ChaosValue` with that tag around a random nested
    payload in the values mode), so the checker can tell every write apart. In the values
    mode a quarter of the puts go to a key of their own (``once-<tag>``) that nothing
    overwrites, so every node's final state still holds the value as it was written, and
    a snapshot, restart or network that changed it shows in the final comparison.
    """

    def __init__(self, cluster: Cluster, seed: int, options: ChaosOptions) -> None:
        self.cluster = cluster
        self.options = options
        self.recorder = HistoryRecorder()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(c, random.Random(seed * 7 + c)), daemon=True)
            for c in range(options.clients)
        ]
        self.unique = 0
        self.lock = threading.Lock()
        self.written: list[Any] = []

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def keys(self) -> list[str]:
        """The keys the clients use."""
        return [f"k{i}" for i in range(self.options.keys)]

    def _value(self, client: int, rng: random.Random) -> Any:
        with self.lock:
            self.unique += 1
            tag = f"c{client}-{self.unique}"
        if not self.options.values:
            return tag
        value = ChaosValue(tag, random_value(rng))
        with self.lock:
            self.written = [*self.written[-_WRITTEN_KEPT + 1 :], value]
        return value

    def _expected(self, rng: random.Random) -> Any:
        """What a cas compares against: nothing, or a value that was (likely) written."""
        if rng.random() < 0.3:
            return None
        if self.options.values:
            with self.lock:
                written = list(self.written)
            return rng.choice(written) if written else None
        return f"c{rng.randrange(4)}-{rng.randrange(self.unique + 1)}"

    def _run(self, client: int, rng: random.Random) -> None:
        target: NodeId | None = None
        while not self.stop.is_set():
            key = f"k{rng.randrange(self.options.keys)}"
            roll = rng.random()
            command: Any
            if roll < 0.4:
                kind, command, value, expected = "get", Get(key), None, None
            elif roll < 0.8:
                value = self._value(client, rng)
                if self.options.values and roll < 0.5:
                    key = f"once-{value.tag}"  # never overwritten: it must end intact
                kind, command, expected = "put", Put(key, value), None
            else:
                value = self._value(client, rng)
                expected = self._expected(rng)
                kind, command = "cas", CompareAndSet(key, expected, value)
            if target is None or target not in self.cluster.nodes:
                target = self._some_node(rng)
            handle = self.recorder.invoke(client, kind, key, value, expected)
            target = self._call(handle, target, command)

    def _some_node(self, rng: random.Random) -> NodeId:
        latest = self.cluster.hub.snapshot()
        leaders = [
            n for n, m in latest.items() if m.state is State.LEADER and n in self.cluster.nodes
        ]
        if leaders:
            return leaders[0]
        return rng.choice(sorted(self.cluster.nodes) or [1])

    def _call(self, handle: OpHandle, target: NodeId, command: Any) -> NodeId | None:
        ref = self.cluster.nodes.get(target)
        if ref is None:
            self.recorder.complete(handle, "fail")
            return None
        try:
            response = ref.ask(
                ClientPayload.new(command, ResponseMode.APPLIED), timeout=self.options.op_timeout
            )
        except ForwardToLeader as exc:
            self.recorder.complete(handle, "fail")  # definitely not committed
            if exc.leader_id is None:
                self.stop.wait(0.05)  # the pause before retrying is the client's policy
            return exc.leader_id
        except (pykka.Timeout, ShuttingDown, ClientError):
            self.recorder.complete(handle, "unknown")
            return None
        self.recorder.complete(handle, "ok", response.data)
        return target

    def read_back(self, timeout: float) -> list[str]:
        """Read every key through the log once the cluster has settled, into the history
        (so a lost acknowledged write shows as a read that no order explains); return the
        problems (a read that got no answer)."""
        problems = []
        client = self.options.clients  # one past the workload's clients
        for key in self.keys():
            handle = self.recorder.invoke(client, "get", key)
            try:
                response = self.cluster.write(Get(key), timeout=timeout)
            except Exception as exc:
                self.recorder.complete(handle, "unknown")
                problems.append(f"liveness: the final read of {key!r} failed: {exc!r}")
                continue
            self.recorder.complete(handle, "ok", response.data)
        return problems
