"""The key-value service as real processes on loopback: ``pykka-raft-kv serve`` nodes
with TCP + CURVE and SqliteStore, each binding ports the system chose and reporting them
in a ready file.

One cluster goes through a life: formed with the ``init`` command, written through every
node, its leader killed with SIGKILL, every node killed and restarted from disk, a node
added and one removed with the commands, leadership transferred, and a leader stopped
with SIGTERM while a write waits on it. Every step checks that its fault happened (exit
status -9, a new leader, a new process id) and that nothing acknowledged was lost.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pykka_raft.kv import Client, UnknownOutcome
from pykka_raft.kv.launcher import ProcessCluster, wait
from tests.kv.conftest import secure_processes

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

RAFT = {"election_timeout_min": 300, "election_timeout_max": 600, "heartbeat_interval": 50}
HTTP = {"request_timeout": 10.0, "shutdown_grace": 1.0}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    yield from secure_processes(tmp_path, RAFT, HTTP)


def cli(urls: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``pykka-raft-kv`` command as a user would."""
    flags = [f"--url={u}" for u in urls]
    return subprocess.run(
        [sys.executable, "-m", "pykka_raft.kv", *flags, "--deadline=30", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def stale(url: str, key: str) -> Any:
    """``key`` on one node as it is (no leader involved); ``None`` if absent there."""
    try:
        return Client([url], timeout=5.0, deadline=5.0).get(key, consistency="stale")
    except Exception:
        return None


def test_a_cluster_of_processes_through_its_life(cluster: ProcessCluster) -> None:
    # --- formation with the init command, from nodes that know nothing of each other.
    cluster.start_all([1, 2, 3])
    ports = {n: (cluster.nodes[n].http, cluster.nodes[n].raft) for n in (1, 2, 3)}
    assert all(h and r and not h.endswith(":0") for h, r in ports.values())
    init = cli(cluster.urls(), "init")
    assert init.returncode == 0, init.stderr
    assert [json.loads(line)["members"] for line in init.stdout.splitlines()] == [[1, 2, 3]] * 3
    leader = cluster.leader()

    # --- writes through any node (followers redirect), read back from every node.
    for node_id in (1, 2, 3):
        answer = Client([cluster.nodes[node_id].url]).put(f"via/{node_id}", node_id)
        assert answer["existed"] is False
    for node_id in (1, 2, 3):
        url = cluster.nodes[node_id].url
        assert Client([url]).get("via/3") == 3
        wait(lambda u=url: stale(u, "via/1") == 1, 30, f"via/1 on node {node_id}")

    # --- SIGKILL of the leader: another node leads, writes go on.
    old_pid = cluster.nodes[leader].pid
    assert cluster.kill(leader) == -signal.SIGKILL
    survivors = [n for n in (1, 2, 3) if n != leader]
    new_leader = cluster.leader(survivors)
    assert new_leader != leader
    client = cluster.client(survivors)
    client.put("after-kill", "yes")
    cluster.start(leader)
    assert cluster.nodes[leader].pid != old_pid
    assert (cluster.nodes[leader].http, cluster.nodes[leader].raft) == ports[leader]
    wait(lambda: stale(cluster.nodes[leader].url, "after-kill") == "yes", 30, "the catch-up")

    # --- every node killed at once and restarted: the data can only come from disk.
    terms_before = {n: s["term"] for n, s in cluster.statuses().items()}
    for node_id in (1, 2, 3):
        assert cluster.kill(node_id) == -signal.SIGKILL
    assert cluster.running() == []
    cluster.start_all([1, 2, 3])
    cluster.leader()
    client = cluster.client()
    assert [client.get(f"via/{n}") for n in (1, 2, 3)] == [1, 2, 3]
    assert client.get("after-kill") == "yes"
    terms_after = {n: s["term"] for n, s in cluster.statuses().items()}
    assert all(terms_after[n] >= terms_before[n] for n in (1, 2, 3)), (terms_before, terms_after)

    # --- membership changes with the commands: add node 4, refuse nonsense, remove node 1.
    four = cluster.start(4)
    urls = cluster.urls([1, 2, 3])
    added = cli(
        urls, "add-voter", "4", f"--http-address={four.http}", f"--raft-address={four.raft}"
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["voters"] == [1, 2, 3, 4]
    twice = cli(
        urls, "add-voter", "4", f"--http-address={four.http}", f"--raft-address={four.raft}"
    )
    assert twice.returncode == 4 and "noop" in twice.stderr
    everyone = cli(urls, "remove", "1", "2", "3", "4")
    assert everyone.returncode == 4 and "inoperable_config" in everyone.stderr
    wait(lambda: stale(four.url, "after-kill") == "yes", 30, "node 4 to catch up")
    removed = cli(urls, "remove", "1")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["voters"] == [2, 3, 4]
    assert cluster.kill(1, signal.SIGTERM) == 0  # a removed node is stopped
    members = [2, 3, 4]
    # Node 1 may have been stopped before its handover ended: the others then elect one.
    target = cluster.leader(members)
    status = cli(cluster.urls(members), "status")
    assert status.returncode == 0, status.stderr + status.stdout
    rows = {int(line.split()[0]): line.split() for line in status.stdout.splitlines()[2:5]}
    assert sorted(rows) == members and all(r[1] == "voter" for r in rows.values())

    # --- SIGTERM of the leader while a write waits on it (its followers are stopped, so
    # the write cannot commit): the write is answered, the node exits 0 and its data
    # directory opens again at once (the store was closed, its lock released).
    followers = [n for n in members if n != target]
    for node_id in followers:
        cluster.nodes[node_id].send_signal(signal.SIGSTOP)
    answers: list[Any] = []
    writer = threading.Thread(
        target=lambda: answers.append(_put_once(cluster.nodes[target].url, "pending", 1))
    )
    try:
        writer.start()
        wait(lambda: _inflight_writes(cluster.nodes[target].url) >= 1, 30, "the pending write")
        started = time.monotonic()
        assert cluster.kill(target, signal.SIGTERM) == 0
        writer.join(60)
    finally:
        for node_id in followers:
            cluster.nodes[node_id].send_signal(signal.SIGCONT)
    (answer,) = answers
    assert isinstance(answer, UnknownOutcome), answer
    assert "stopped" in str(answer) and "no answer within" not in str(answer), answer
    assert time.monotonic() - started < HTTP["request_timeout"]  # answered by the stop
    log = cluster.nodes[target].log_tail()
    assert "stopped" in log and "Traceback" not in log
    cluster.start(target)
    cluster.leader(members)
    assert cluster.client(members).get("via/2") == 2


def test_transfer_leader_between_processes(cluster: ProcessCluster) -> None:
    leader = cluster.form([1, 2, 3])
    target = next(n for n in (1, 2, 3) if n != leader)
    moved = cli(cluster.urls(), "transfer-leader", f"--to={target}")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["leader_id"] == target
    assert cluster.leader() == target


def _put_once(url: str, key: str, value: Any) -> Any:
    try:
        # No session: the node's own answer to a write it holds when stopped is the point.
        return Client([url], timeout=60.0, deadline=60.0, sessions=False).put(key, value)
    except Exception as exc:
        return exc


def _inflight_writes(url: str) -> float:
    """Entries the leader appended but could not commit yet: the write waiting on it."""
    status = Client([url], timeout=5.0, deadline=5.0).status()
    return float(status["last_log_index"] - status["commit_index"])


def test_a_cluster_left_in_a_directory_starts_again_on_its_addresses(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    """What ``local-cluster --dir D`` does on a directory an earlier run left: the same
    nodes start again on their addresses (their peers know them by those), no ``init``."""
    assert cluster.earlier_nodes() == []
    cluster.form([1, 2, 3])
    cluster.client().put("kept", 1)
    addresses = {n: (node.http, node.raft) for n, node in cluster.nodes.items()}
    for node_id in (1, 2, 3):
        assert cluster.kill(node_id, signal.SIGTERM) == 0
    again = ProcessCluster(tmp_path, secure=True, raft=RAFT, http=HTTP, durability="fsync")
    try:
        assert again.earlier_nodes() == [1, 2, 3]
        again.resume([1, 2, 3])
        assert {n: (node.http, node.raft) for n, node in again.nodes.items()} == addresses
        assert again.client().get("kept") == 1
    finally:
        again.close()
