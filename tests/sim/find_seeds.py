"""Search simulation seeds for a situation: a note (see ``sim_cluster.NOTES``), a snapshot
statistic, or a failing check (a known bug).

When a change in the core or the harness moves a pinned regression seed away from the
situation it was written for, its test fails and names this tool::

    .venv/bin/python tests/sim/find_seeds.py --kind membership --snapshots \\
        --note install-sweeps-dead-write --first 1000 --count 500

prints every seed of the range whose run goes through the situation (with the first
occurrence), so that the test can pin one of them. Several ``--note`` look for each in the
same runs (a seed for each: one search for several regressions of the same kind);
``--stat KEY`` for a positive ``Simulation.summary()`` entry, alone or required besides
the notes; ``--fails CHECK`` looks for runs that fail with a check instead (e.g.
``liveness`` for a known bug). ``--fault-ms`` lengthens the faulty phase, and ``--profile
NAME`` runs one of ``sim_cluster.NAMED_PROFILES`` instead of the seed's own fault mix.
``--pre-vote``, ``--admin-ops`` and ``--one-way`` turn on the opt-in parts of a run (the
library's default elections with reads; ``TransferLeadership`` and ``TriggerElection``
calls; one-way cuts and chains), and ``--skip CHECK`` (repeat) turns a check off, to look
past a known bug::

    .venv/bin/python tests/sim/find_seeds.py --kind membership --admin-ops --one-way \
        --fault-ms 15000 --skip config-during-transfer --count 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from sim_cluster import (
    NAMED_PROFILES,
    NOTES,
    Simulation,
    SimulationFailure,
    run_membership_simulation,
    run_simulation,
)


def run(
    kind: str,
    seed: int,
    snapshots: bool | None,
    fault_ms: int | None,
    profile: str | None,
    **options: Any,
) -> Simulation:
    """One run of ``kind`` (``n3``, ``n5`` or ``membership``); ``options``: ``pre_vote``,
    ``admin_ops``, ``one_way``, ``damage``, ``skip_checks``."""
    if kind == "membership":
        return run_membership_simulation(seed, snapshots=snapshots, fault_ms=fault_ms, **options)
    faults = NAMED_PROFILES[profile] if profile else None
    nodes = int(kind[1:])
    return run_simulation(
        seed, nodes, profile=faults, snapshots=snapshots, fault_ms=fault_ms, **options
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("n3", "n5", "membership"), default="n3")
    parser.add_argument("--snapshots", action="store_true", help="force snapshots on")
    parser.add_argument("--no-snapshots", action="store_true", help="force snapshots off")
    parser.add_argument(
        "--note", action="append", choices=sorted(NOTES), help="a situation of NOTES (repeat)"
    )
    parser.add_argument("--stat", help="a Simulation.summary() key that must be positive")
    parser.add_argument("--fails", help="the check a failing run must fail with")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--fault-ms", type=int)
    parser.add_argument("--profile", choices=sorted(NAMED_PROFILES), help="a named fault mix")
    parser.add_argument(
        "--stop-after", type=int, default=5, help="stop after N seeds found (for each note)"
    )
    parser.add_argument("--pre-vote", action="store_true", help="PreVote, stickiness, reads")
    parser.add_argument("--admin-ops", action="store_true", help="transfers and elections")
    parser.add_argument("--one-way", action="store_true", help="one-way cuts and chains")
    parser.add_argument("--damage", action="store_true", help="flipped bits in snapshot chunks")
    parser.add_argument("--skip", action="append", default=[], help="a check to turn off")
    args = parser.parse_args(argv)
    options = {
        "pre_vote": args.pre_vote,
        "admin_ops": args.admin_ops,
        "one_way": args.one_way,
        "damage": args.damage,
        "skip_checks": frozenset(args.skip),
    }
    snapshots = True if args.snapshots else False if args.no_snapshots else None
    wanted = args.note or ([None] if args.stat else [])
    found = dict.fromkeys(wanted, 0)
    failed = 0
    for seed in range(args.first, args.first + args.count):
        try:
            sim = run(args.kind, seed, snapshots, args.fault_ms, args.profile, **options)
        except SimulationFailure as exc:
            if args.fails and exc.check == args.fails:
                print(f"seed {seed}: fails [{exc.check}]", flush=True)
                failed += 1
            elif not args.fails:
                print(f"seed {seed}: fails [{exc.check}] (not searched for)", flush=True)
            if args.fails and failed >= args.stop_after:
                break
            continue
        stat = sim.summary().get(args.stat, 0) if args.stat else None
        if stat is not None and stat <= 0:
            continue
        for note in wanted:
            if found[note] >= args.stop_after or (note is not None and not sim.notes[note]):
                continue
            found[note] += 1
            also = f"{args.stat}={stat}" if stat else ""
            if note is None:
                print(f"seed {seed}: {also}", flush=True)
            else:
                extra = f" ({also})" if also else ""
                print(f"seed {seed}: {note}: {sim.first_note[note]}{extra}", flush=True)
        if wanted and all(count >= args.stop_after for count in found.values()):
            break
    return 0 if failed or any(found.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
