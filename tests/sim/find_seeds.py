"""Search simulation seeds for a situation: a note (see ``sim_cluster.NOTES``), a snapshot
statistic, or a failing check (a known bug).

When a change in the core or the harness moves a pinned regression seed away from the
situation it was written for, its test fails and names this tool::

    .venv/bin/python tests/sim/find_seeds.py --kind membership --snapshots \\
        --note install-sweeps-dead-write --first 1000 --count 500

prints every seed of the range whose run goes through the situation (with the first
occurrence), so that the test can pin one of them. ``--fails CHECK`` looks for runs that
fail with a check instead (e.g. ``liveness`` for a known bug); ``--stat KEY`` for a
positive ``Simulation.summary()`` entry. ``--fault-ms`` lengthens the faulty phase.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sim_cluster import (
    NOTES,
    Simulation,
    SimulationFailure,
    run_membership_simulation,
    run_simulation,
)


def run(kind: str, seed: int, snapshots: bool | None, fault_ms: int | None) -> Simulation:
    """One run of ``kind`` (``n3``, ``n5`` or ``membership``)."""
    if kind == "membership":
        return run_membership_simulation(seed, snapshots=snapshots, fault_ms=fault_ms)
    return run_simulation(seed, int(kind[1:]), snapshots=snapshots, fault_ms=fault_ms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("n3", "n5", "membership"), default="n3")
    parser.add_argument("--snapshots", action="store_true", help="force snapshots on")
    parser.add_argument("--no-snapshots", action="store_true", help="force snapshots off")
    parser.add_argument("--note", choices=sorted(NOTES), help="a situation of NOTES")
    parser.add_argument("--stat", help="a Simulation.summary() key that must be positive")
    parser.add_argument("--fails", help="the check a failing run must fail with")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--fault-ms", type=int)
    parser.add_argument("--stop-after", type=int, default=5, help="stop after N seeds found")
    args = parser.parse_args(argv)
    snapshots = True if args.snapshots else False if args.no_snapshots else None
    found = 0
    for seed in range(args.first, args.first + args.count):
        try:
            sim = run(args.kind, seed, snapshots, args.fault_ms)
        except SimulationFailure as exc:
            if args.fails and exc.check == args.fails:
                print(f"seed {seed}: fails [{exc.check}]", flush=True)
                found += 1
            elif not args.fails:
                print(f"seed {seed}: fails [{exc.check}] (not searched for)", flush=True)
        else:
            if args.note and sim.notes[args.note]:
                print(f"seed {seed}: {sim.first_note[args.note]}", flush=True)
                found += 1
            elif args.stat and sim.summary().get(args.stat, 0) > 0:
                print(f"seed {seed}: {args.stat}={sim.summary()[args.stat]}", flush=True)
                found += 1
        if found >= args.stop_after:
            break
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
