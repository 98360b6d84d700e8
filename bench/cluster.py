"""One measured run of a system over loopback TCP, in fresh processes.

A run starts ``nodes`` node processes (:mod:`bench.node`) and one client process
(:mod:`bench.client`), waits for a leader, and then either drives the load phases
(:func:`measure`) or kills the leader under load (:func:`failover`). Every run ends by
checking that all (surviving) nodes applied the same index and hold identical state
machines, and stops every process it started, whatever happened.

The coordinator (this process) reads each node's CPU time and memory from ``/proc``
between phases, so the nodes do not measure themselves.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, memory_mib, per_thread, thread_stats

ROOT = Path(__file__).resolve().parent.parent
TIMERS = {"election_min_ms": 300, "election_max_ms": 600, "heartbeat_ms": 50}
"""Both systems: the same randomized election timeout and the same heartbeat."""


@dataclass(frozen=True)
class Setting:
    """One (system, setting) row of the TCP comparison."""

    key: str
    label: str
    system: str  # "pykka_raft", "pysyncobj" or "shape" (bench/shape.py)
    nodes: int
    store: str  # pykka_raft: mem, os, fsync; PySyncObj: mem, journal
    durability: str  # the class: "memory", "os" (survives a process crash), "fsync"
    insecure: bool = False  # pykka_raft without CURVE
    batch: bool = True  # PySyncObj's appendEntriesUseBatch
    phases: tuple[str, ...] = ()
    machine: str = "memory"  # SqliteStore: "memory" (a dict, as PySyncObj) or "durable"
    lean: bool = False  # the shape alone: the fewest hand-offs the shape allows

    @property
    def short(self) -> str:
        return self.label


@dataclass(frozen=True)
class Phase:
    name: str
    inflight: int
    value_bytes: int


PHASES = {
    p.name: p
    for p in (
        Phase("seq", 1, 10),
        Phase("seq_1k", 1, 1024),
        Phase("w256", 256, 10),
        Phase("w4096", 4096, 10),
        Phase("w256_1k", 256, 1024),
        Phase("w4096_1k", 4096, 1024),
    )
}
PHASE_LABELS = {
    "seq": "1 in flight, 10 B",
    "seq_1k": "1 in flight, 1 KiB",
    "w256": "256 in flight, 10 B",
    "w4096": "4,096 in flight, 10 B",
    "w256_1k": "256 in flight, 1 KiB",
    "w4096_1k": "4,096 in flight, 1 KiB",
}


class Child:
    """A child process speaking JSON lines: commands on stdin, answers and events on
    stdout (events are lines with an ``event`` key, kept with their arrival order)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        )
        self.log_path = log
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.pid = self.proc.pid
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.event_arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "event" in message:
                with self.event_arrived:
                    self.events.append(message)
                    self.event_arrived.notify_all()
            else:
                self.answers.put(message)
        self.answers.put(None)
        with self.event_arrived:
            self.event_arrived.notify_all()

    def answer(self, timeout: float) -> Any:
        try:
            message = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer within {timeout} s; see {self.log_path}") from None
        if message is None:
            raise RuntimeError(f"process exited ({self.proc.poll()}); see {self.log_path}")
        if "error" in message:
            raise RuntimeError(f"{message['error']}; see {self.log_path}")
        return message.get("ok", message)

    def send(self, op: str, arg: Any = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "arg": arg}) + "\n")
        self.proc.stdin.flush()

    def cmd(self, op: str, arg: Any = None, timeout: float = 120) -> Any:
        self.send(op, arg)
        return self.answer(timeout)

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.event_arrived:
            while True:
                for e in self.events:
                    if e["event"] == name:
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"no {name!r} event within {timeout} s")
                self.event_arrived.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.log.close()


