"""``GET /metrics``: the node's figures in the Prometheus text format.

Raft figures are read from the node's latest :class:`~pykka_raft.RaftMetrics` when the
endpoint is scraped (:class:`RaftCollector`); HTTP figures (requests, write latency) are
counted by the HTTP layer as requests are served (:class:`HttpMetrics`). Each node has
its own registry, so several nodes can share one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pykka_raft import RaftMetrics, State
from pykka_raft.kv.node import MetricsView

WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RaftCollector(Collector):
    """Turns the node's latest metrics into gauges at scrape time."""

    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        """Yield the families of one scrape (nothing while the node is starting)."""
        m = self.view.latest()
        if m is None:
            return
        node = str(m.id)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["node"])
            family.add_metric([node], value)
            return family

        state = GaugeMetricFamily(
            "pykka_raft_state", "1 for the node's current role", labels=["node", "state"]
        )
        for s in State:
            state.add_metric([node, s.value], 1.0 if m.state is s else 0.0)
        yield state
        yield gauge("pykka_raft_is_leader", "1 if this node leads", float(m.state is State.LEADER))
        yield gauge("pykka_raft_term", "the node's current term", m.current_term)
        yield gauge("pykka_raft_last_log_index", "index of the last log entry", m.last_log_index)
        yield gauge("pykka_raft_commit_index", "highest index known committed", m.commit_index)
        yield gauge("pykka_raft_last_applied", "highest index applied", m.last_applied)
        yield gauge("pykka_raft_snapshot_index", "last index the snapshot covers", m.snapshot_index)
        yield gauge(
            "pykka_raft_current_leader", "the leader's id (0: none known)", m.current_leader or 0
        )
        yield gauge("pykka_raft_voters", "voters in the membership", len(m.voters))
        yield gauge("pykka_raft_non_voters", "non-voters in the membership", len(m.non_voters))
        changes = CounterMetricFamily(
            "pykka_raft_leader_changes",
            "leaders this node has seen take over since it started",
            labels=["node"],
        )
        changes.add_metric([node], self.view.leader_changes_total)
        yield changes
        yield from peer_families(m)


def peer_families(m: RaftMetrics) -> Iterator[Metric]:
    """Per-peer figures: the one place to add them.

    ``RaftMetrics`` does not carry per-peer replication progress yet. Once it does (a
    leader's match index per follower), yield ``pykka_raft_peer_match_index`` and
    ``pykka_raft_peer_lag`` (leader's last log index minus the match index) here, labelled
    ``node`` and ``peer``; the status page and ``status`` command compute lag from each
    node's own applied index meanwhile.
    """
    return iter(())


class HttpMetrics:
    """Figures measured in the HTTP layer, in the node's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "pykka_raft_kv_requests",
            "HTTP requests answered, by route and status",
            labelnames=["method", "route", "status"],
            registry=registry,
        )
        self.writes = Histogram(
            "pykka_raft_kv_write_seconds",
            "time from a write request's arrival to its answer, successful writes only",
            labelnames=["op"],
            buckets=WRITE_BUCKETS,
            registry=registry,
        )


def make_registry(view: MetricsView) -> tuple[CollectorRegistry, HttpMetrics]:
    """A registry for one node: its Raft collector and its HTTP metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RaftCollector(view))
    return registry, HttpMetrics(registry)
