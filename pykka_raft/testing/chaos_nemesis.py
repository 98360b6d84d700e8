"""The nemesis of a chaos run: faults drawn from the seed (partitions, an isolated leader,
lossy and slow links, late replays, crashes and restarts, a power outage, membership
changes, leadership transfers and triggered elections), applied to the cluster and
written down in a timeline."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import attrs
import pykka

from pykka_raft.admin import ProposeConfigChange, TransferLeadership, TriggerElection
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.network.router import Isolate, LinkFaults, Restore, SetLinkFaults
from pykka_raft.testing.chaos_options import ChaosReport
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.faultnet import Heal, Partition, ReplayOld
from pykka_raft.types import NodeId


@attrs.define
class AdminCall:
    """A ``TransferLeadership`` or ``TriggerElection`` the nemesis asked, not waited for."""

    text: str
    node: NodeId
    message: TransferLeadership | TriggerElection
    future: Any  # the answer's future, or the exception asking raised
    crashed: bool = False  # its node crashed afterwards (the call may go unanswered)


def _outcome(future: Any) -> tuple[bool, Any]:
    """``(True, the answer)`` in ``future`` (or the exception it holds, or the exception
    asking raised); ``(False, None)`` if there is none yet."""
    if isinstance(future, BaseException):
        return True, future
    try:
        return True, future.get(timeout=0.1)
    except pykka.Timeout:
        return False, None
    except Exception as exc:
        return True, exc


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
        self.admin_calls: list[AdminCall] = []

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
        if self.options.admin:
            faults += ["transfer", "transfer", "elect"]
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
        if not running:
            return
        if len(running) <= len(self.all_ids) // 2 + 1 and self.rng.random() < 0.7:
            return  # mostly keep a majority running
        node = self.rng.choice(running)
        self._crash(node)
        self.note("crash", f"crash node {node}")

    def _crash(self, node: NodeId) -> None:
        self.cluster.crash(node)
        self.crashed.add(node)
        for call in self.admin_calls:
            call.crashed |= call.node == node

    def restart(self) -> None:
        if not self.crashed:
            return
        node = self.rng.choice(sorted(self.crashed))
        self.crashed.discard(node)
        self.cluster.start_node(node)
        self.note("restart", f"restart node {node}")

    def _leader(self) -> NodeId | None:
        """A node that leads, waiting a little for one (elections may be under way)."""

        def a_leader(latest: dict[NodeId, RaftMetrics]) -> NodeId | None:
            leaders = [
                n for n, m in latest.items() if m.state is State.LEADER and n in self.cluster.nodes
            ]
            return leaders[0] if leaders else None

        try:
            return self.cluster.hub.wait_for(a_leader, 2.0, "a leader to ask")
        except TimeoutError:
            return None

    def reconfigure(self) -> None:
        leader = self._leader()  # a change needs a leader
        if leader is None:
            return
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

    def transfer(self) -> None:
        """Ask the leader to hand leadership to one of its voters (itself, sometimes), or
        to the most up-to-date one; not waited for, so faults hit transfers in flight."""
        leader = self._leader()
        if leader is None:
            return
        voters = sorted(self.cluster.hub.snapshot()[leader].membership_config.voters())
        target = self.rng.choice([None, *voters])
        self._admin(leader, TransferLeadership(target), f"transfer from {leader} to {target}")

    def elect(self) -> None:
        """Ask a running node (a voter or not, leading or not) to start an election."""
        running = [n for n in self.all_ids if n not in self.crashed]
        if not running:
            return
        node = self.rng.choice(running)
        self._admin(node, TriggerElection(), f"trigger an election on node {node}")

    def _admin(
        self, node: NodeId, message: TransferLeadership | TriggerElection, text: str
    ) -> None:
        try:
            future = self.cluster.nodes[node].ask(message, block=False)
        except Exception as exc:  # the node just crashed
            future = exc
        self.admin_calls.append(AdminCall(text, node, message, future))
        self.note("transfer" if isinstance(message, TransferLeadership) else "election", text)

    def change_outcomes(self) -> list[tuple[str, Any]]:
        """What each proposed change got: a ConfigChangeResponse, an error, or ``None``
        (no answer: the node crashed)."""
        return [(text, _outcome(future)[1]) for text, future in self.changes]

    def admin_outcomes(self) -> list[tuple[AdminCall, bool, Any]]:
        """What each transfer and election call got: whether it was answered, and its
        answer or error."""
        return [(call, *_outcome(call.future)) for call in self.admin_calls]

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
