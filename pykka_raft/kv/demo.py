"""``pykka-raft-kv demo`` (``make demo``): the service on three local processes, through a
leader crash and a membership change.

Three ``serve`` processes (TCP with CURVE keys, ``SqliteStore`` with fsync, data in a
temporary directory) form a cluster. Client threads write unique keys through the HTTP
API while a progress line runs; the leader is killed with SIGKILL; the others elect a new
one and the writes go on; a fourth node is added and the dead one removed. Every
acknowledged key is then read back through the leader, and a summary table says how many
writes were acknowledged, how many were lost (0), how long the failover took, and the
final members. Every process is stopped and the directory removed at the end.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from pykka_raft.kv.client import Client
from pykka_raft.kv.errors import KeyNotFound, KvError, UnknownOutcome
from pykka_raft.kv.launcher import ProcessCluster

RAFT = {"election_timeout_min": 300, "election_timeout_max": 600, "heartbeat_interval": 50}
START = time.monotonic()


def say(text: str) -> None:
    """One line of the story, with the time since the start."""
    line = f"[{time.monotonic() - START:6.2f}s] {text}"
    print("\r" + line.ljust(79) if sys.stdout.isatty() else line, flush=True)


class Writers:
    """Client threads writing unique keys; they keep what was acknowledged."""

    def __init__(self, urls: list[str], clients: int) -> None:
        self.urls = urls
        self.clients = clients
        self.lock = threading.Lock()
        self.acked: dict[str, int] = {}
        self.ack_times: list[tuple[float, float]] = []  # (invoke, return) of each ack
        self.unknown = 0
        self.refused = 0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(c,), name=f"demo-writer-{c}", daemon=True)
            for c in range(clients)
        ]

    def start(self) -> None:
        """Start writing."""
        for thread in self.threads:
            thread.start()

    def _run(self, client_id: int) -> None:
        client = Client(self.urls, timeout=5.0, deadline=10.0)
        n = 0
        while not self.stop.is_set():
            n += 1
            key = f"demo/{client_id}/{n:06d}"
            invoke = time.monotonic()
            try:
                client.put(key, n)
            except UnknownOutcome:
                with self.lock:
                    self.unknown += 1
                continue
            except KvError:
                with self.lock:
                    self.refused += 1
                continue
            with self.lock:
                self.acked[key] = n
                self.ack_times.append((invoke, time.monotonic()))

    def finish(self) -> None:
        """Stop the writers and wait for them."""
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def first_ack_invoked_after(self, moment: float) -> float | None:
        """When the first write invoked after ``moment`` was acknowledged."""
        with self.lock:
            times = [ret for invoke, ret in self.ack_times if invoke >= moment]
        return min(times) if times else None


def progress(writers: Writers, cluster: ProcessCluster, until: float, label: str) -> None:
    """Show a progress line until ``until`` (a line a second when not on a terminal)."""
    tty = sys.stdout.isatty()
    last = len(writers.acked)
    last_time = time.monotonic()
    next_line = last_time + 1.0
    while time.monotonic() < until:
        time.sleep(0.25)  # the pace of a progress line
        now = time.monotonic()
        count = len(writers.acked)
        rate = (count - last) / max(now - last_time, 1e-6)
        last, last_time = count, now
        text = (
            f"[{now - START:6.2f}s] {label}: {count} writes acknowledged ({rate:5.0f}/s), "
            f"{writers.unknown} unknown, nodes up {cluster.running()}"
        )
        if tty:
            print("\r" + text.ljust(79), end="", flush=True)
        elif now >= next_line:
            print(text, flush=True)
            next_line = now + 1.0
    if tty:
        print("\r" + " " * 79 + "\r", end="", flush=True)


def read_back(urls: list[str], acked: dict[str, int]) -> tuple[int, list[str]]:
    """Read every acknowledged key through the leader; ``(checked, lost keys)``."""
    client = Client(urls, timeout=10.0, deadline=30.0)
    lost: list[str] = []

    def check(item: tuple[str, int]) -> str | None:
        key, value = item
        try:
            return None if client.get(key) == value else key
        except KeyNotFound:
            return key

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for missing in pool.map(check, sorted(acked.items())):
            if missing is not None:
                lost.append(missing)
    return len(acked), lost


def run_demo(clients: int = 4, seconds: float = 4.0, keep: str | None = None) -> int:
    """Run the demo (``seconds`` in (0, 86400], as the command checks); 0 if no
    acknowledged write was lost."""
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="pykka-raft-kv-demo-"))
    cluster = ProcessCluster(root, secure=True, raft=RAFT, durability="fsync")
    writers: Writers | None = None
    try:
        say(f"starting nodes 1, 2, 3 as processes (TCP + CURVE keys, SqliteStore) in {root}")
        leader = cluster.form([1, 2, 3])
        for node_id in (1, 2, 3):
            node = cluster.nodes[node_id]
            say(f"node {node_id}: pid {node.pid}, HTTP {node.url}, Raft {node.raft}")
        say(f"cluster formed: node {leader} leads")
        writers = Writers(cluster.urls(), clients)
        writers.start()
        progress(writers, cluster, time.monotonic() + seconds, "writing")
        victim = cluster.nodes[leader]
        say(f"SIGKILL the leader, node {leader} (pid {victim.pid})")
        killed_at = time.monotonic()
        code = victim.kill(signal.SIGKILL)
        say(f"node {leader} is dead (exit status {code})")
        survivors = [n for n in (1, 2, 3) if n != leader]
        new_leader = cluster.leader(survivors)
        elected = time.monotonic() - killed_at
        say(f"node {new_leader} leads now ({elected:.2f} s after the kill)")
        progress(writers, cluster, time.monotonic() + seconds, "writing")
        say("starting node 4 and adding it as a voter (it catches up first)")
        four = cluster.start(4)
        admin = Client(cluster.urls(survivors), timeout=10.0, deadline=30.0)
        added = admin.add_voter(4, four.http or "", four.raft)
        say(f"voters {added['voters']}")
        say(f"removing the dead node {leader}")
        removed = admin.remove(leader)
        say(f"voters {removed['voters']}")
        progress(writers, cluster, time.monotonic() + seconds / 2, "writing")
        writers.finish()
        members = sorted(removed["voters"])
        say(f"reading back all {len(writers.acked)} acknowledged keys through the leader ...")
        checked, lost = read_back(cluster.urls(members), writers.acked)
        first = writers.first_ack_invoked_after(killed_at)
        failover = f"{first - killed_at:.2f} s" if first is not None else "no write after it"
        total = writers.ack_times[-1][1] - writers.ack_times[0][0] if writers.ack_times else 0
        rows = [
            ("writes acknowledged", f"{checked} ({checked / max(total, 1e-6):.0f}/s)"),
            ("lost", f"{len(lost)} (every acknowledged key read back through the leader)"),
            ("outcome unknown", f"{writers.unknown} (answers cut by the kill; not counted)"),
            ("failover time", f"{failover} (SIGKILL of the leader to the next acknowledged"),
            ("", f"write; node {new_leader} was elected after {elected:.2f} s)"),
            ("final members", f"voters {members}, leader node {cluster.leader(members)}"),
        ]
        print()
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"  {name.ljust(width)}  {value}")
        print(flush=True)
        if lost:
            print(f"LOST WRITES: {lost[:20]}", flush=True)
        say("stopping every node (SIGTERM)")
        codes = {n: cluster.kill(n, signal.SIGTERM) for n in cluster.running()}
        say(f"exit statuses {codes}; removing {root}" if not keep else f"data kept in {root}")
        return 1 if lost else 0
    except (KvError, OSError, TimeoutError, RuntimeError) as exc:
        print(f"\nthe demo failed: {exc}", file=sys.stderr)
        for node_id, node in sorted(cluster.nodes.items()):
            print(f"--- node {node_id} log ---\n{node.log_tail(1500)}", file=sys.stderr)
        return 1
    finally:
        if writers is not None:
            writers.finish()
        cluster.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
