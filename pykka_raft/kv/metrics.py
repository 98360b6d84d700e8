"""``GET /metrics``: the node's figures in the Prometheus text format.

Raft figures are read from the node's latest :class:`~pykka_raft.RaftMetrics` (and the
TCP network's ``NetworkMetrics``) when the endpoint is scraped (:class:`RaftCollector`);
HTTP figures (requests, write latency) are counted by the HTTP layer as requests are
served (:class:`HttpMetrics`). Each node has its own registry, so several nodes can share
one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pykka_raft import RaftMetrics, State
from pykka_raft.kv.metrics_view import MetricsView
from pykka_raft.kv.node import KvNode

WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RaftCollector(Collector):
    """Turns the node's latest metrics (and its network's) into families at scrape time."""

    def __init__(self, node: KvNode) -> None:
        self.node = node
        self.view: MetricsView = node.view

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

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=["node"])
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
        yield counter(
            "pykka_raft_leader_changes",
            "leaders this node has seen take over since it started",
            self.view.leader_changes_total,
        )
        yield counter(
            "pykka_raft_elections_started",
            "elections this node started as a candidate since it started",
            m.elections_started,
        )
        refused = CounterMetricFamily(
            "pykka_raft_writes_refused",
            "client writes the leader refused, by reason (busy: backpressure or a "
            "leadership transfer; application: the codec, storage or state machine)",
            labels=["node", "reason"],
        )
        refused.add_metric([node, "busy"], m.writes_refused_busy)
        refused.add_metric([node, "application"], m.writes_refused_application)
        yield refused
        yield counter(
            "pykka_raft_snapshots_sent",
            "snapshot transfers this node completed as a leader",
            m.snapshots_sent,
        )
        yield counter(
            "pykka_raft_snapshots_installed",
            "snapshots this node received and installed",
            m.snapshots_installed,
        )
        yield counter(
            "pykka_raft_snapshots_refused",
            "snapshots this node received whole and refused: their bytes did not match the digest",
            m.snapshots_refused,
        )
        yield from peer_families(m)
        yield from network_families(node, self.node.network_metrics())


def peer_families(m: RaftMetrics) -> Iterator[Metric]:
    """Per-peer replication figures, from the leader's view (``RaftMetrics.replication``;
    empty on followers), labelled ``node`` (the leader) and ``peer``."""
    node = str(m.id)
    matched = GaugeMetricFamily(
        "pykka_raft_peer_match_index",
        "the highest log index the leader knows replicated on the peer",
        labels=["node", "peer"],
    )
    lag = GaugeMetricFamily(
        "pykka_raft_peer_lag",
        "entries of the leader's log the peer lacks (last log index - match index)",
        labels=["node", "peer"],
    )
    snapshotting = GaugeMetricFamily(
        "pykka_raft_peer_snapshotting",
        "1 while the leader sends the peer a snapshot",
        labels=["node", "peer"],
    )
    for r in m.replication:
        peer = str(r.node_id)
        matched.add_metric([node, peer], r.matched)
        lag.add_metric([node, peer], r.lag)
        snapshotting.add_metric([node, peer], float(r.snapshotting))
    yield matched
    yield lag
    yield snapshotting


def network_families(node: str, net: Any) -> Iterator[Metric]:
    """The TCP network's figures (``GetNetworkMetrics``); nothing on the local network."""
    if net is None:
        return
    errors = CounterMetricFamily(
        "pykka_raft_net_errors",
        "refused input and failures the network saw, by kind (docs/network.md)",
        labels=["node", "kind"],
    )
    for kind, count in net.errors:
        errors.add_metric([node, kind], count)
    yield errors
    connected = GaugeMetricFamily(
        "pykka_raft_net_peer_connected",
        "1 while the outgoing connection to the peer is up",
        labels=["node", "peer"],
    )
    timeouts = CounterMetricFamily(
        "pykka_raft_net_peer_timeouts",
        "requests to the peer answered Unreachable after rpc_timeout or a dropped connection",
        labels=["node", "peer"],
    )
    failures = CounterMetricFamily(
        "pykka_raft_net_peer_failures",
        "requests to the peer answered Unreachable at once (not connected, isolated)",
        labels=["node", "peer"],
    )
    rtt = GaugeMetricFamily(
        "pykka_raft_net_peer_rtt_seconds",
        "round-trip time of the last answered requests to the peer",
        labels=["node", "peer", "quantile"],
    )
    for p in net.peers:
        peer = str(p.node_id)
        connected.add_metric([node, peer], float(p.state == "connected"))
        timeouts.add_metric([node, peer], p.timeouts)
        failures.add_metric([node, peer], p.failures)
        for quantile, value in (("0.5", p.rtt_ms_p50), ("0.99", p.rtt_ms_p99)):
            if value is not None:
                rtt.add_metric([node, peer, quantile], value / 1000.0)
    yield connected
    yield timeouts
    yield failures
    yield rtt


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


def make_registry(node: KvNode) -> tuple[CollectorRegistry, HttpMetrics]:
    """A registry for one node: its Raft collector and its HTTP metrics."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RaftCollector(node))
    return registry, HttpMetrics(registry)