def free_ports(count: int) -> list[int]:
    """Ports the OS hands out now (PySyncObj needs its address before it binds)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass
class Cluster:
    setting: Setting
    workdir: Path
    nodes: list[Child] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    client: Child | None = None
    profile: bool = False

    def start(self) -> None:
        s, work = self.setting, self.workdir
        self.client = Child([sys.executable, "-m", "bench.client"], work / "client.log")
        base: dict[str, Any] = {
            "system": s.system,
            "store": s.store,
            "timers": TIMERS,
            "insecure": s.insecure,
            "batch": s.batch,
            "machine": s.machine,
            "lean": s.lean,
        }
        if s.system == "pykka_raft" and not s.insecure:
            from pykka_raft.net import generate_keypair

            keys = work / "keys"
            for node_id in range(1, s.nodes + 1):
                if not (keys / f"node-{node_id}.key").exists():
                    generate_keypair(keys, node_id)
            base["keys"] = str(keys)
        if s.system == "pysyncobj":
            base["all"] = [f"127.0.0.1:{port}" for port in free_ports(s.nodes)]
        for node_id in range(1, s.nodes + 1):
            options = dict(base, id=node_id, data=str(work / f"n{node_id}"))
            if s.system == "pysyncobj":
                options["address"] = base["all"][node_id - 1]
            if self.profile:
                options["profile"] = str(work / f"n{node_id}.prof")
            self.nodes.append(
                Child(
                    [sys.executable, "-m", "bench.node", json.dumps(options)],
                    work / f"n{node_id}.log",
                )
            )
        ready = [n.answer(60) for n in self.nodes]
        self.gateways = [r["gateway"] for r in ready]
        if s.system in ("pykka_raft", "shape"):
            book = {str(i + 1): r["raft"] for i, r in enumerate(ready)}
            for n in self.nodes:
                n.send("init", book)
            for n in self.nodes:
                n.answer(60)

    def wait_leader(self, timeout: float = 30, after: float = 0.0) -> tuple[int, dict[str, Any]]:
        """The index of the first node that announced leadership after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                (e["t"], i, e)
                for i, n in enumerate(self.nodes)
                for e in list(n.events)
                if e["event"] == "leader" and e["t"] > after
            ]
            if found:
                _, index, event = min(found, key=lambda x: x[0])
                return index, event
            time.sleep(0.01)  # polling the reader threads' event lists
        raise RuntimeError(f"no leader within {timeout} s")

    def leader_events(self) -> int:
        return sum(1 for n in self.nodes for e in list(n.events) if e["event"] == "leader")

    def converge(self, members: list[int], timeout: float = 20) -> dict[str, Any]:
        """Wait until the members applied the same index with identical state machines."""
        start = time.monotonic()
        last: list[dict[str, Any]] = []
        while time.monotonic() - start < timeout:
            last = [self.nodes[i].cmd("digest", timeout=60) for i in members]
            if len({(d["last_applied"], d["digest"]) for d in last}) == 1:
                return {
                    "identical": True,
                    "after_s": time.monotonic() - start,
                    "last_applied": last[0]["last_applied"],
                    "keys": last[0]["keys"],
                }
            time.sleep(0.05)  # followers learn the commit index with the next heartbeat
        return {"identical": False, "after_s": time.monotonic() - start, "nodes": last}

    def stop(self) -> None:
        for child in [*self.nodes, *([self.client] if self.client else [])]:
            try:
                child.stop()
            except Exception as exc:  # keep stopping the others
                print(f"could not stop a process: {exc!r}", file=sys.stderr)


