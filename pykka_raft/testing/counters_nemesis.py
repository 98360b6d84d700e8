"""The counter runs' nemesis: partitions, an isolated leader, lossy, slow and duplicating
links, and crashes and restarts of nodes, each noted on the report's fault timeline.

Every choice is drawn from the run's seed, so a failing seed replays the same schedule.
Kept apart from the workload it disturbs and from the checks that judge the outcome.
"""

from __future__ import annotations

import random
import threading
import time

from pykka_raft.metrics import State
from pykka_raft.network.router import Isolate
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.counters_options import CounterReport
from pykka_raft.testing.faultnet import Heal, LinkRule, Partition, SetDefaultRule
from pykka_raft.types import NodeId

__all__ = ["Nemesis"]


class Nemesis:
    """Injects one fault every 0.2 to 0.6 seconds (drawn from ``rng``) until the run's
    duration is over; :meth:`heal_all` then heals the network and restarts every crashed node."""

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
