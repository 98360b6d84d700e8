"""Change the membership of a running pykka_raft cluster (see docs/membership.md).

The story: node 1 forms a one-node cluster and takes a write; nodes 2 and 3 join as voters;
node 4 joins as a learner (a non-voter) and is then promoted to voter; finally the leader,
node 1, is removed. The others elect a new leader, writes continue, and every member ends
with the same data. Each change is sent to the leader with ProposeConfigChange, and the
example prints the configuration entries the leader wrote to carry it out.

Run it with ``.venv/bin/python examples/membership.py``. It takes a few seconds and exits
with a non-zero status if anything does not happen as described.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

from pykka_raft import (
    ClientPayload,
    Config,
    ConfigChangeResponse,
    DumpStorage,
    EntryConfigChange,
    ForwardToLeader,
    InitWithConfig,
    MembershipConfig,
    MemStore,
    NodeNotLeader,
    ProposeConfigChange,
    Put,
    Raft,
    RaftMetrics,
    RaftRouter,
    Register,
    ResponseMode,
    State,
    Unregister,
)

T = TypeVar("T")
CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
DEADLINE = 10.0  # seconds; every wait in this example has one
START = time.monotonic()
PRINT_LOCK = threading.Lock()


def say(text: str) -> None:
    """Print one line of the story with the time since the start."""
    with PRINT_LOCK:
        print(f"[{time.monotonic() - START:5.2f}s] {text}", flush=True)


def describe(m: MembershipConfig) -> str:
    """A membership in words."""
    text = f"voters {list(m.members)}"
    if m.members_after_consensus is not None:
        text += f" AND voters {list(m.members_after_consensus)} (joint)"
    if m.non_voters:
        text += f", non-voters {list(m.non_voters)}"
    return text


class Failed(Exception):
    """Something in the story did not happen as expected."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


