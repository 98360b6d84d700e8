"""Seeded chaos runs: a real cluster of actors under faults, checked for safety and
linearizability.

One run starts a cluster of :class:`~pykka_raft.testing.crash.CrashableRaft` nodes behind a
:class:`~pykka_raft.testing.faultnet.FaultNetwork`, each on the storage of a
:class:`~pykka_raft.testing.plugs.StoragePlug` (``MemStore`` by default, ``SqliteStore`` or
your own), lets client threads read, write and compare-and-set a few keys
(:mod:`~pykka_raft.testing.chaos_workload`; arbitrary nested values in the values mode)
while a nemesis injects faults (:mod:`~pykka_raft.testing.chaos_nemesis`: partitions, an
isolated leader, crashes and restarts, lossy and slow links, late replays of old messages,
and optionally membership changes: adds, removals, learners, promotions, swaps, and
leadership transfers and triggered elections), heals
everything, checks that the cluster elects a leader and commits a write within a bounded
number of election timeouts, reads every key back, and finally checks every safety
monitor over the storages' dumps, that every acknowledged write and membership change
survived, and that the client history is linearizable
(:mod:`~pykka_raft.testing.chaos_checks`).

Everything the nemesis and the clients decide is drawn from the seed, so a failing seed
replays the same fault schedule and workload (thread timing still varies from run to
run). Run many seeds from the command line::

    python -m pykka_raft.testing.chaos --seeds 500
    python -m pykka_raft.testing.chaos --seeds 50 --storage sqlite --values
    python -m pykka_raft.testing.chaos --seeds 50 --no-reads   # every read through the log

The command line reads without the log (``--reads``, :attr:`ChaosOptions.reads`) unless told
otherwise; ``ChaosOptions`` itself defaults to reads through the log.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import attrs

from pykka_raft.admin import ConfigChangeResponse
from pykka_raft.messages import MembershipConfig
from pykka_raft.testing.chaos_checks import (
    admin_calls_answered,
    admin_text,
    check_liveness,
    check_safety,
    converge,
    liveness_bound,
    outcome_text,
)
from pykka_raft.testing.chaos_nemesis import Nemesis
from pykka_raft.testing.chaos_options import DEFAULT_CONFIG, ChaosOptions, ChaosReport
from pykka_raft.testing.chaos_workload import Workload
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.faultnet import FaultNetwork
from pykka_raft.testing.plugs import StoragePlug, memory_storage, sqlite_storage
from pykka_raft.testing.seeds import run_seeds, seed_parser

__all__ = ["DEFAULT_CONFIG", "STORAGES", "ChaosOptions", "ChaosReport", "main", "run_chaos"]

STORAGES = {"memory": memory_storage, "sqlite": sqlite_storage}
"""The storages the command line can name (``--storage``)."""


def run_chaos(seed: int, options: ChaosOptions | None = None) -> ChaosReport:
    """Run one seeded chaos run and report what it found (it never raises for a finding)."""
    options = options or ChaosOptions()
    storage = options.storage if options.storage is not None else memory_storage()
    name = storage.name if isinstance(storage, StoragePlug) else "custom"
    report = ChaosReport(seed, options, storage=name)
    rng = random.Random(seed)
    started = time.monotonic()
    network = FaultNetwork.start(seed=seed)
    members = range(1, options.nodes + 1)
    spares = range(options.nodes + 1, options.nodes + 1 + options.spares)
    cluster = Cluster(
        [*members, *(spares if options.membership else ())],
        options.config,
        seed,
        storage,
        network=network,
        tcp=options.tcp,
    )
    try:
        cluster.initialize(members)
        cluster.leader(timeout=30)
        workload = Workload(cluster, seed, options)
        nemesis = Nemesis(cluster, rng, report)
        workload.start()
        nemesis.run(workload.stop)
        nemesis.heal_all()
        check_liveness(cluster, report)
        workload.finish(timeout=options.op_timeout * 2 + 5)
        outcomes = nemesis.change_outcomes()
        through = max(
            (r.index for _, r in outcomes if isinstance(r, ConfigChangeResponse)), default=0
        )
        if report.ok:
            final = converge(cluster, report, through)
            report.problems += workload.read_back(liveness_bound(cluster), final.all_nodes())
        else:
            final = MembershipConfig(tuple(cluster.nodes))
        report.ops = workload.recorder.ops()
        report.stale_reads = len(workload.stale)
        report.problems += workload.read_problems()
        report.timeline += [f"  -> {text}: {outcome_text(result)}" for text, result in outcomes]
        admin = nemesis.admin_outcomes()
        report.timeline += [
            f"  -> {c.text}: {admin_text(c, answered, result)}" for c, answered, result in admin
        ]
        report.problems += admin_calls_answered(admin, cluster.hub.history)
        check_safety(cluster, report, outcomes, final)
    except Exception as exc:  # a harness failure is a finding too, with the seed
        report.problems.append(f"run failed: {exc!r}")
    finally:
        cluster.shutdown()
        report.elapsed = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run seeds, show progress, print a summary; exit 1 if any failed."""
    parser = seed_parser(__doc__)
    parser.add_argument(
        "--membership", action="store_true", help="also change the membership during the run"
    )
    parser.add_argument(
        "--tcp", action="store_true", help="carry RPCs over loopback TCP (the [net] extra)"
    )
    parser.add_argument(
        "--values", action="store_true", help="write arbitrary nested application values"
    )
    parser.add_argument(
        "--admin",
        action="store_true",
        help="also ask for leadership transfers and elections during the run",
    )
    parser.add_argument(
        "--reads",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="most gets bypass the log as ClientRead (READ_INDEX, LEASE, STALE); on unless "
        "--no-reads",
    )
    parser.add_argument(
        "--storage",
        choices=sorted(STORAGES),
        default="memory",
        help="the nodes' storage (sqlite: one temporary directory per node)",
    )
    args = parser.parse_args(argv)
    options = ChaosOptions(
        nodes=args.nodes,
        duration=args.duration,
        membership=args.membership,
        tcp=args.tcp,
        values=args.values,
        reads=args.reads,
        admin=args.admin,
    )
    # A new storage plug per run: nothing kept across seeds.
    return run_seeds(
        args,
        lambda seed: run_chaos(seed, attrs.evolve(options, storage=STORAGES[args.storage]())),
    )


if __name__ == "__main__":
    sys.exit(main())
