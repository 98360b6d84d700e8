"""Tools to run and check pykka_raft clusters in one process (tests, demos, embedding)."""

from pykka_raft.testing.cluster import Cluster, MetricsHub, wait_until

__all__ = ["Cluster", "MetricsHub", "wait_until"]
