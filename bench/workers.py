"""One benchmark group per process: ``python -m bench.workers <group> '<json options>'``.

Each group prints one JSON object on its last line of output. Running every group in its
own process keeps the figures apart: CPU time and peak memory (``ru_maxrss``) belong to
that group alone, and two systems never compete for one interpreter's lock.

Groups:

* ``pykka``: the actor substrate. Round trips through a chain of three actors with 100
  requests in flight, and sequential ``ask`` round trips (one actor, and the chain).
* ``pykka_raft``: ``nodes`` Raft nodes in this process (MemStore, key-value state machine,
  the in-process router). Saturation throughput with many writes in flight (10-byte and
  1 KiB values), latency at a fixed offered load, sequential write latency.
* ``pysyncobj``: PySyncObj with 3 nodes on loopback TCP, the same workloads.

Every write is answered once the leader has *applied* it (pykka_raft
``ResponseMode.APPLIED``; a PySyncObj callback fires after the command is applied), and
both systems keep their logs in memory without fsync.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

QUICK = bool(os.environ.get("PYKKA_RAFT_BENCH_QUICK"))
DURATION = 1.0 if QUICK else 3.0  # seconds of each throughput and fixed-load phase
WARMUP = 0.2 if QUICK else 0.5
SEQUENTIAL = 100 if QUICK else 400  # writes in the sequential latency phase


# --- shared helpers -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank, in the values' unit."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "count": len(ms),
    }


class Window:
    """Keeps ``size`` operations in flight: ``submit(done)`` starts one and must arrange
    for ``done()`` to be called (on any thread) when it completes."""

    def __init__(self, size: int) -> None:
        self.slots = threading.Semaphore(size)
        self.completed = 0
        self.lock = threading.Lock()

    def done(self) -> None:
        with self.lock:
            self.completed += 1
        self.slots.release()

    def run(self, submit: Callable[[Callable[[], None]], None], duration: float) -> float:
        """Submit for ``duration`` seconds (after a warm-up); return completions/second."""
        end_warmup = time.monotonic() + WARMUP
        while time.monotonic() < end_warmup:
            self.slots.acquire()
            submit(self.done)
        with self.lock:
            start_count, start = self.completed, time.monotonic()
        cpu_start = time.process_time()
        end = start + duration
        while time.monotonic() < end:
            self.slots.acquire()
            submit(self.done)
        with self.lock:
            count, elapsed = self.completed - start_count, time.monotonic() - start
        self.cpu_per_op_us = (time.process_time() - cpu_start) / max(1, count) * 1e6
        return count / elapsed


def fixed_load(
    submit: Callable[[Callable[[], None]], None], rate: float, duration: float
) -> list[float]:
    """Open loop: start one operation every ``1/rate`` s; latency counts from the
    scheduled start, so a stall shows up even if submitting is delayed."""
    latencies: list[float] = []
    lock = threading.Lock()
    interval = 1.0 / rate
    start = time.monotonic() + 0.05
    total = int(rate * duration)
    outstanding = threading.Semaphore(0)
    for i in range(total):
        scheduled = start + i * interval
        delay = scheduled - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the offered load

        def finished(scheduled: float = scheduled) -> None:
            with lock:
                latencies.append(time.monotonic() - scheduled)
            outstanding.release()

        submit(finished)
    for _ in range(total):
        if not outstanding.acquire(timeout=30):
            break
    return latencies


Submitter = Callable[[Callable[[], None]], None]


def loaded_workloads(
    submitter: Callable[[str], Submitter], options: dict[str, Any]
) -> dict[str, Any]:
    """Saturation throughput (10 B and 1 KiB values) and latency at a fixed offered load.

    ``submitter(value)`` returns a function that starts one write of ``value`` and calls
    its argument when the write is answered.
    """
    results: dict[str, Any] = {}
    for name, size in (("10B", 10), ("1KiB", 1024)):
        window = Window(int(options.get("inflight", 256)))
        results[f"throughput_{name}_per_s"] = window.run(submitter("x" * size), DURATION)
        results[f"cpu_us_per_write_{name}"] = window.cpu_per_op_us
    rate = float(options.get("rate") or 0)
    if rate:
        results["fixed_load_rate_per_s"] = rate
        results["fixed_load"] = latency_summary(fixed_load(submitter("x" * 10), rate, DURATION))
    return results


def sequential(call: Callable[[], None], count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def baseline_ask(count: int = 1000) -> dict[str, float]:
    """Sequential ``ask`` round trips to an idle actor that answers at once."""
    echo = _Hop.start(None)
    try:
        sequential(lambda: echo.ask(1), count // 5)  # warm up
        return latency_summary(sequential(lambda: echo.ask(1), count))
    finally:
        echo.stop()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the Pykka ceiling --------------------------------------------------------------------


class _Hop(pykka.ThreadingActor):
    """Forwards ``(payload, future)`` to the next actor; the last one answers."""

    def __init__(self, next_ref: Any | None) -> None:
        super().__init__()
        self.next_ref = next_ref

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple):
            if self.next_ref is not None:
                self.next_ref.tell(message)
            else:
                message[1].set(message[0])
            return None
        return message  # a plain ask: answer at once


def bench_pykka(options: dict[str, Any]) -> dict[str, Any]:
    third = _Hop.start(None)
    second = _Hop.start(third)
    first = _Hop.start(second)
    try:
        window = Window(100)

        def submit(done: Callable[[], None]) -> None:
            first.tell((1, _Notify(done)))

        chain_rate = window.run(submit, DURATION)
        single = sequential(lambda: first.ask(1), 2000)
        chain = sequential(lambda: _chain_ask(first), 2000)
        return {
            "chain3_inflight100_per_s": chain_rate,
            "cpu_us_per_round_trip": window.cpu_per_op_us,
            "sequential_ask": latency_summary(single),
            "sequential_chain3": latency_summary(chain),
            "peak_rss_mib": peak_rss_mib(),
        }
    finally:
        pykka.ActorRegistry.stop_all()


class _Notify:
    """A reply that calls back when answered (no thread waits per request): for the Pykka
    chain, and as a :class:`pykka_raft.Reply` for Raft writes."""

    def __init__(self, done: Callable[[], None]) -> None:
        self.done = done

    def set(self, value: Any = None) -> None:
        self.done()

    def set_exception(self, error: Any = None) -> None:
        print(f"write failed: {error!r}", file=sys.stderr)
        self.done()


def _chain_ask(first: Any) -> None:
    future = pykka.ThreadingFuture()  # type: ignore[var-annotated]
    first.tell((1, future))
    future.get(timeout=10)


# --- pykka_raft ---------------------------------------------------------------------------


def bench_pykka_raft(options: dict[str, Any]) -> dict[str, Any]:
    from pykka_raft import (
        Call,
        ClientPayload,
        Config,
        InitWithConfig,
        KeyValueStateMachine,
        MemStore,
        Put,
        Raft,
        RaftRouter,
        Register,
        ResponseMode,
        State,
    )
    from pykka_raft.testing import MetricsHub

    n = int(options["nodes"])
    config = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
    router = RaftRouter.start()
    hub = MetricsHub()
    nodes = {}
    for node_id in range(1, n + 1):
        storage = MemStore.start(KeyValueStateMachine(keep_history=False))
        nodes[node_id] = Raft.start(node_id, config, router, storage, hub)
        router.ask(Register(node_id, nodes[node_id]))
    try:
        hub.wait_for(lambda m: len(m) == n, 10, "every node to start")
        for ref in nodes.values():
            ref.ask(InitWithConfig(list(nodes)))
        leader_id = hub.wait_for(
            lambda m: next((i for i, x in m.items() if x.state is State.LEADER), None),
            15,
            "a leader",
        )
        leader = nodes[leader_id]
        start_term = max(m.current_term for m in hub.snapshot().values())
        counter = iter(range(1 << 62))

        def submitter(value: str) -> Callable[[Callable[[], None]], None]:
            def submit(done: Callable[[], None]) -> None:
                payload = ClientPayload.new(
                    Put(f"k{next(counter) % 1000}", value), ResponseMode.APPLIED
                )
                leader.tell(Call(payload, _Notify(done)))

            return submit

        results: dict[str, Any] = {"nodes": n, **loaded_workloads(submitter, options)}
        # The baseline, measured here, right before, under the same conditions: one
        # sequential ask to an idle actor of this process.
        results["sequential_ask_baseline"] = baseline_ask()
        results["sequential"] = latency_summary(
            sequential(
                lambda: leader.ask(
                    ClientPayload.new(Put("seq", "x" * 10), ResponseMode.APPLIED), timeout=10
                ),
                SEQUENTIAL,
            )
        )
        # A healthy run has none: the leader was never deposed under load.
        end_term = max(m.current_term for m in hub.snapshot().values())
        results["elections_during_run"] = end_term - start_term
        results["peak_rss_mib"] = peak_rss_mib()
        return results
    finally:
        pykka.ActorRegistry.stop_all()


# --- PySyncObj ----------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


PYSYNCOBJ_DEFAULTS: dict[str, Any] = {"dynamicMembershipChange": False}
"""PySyncObj as shipped: a 50 ms tick and AppendEntries every 100 ms."""
PYSYNCOBJ_TUNED: dict[str, Any] = {
    "dynamicMembershipChange": False,
    "autoTickPeriod": 0.002,
    "appendEntriesPeriod": 0.005,
}
"""PySyncObj tuned for latency: a 2 ms tick and AppendEntries every 5 ms."""


def bench_pysyncobj(options: dict[str, Any]) -> dict[str, Any]:
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class KV(SyncObj):  # type: ignore[misc]
        def __init__(self, address: str, partners: list[str]) -> None:
            super().__init__(address, partners, SyncObjConf(**settings))
            self.data: dict[str, str] = {}

        @replicated  # type: ignore[misc]
        def put(self, key: str, value: str) -> None:
            self.data[key] = value

    n = int(options["nodes"])
    settings = dict(PYSYNCOBJ_TUNED if options.get("tuned") else PYSYNCOBJ_DEFAULTS)
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(n)]
    objs = [KV(a, [b for b in addresses if b != a]) for a in addresses]
    try:
        deadline = time.monotonic() + 20
        leader = None
        while leader is None and time.monotonic() < deadline:
            for obj in objs:
                if obj._isReady() and obj._getLeader() is not None:
                    address = str(obj._getLeader())
                    leader = next((o for o in objs if o.selfNode.address == address), None)
                    break
            time.sleep(0.05)  # waiting for PySyncObj's own election
        if leader is None:
            raise RuntimeError("PySyncObj elected no leader")
        counter = iter(range(1 << 62))

        def submitter(value: str) -> Callable[[Callable[[], None]], None]:
            def submit(done: Callable[[], None]) -> None:
                leader.put(f"k{next(counter) % 1000}", value, callback=lambda r, e: done())

            return submit

        results: dict[str, Any] = {
            "nodes": n,
            "settings": settings,
            **loaded_workloads(submitter, options),
        }
        count = SEQUENTIAL if options.get("tuned") else SEQUENTIAL // 4  # 100 ms each
        results["sequential"] = latency_summary(
            sequential(lambda: leader.put("seq", "x" * 10, sync=True, timeout=10), count)
        )
        results["peak_rss_mib"] = peak_rss_mib()
        return results
    finally:
        for obj in objs:
            obj.destroy()


GROUPS = {"pykka": bench_pykka, "pykka_raft": bench_pykka_raft, "pysyncobj": bench_pysyncobj}


def main() -> None:
    group, options = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = GROUPS[group](options)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
