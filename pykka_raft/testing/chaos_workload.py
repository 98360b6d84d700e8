"""The clients of a chaos run: threads running a seeded random workload of reads, writes and
compare-and-sets on a few keys, recording what they observe (the history the
linearizability check reads).

Reads go through the log as ``Get`` writes, or, with ``ChaosOptions.reads``, mostly bypass
it as :class:`~pykka_raft.messages.ClientRead` (``docs/reads.md``): of the gets, 15% go
through the log, about a quarter each are ``LEASE`` and ``READ_INDEX`` reads sent to the node
the client takes for the leader (any node serves them: a follower asks the leader for the
index), another quarter ``READ_INDEX`` reads sent to another node, and 10% ``STALE``. Every
read but the stale ones is recorded as a ``"get"`` whose ``via`` names the policy and the
node; one that errs or times out is recorded as ``"fail"``, since a read has no effect.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

import pykka

from pykka_raft.actor import RaftRef
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    ClientError,
    ForwardToLeader,
    RaftError,
    ShuttingDown,
)
from pykka_raft.messages import (
    ClientPayload,
    ClientRead,
    ClientReadResponse,
    ReadPolicy,
    ResponseMode,
)
from pykka_raft.metrics import State
from pykka_raft.statemachine import CompareAndSet, Get, Put
from pykka_raft.testing.chaos_options import ChaosOptions
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.history import HistoryRecorder, OpHandle
from pykka_raft.testing.values import ChaosValue, canonical, random_value
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
        self.stale: list[tuple[str, Any, float]] = []  # (key, answer, when) of STALE reads
        self.wrong_answers: list[str] = []  # reads answered with something else

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
            if roll < 0.4 and self.options.reads and rng.random() >= 0.15:
                target = self._read(client, rng, key, target)
                continue
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

    def _read(
        self, client: int, rng: random.Random, key: str, target: NodeId | None
    ) -> NodeId | None:
        """One read without the log; return the node the client takes for the leader."""
        if target is None or target not in self.cluster.nodes:
            target = self._some_node(rng)
        roll = rng.random()
        node, policy = target, ReadPolicy.READ_INDEX
        if roll < 0.3:
            policy = ReadPolicy.LEASE
        elif roll < 0.6:
            others = sorted(n for n in self.cluster.nodes if n != target)
            node = rng.choice(others) if others else target
        elif roll > 0.88:
            node = rng.choice(sorted(self.cluster.nodes) or [target])
            policy = ReadPolicy.STALE
        ref = self.cluster.nodes.get(node)
        if policy is ReadPolicy.STALE:
            if ref is not None:
                self._stale_read(ref, key)
            else:
                self.stop.wait(0.05)  # no node running (all crashed): do not spin meanwhile
            return target
        handle = self.recorder.invoke(client, "get", key, via=f"{policy.value}@{node}")
        if ref is None:
            self.recorder.complete(handle, "fail")
            self.stop.wait(0.05)  # no node running (all crashed): do not spin meanwhile
            return target
        try:
            response = ref.ask(ClientRead(Get(key), policy), timeout=self.options.op_timeout)
        except ForwardToLeader as exc:
            self.recorder.complete(handle, "fail", exc)  # a read has no effect
            if exc.leader_id is None:
                self.stop.wait(0.05)  # the pause before retrying is the client's policy
            return exc.leader_id if node == target else target
        except (pykka.Timeout, pykka.ActorDeadError, RaftError) as exc:
            self.recorder.complete(handle, "fail", exc)
            return None if node == target else target
        if not isinstance(response, ClientReadResponse):
            self.recorder.complete(handle, "fail", response)
            with self.lock:
                self.wrong_answers.append(f"a ClientRead was answered with {response!r}")
            return target
        self.recorder.complete(handle, "ok", response.data)
        return target

    def _stale_read(self, ref: RaftRef, key: str) -> None:
        try:
            response = ref.ask(ClientRead(Get(key), ReadPolicy.STALE), timeout=1.0)
        except (pykka.Timeout, pykka.ActorDeadError, RaftError):
            return
        answered = self.recorder.now()
        with self.lock:
            if isinstance(response, ClientReadResponse):
                self.stale.append((key, response.data, answered))
            else:
                self.wrong_answers.append(f"a STALE ClientRead was answered with {response!r}")

    def read_problems(self) -> list[str]:
        """Reads answered with something other than a ``ClientReadResponse``, and ``STALE``
        reads that returned neither ``None`` nor a value some client wrote to that key
        before the read was answered (they promise no recency, but nothing else either)."""
        written: dict[str, dict[Any, float]] = {}  # key -> value -> first invocation
        for op in self.recorder.ops():
            if op.kind not in ("put", "cas") or op.outcome == "fail":  # "fail": not committed
                continue
            if op.kind == "cas" and op.outcome == "ok" and not getattr(op.result, "swapped", 1):
                continue  # answered: it wrote nothing
            first = written.setdefault(op.key, {})
            value = canonical(op.value)
            first[value] = min(first.get(value, op.invoke), op.invoke)
        with self.lock:
            stale, wrong = list(self.stale), list(self.wrong_answers)
        return wrong + [
            f"a STALE read of {key!r} returned {data!r}, which no client wrote there before"
            for key, data, answered in stale
            if data is not None and written.get(key, {}).get(canonical(data), math.inf) > answered
        ]

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
            self.stop.wait(0.05)  # no node running (all crashed): do not spin meanwhile
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
        except (ShuttingDown, Busy, ApplicationError):
            self.recorder.complete(handle, "fail")  # not accepted, refused: no effect
            return None
        except (pykka.Timeout, ClientError):
            self.recorder.complete(handle, "unknown")
            return None
        self.recorder.complete(handle, "ok", response.data)
        return target

    def read_back(self, timeout: float, members: Iterable[NodeId] = ()) -> list[str]:
        """Read every key through the log once the cluster has settled, into the history
        (so a lost acknowledged write shows as a read that no order explains), and with
        ``ChaosOptions.reads`` also with a ``READ_INDEX`` read on each of ``members``;
        return the problems (a read that got no answer)."""
        problems = []
        client = self.options.clients  # one past the workload's clients
        if self.options.reads:
            for node in sorted(members):
                problems += self._final_reads(client, node, timeout)
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

    def _final_reads(self, client: int, node: NodeId, timeout: float) -> list[str]:
        """A ``READ_INDEX`` read of every key on ``node``, retried on ``ForwardToLeader``
        (a leader may still be taking over) until ``timeout``."""
        problems = []
        for key in self.keys():
            deadline = time.monotonic() + timeout
            while True:
                handle = self.recorder.invoke(client, "get", key, via=f"final@{node}")
                try:
                    ref = self.cluster.nodes[node]
                    response = ref.ask(ClientRead(Get(key)), timeout=timeout)
                except ForwardToLeader as exc:
                    self.recorder.complete(handle, "fail", exc)
                    if time.monotonic() < deadline:
                        time.sleep(0.05)  # the pause before retrying is the client's policy
                        continue
                    problems.append(f"liveness: the final read of {key!r} on {node} failed")
                except Exception as exc:
                    self.recorder.complete(handle, "fail", exc)
                    problems.append(
                        f"liveness: the final read of {key!r} on {node} failed: {exc!r}"
                    )
                else:
                    self.recorder.complete(handle, "ok", response.data)
                break
        return problems
