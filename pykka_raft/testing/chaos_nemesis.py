"""The nemesis of a chaos run: faults drawn from the seed (partitions, an isolated leader,
lossy and slow links, late replays, crashes and restarts, a power outage, membership
changes), applied to the cluster and written down in a timeline."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pykka

from pykka_raft.admin import ProposeConfigChange
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.network.router import Isolate, LinkFaults, Restore, SetLinkFaults
from pykka_raft.testing.chaos_options import ChaosReport
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.faultnet import Heal, Partition, ReplayOld
from pykka_raft.types import NodeId


class Nemesis:
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
        self.cluster.sample_hard_states()  # a storage that does not record them all
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
        self._crash(node)
        self.note("crash", f"crash node {node}")

    def _crash(self, node: NodeId) -> None:
        self.cluster.crash(node)
        self.crashed.add(node)

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
                self._crash(node)
        self.note("outage", "power outage: every node crashes")

    def heal_all(self) -> None:
        self.heal()
        for node in sorted(self.crashed):
            self.cluster.start_node(node)
            self.note("restart", f"restart node {node}")
        self.crashed.clear()
