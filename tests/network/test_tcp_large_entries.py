"""Entries too large to travel together: a follower behind by more than one frame holds
catches up over TCP, the network saying how many entries fit (``RequestTooLarge.fits``)."""

from __future__ import annotations

import pytest

from pykka_raft import Config, Put, SnapshotPolicy
from pykka_raft.net import GetNetworkMetrics
from pykka_raft.testing import Cluster
from pykka_raft.testing.monitors import check_cluster_data

# A frame cap of 64 KiB + 1 MiB (the default for these limits): about 18 values of 60 KiB.
CONFIG = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    max_entry_bytes=64 * 1024,
    snapshot_max_chunk_size=64 * 1024,
    snapshot_policy=SnapshotPolicy.disabled(),
)


@pytest.mark.timeout(120)
def test_a_follower_behind_by_more_than_a_frame_catches_up_sent_what_fits() -> None:
    with Cluster([1, 2, 3], CONFIG, tcp=True) as cluster:
        cluster.initialize()
        leader = cluster.leader()
        behind = next(n for n in (1, 2, 3) if n != leader)
        cluster.isolate(behind)
        last = 0
        for i in range(40):  # 2.4 MiB of values: more than two frames
            last = cluster.write(Put(f"k{i}", bytes([i]) * 60_000)).index
        cluster.restore(behind)
        cluster.wait_applied(last, nodes=[behind], timeout=60)
        network = cluster.tcp.networks[cluster.leader()]
        # The fault really happened: the first catch-up request (two small entries and 39
        # values) was too large; 19 of its entries fit, then 18 of the next 19 (values
        # only), and every later request fit. Batches only shrink on a loaded machine.
        refusals = network.ask(GetNetworkMetrics()).error_count("request_too_large")
        assert 1 <= refusals <= 2
        assert check_cluster_data(cluster.hub.history, cluster.data, cluster.hard_states) == []
        copies = {n: d.state_machine.data for n, d in cluster.data.items()}
        assert copies[behind] == copies[leader] and len(copies[behind]) == 40
