"""Fuzzing a live 3-node cluster over TCP with bad frames from an authenticated peer.

A peer whose CURVE key every node accepts (as node 99, which is in no membership) sends
random and mutated frames (bit flips, truncations, fields of the wrong type, unknown
types, huge declared lengths, wrong headers, requests for other nodes or in another
node's name) to every node while clients keep writing. Every frame must be refused and
counted, no node may stop, no safety monitor may fire, every acknowledged write must be
on every node, and the cluster must keep committing.

``make test`` runs a bounded slice; the full run is on demand::

    PYKKA_RAFT_FUZZ_FRAMES=100000 python -m pytest -q tests/network/test_tcp_fuzz.py
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
import zmq
from tcp_samples import bad_frames

from pykka_raft import Config, Put, ResponseMode, SnapshotPolicy, State
from pykka_raft.net import (
    GetNetworkMetrics,
    TrustKey,
    generate_keypair,
    load_keypair,
    load_public_keys,
)
from pykka_raft.network import frames
from pykka_raft.network.tcp_options import HEADROOM
from pykka_raft.testing import Cluster
from pykka_raft.testing.monitors import check_cluster_data

FRAMES = int(os.environ.get("PYKKA_RAFT_FUZZ_FRAMES", "10000"))
SEED = int(os.environ.get("PYKKA_RAFT_FUZZ_SEED", "1"))
CONFIG = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_max_chunk_size=4096,
    snapshot_policy=SnapshotPolicy.disabled(),  # the harness's state machines keep history
)
CAP = CONFIG.snapshot_max_chunk_size + HEADROOM
REFUSALS = (
    frames.MALFORMED_FRAME,
    frames.BAD_VERSION,
    frames.UNKNOWN_KIND,
    frames.OVERSIZED,
    frames.MALFORMED_MSGPACK,
    frames.UNKNOWN_TYPE,
    frames.DECODE_ERROR,
    "unexpected_kind",
    "wrong_target",
    "wrong_source",
)
"""What a fuzz frame is refused as (the cluster's own traffic is never refused so)."""


class Writers:
    """Client threads writing distinct keys through the leader; records what was acked."""

    def __init__(self, cluster: Cluster, count: int = 2) -> None:
        self.cluster = cluster
        self.stop = threading.Event()
        self.acked: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)
        ]

    def _run(self, client: int) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"c{client}-{i}"
            try:
                self.cluster.write(Put(key, i), ResponseMode.APPLIED, timeout=10)
            except Exception as exc:  # recorded: the test fails on any
                self.errors.append(exc)
                return
            with self.lock:
                self.acked.append((key, i))
            i += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def refused(cluster: Cluster, node_id: int) -> int:
    metrics = cluster.tcp.networks[node_id].ask(GetNetworkMetrics())
    return sum(metrics.error_count(kind) for kind in REFUSALS)


@pytest.mark.timeout(600)
def test_fuzzed_frames_are_refused_and_the_cluster_keeps_committing() -> None:
    cluster = Cluster([1, 2, 3], CONFIG, seed=SEED, tcp=True)
    ctx = zmq.Context()
    sockets: dict[int, Any] = {}
    try:
        cluster.initialize()
        cluster.leader()
        key_dir = cluster.tcp.key_dir
        generate_keypair(key_dir, 99)
        public, secret = load_keypair(f"{key_dir}/node-99.key_secret")
        for network in cluster.tcp.networks.values():
            network.ask(TrustKey(99, public))  # an authenticated peer, in no membership
        servers = load_public_keys(key_dir)
        for node_id in (1, 2, 3):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_secretkey, sock.curve_publickey = secret, public
            sock.curve_serverkey = servers[node_id]
            sock.connect(f"tcp://{cluster.tcp.addresses[node_id]}")
            sockets[node_id] = sock
        streams = {n: bad_frames(SEED * 10 + n, n, source=1, max_bytes=CAP) for n in (1, 2, 3)}
        sent = dict.fromkeys((1, 2, 3), 0)
        before = {n: refused(cluster, n) for n in (1, 2, 3)}
        started = time.monotonic()
        with Writers(cluster) as writers:
            # FRAMES frames at least, and on until the writers committed more than 10
            # writes under them (a loaded machine sends the frames faster than it commits).
            i, fuzzing = 0, time.monotonic() + 120
            while i < FRAMES or writers.count() <= 10:
                assert time.monotonic() < fuzzing, f"{writers.count()} writes in 120 s of fuzz"
                node_id = 1 + i % 3
                i += 1
                parts = next(streams[node_id])
                deadline = time.monotonic() + 30
                while True:
                    try:
                        sockets[node_id].send_multipart(parts, zmq.NOBLOCK)
                        break
                    except zmq.Again:  # the queue is full (or still connecting): back off
                        assert time.monotonic() < deadline, f"node {node_id} takes no frames"
                        time.sleep(0.005)
                sent[node_id] += 1
            # Every frame arrived and was refused: the fault really happened.
            deadline = time.monotonic() + 60
            while any(refused(cluster, n) - before[n] < sent[n] for n in sent):
                assert time.monotonic() < deadline, (
                    f"frames sent {sent}, refused "
                    f"{ {n: refused(cluster, n) - before[n] for n in sent} }"
                )
                time.sleep(0.05)  # the nodes are still reading
            acked_during = writers.count()
        elapsed = time.monotonic() - started
        assert not writers.errors, writers.errors
        assert acked_during > 10, f"only {acked_during} writes committed under fuzzing"
        assert {n: refused(cluster, n) - before[n] for n in sent} == sent  # none accepted

        for node_id, ref in cluster.nodes.items():
            assert ref.is_alive(), f"node {node_id} stopped"
            assert cluster.tcp.networks[node_id].is_alive()
            net = cluster.tcp.networks[node_id].ask(GetNetworkMetrics())
            assert net.error_count("internal_error") == 0
        assert all(m.state is not State.SHUTDOWN for m in cluster.hub.snapshot().values())

        last = cluster.write(Put("after", "fuzz"), ResponseMode.APPLIED)
        cluster.wait_applied(last.index)
        assert check_cluster_data(cluster.hub.history, cluster.data, cluster.hard_states) == []
        for node_id, data in cluster.data.items():
            kv = data.state_machine.data
            missing = [(k, v) for k, v in writers.acked if kv.get(k) != v]
            assert not missing, f"node {node_id} lacks acknowledged writes {missing[:3]}"
        print(
            f"{i} fuzz frames (seed {SEED}) in {elapsed:.1f}s, "
            f"{acked_during} writes committed meanwhile"
        )
    finally:
        for sock in sockets.values():
            sock.close()
        ctx.term()
        cluster.shutdown()
