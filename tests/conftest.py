"""Fixtures for multi-node tests with real Pykka actors, MemStore and the router (the
actor, session and lease tests use them)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pykka
import pytest

from pykka_raft import Config
from pykka_raft.testing import Cluster

# Timeouts generous enough for a loaded 2-core machine; every wait has a deadline.
TEST_CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
SEED = int(os.environ.get("PYKKA_RAFT_SEED", "0"))


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """Build clusters that are shut down (with every actor) when the test ends."""
    clusters: list[Cluster] = []

    def make(
        node_ids: list[int], config: Config = TEST_CONFIG, seed: int = SEED, **kwargs: object
    ) -> Cluster:
        cluster = Cluster(node_ids, config=config, seed=seed, **kwargs)  # type: ignore[arg-type]
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.shutdown()
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def formed(make_cluster: Callable[..., Cluster]) -> Cluster:
    """A 3-node cluster, initialized, with an agreed leader."""
    cluster = make_cluster([1, 2, 3])
    cluster.initialize()
    cluster.leader()
    return cluster
