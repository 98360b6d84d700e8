"""The command line shared by the seeded runners (``chaos``, ``counters``): which seeds to
run, a progress line per run, the failed runs in full, and a summary with their seeds."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Protocol


class SeedReport(Protocol):
    """What a runner's report offers the command line."""

    seed: int

    @property
    def ok(self) -> bool: ...

    def summary(self) -> str: ...

    def render(self) -> str: ...


def seed_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the options every seeded runner takes (add the runner's own)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="run (replay) just this seed")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of faults")
    return parser


def run_seeds(args: argparse.Namespace, run: Callable[[int], SeedReport]) -> int:
    """Run the seeds ``args`` names with ``run``; print progress, every failed run in full
    and a summary. Returns the exit status: 1 if any run failed."""
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    failed: list[SeedReport] = []
    started = time.monotonic()
    for count, seed in enumerate(seeds, 1):
        report = run(seed)
        print(f"[{count}/{len(seeds)}] {report.summary()}", flush=True)
        if not report.ok:
            failed.append(report)
            print(report.render(), flush=True)
    print(
        f"\n{len(seeds)} seeds in {time.monotonic() - started:.0f}s: "
        f"{len(seeds) - len(failed)} passed, {len(failed)} failed"
        + (f" (seeds {', '.join(str(r.seed) for r in failed)})" if failed else "")
    )
    return 1 if failed else 0
