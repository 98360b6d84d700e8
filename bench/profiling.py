"""cProfile for every thread of a benchmark process (cProfile profiles one thread)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable


def profile_threads(path: str) -> Callable[[], None]:
    """Profile every thread started from now on (not the calling one: it only starts the
    node and reads commands); the returned function writes the combined statistics to
    ``path`` (``pstats`` format).

    The profiler slows Python code down several times: read shares of the time, not times.
    """
    import cProfile
    import pstats

    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        # Thread CPU time as the clock: time spent blocked (on a lock, a socket, or the
        # interpreter lock held by another thread) does not count, so the figures are work.
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]

    def dump() -> None:
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            with contextlib.suppress(TypeError):  # a profile that saw nothing
                stats.add(profile)
        stats.dump_stats(path)

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


def print_summary(name: str, path: str) -> None:
    s = summarize(path)
    print(f"\n===== {name}: {s['busy_s']:.2f} s busy under the profiler (waits left out)")
    for category, share in s["shares"].items():  # type: ignore[attr-defined]
        print(f"  {share * 100:5.1f}%  {category}")
    print("  top functions by own time:")
    for label, share in s["top"]:  # type: ignore[attr-defined]
        print(f"  {share * 100:5.1f}%  {label}")
