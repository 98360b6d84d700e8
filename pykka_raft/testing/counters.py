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
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from pykka_raft.client import Outcome, RaftClient, WriteResult
from pykka_raft.codec import decode, encode, register_app_type
from pykka_raft.config import Config, SnapshotPolicy
from pykka_raft.errors import ApplicationError
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.metrics import State
from pykka_raft.network.router import Isolate
from pykka_raft.sessions import SessionStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.crash import CrashableMemStore
from pykka_raft.testing.faultnet import FaultNetwork, Heal, LinkRule, Partition, SetDefaultRule
from pykka_raft.testing.monitors import check_cluster_data
from pykka_raft.types import NodeId

__all__ = [
    "CounterOptions",
    "CounterReport",
    "Counters",
    "Increment",
    "main",
    "run_counters",
]

DEFAULT_CONFIG = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_policy=SnapshotPolicy.every(150),
    snapshot_max_chunk_size=4096,
)


# --- the state machine ---------------------------------------------------------------------


@register_app_type
@attrs.frozen
class Increment:
    """Add one to ``counter``; ``tag`` names this increment (unique per increment, the
    same on every resend). Responds with the counter's new value."""

    counter: str
    tag: str


class Counters:
    """Counters driven by :class:`Increment`, recording every tag it applies.

    ``tags`` (``(index, tag)`` in apply order) is the record the checks read: kept by
    the state machine itself, apart from the session layer in front of it.
    """

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.tags: list[tuple[int, str]] = []

    def apply(self, entry: Entry) -> Any:
        payload = entry.payload
        if not isinstance(payload, EntryNormal):
            return None
        increment = payload.data
        if not isinstance(increment, Increment):
            raise ApplicationError(TypeError(f"not an Increment: {increment!r}"))
        value = self.data.get(increment.counter, 0) + 1
        self.data[increment.counter] = value
        self.tags.append((entry.index, increment.tag))
        return value

    def validate(self, entry: Entry) -> None:
        payload = entry.payload
        if isinstance(payload, EntryNormal) and not isinstance(payload.data, Increment):
            raise TypeError(f"expected an Increment, got {type(payload.data).__name__}")

    def snapshot(self) -> Callable[[], bytes]:
        doc = {"data": dict(self.data), "tags": list(self.tags)}
        return lambda: encode(doc, Any)

    def restore(self, data: bytes) -> None:
        doc: Any = decode(data, Any)
        self.data = dict(doc["data"])
        self.tags = [(index, tag) for index, tag in doc["tags"]]


# --- options and report --------------------------------------------------------------------


@attrs.frozen
class CounterOptions:
    """What one run does.

    Attributes:
        nodes: cluster size.
        duration: seconds of faults (the run takes a few seconds more to heal and check).
        workers: threads incrementing (they share two clients).
        counters: how many counters they increment.
        op_timeout: each increment's deadline: past it, an unanswered one is "unknown".
        attempt_timeout: how long one attempt waits before the client resends.
        crashes: whether the nemesis crashes and restarts nodes.
        naive: resend unknown increments without sessions (the control run).
        config: the nodes' configuration.
    """

    nodes: int = 3
    duration: float = 4.0
    workers: int = 4
    counters: int = 3
    op_timeout: float = 1.0
    attempt_timeout: float = 0.4
    crashes: bool = True
    naive: bool = False
    config: Config = DEFAULT_CONFIG


@attrs.frozen
class Attempted:
    """One increment as its worker saw it."""

    counter: str
    tag: str
    outcome: Outcome
    response: Any = None


