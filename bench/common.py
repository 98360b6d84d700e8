"""Helpers shared by the benchmark processes: percentiles, the CPU-speed probe, what
``/proc`` says about a process (CPU time, resident memory), and the two ZeroMQ loop
pieces the node processes share (a wake-up pipe, draining a socket).

Nothing here imports pykka_raft or PySyncObj, so the client process stays small.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank, in the values' unit."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds, and the count."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "count": len(ms),
    }


def spread(values: Iterable[float | None]) -> dict[str, Any]:
    """Median, lowest and highest of the values that exist (``None`` ones are skipped)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


PROBE_LOOPS = 300_000


def cpu_probe() -> float:
    """Milliseconds a fixed pure-Python loop takes on this process's core right now.

    Run before each measurement: a shared machine that slows down (another job, thermal
    limits, a noisy neighbour) shows as a larger probe, next to the figures it slowed.
    The best of three short tries, so one preemption does not count as a slow machine.
    """
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(PROBE_LOOPS):
            total += i * i % 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds process ``pid`` used, from ``/proc/PID/stat``: user and system time of
    all its threads (those that ended too) and of the children it waited for (PySyncObj
    forks a child to write its log compaction). In clock ticks (10 ms): measure phases
    of a second or more."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the command name, 0-based: utime 11, stime 12, cutime 13, cstime 14 (man 5 proc).
    return sum(int(x) for x in fields[11:15]) / CLOCK_TICKS


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory now (``VmRSS``) and at its peak (``VmHWM``) in MiB, from /proc."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out["rss" if name == "VmRSS" else "peak"] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def thread_stats(pid: int) -> dict[int, tuple[float, int]]:
    """For each live thread of ``pid``: CPU seconds it ran (``schedstat``, nanosecond
    resolution) and the context switches it made (voluntary and involuntary: each is a
    wait for a lock, a socket or the interpreter lock, or a preemption)."""
    out: dict[int, tuple[float, int]] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ns = int(f.read().split()[0])
            switches = 0
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(task)] = (ns / 1e9, switches)
    return out


def _thread_kind(name: str) -> str:
    """A thread's name without the numbers that differ from run to run: ``Raft-2`` and
    ``raft-net-3`` become ``Raft`` and ``raft-net``, ``Thread-1 (_autoTickThread)``
    becomes ``_autoTickThread``."""
    name = re.sub(r"^Thread-\d+ \((.*)\)$", r"\1", name)
    return re.sub(r"-\d+$", "", name)


def per_thread(
    before: dict[int, tuple[float, int]],
    after: dict[int, tuple[float, int]],
    names: dict[int, str],
    writes: int,
) -> dict[str, list[float]]:
    """``{thread name: [CPU µs per write, context switches per write]}`` between two
    :func:`thread_stats`, threads of the same name added up (threads without a Python
    name are ZeroMQ's own I/O threads)."""
    out: dict[str, list[float]] = {}
    for tid, (cpu, switches) in after.items():
        cpu0, switches0 = before.get(tid, (0.0, 0))
        name = _thread_kind(names.get(tid, "ZeroMQ I/O (C)"))
        entry = out.setdefault(name, [0.0, 0.0])
        entry[0] += (cpu - cpu0) / max(1, writes) * 1e6
        entry[1] += (switches - switches0) / max(1, writes)
    return {
        k: [round(v[0], 1), round(v[1], 2)]
        for k, v in sorted(out.items(), key=lambda kv: -kv[1][0])
    }


class WakePipe:
    """Wakes a thread that polls :attr:`r`: other threads call :meth:`wake` after queueing
    work (one byte per burst), the woken thread calls :meth:`drain` before taking it."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        self.pending = False

    def wake(self) -> None:
        if not self.pending:
            self.pending = True
            os.write(self.w, b"!")

    def drain(self) -> None:
        # Drain first, then clear: a waker that finds the flag clear writes a new byte,
        # which the next poll sees.
        with contextlib.suppress(BlockingIOError):
            while os.read(self.r, 4096):
                pass
        self.pending = False


def received(sock: zmq.Socket[Any], multipart: bool = False) -> Iterator[Any]:
    """Every message ``sock`` holds now, without blocking."""
    recv = sock.recv_multipart if multipart else sock.recv
    while True:
        try:
            yield recv(zmq.NOBLOCK)
        except zmq.Again:
            return