def measure(
    setting: Setting, workdir: Path, warmup: float, duration: float, profile: bool = False
) -> dict[str, Any]:
    """Start the cluster, run every phase of ``setting`` against its leader, check the
    state machines, stop. CPU and memory come from ``/proc``."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(setting, workdir, profile=profile)
    stages: dict[str, float] = {}
    t_start = time.monotonic()
    try:
        cluster.start()
        stages["start_s"] = time.monotonic() - t_start
        leader, event = cluster.wait_leader()
        stages["leader_s"] = time.monotonic() - t_start - stages["start_s"]
        assert cluster.client is not None
        pids = [n.pid for n in cluster.nodes]
        rest = [memory_mib(pid).get("rss") for pid in pids]
        follower = (leader + 1) % len(pids)
        names = {
            i: {int(k): v for k, v in cluster.nodes[i].cmd("threads").items()}
            for i in (leader, follower)
        }
        phases: dict[str, Any] = {}
        for name in setting.phases:
            phase = PHASES[name]
            stats0 = cluster.nodes[leader].cmd("stats")
            threads0 = {i: thread_stats(pids[i]) for i in (leader, follower)}
            cpu0 = [cpu_seconds(pid) or 0.0 for pid in pids]
            t0 = time.monotonic()
            result = cluster.client.cmd(
                "phase",
                {
                    "gateway": cluster.gateways[leader],
                    "inflight": phase.inflight,
                    "value_bytes": phase.value_bytes,
                    "warmup": warmup if phase.inflight > 1 else warmup / 3,
                    "duration": duration if phase.inflight > 1 else duration * 0.6,
                },
                timeout=120,
            )
            wall = time.monotonic() - t0
            cpu = [(cpu_seconds(pid) or 0.0) - c for pid, c in zip(pids, cpu0, strict=True)]
            answered = max(1, result["answered"])
            # Where a write's CPU goes, thread by thread (each actor has its own thread).
            result["threads"] = {
                role: per_thread(threads0[i], thread_stats(pids[i]), names[i], answered)
                for role, i in (("leader", leader), ("follower", follower))
            }
            stats1 = cluster.nodes[leader].cmd("stats")
            result["cpu_us_per_write"] = sum(cpu) / answered * 1e6
            result["leader_cpu_us_per_write"] = cpu[leader] / answered * 1e6
            result["leader_cpu_share"] = cpu[leader] / wall
            result["follower_cpu_share"] = max(
                (c / wall for i, c in enumerate(cpu) if i != leader), default=0.0
            )
            if stats1.get("synced_commits") is not None:
                synced = stats1["synced_commits"] - stats0["synced_commits"]
                commits = stats1["commits"] - stats0["commits"]
                entries = stats1["entries"] - stats0["entries"]
                # Log writes are the synced commits in "fsync" mode (applies commit
                # without a sync: a crash replays them from the log).
                result["leader_entries_per_commit"] = entries / max(1, synced or commits)
                result["leader_synced_commits"] = synced
                result["leader_commits"] = commits
            phases[name] = result
        peak = [memory_mib(pid).get("peak") for pid in pids]
        leader_events = cluster.leader_events()
        end_state = [n.cmd("state") for n in cluster.nodes]
        t_check = time.monotonic()
        check = cluster.converge(list(range(len(cluster.nodes))))
        stages["check_s"] = time.monotonic() - t_check
        profiles = None
        if profile:
            for n in cluster.nodes:
                n.cmd("dump_profile", timeout=120)
            profiles = {
                ("leader" if i == leader else f"follower {i + 1}"): str(workdir / f"n{i + 1}.prof")
                for i in range(len(cluster.nodes))
            }
        return {
            "leader_term": event["term"],
            "leader_changes": leader_events - 1,
            "leader_at_end": [s["leader"] for s in end_state].count(True) == 1
            and end_state[leader]["leader"],
            "failed_writes": sum(p["failed"] for p in phases.values()),
            "phases": phases,
            "state_machines": check,
            "memory_mib": {
                "at_rest_leader": rest[leader],
                "at_rest_max": max(r or 0 for r in rest),
                "peak_leader": peak[leader],
                "peak_max": max(p or 0 for p in peak),
            },
            "profiles": profiles,
            "stages": stages,
        }
    finally:
        cluster.stop()


def failover(setting: Setting, workdir: Path, before: float = 0.6) -> dict[str, Any]:
    """Kill the leader with SIGKILL under load (256 writes in flight); how long until a
    survivor announces it leads, and until a write sent after the kill commits."""
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(setting, workdir)
    try:
        cluster.start()
        leader, event = cluster.wait_leader()
        client = cluster.client
        assert client is not None
        others = [g for i, g in enumerate(cluster.gateways) if i != leader]
        client.send(
            "failover",
            {
                "leader": cluster.gateways[leader],
                "others": others,
                "inflight": 256,
                "before": before,
            },
        )
        client.wait_event("kill", 60)
        os.kill(cluster.nodes[leader].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        result = client.answer(60)
        new_index, new_event = cluster.wait_leader(timeout=30, after=killed_at)
        survivors = [i for i in range(len(cluster.nodes)) if i != leader]
        check = cluster.converge(survivors)
        first = result["first_commit_t"]
        return {
            "old_term": event["term"],
            "new_term": new_event["term"],
            "new_leader_ms": (new_event["t"] - killed_at) * 1000,
            "first_commit_ms": None if first is None else (first - killed_at) * 1000,
            "writes_before_kill": result["answered_before_kill"],
            "failed_writes": result["failed_before_kill"],
            "probe_refusals": result["probe_refusals"],
            "state_machines": check,
            "new_leader_is_survivor": new_index != leader,
        }
    finally:
        cluster.stop()