@attrs.define
class CounterReport:
    """What a run found."""

    seed: int
    options: CounterOptions
    problems: list[str] = attrs.field(factory=list)
    timeline: list[str] = attrs.field(factory=list)
    increments: list[Attempted] = attrs.field(factory=list)
    finals: dict[str, int] = attrs.field(factory=dict)
    resends: int = 0
    """Attempts that repeated an increment after an unknown outcome."""
    duplicates: int = 0
    """Session entries answered from the cache (resends whose original was applied)."""
    twice: int = 0
    """Tags applied more than once (0 unless the run is naive and the checks caught it)."""
    snapshots_installed: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def count(self, outcome: Outcome) -> int:
        """How many increments ended with ``outcome``."""
        return sum(1 for i in self.increments if i.outcome is outcome)

    def summary(self) -> str:
        """One line: the seed, the verdict and the size of the run."""
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (
            f"seed {self.seed}: {verdict}; {len(self.increments)} increments "
            f"({self.count(Outcome.APPLIED)} applied, {self.count(Outcome.NOT_APPLIED)} not "
            f"applied, {self.count(Outcome.UNKNOWN)} unknown), {self.resends} resends, "
            f"{self.duplicates} answered from the cache, {len(self.timeline)} faults, "
            f"{self.snapshots_installed} snapshot installs, {self.elapsed:.1f}s"
        )

    def render(self) -> str:
        """The summary, the replay command, the problems and the fault timeline."""
        naive = " --naive" if self.options.naive else ""
        lines = [
            self.summary(),
            f"replay: python -m pykka_raft.testing.counters --seed {self.seed}{naive}",
            "problems:",
            *(f"  - {p}" for p in self.problems),
            "fault timeline:",
            *(f"  {t}" for t in self.timeline),
        ]
        return "\n".join(lines)


# --- workers and nemesis -------------------------------------------------------------------


