"""Seeded chaos runs: a real cluster of actors under faults, checked for safety and
linearizability.

One run starts a cluster of :class:`~pykka_raft.testing.crash.CrashableRaft` nodes behind a
:class:`~pykka_raft.testing.faultnet.FaultNetwork`, lets client threads read, write and
compare-and-set a few keys while a nemesis injects faults (partitions, an isolated
leader, crashes and restarts, lossy and slow links, late replays of old messages, and
optionally membership changes: adds, removals, learners, promotions, swaps), heals
everything, checks that the cluster elects a leader and commits a write within a bounded
number of election timeouts, and finally checks every safety monitor
(:mod:`pykka_raft.testing.monitors`), that every acknowledged write survived, and that the
client history is linearizable (:mod:`pykka_raft.testing.linearizability`).

Everything the nemesis and the clients decide is drawn from the seed, so a failing seed
replays the same fault schedule and workload (thread timing still varies from run to
run). Run many seeds from the command line::

    python -m pykka_raft.testing.chaos --seeds 500
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import pykka

from pykka_raft.admin import ConfigChangeResponse, ProposeConfigChange
from pykka_raft.config import Config
from pykka_raft.errors import ClientError, ForwardToLeader, ShuttingDown
from pykka_raft.messages import ClientPayload, EntryConfigChange, MembershipConfig, ResponseMode
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.network.router import Isolate, LinkFaults, Restore, SetLinkFaults
from pykka_raft.statemachine import CompareAndSet, Get, Put
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.faultnet import Heal, Partition, ReplayOld
from pykka_raft.testing.history import HistoryRecorder, Op
from pykka_raft.testing.linearizability import LinearizabilityResult, check_kv
from pykka_raft.testing.monitors import check_cluster_data
from pykka_raft.types import NodeId

DEFAULT_CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


@attrs.frozen
class ChaosOptions:
    """What one chaos run does.

    Attributes:
        nodes: cluster size.
        duration: seconds of faults (the run takes a few seconds more to heal and check).
        clients: client threads.
        keys: keys the clients share (few keys make conflicts likely).
        crashes: whether the nemesis crashes and restarts nodes.
        outage: crash every node at once, once, near the end (a power outage).
        config: the nodes' configuration.
        storage: a storage factory for the cluster (default: crashable MemStore).
        op_timeout: seconds a client waits for an answer before recording "unknown".
        membership: whether the nemesis also changes the membership (through the leader,
            without waiting for the answer, so faults hit changes in flight).
        spares: nodes started pristine next to the cluster, for membership changes to add.
        tcp: carry every RPC over real loopback sockets (one CURVE-secured TcpNetwork per
            node, behind the same fault network; needs the ``[net]`` extra).
    """

    nodes: int = 3
    duration: float = 4.0
    clients: int = 4
    keys: int = 3
    crashes: bool = True
    outage: bool = False
    config: Config = DEFAULT_CONFIG
    storage: Callable[[NodeId, MemStoreData], Any] | None = None
    op_timeout: float = 2.0
    membership: bool = False
    spares: int = 2
    tcp: bool = False


@attrs.define
class ChaosReport:
    """What a chaos run found."""

    seed: int
    options: ChaosOptions
    problems: list[str] = attrs.field(factory=list)
    timeline: list[str] = attrs.field(factory=list)
    ops: tuple[Op, ...] = ()
    linearizability: LinearizabilityResult | None = None
    elapsed: float = 0.0
    faults: dict[str, int] = attrs.field(factory=dict)
    """How many faults of each kind the nemesis injected (``crash``, ``restart``,
    ``partition``, ``isolate``, ``links``, ``replay``, ``heal``, ``change``, ``outage``)."""
    snapshots_installed: int = 0
    """Snapshot installs the nodes reported in their metrics (followers that caught up
    through a snapshot)."""

    @property
    def ok(self) -> bool:
        """True when no monitor, liveness check or the linearizability check failed."""
        return not self.problems

    def summary(self) -> str:
        """One line: seed, verdict, and the size of the run."""
        counts = {
            o: sum(1 for op in self.ops if op.outcome == o) for o in ("ok", "fail", "unknown")
        }
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (
            f"seed {self.seed}: {verdict}; {len(self.ops)} ops ({counts['ok']} ok, "
            f"{counts['fail']} failed, {counts['unknown']} unknown), "
            f"{len(self.timeline)} faults, {self.snapshots_installed} snapshot installs, "
            f"{self.elapsed:.1f}s"
        )

    def render(self) -> str:
        """The full report: problems, the fault timeline and the useful part of the history."""
        lines = [self.summary(), f"replay: python -m pykka_raft.testing.chaos --seed {self.seed}"]
        lines += ["problems:", *(f"  - {p}" for p in self.problems)]
        lines += ["fault timeline:", *(f"  {t}" for t in self.timeline)]
        lin = self.linearizability
        if lin is not None and not lin.ok:
            # The explanation already ends with the timeline of the ops that matter.
            lines += [f"non-linearizable history of key {lin.key!r}: {lin.explanation}"]
        return "\n".join(lines)


class _Clients:
    """Client threads running a seeded random workload and recording the history."""

    def __init__(self, cluster: Cluster, seed: int, options: ChaosOptions) -> None:
        self.cluster = cluster
        self.options = options
        self.recorder = HistoryRecorder()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(c, random.Random(seed * 7 + c)), daemon=True)
            for c in range(options.clients)
        ]
        self.unique = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _value(self, client: int) -> str:
        with self.lock:
            self.unique += 1
            return f"c{client}-{self.unique}"

    def _run(self, client: int, rng: random.Random) -> None:
        target: NodeId | None = None
        while not self.stop.is_set():
            key = f"k{rng.randrange(self.options.keys)}"
            roll = rng.random()
            command: Any
            if roll < 0.4:
                kind, command, value, expected = "get", Get(key), None, None
            elif roll < 0.8:
                value = self._value(client)
                kind, command, expected = "put", Put(key, value), None
            else:
                value = self._value(client)
                expected = (
                    None
                    if rng.random() < 0.3
                    else f"c{rng.randrange(4)}-{rng.randrange(self.unique + 1)}"
                )
                kind, command = "cas", CompareAndSet(key, expected, value)
            if target is None or target not in self.cluster.nodes:
                target = self._some_node(rng)
            handle = self.recorder.invoke(client, kind, key, value, expected)
            target = self._call(handle, target, command)

    def _some_node(self, rng: random.Random) -> NodeId:
        latest = self.cluster.hub.snapshot()
        leaders = [
            n for n, m in latest.items() if m.state is State.LEADER and n in self.cluster.nodes
        ]
        if leaders:
            return leaders[0]
        return rng.choice(sorted(self.cluster.nodes) or [1])

    def _call(self, handle: Any, target: NodeId, command: Any) -> NodeId | None:
        ref = self.cluster.nodes.get(target)
        if ref is None:
            self.recorder.complete(handle, "fail")
            return None
        try:
            response = ref.ask(
                ClientPayload.new(command, ResponseMode.APPLIED), timeout=self.options.op_timeout
            )
        except ForwardToLeader as exc:
            self.recorder.complete(handle, "fail")  # definitely not committed
            if exc.leader_id is None:
                self.stop.wait(0.05)  # the pause before retrying is the client's policy
            return exc.leader_id
        except (pykka.Timeout, ShuttingDown, ClientError):
            self.recorder.complete(handle, "unknown")
            return None
        self.recorder.complete(handle, "ok", response.data)
        return target


class _Nemesis:
    """Draws faults from the seed and applies them to the cluster, recording a timeline."""

    def __init__(self, cluster: Cluster, rng: random.Random, report: ChaosReport) -> None:
        self.cluster = cluster
        self.rng = rng
        self.options = report.options
        self.timeline = report.timeline
        self.faults = report.faults
        self.start = time.monotonic()
        self.crashed: set[NodeId] = set()
        self.all_ids = sorted(cluster.nodes)
        self.changes: list[tuple[str, Any]] = []  # (description, future of the answer)

    def note(self, kind: str, text: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        self.timeline.append(f"{time.monotonic() - self.start:6.2f}s {text}")

    def run(self, stop: threading.Event) -> None:
        end = self.start + self.options.duration
        while time.monotonic() < end:
            # The pauses between faults are the schedule under test, not synchronization.
            if stop.wait(self.rng.uniform(0.2, 0.7)):
                return
            self.step()
        if self.options.outage:
            self.outage()

    def step(self) -> None:
        faults = ["partition", "isolate_leader", "link_faults", "replay", "heal"]
        if self.options.crashes:
            faults += ["crash", "restart"]
        if self.options.membership:
            faults += ["reconfigure", "reconfigure"]
        fault = self.rng.choice(faults)
        getattr(self, fault)()

    def partition(self) -> None:
        ids = [n for n in self.all_ids]
        self.rng.shuffle(ids)
        cut = self.rng.randrange(1, len(ids))
        groups = (tuple(sorted(ids[:cut])), tuple(sorted(ids[cut:])))
        self.cluster.router.ask(Partition(groups))
        self.note("partition", f"partition {groups[0]} | {groups[1]}")

    def isolate_leader(self) -> None:
        latest = self.cluster.hub.snapshot()
        leaders = [
            n for n, m in latest.items() if m.state is State.LEADER and n in self.cluster.nodes
        ]
        if not leaders:
            return
        self.cluster.router.ask(Isolate(leaders[0]))
        self.note("isolate", f"isolate leader {leaders[0]}")

    def link_faults(self) -> None:
        faults = LinkFaults(
            drop=self.rng.choice([0.0, 0.05, 0.2]),
            duplicate=self.rng.choice([0.0, 0.05]),
            delay_ms=(0, self.rng.choice([0, 10, 40])),
            seed=self.rng.randrange(1 << 30),
        )
        self.cluster.router.ask(SetLinkFaults(faults))
        self.note(
            "links",
            f"links drop={faults.drop} duplicate={faults.duplicate} delay={faults.delay_ms}",
        )

    def replay(self) -> None:
        count = self.rng.randrange(1, 20)
        self.cluster.router.ask(ReplayOld(count, min_age_ms=1000))
        self.note("replay", f"replay {count} old messages (older than 1s)")

    def crash(self) -> None:
        running = [n for n in self.all_ids if n not in self.crashed]
        if len(running) <= len(self.all_ids) // 2 + 1 and self.rng.random() < 0.7:
            return  # mostly keep a majority running
        node = self.rng.choice(running)
        self.cluster.crash(node)
        self.crashed.add(node)
        self.note("crash", f"crash node {node}")

    def restart(self) -> None:
        if not self.crashed:
            return
        node = self.rng.choice(sorted(self.crashed))
        self.crashed.discard(node)
        self.cluster.start_node(node)
        self.note("restart", f"restart node {node}")

    def reconfigure(self) -> None:
        def a_leader(latest: dict[NodeId, RaftMetrics]) -> NodeId | None:
            leaders = [
                n for n, m in latest.items() if m.state is State.LEADER and n in self.cluster.nodes
            ]
            return leaders[0] if leaders else None

        try:  # a change needs a leader: wait a little for one (elections may be under way)
            found = self.cluster.hub.wait_for(a_leader, 2.0, "a leader to propose to")
        except TimeoutError:
            return
        assert found is not None
        leader: NodeId = found
        latest = self.cluster.hub.snapshot()
        m = latest[leader].membership_config
        voters, learners = sorted(m.voters()), sorted(m.non_voters)
        outside = [n for n in self.all_ids if not m.contains(n)]
        rng = self.rng
        options: list[ProposeConfigChange] = []
        if outside:
            options.append(ProposeConfigChange(add_members=[rng.choice(outside)]))
            options.append(ProposeConfigChange(add_non_voters=[rng.choice(outside)]))
        if len(voters) > 2:
            options.append(ProposeConfigChange(remove_members=[rng.choice(voters)]))
            options.append(ProposeConfigChange(add_non_voters=[rng.choice(voters)]))
        if learners:
            options.append(ProposeConfigChange(add_members=[rng.choice(learners)]))
            options.append(ProposeConfigChange(remove_members=[rng.choice(learners)]))
        if outside and voters:
            options.append(ProposeConfigChange([rng.choice(outside)], [rng.choice(voters)]))
        if not options:
            return
        change = rng.choice(options)
        text = (
            f"change add={list(change.add_members)} remove={list(change.remove_members)} "
            f"learners={list(change.add_non_voters)} via leader {leader}"
        )
        try:
            future = self.cluster.nodes[leader].ask(change, block=False)
        except Exception as exc:  # the node just crashed
            future = exc
        self.changes.append((text, future))
        self.note("change", text)

    def change_outcomes(self) -> list[tuple[str, Any]]:
        """What each proposed change got: a ConfigChangeResponse, an error, or ``None``
        (no answer: the node crashed)."""
        outcomes: list[tuple[str, Any]] = []
        for text, future in self.changes:
            if isinstance(future, BaseException):
                outcomes.append((text, future))
                continue
            try:
                outcomes.append((text, future.get(timeout=0.1)))
            except pykka.Timeout:
                outcomes.append((text, None))
            except Exception as exc:
                outcomes.append((text, exc))
        return outcomes

    def heal(self) -> None:
        self.cluster.router.ask(Heal())
        for node in self.all_ids:
            self.cluster.router.ask(Restore(node))
        self.cluster.router.ask(SetLinkFaults(LinkFaults()))
        self.note("heal", "heal the network")

    def outage(self) -> None:
        for node in self.all_ids:
            if node not in self.crashed:
                self.cluster.crash(node)
                self.crashed.add(node)
        self.note("outage", "power outage: every node crashes")

    def heal_all(self) -> None:
        self.heal()
        for node in sorted(self.crashed):
            self.cluster.start_node(node)
            self.note("restart", f"restart node {node}")
        self.crashed.clear()


def run_chaos(seed: int, options: ChaosOptions | None = None) -> ChaosReport:
    """Run one seeded chaos run and report what it found (it never raises for a finding)."""
    from pykka_raft.testing.faultnet import FaultNetwork

    options = options or ChaosOptions()
    report = ChaosReport(seed, options)
    rng = random.Random(seed)
    started = time.monotonic()
    network = FaultNetwork.start(seed=seed)
    members = range(1, options.nodes + 1)
    spares = range(options.nodes + 1, options.nodes + 1 + options.spares)
    cluster = Cluster(
        [*members, *(spares if options.membership else ())],
        options.config,
        seed,
        options.storage,
        network=network,
        tcp=options.tcp,
    )
    try:
        cluster.initialize(members)
        cluster.leader(timeout=30)
        clients = _Clients(cluster, seed, options)
        nemesis = _Nemesis(cluster, rng, report)
        clients.start()
        nemesis.run(clients.stop)
        nemesis.heal_all()
        _check_liveness(cluster, report)
        clients.finish(timeout=options.op_timeout * 2 + 5)
        report.ops = clients.recorder.ops()
        outcomes = nemesis.change_outcomes()
        through = max(
            (r.index for _, r in outcomes if isinstance(r, ConfigChangeResponse)), default=0
        )
        final = (
            _converge(cluster, report, through) if report.ok else MembershipConfig(cluster.nodes)
        )
        report.timeline += [f"  -> {text}: {_outcome(result)}" for text, result in outcomes]
        report.problems += check_cluster_data(
            cluster.hub.history, cluster.data, cluster.hard_states
        )
        report.problems += _acknowledged_writes_survive(report.ops, cluster, final.all_nodes())
        report.problems += _acknowledged_changes_committed(outcomes, cluster, final)
        report.snapshots_installed = _snapshot_installs(cluster.hub.history)
        report.linearizability = check_kv(report.ops)
        if not report.linearizability.ok:
            report.problems.append(
                f"history not linearizable on key {report.linearizability.key!r}: "
                f"{report.linearizability.explanation}"
            )
    except Exception as exc:  # a harness failure is a finding too, with the seed
        report.problems.append(f"run failed: {exc!r}")
    finally:
        cluster.shutdown()
        report.elapsed = time.monotonic() - started
    return report


def _check_liveness(cluster: Cluster, report: ChaosReport) -> None:
    """After healing, a leader and a committed write within a bounded number of timeouts."""
    bound = 20 * cluster.config.election_timeout_max / 1000
    try:
        cluster.leader(timeout=bound)
        cluster.write(Put("__liveness__", report.seed), timeout=bound)
    except Exception as exc:
        report.problems.append(f"liveness: no leader and commit within {bound:.0f}s: {exc}")


def _converge(cluster: Cluster, report: ChaosReport, through: int) -> MembershipConfig:
    """Every member of the final configuration applies everything (a final write, and at
    least through ``through``: the last acknowledged change); return that configuration
    (a leader that inherited a joint one finishes it first)."""
    bound = 20 * cluster.config.election_timeout_max / 1000

    def settled(latest: dict[NodeId, RaftMetrics]) -> MembershipConfig | None:
        leaders = [m for m in latest.values() if m.state is State.LEADER]
        if len(leaders) != 1 or leaders[0].membership_config.is_in_joint_consensus:
            return None
        return leaders[0].membership_config

    try:
        last = cluster.write(Put("__final__", report.seed), timeout=bound)
        final = cluster.hub.wait_for(settled, bound, "a settled membership")
        assert final is not None
        cluster.wait_applied(max(last.index, through), nodes=final.all_nodes(), timeout=bound)
        return final
    except Exception as exc:
        report.problems.append(f"liveness: nodes did not converge within {bound:.0f}s: {exc}")
        return MembershipConfig(cluster.nodes)


def _snapshot_installs(history: Iterable[RaftMetrics]) -> int:
    """Installs counted in the metrics pushed (a node's counter restarts at 0 with it)."""
    last: dict[NodeId, int] = {}
    installs = 0
    for metrics in history:
        before = last.get(metrics.id, 0)
        now = metrics.snapshots_installed
        installs += now - before if now >= before else now
        last[metrics.id] = now
    return installs


def _outcome(result: Any) -> str:
    if result is None:
        return "no answer (the node crashed)"
    if isinstance(result, ConfigChangeResponse):
        return f"ok at index {result.index}: {result.membership}"
    return f"{type(result).__name__}: {result}"


def _acknowledged_changes_committed(
    outcomes: list[tuple[str, Any]], cluster: Cluster, final: MembershipConfig
) -> list[str]:
    """An acknowledged change's configuration is committed: every member holds it."""
    problems = []
    for text, result in outcomes:
        if not isinstance(result, ConfigChangeResponse):
            continue
        for node_id in sorted(final.all_nodes()):
            data = cluster.data[node_id]
            if result.index <= data.offset:
                continue  # compacted into a snapshot (which holds only committed entries)
            entry = data.entry(result.index)
            if entry is None or entry.payload != EntryConfigChange(result.membership):
                problems.append(
                    f"{text} was acknowledged at index {result.index} but node {node_id} "
                    f"holds {entry} there"
                )
    return problems


def _acknowledged_writes_survive(
    ops: tuple[Op, ...], cluster: Cluster, members: Iterable[NodeId]
) -> list[str]:
    """Every acknowledged put is in the applied history of every member of the final
    configuration (nothing acked is lost)."""
    problems = []
    members = set(members)
    for node_id, data in sorted(cluster.data.items()):
        if node_id not in members:
            continue
        seen = {
            (cmd.key, cmd.value)
            for _, cmd in getattr(data.state_machine, "applied", ())
            if isinstance(cmd, Put)
        }
        missing = [
            op
            for op in ops
            if op.kind == "put" and op.outcome == "ok" and (op.key, op.value) not in seen
        ]
        if missing:
            problems.append(
                f"node {node_id} lacks {len(missing)} acknowledged writes, e.g. "
                f"{missing[0].key}={missing[0].value!r}"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: run seeds, show progress, print a summary; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="run (replay) just this seed")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of faults")
    parser.add_argument(
        "--membership", action="store_true", help="also change the membership during the run"
    )
    parser.add_argument(
        "--tcp", action="store_true", help="carry RPCs over loopback TCP (the [net] extra)"
    )
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    options = ChaosOptions(
        nodes=args.nodes, duration=args.duration, membership=args.membership, tcp=args.tcp
    )
    failed: list[ChaosReport] = []
    started = time.monotonic()
    for count, seed in enumerate(seeds, 1):
        report = run_chaos(seed, options)
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
