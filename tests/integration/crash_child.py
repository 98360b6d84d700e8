"""The process the crash tests kill: a 3-node cluster on SqliteStore under a client load.

    python tests/integration/crash_child.py --dir D --run N --seed S
        [--durability fsync|os] [--machine durable|memory] [--verify-only]

Each node keeps its data in ``D/node<id>``. The child starts the nodes (a node whose store
refuses to open is reported and left out), forms the cluster if it is new, waits for a
leader, writes one "settle" entry and waits until every running node applied it, then
prints every node's state machine. Unless ``--verify-only``, it then writes unique keys
from several client threads until it is killed, isolating a follower now and then so that
it catches up through a snapshot. Lines on stdout (each flushed at once):

    REFUSED <node> <error>           the node's store refused to open
    DUMP <node> <json>               {"last_applied": i, "data": {key: value}}
    SETTLED                          every running node applied the settle entry
    ACK <key> <value> <index>        a write was acknowledged (printed after the answer)
    SNAP-BEGIN <node> create|install a snapshot is being written / received
    SNAP-END <node> create|install   ... and is now current
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pykka_raft import (
    ClientPayload,
    Config,
    DumpStorage,
    ForwardToLeader,
    GetInitialState,
    InitWithConfig,
    Isolate,
    KeyValueStateMachine,
    NotAllowed,
    Put,
    Raft,
    RaftRouter,
    Register,
    ResponseMode,
    Restore,
    SnapshotMeta,
    SnapshotPolicy,
    SqliteStore,
    State,
    StorageError,
)
from pykka_raft.testing import MetricsHub

NODES = (1, 2, 3)
LIFETIME = 120.0  # a child never outlives this, even if its parent vanished
_out = threading.Lock()


def emit(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class MarkedStore(SqliteStore):
    """SqliteStore that says when a snapshot starts and ends being written or received."""

    def _build_snapshot_file(self, request: Any, reply: Any) -> None:
        emit(f"SNAP-BEGIN {self.node_id} create")
        super()._build_snapshot_file(request, reply)

    def _snapshot_file_built(self, built: Any) -> None:
        super()._snapshot_file_built(built)
        emit(f"SNAP-END {self.node_id} create")

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        if offset == 0:
            emit(f"SNAP-BEGIN {self.node_id} install")
        super().write_snapshot_chunk(meta, offset, data)

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        super().install_snapshot(meta)
        emit(f"SNAP-END {self.node_id} install")


class Child:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed * 7919 + args.run)
        self.config = Config(
            election_timeout_min=400,
            election_timeout_max=800,
            heartbeat_interval=50,
            snapshot_policy=SnapshotPolicy.every(args.snapshot_every),
            snapshot_max_chunk_size=256,
        )
        self.router = RaftRouter.start()
        self.hub = MetricsHub()
        self.nodes: dict[int, Any] = {}
        self.storages: dict[int, Any] = {}

    def start(self) -> None:
        pristine = []
        for node_id in NODES:
            machine = (
                None if self.args.machine == "durable" else KeyValueStateMachine(keep_history=False)
            )
            try:
                storage = MarkedStore.start(
                    Path(self.args.dir) / f"node{node_id}",
                    node_id,
                    machine,
                    durability=self.args.durability,
                )
            except StorageError as exc:
                emit(f"REFUSED {node_id} {exc}")
                continue
            initial = storage.ask(GetInitialState(), timeout=30)
            if not initial.hard_state.membership.members and initial.last_log_id.index == 0:
                pristine.append(node_id)
            self.storages[node_id] = storage
            self.nodes[node_id] = Raft.start(node_id, self.config, self.router, storage, self.hub)
            self.router.ask(Register(node_id, self.nodes[node_id]))
        self.hub.wait_for(lambda m: all(n in m for n in self.nodes), 30, "every node to start")
        for node_id in pristine:
            with contextlib.suppress(NotAllowed):  # it learned the configuration meanwhile
                self.nodes[node_id].ask(InitWithConfig(list(NODES)), timeout=30)

    def leader(self, timeout: float = 30.0) -> int:
        def agreed(latest: dict[int, Any]) -> int | None:
            leaders = [m for n, m in latest.items() if n in self.nodes and m.state is State.LEADER]
            return leaders[0].id if len(leaders) == 1 else None

        found: int = self.hub.wait_for(agreed, timeout, "a leader")
        return found

    def write(self, key: str, value: Any, mode: ResponseMode, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        target = self.leader(timeout)
        while True:
            try:
                reply = self.nodes[target].ask(
                    ClientPayload.new(Put(key, value), mode), timeout=deadline - time.monotonic()
                )
                return int(reply.index)
            except ForwardToLeader as exc:
                if time.monotonic() > deadline:
                    raise
                if exc.leader_id in self.nodes:
                    target = exc.leader_id
                else:
                    time.sleep(0.05)  # an election is under way
                    target = self.leader(deadline - time.monotonic())

    def settle(self) -> None:
        index = self.write("settle", self.args.run, ResponseMode.APPLIED, timeout=60)
        self.hub.wait_for(
            lambda m: all(n in m and m[n].last_applied >= index for n in self.nodes),
            60,
            "every node to apply the settle entry",
        )
        for node_id, storage in sorted(self.storages.items()):
            dump = storage.ask(DumpStorage(), timeout=30)
            doc = {"last_applied": dump.last_applied, "data": dump.state_machine}
            emit(f"DUMP {node_id} {json.dumps(doc, sort_keys=True)}")
        emit("SETTLED")

    def workload(self, clients: int = 6) -> None:
        counter = iter(range(1 << 40))
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    n = next(counter)
                key, value = f"w{self.args.run}.{n}", n
                mode = ResponseMode.APPLIED if n % 2 else ResponseMode.COMMITTED
                try:
                    index = self.write(key, value, mode, timeout=10)
                except Exception:
                    continue  # unknown outcome: never reported as acknowledged
                emit(f"ACK {key} {value} {index}")

        for number in range(clients):
            threading.Thread(target=client, name=f"client-{number}", daemon=True).start()
        while True:  # now and then a follower falls behind and catches up by snapshot
            time.sleep(self.rng.uniform(0.2, 0.6))
            try:
                leader = self.leader(5)
            except TimeoutError:
                continue
            followers = [n for n in self.nodes if n != leader]
            if not followers:
                continue
            victim = self.rng.choice(followers)
            self.router.ask(Isolate(victim))
            time.sleep(self.rng.uniform(0.2, 0.5))
            self.router.ask(Restore(victim))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--run", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--durability", choices=("fsync", "os"), default="fsync")
    parser.add_argument("--machine", choices=("durable", "memory"), default="durable")
    parser.add_argument("--snapshot-every", type=int, default=40)
    parser.add_argument("--verify-only", action="store_true")
    args = parser.parse_args()
    timer = threading.Timer(LIFETIME, lambda: __import__("os")._exit(3))
    timer.daemon = True
    timer.start()
    child = Child(args)
    child.start()
    child.settle()
    if args.verify_only:
        import os

        os._exit(0)  # the parent opens the directories next: the kernel drops the locks
    child.workload()


if __name__ == "__main__":
    main()