class _Workers:
    def __init__(self, cluster: Cluster, seed: int, options: CounterOptions) -> None:
        self.options = options
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done: list[Attempted] = []
        self.naive_resends = 0
        sessions = not options.naive
        self.clients = [
            RaftClient(
                cluster.nodes,
                timeout=options.op_timeout,
                attempt_timeout=options.attempt_timeout,
                sessions=sessions,
                rng=random.Random(seed * 31 + c),
            )
            for c in range(2)
        ]
        self.threads = [
            threading.Thread(target=self._run, args=(w, random.Random(seed * 7 + w)), daemon=True)
            for w in range(options.workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def resends(self) -> int:
        return self.naive_resends + sum(client.stats.resends for client in self.clients)

    def _run(self, worker: int, rng: random.Random) -> None:
        client = self.clients[worker % len(self.clients)]
        n = 0
        while not self.stop.is_set():
            n += 1
            increment = Increment(f"c{rng.randrange(self.options.counters)}", f"w{worker}-{n}")
            result = self._naive(client, increment) if self.options.naive else None
            if result is None:
                result = client.write(increment)
            with self.lock:
                self.done.append(
                    Attempted(increment.counter, increment.tag, result.outcome, result.response)
                )

    def _naive(self, client: RaftClient, increment: Increment) -> WriteResult:
        """Without sessions, resend whatever ended unknown, until the deadline."""
        deadline = time.monotonic() + self.options.op_timeout
        unknown: WriteResult | None = None
        while True:
            result = client.write(increment, timeout=max(0.01, deadline - time.monotonic()))
            if result.outcome is Outcome.UNKNOWN:
                unknown = result
            elif result.outcome is Outcome.APPLIED or unknown is None:
                return result
            if time.monotonic() >= deadline:
                return unknown  # an earlier copy may still be applied
            with self.lock:
                self.naive_resends += 1


class _Nemesis:
    def __init__(self, cluster: Cluster, rng: random.Random, report: CounterReport) -> None:
        self.cluster = cluster
        self.rng = rng
        self.report = report
        self.all_ids = sorted(cluster.nodes)
        self.crashed: set[NodeId] = set()
        self.start = time.monotonic()

    def note(self, text: str) -> None:
        self.report.timeline.append(f"{time.monotonic() - self.start:6.2f}s {text}")

    def run(self, stop: threading.Event) -> None:
        end = self.start + self.report.options.duration
        while time.monotonic() < end:
            # The pauses between faults are the schedule under test, not synchronization.
            if stop.wait(self.rng.uniform(0.2, 0.6)):
                return
            faults = ["partition", "isolate_leader", "links", "heal"]
            if self.report.options.crashes:
                faults += ["crash", "crash", "restart"]
            getattr(self, self.rng.choice(faults))()

    def partition(self) -> None:
        ids = list(self.all_ids)
        self.rng.shuffle(ids)
        cut = self.rng.randrange(1, len(ids))
        groups = (tuple(sorted(ids[:cut])), tuple(sorted(ids[cut:])))
        self.cluster.router.ask(Partition(groups))
        self.note(f"partition {groups[0]} | {groups[1]}")

    def isolate_leader(self) -> None:
        latest = self.cluster.hub.snapshot()
        leaders = [n for n, m in latest.items() if m.state is State.LEADER]
        if leaders and leaders[0] in self.cluster.nodes:
            self.cluster.router.ask(Isolate(leaders[0]))
            self.note(f"isolate leader {leaders[0]}")

    def links(self) -> None:
        rule = LinkRule(
            drop=self.rng.choice([0.0, 0.05, 0.2]),
            duplicate=self.rng.choice([0.0, 0.1]),
            delay_ms=(0.0, float(self.rng.choice([0, 20, 80]))),
        )
        self.cluster.router.ask(SetDefaultRule(rule))
        self.note(f"links drop={rule.drop} duplicate={rule.duplicate} delay={rule.delay_ms}")

    def crash(self) -> None:
        running = [n for n in self.all_ids if n not in self.crashed]
        if len(running) <= len(self.all_ids) // 2 + 1 and self.rng.random() < 0.7:
            return  # mostly keep a majority running
        # The leader half of the time: its pending increments lose their answers.
        latest = self.cluster.hub.snapshot()
        leaders = [n for n in running if n in latest and latest[n].state is State.LEADER]
        node = leaders[0] if leaders and self.rng.random() < 0.5 else self.rng.choice(running)
        self.cluster.crash(node)
        self.crashed.add(node)
        self.note(f"crash node {node}")

    def restart(self) -> None:
        if self.crashed:
            node = self.rng.choice(sorted(self.crashed))
            self.crashed.discard(node)
            self.cluster.start_node(node)
            self.note(f"restart node {node}")

    def heal(self) -> None:
        self.cluster.router.ask(Heal())
        self.note("heal the network")

    def heal_all(self) -> None:
        self.heal()
        for node in sorted(self.crashed):
            self.cluster.start_node(node)
            self.note(f"restart node {node}")
        self.crashed.clear()


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
    workers: _Workers | None = None
    try:
        cluster.initialize()
        cluster.leader(timeout=30)
        workers = _Workers(cluster, seed, options)
        nemesis = _Nemesis(cluster, random.Random(seed), report)
        workers.start()
        nemesis.run(workers.stop)
        nemesis.heal_all()
        bound = 20 * options.config.election_timeout_max / 1000
        workers.finish(timeout=options.op_timeout + bound)
        report.increments = list(workers.done)
        report.resends = workers.resends
        last = _final_write(cluster, workers.clients[0], bound, report)
        if last is not None:
            cluster.wait_applied(last, timeout=bound)
            _check(cluster, report)
    except Exception as exc:  # a harness failure is a finding too, with the seed
        report.problems.append(f"run failed: {exc!r}")
    finally:
        if workers is not None:
            workers.stop.set()
        cluster.shutdown()
        report.elapsed = time.monotonic() - started
    return report


def _final_write(
    cluster: Cluster, client: RaftClient, bound: float, report: CounterReport
) -> int | None:
    """Liveness after healing: a leader, and an increment applied within the bound."""
    try:
        cluster.leader(timeout=bound)
    except TimeoutError as exc:
        report.problems.append(f"liveness: no leader within {bound:.0f}s after healing: {exc}")
        return None
    result = client.write(Increment("__final__", f"final-{report.seed}"), timeout=bound)
    if not result.applied or result.index is None:
        report.problems.append(f"liveness: the final increment was not applied: {result}")
        return None
    return result.index


def _check(cluster: Cluster, report: CounterReport) -> None:
    machines = {n: cluster.data[n].state_machine for n in sorted(cluster.nodes)}
    problems = report.problems
    problems += check_cluster_data(cluster.hub.history, cluster.data, cluster.hard_states)
    first_id, first = next(iter(machines.items()))
    assert isinstance(first, SessionStateMachine)
    inner = first.inner
    assert isinstance(inner, Counters)
    for node_id, machine in machines.items():
        assert isinstance(machine, SessionStateMachine)
        if machine.inner.data != inner.data:  # type: ignore[attr-defined]
            problems.append(f"nodes {first_id} and {node_id} hold different counters")
        if machine.sessions.dump() != first.sessions.dump():
            problems.append(f"nodes {first_id} and {node_id} hold different session tables")
        tags = collections.Counter(tag for _, tag in machine.inner.tags)  # type: ignore[attr-defined]
        twice = sorted(tag for tag, n in tags.items() if n > 1)
        if twice:
            report.twice = max(report.twice, len(twice))
            problems.append(
                f"node {node_id} applied {len(twice)} increments more than once, e.g. "
                f"{twice[0]} {tags[twice[0]]} times"
            )
    applied = {tag for _, tag in inner.tags}
    counter_of = {i.tag: i.counter for i in report.increments}
    by_counter: dict[str, list[str]] = collections.defaultdict(list)
    for _, tag in inner.tags:
        by_counter[counter_of.get(tag, "__final__")].append(tag)
    report.finals = {c: v for c, v in inner.data.items() if c != "__final__"}
    report.duplicates = sum(1 for row in first.history if row[3] == "duplicate")
    report.snapshots_installed = max(
        (m.snapshots_installed for m in cluster.hub.history), default=0
    )
    for counter, value in sorted(report.finals.items()):
        ops = [i for i in report.increments if i.counter == counter]
        acked = [i for i in ops if i.outcome is Outcome.APPLIED]
        unknown = [i for i in ops if i.outcome is Outcome.UNKNOWN]
        if value != len(by_counter[counter]):
            problems.append(f"{counter} is {value} but {len(by_counter[counter])} tags applied")
        if not len(acked) <= value <= len(acked) + len(unknown):
            problems.append(
                f"{counter} is {value}: not between {len(acked)} acknowledged and "
                f"{len(acked) + len(unknown)} acknowledged or unknown"
            )
        responses = [i.response for i in acked]
        if len(set(responses)) != len(responses) or max(responses, default=0) > value:
            problems.append(f"{counter}: acknowledged increments answered the same value")
    lost = [
        i.tag for i in report.increments if i.outcome is Outcome.APPLIED and i.tag not in applied
    ]
    if lost:
        problems.append(f"{len(lost)} acknowledged increments were never applied, e.g. {lost[0]}")
    phantom = [
        i.tag for i in report.increments if i.outcome is Outcome.NOT_APPLIED and i.tag in applied
    ]
    if phantom:
        problems.append(f"{len(phantom)} increments reported not applied were, e.g. {phantom[0]}")


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: run seeds, show progress, print a summary; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="run (replay) just this seed")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of faults")
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
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    options = CounterOptions(
        nodes=args.nodes,
        duration=args.duration,
        op_timeout=args.op_timeout,
        attempt_timeout=args.attempt_timeout,
        naive=args.naive,
    )
    failed: list[CounterReport] = []
    started = time.monotonic()
    for count, seed in enumerate(seeds, 1):
        report = run_counters(seed, options)
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


if __name__ == "__main__":
    sys.exit(main())