class Watcher:
    """The metrics subscriber of every node: keeps each node's latest metrics, reports role
    changes, and lets the main thread wait for a condition with a deadline.

    ``tell`` runs on the pushing node's thread, so it only records and notifies.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.latest: dict[int, RaftMetrics] = {}

    def tell(self, metrics: RaftMetrics) -> None:
        with self._cond:
            before = self.latest.get(metrics.id)
            self.latest[metrics.id] = metrics
            self._cond.notify_all()
        if before is not None and metrics.state not in (before.state, State.SHUTDOWN):
            say(f"  node {metrics.id} is now {metrics.state.value} (term {metrics.current_term})")

    def wait(self, predicate: Callable[[dict[int, RaftMetrics]], T], what: str) -> T:
        """Wait until ``predicate(latest metrics by node)`` is truthy and return it."""
        deadline = time.monotonic() + DEADLINE
        with self._cond:
            while True:
                value = predicate(dict(self.latest))
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Failed(f"timed out after {DEADLINE:.0f}s waiting for {what}")
                self._cond.wait(remaining)


class App:
    """What an application keeps: its nodes, their storages, the network and the watcher."""

    def __init__(self) -> None:
        self.router = RaftRouter.start()
        self.watcher = Watcher()
        self.nodes: dict[int, Any] = {}
        self.storages: dict[int, Any] = {}
        self.shown_up_to = 0  # the last log index whose configuration entry was printed

    def start_node(self, node_id: int) -> None:
        """Start a pristine node (empty storage) and register it with the network."""
        self.storages[node_id] = MemStore.start()
        self.nodes[node_id] = Raft.start(
            node_id, CONFIG, self.router, self.storages[node_id], self.watcher
        )
        self.router.ask(Register(node_id, self.nodes[node_id]))
        self.watcher.wait(lambda m: node_id in m, f"node {node_id} to start")

    def stop_node(self, node_id: int) -> None:
        """Unregister a node, then stop it and its storage."""
        self.router.ask(Unregister(node_id))
        self.nodes.pop(node_id).stop()
        self.storages.pop(node_id).stop()

    def leader(self) -> int:
        """Wait for a running node that is leader."""
        return self.watcher.wait(
            lambda m: next((n for n in self.nodes if n in m and m[n].state is State.LEADER), None),
            "a leader",
        )

    def propose(self, change: ProposeConfigChange) -> ConfigChangeResponse:
        """Send a membership change to the leader, following NodeNotLeader hints."""
        target = self.leader()
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                response: ConfigChangeResponse = self.nodes[target].ask(change, timeout=DEADLINE)
                return response
            except NodeNotLeader as exc:
                check(time.monotonic() < deadline, "no leader accepted the change")
                if exc.leader_id in self.nodes:
                    target = exc.leader_id
                else:
                    time.sleep(0.1)
                    target = self.leader()

    def write(self, key: str, value: Any) -> int:
        """Write through the leader, following ForwardToLeader; return the log index."""
        payload = ClientPayload.new(Put(key, value), ResponseMode.APPLIED)
        target = self.leader()
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                index: int = self.nodes[target].ask(payload, timeout=DEADLINE).index
                return index
            except ForwardToLeader as exc:
                check(time.monotonic() < deadline, "no leader accepted the write")
                payload = exc.payload or payload
                if exc.leader_id in self.nodes:
                    target = exc.leader_id
                else:
                    time.sleep(0.1)  # an election is under way
                    target = self.leader()

    def show_config_entries(self, node_id: int) -> None:
        """Print the configuration entries written since the last call."""
        log = self.storages[node_id].ask(DumpStorage(), timeout=DEADLINE).log
        for entry in log[self.shown_up_to :]:
            if isinstance(entry.payload, EntryConfigChange):
                say(f"    entry {entry.index}: {describe(entry.payload.membership)}")
        self.shown_up_to = len(log)

    def membership(self, node_id: int) -> MembershipConfig:
        m: MembershipConfig = self.watcher.wait(
            lambda latest: latest.get(node_id), f"metrics of node {node_id}"
        ).membership_config
        return m


def run(app: App) -> None:
    say("starting node 1 and forming a one-node cluster with InitWithConfig([1])")
    app.start_node(1)
    app.nodes[1].ask(InitWithConfig([1]), timeout=DEADLINE)
    check(app.leader() == 1, "node 1 should lead its one-node cluster")
    index = app.write("color", "red")
    say(f"node 1 leads a one-node cluster; wrote color=red at index {index}")

    say("starting nodes 2 and 3 (pristine, registered with the router), adding them as voters")
    app.start_node(2)
    app.start_node(3)
    response = app.propose(ProposeConfigChange(add_members=[2, 3]))
    app.show_config_entries(1)
    check(response.membership == MembershipConfig(members=[1, 2, 3]), "expected voters 1, 2, 3")
    say(f"membership is now {describe(response.membership)} (committed at {response.index})")
    index = app.write("size", "large")

    say("starting node 4 and adding it as a learner (add_non_voters=[4])")
    app.start_node(4)
    response = app.propose(ProposeConfigChange(add_non_voters=[4]))
    app.show_config_entries(1)
    check(response.membership.non_voters == (4,), "expected node 4 as a non-voter")
    learner = app.watcher.wait(
        lambda m: m[4].state is State.NON_VOTER and m[4].last_applied >= index and m[4],
        "node 4 to replicate the log as a learner",
    )
    say(
        f"node 4 is a {learner.state.value}: it has the log up to {learner.last_log_index} "
        "but does not vote"
    )

    say("promoting node 4 to voter (add_members=[4])")
    response = app.propose(ProposeConfigChange(add_members=[4]))
    app.show_config_entries(1)
    check(response.membership == MembershipConfig(members=[1, 2, 3, 4]), "expected 4 voters")
    say(f"membership is now {describe(response.membership)}")

    say("removing the leader, node 1 (remove_members=[1])")
    response = app.propose(ProposeConfigChange(remove_members=[1]))
    app.show_config_entries(1)
    check(response.membership == MembershipConfig(members=[2, 3, 4]), "expected voters 2, 3, 4")
    say(f"membership is now {describe(response.membership)}")
    app.watcher.wait(
        lambda m: m[1].state is State.NON_VOTER and not m[1].membership_config.contains(1),
        "node 1 to step down",
    )
    say("node 1 is a non-voter outside the membership: the signal to shut it down")
    app.stop_node(1)
    say("node 1 stopped")

    leader = app.leader()
    say(f"nodes 2, 3 and 4 elected node {leader} as the new leader")
    check(leader in (2, 3, 4), "the new leader must be one of the remaining voters")
    last = app.write("color", "blue")
    say(f"wrote color=blue at index {last} through node {leader}")

    app.watcher.wait(
        lambda m: all(m[n].last_applied >= last for n in (2, 3, 4)), "every member to apply"
    )
    machines = {
        n: app.storages[n].ask(DumpStorage(), timeout=DEADLINE).state_machine for n in (2, 3, 4)
    }
    for node_id, data in machines.items():
        say(f"node {node_id}: {describe(app.membership(node_id))}; data {data}")
    check(
        all(data == {"color": "blue", "size": "large"} for data in machines.values()),
        "every member should hold color=blue and size=large",
    )
    say("all members hold the same data")


def main() -> int:
    app = App()
    try:
        run(app)
    except Failed as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        pykka.ActorRegistry.stop_all()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
