"""cProfile for every thread of a benchmark process (cProfile profiles one thread)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable


def profile_threads(path: str) -> Callable[[], None]:
    """Profile every thread started from now on (not the calling one: it only starts the
    node and reads commands); the returned function writes the statistics of all threads
    to ``path`` and those of each kind of thread (``Raft``, ``raft-net``, ``gateway``...)
    to ``path.<kind>`` (``pstats`` format).

    The profiler slows Python code down several times: read shares of the time, not times.
    """
    import cProfile
    import pstats

    from bench.common import _thread_kind

    profiles: list[tuple[str, cProfile.Profile]] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        # Thread CPU time as the clock: time spent blocked (on a lock, a socket, or the
        # interpreter lock held by another thread) does not count, so the figures are work.
        profile = cProfile.Profile(time.thread_time)
        profiles.append((self.name, profile))
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]

    def combined(items: list[cProfile.Profile]) -> pstats.Stats | None:
        stats = None
        for profile in items:
            with contextlib.suppress(TypeError):  # a profile that saw nothing
                if stats is None:
                    stats = pstats.Stats(profile)
                else:
                    stats.add(profile)
        return stats

    def dump() -> None:
        kinds: dict[str, list[cProfile.Profile]] = {}
        for name, profile in profiles:
            kinds.setdefault(_thread_kind(name), []).append(profile)
        everything = combined([p for _, p in profiles])
        if everything is not None:
            everything.dump_stats(path)
        for kind, items in kinds.items():
            stats = combined(items)
            if stats is not None:
                stats.dump_stats(f"{path}.{kind}")

    return dump


WAITS = (
    "acquire' of '_thread.lock",
    "acquire' of '_thread.RLock",
    "poll.py:80(poll)",
    "{built-in method time.sleep}",
    "{built-in method select.",
    "{method 'poll' of 'select.",
    "{method 'wait' of",
    "{built-in method posix.read}",
)
"""Calls that wait (for a lock, a socket, the GIL): not counted as work."""

CATEGORIES = (
    ("codec (cattrs, msgpack framing)", ("pykka_raft/codec.py", "cattrs", "msgpack", "frames.py")),
    ("network actor and I/O thread", ("pykka_raft/network/",)),
    ("ZeroMQ calls (+ GIL re-acquire)", ("zmq/",)),
    ("core (protocol)", ("pykka_raft/core/",)),
    ("Raft actor shell and driver", ("pykka_raft/actor/", "pykka_raft/driver.py")),
    ("storage and state machine", ("pykka_raft/storage/", "pykka_raft/statemachine.py", "sqlite3")),
    ("messages (attrs)", ("pykka_raft/messages.py", "attrs generated", "attr/")),
    ("Pykka", ("pykka/",)),
    ("benchmark gateway", ("bench/",)),
    ("PySyncObj", ("pysyncobj/",)),
)


def summarize(path: str, top: int = 15) -> dict[str, object]:
    """Where a process spent its time, waits left out: shares by category and the
    functions with the most own time (``tottime``)."""
    import pstats

    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_, _, tottime, _, _) in stats.items():
        label = f"{file}:{line}({name})"
        if any(w in label for w in WAITS):
            continue
        rows.append((tottime, label))
    busy = sum(t for t, _ in rows) or 1.0
    shares: dict[str, float] = {}
    for tottime, label in rows:
        category = next(
            (c for c, needles in CATEGORIES if any(n in label for n in needles)), "other"
        )
        shares[category] = shares.get(category, 0.0) + tottime / busy
    rows.sort(reverse=True)
    return {
        "busy_s": busy,
        "shares": dict(sorted(shares.items(), key=lambda kv: -kv[1])),
        "top": [
            (label.split("site-packages/")[-1].split("bench2/")[-1], t / busy)
            for t, label in rows[:top]
        ],
    }


def print_summary(name: str, path: str, top: int = 15) -> None:
    """The process's shares by category, then each thread's busiest functions."""
    import glob

    s = summarize(path, top)
    print(f"\n===== {name}: {s['busy_s']:.2f} s busy under the profiler (waits left out)")
    for category, share in s["shares"].items():  # type: ignore[attr-defined]
        print(f"  {share * 100:5.1f}%  {category}")
    for thread_path in sorted(glob.glob(glob.escape(path) + ".*")):
        t = summarize(thread_path, top)
        kind = thread_path[len(path) + 1 :]
        print(f"  --- thread {kind}: {t['busy_s'] / s['busy_s'] * 100:.0f}% of the process")  # type: ignore[operator]
        for label, share in t["top"]:  # type: ignore[attr-defined]
            print(f"    {share * 100:5.1f}%  {label}")
