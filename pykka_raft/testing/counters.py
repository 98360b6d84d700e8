"""Seeded counter runs: increments resent under crashes and partitions, applied exactly once.

An increment is the write that must not be applied twice: resending one whose answer was
lost would count it twice without client sessions. One run starts a cluster of
:class:`~pykka_raft.testing.crash.CrashableRaft` nodes behind a
:class:`~pykka_raft.testing.faultnet.FaultNetwork`, each applying :class:`Increment`
entries to a :class:`Counters` state machine inside a
:class:`~pykka_raft.sessions.SessionStateMachine`. Worker threads share two
:class:`~pykka_raft.client.RaftClient` objects and increment a few counters, each
increment carrying a unique tag, while a nemesis crashes and restarts nodes, partitions
the network, isolates the leader and makes links lossy, slow and duplicating. Then
everything heals and the run checks, from the applied history every node recorded:

* no tag was applied twice, on any node (the state machine's own record, kept apart from
  the session layer's);
* every acknowledged increment was applied, and no increment reported "not applied" was;
* so every counter's final value lies between the increments acknowledged and those plus
  the ones still unknown, and equals the number of tags applied to it;
* the nodes hold the same counters and the same session table, and Raft's safety
  monitors (:mod:`pykka_raft.testing.monitors`) hold.

With ``naive`` the workers resend unknown increments without sessions, as a client
without them would: the same checks then find the increments applied twice (the control
that shows the checks can fail). Everything the nemesis and the workers decide is drawn
from the seed; thread timing still varies between runs of one seed. Run many seeds::

    python -m pykka_raft.testing.counters --seeds 50

This module is the runner and its command line; the parts are
:mod:`~pykka_raft.testing.counters_options` (options and report),
:mod:`~pykka_raft.testing.counters_workload` (the state machine and the workers),
:mod:`~pykka_raft.testing.counters_nemesis` and :mod:`~pykka_raft.testing.counters_checks`.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from pykka_raft.sessions import SessionStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.counters_checks import check_counters, final_write
from pykka_raft.testing.counters_nemesis import Nemesis

# DEFAULT_CONFIG and Attempted stay importable from here, as before the split.
from pykka_raft.testing.counters_options import DEFAULT_CONFIG as DEFAULT_CONFIG
from pykka_raft.testing.counters_options import Attempted as Attempted
from pykka_raft.testing.counters_options import CounterOptions, CounterReport
from pykka_raft.testing.counters_workload import Counters, Increment, Workers
from pykka_raft.testing.crash import CrashableMemStore
from pykka_raft.testing.faultnet import FaultNetwork
from pykka_raft.testing.seeds import run_seeds, seed_parser
from pykka_raft.types import NodeId

__all__ = [
    "CounterOptions",
    "CounterReport",
    "Counters",
    "Increment",
    "main",
    "run_counters",
]


# --- a run ---------------------------------------------------------------------------------


def _cluster(seed: int, options: CounterOptions) -> Cluster:
    """A cluster whose nodes run Counters inside a SessionStateMachine (history on)."""
    holder: list[Cluster] = []

    def storage(node_id: NodeId, data: MemStoreData) -> Any:
        if not isinstance(data.state_machine, SessionStateMachine):
            data.state_machine = SessionStateMachine(Counters(), keep_history=True)
        cluster = holder[0]
        return CrashableMemStore.start(
            data=data,
            power=cluster.power[node_id],
            hard_states=cluster.hard_states.setdefault(node_id, []),
        )

    cluster = Cluster([], options.config, seed, storage, network=FaultNetwork.start(seed=seed))
    holder.append(cluster)
    for node_id in range(1, options.nodes + 1):
        cluster.start_node(node_id)
    return cluster


def run_counters(seed: int, options: CounterOptions | None = None) -> CounterReport:
    """Run one seeded counter run and report what it found (it never raises for a finding)."""
    options = options or CounterOptions()
    report = CounterReport(seed, options)
    started = time.monotonic()
    cluster = _cluster(seed, options)
    workers: Workers | None = None
    try:
        cluster.initialize()
        cluster.leader(timeout=30)
        workers = Workers(cluster, seed, options)
        nemesis = Nemesis(cluster, random.Random(seed), report)
        workers.start()
        nemesis.run(workers.stop)
        nemesis.heal_all()
        bound = 20 * options.config.election_timeout_max / 1000
        workers.finish(timeout=options.op_timeout + bound)
        report.increments = list(workers.done)
        report.resends = workers.resends
        last = final_write(cluster, workers.clients[0], bound, report)
        if last is not None:
            cluster.wait_applied(last, timeout=bound)
            check_counters(cluster, report)
    except Exception as exc:  # a harness failure is a finding too, with the seed
        report.problems.append(f"run failed: {exc!r}")
    finally:
        if workers is not None:
            workers.stop.set()
        cluster.shutdown()
        report.elapsed = time.monotonic() - started
    return report


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: run seeds, show progress, print a summary; exit 1 if any failed."""
    parser = seed_parser(__doc__)
    parser.add_argument(
        "--op-timeout", type=float, default=1.0, help="each increment's deadline, seconds"
    )
    parser.add_argument(
        "--attempt-timeout", type=float, default=0.4, help="seconds before a resend"
    )
    parser.add_argument(
        "--naive", action="store_true", help="resend without sessions (expected to fail)"
    )
    args = parser.parse_args(argv)
    options = CounterOptions(
        nodes=args.nodes,
        duration=args.duration,
        op_timeout=args.op_timeout,
        attempt_timeout=args.attempt_timeout,
        naive=args.naive,
    )
    return run_seeds(args, lambda seed: run_counters(seed, options))


if __name__ == "__main__":
    sys.exit(main())
