"""The in-process groups: ``python -m bench.workers <group> '<json options>'``.

Each run is a fresh process that prints one JSON object on its last line, so CPU time and
peak memory (``ru_maxrss``) belong to that run alone. :mod:`bench.__main__` interleaves
the runs of the groups (A B C A B C ...).

Groups:

* ``pykka``: the actor substrate, the ceiling of anything built on it. Round trips through
  a chain of three actors with 100 requests in flight, and sequential ``ask`` round trips
  (one actor, and the chain).
* ``pykka_raft``: ``nodes`` Raft nodes in this process (``MemStore``, the key-value state
  machine, the in-process ``RaftRouter``): throughput with 256 writes in flight (10-byte
  and 1 KiB values), sequential write latency, and as its baseline the latency of a
  sequential ``ask`` to an idle actor of the same process, measured just before. The run
  ends by checking that every node applied the same index into an identical state machine.

Every write is answered once the leader has *applied* it (``ResponseMode.APPLIED``).
Options: ``warmup`` and ``duration`` (seconds of each throughput phase), ``sequential``
(writes in the sequential phase), ``nodes``.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from bench.common import latency_summary


class Window:
    """Keeps ``size`` operations in flight: ``submit(done)`` starts one and must arrange
    for ``done()`` to be called (on any thread) when it completes."""

    def __init__(self, size: int) -> None:
        self.slots = threading.Semaphore(size)
        self.completed = 0
        self.lock = threading.Lock()
        self.cpu_per_op_us = 0.0

    def done(self) -> None:
        with self.lock:
            self.completed += 1
        self.slots.release()

    def run(
        self, submit: Callable[[Callable[[], None]], None], warmup: float, duration: float
    ) -> float:
        """Submit for ``duration`` seconds (after a warm-up); return completions/second."""
        end_warmup = time.monotonic() + warmup
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


class _Notify:
    """A reply that calls back when answered (no thread waits per request): for the Pykka
    chain, and as a :class:`pykka_raft.Reply` for Raft writes. Counts failures."""

    failures = 0

    def __init__(self, done: Callable[[], None]) -> None:
        self.done = done

    def set(self, value: Any = None) -> None:
        self.done()

    def set_exception(self, error: Any = None) -> None:
        _Notify.failures += 1
        print(f"write failed: {error!r}", file=sys.stderr)
        self.done()


def _chain_ask(first: Any) -> None:
    future = pykka.ThreadingFuture()  # type: ignore[var-annotated]
    first.tell((1, future))
    future.get(timeout=10)


def bench_pykka(options: dict[str, Any]) -> dict[str, Any]:
    third = _Hop.start(None)
    second = _Hop.start(third)
    first = _Hop.start(second)
    try:
        window = Window(100)

        def submit(done: Callable[[], None]) -> None:
            first.tell((1, _Notify(done)))

        chain_rate = window.run(submit, options["warmup"], options["duration"])
        count = int(options["sequential"])
        single = sequential(lambda: first.ask(1), count)
        chain = sequential(lambda: _chain_ask(first), count)
        return {
            "chain3_inflight100_per_s": chain_rate,
            "cpu_us_per_round_trip": window.cpu_per_op_us,
            "sequential_ask": latency_summary(single),
            "sequential_chain3": latency_summary(chain),
            "peak_rss_mib": peak_rss_mib(),
        }
    finally:
        pykka.ActorRegistry.stop_all()


# --- pykka_raft ---------------------------------------------------------------------------


def bench_pykka_raft(options: dict[str, Any]) -> dict[str, Any]:
    from bench.cluster import TIMERS
    from bench.node import digest
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
    config = Config(
        election_timeout_min=TIMERS["election_min_ms"],
        election_timeout_max=TIMERS["election_max_ms"],
        heartbeat_interval=TIMERS["heartbeat_ms"],
    )
    router = RaftRouter.start()
    hub = MetricsHub()
    nodes, storages = {}, {}
    for node_id in range(1, n + 1):
        storages[node_id] = MemStore.start(KeyValueStateMachine(keep_history=False))
        nodes[node_id] = Raft.start(node_id, config, router, storages[node_id], hub)
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

        results: dict[str, Any] = {"nodes": n}
        for name, size in (("10B", 10), ("1KiB", 1024)):
            window = Window(256)
            results[f"throughput_{name}_per_s"] = window.run(
                submitter("x" * size), options["warmup"], options["duration"]
            )
            results[f"cpu_us_per_write_{name}"] = window.cpu_per_op_us
        # The baseline, measured here, right before, under the same conditions: one
        # sequential ask to an idle actor of this process.
        results["sequential_ask_baseline"] = baseline_ask()
        results["sequential"] = latency_summary(
            sequential(
                lambda: leader.ask(
                    ClientPayload.new(Put("seq", "x" * 10), ResponseMode.APPLIED), timeout=10
                ),
                int(options["sequential"]),
            )
        )
        # A healthy run has none: the leader was never deposed under load.
        end_term = max(m.current_term for m in hub.snapshot().values())
        results["elections_during_run"] = end_term - start_term
        results["failed_writes"] = _Notify.failures
        results["state_machines"] = _converge(hub, storages, digest)
        results["peak_rss_mib"] = peak_rss_mib()
        return results
    finally:
        pykka.ActorRegistry.stop_all()


def _converge(hub: Any, storages: dict[int, Any], digest: Any) -> dict[str, Any]:
    """Wait until every node applied the same index; then compare the state machines."""
    start = time.monotonic()
    while time.monotonic() - start < 20:
        applied = {m.last_applied for m in hub.snapshot().values()}
        if len(applied) == 1:
            digests = {
                digest(s.proxy().dump_state_machine().get(timeout=30)) for s in storages.values()
            }
            applied_after = {m.last_applied for m in hub.snapshot().values()}
            if applied_after == applied:
                return {"identical": len(digests) == 1, "last_applied": applied.pop()}
        time.sleep(0.05)  # followers learn the commit index with the next heartbeat
    return {"identical": False, "last_applied": None}


GROUPS = {"pykka": bench_pykka, "pykka_raft": bench_pykka_raft}


def main() -> None:
    group, options = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    options = {"warmup": 0.5, "duration": 3.0, "sequential": 400, **options}
    dump = None
    if options.get("profile"):  # every actor's thread under cProfile (bench.profiling)
        from bench.profiling import profile_threads

        dump = profile_threads(options["profile"])
    result = GROUPS[group](options)
    if dump is not None:
        dump()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
