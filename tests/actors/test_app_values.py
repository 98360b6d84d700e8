"""Application values through a live cluster: the log, snapshots, and a node that joins
through a snapshot all end with equal values of the same types (docs/codec.md).

Each regression reproduces a failure of the edges found in issue 10: a ``bytes`` value
stopped every node at the next snapshot; an int dict key came back as a str key from a
snapshot, so a later compare-and-set swapped on the leader and not on the joined node; a
value the codec cannot carry was appended (and broke any storage that encodes entries).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pykka
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pykka_raft import (
    ApplicationError,
    CasResult,
    CompareAndSet,
    Config,
    GetMetrics,
    Put,
    RaftMetrics,
    SnapshotMeta,
    SnapshotPolicy,
    TriggerSnapshot,
)
from pykka_raft.codec import decode, encode, encoded_size
from pykka_raft.errors import EncodeError, EntryTooLarge
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing import Cluster
from pykka_raft.testing.cluster import wait_until
from pykka_raft.testing.crash import CrashableMemStore

BASE = Config(
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_policy=SnapshotPolicy.every(5),
)


class Installs:
    """Counts the snapshots each node installed from a leader (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_node: dict[int, int] = {}

    def add(self, node_id: int) -> None:
        with self._lock:
            self.by_node[node_id] = self.by_node.get(node_id, 0) + 1

    def of(self, node_id: int) -> int:
        with self._lock:
            return self.by_node.get(node_id, 0)


class CountingStore(CrashableMemStore):
    """A MemStore that reports every snapshot it installs from a leader."""

    def __init__(self, data: MemStoreData, node_id: int, installs: Installs) -> None:
        super().__init__(data=data)
        self.node_id = node_id
        self.installs = installs

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        super().install_snapshot(meta)
        self.installs.add(self.node_id)


def counting_cluster(config: Config = BASE) -> tuple[Cluster, Installs]:
    installs = Installs()

    def storage(node_id: int, data: MemStoreData) -> Any:
        return CountingStore.start(data, node_id, installs)

    return Cluster([1, 2, 3], config=config, storage=storage), installs


@pytest.fixture
def cluster() -> Iterator[tuple[Cluster, Installs]]:
    made, installs = counting_cluster()
    try:
        made.initialize()
        made.leader()
        yield made, installs
    finally:
        made.shutdown()
        pykka.ActorRegistry.stop_all()


def metrics(cluster: Cluster, node_id: int) -> RaftMetrics:
    result: RaftMetrics = cluster.nodes[node_id].ask(GetMetrics(), timeout=10)
    return result


def compact(cluster: Cluster, through: int) -> int:
    """Make the leader compact its log through at least ``through``; return the leader.

    ``SnapshotPolicy.every(5)`` compacts on its own too, but a leader may defer that while
    it sends a snapshot; ``TriggerSnapshot`` does not wait.
    """
    leader = cluster.leader()
    meta: SnapshotMeta = cluster.nodes[leader].ask(TriggerSnapshot(), timeout=10)
    assert meta.last_included.index >= through
    return leader


def join_through_snapshot(cluster: Cluster, installs: Installs, node_id: int) -> None:
    """Add a new voter to a cluster whose leader compacted: it must start from a snapshot."""
    cluster.start_node(node_id)
    cluster.change_membership(add=[node_id])
    wait_until(lambda: installs.of(node_id) >= 1, 10, f"node {node_id} to install a snapshot")


def value_on(cluster: Cluster, node_id: int, key: str) -> Any:
    return cluster.dump(node_id).state_machine[key]


def same(a: Any, b: Any) -> bool:
    """Equal with equal types at every depth (dict order too); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


# --- regressions ------------------------------------------------------------------------


def test_a_bytes_value_survives_snapshots_and_reaches_a_joining_node(cluster) -> None:
    cluster, installs = cluster
    index = cluster.write(Put("b", b"\x00\xff")).index
    compact(cluster, index)  # used to stop every node: bytes are not JSON serializable
    last = cluster.write(Put("after", 1)).index
    join_through_snapshot(cluster, installs, 4)
    cluster.wait_applied(last, nodes=[1, 2, 3, 4])
    for node_id in (1, 2, 3, 4):
        assert same(value_on(cluster, node_id, "b"), b"\x00\xff")


def test_an_int_key_survives_a_snapshot_and_cas_decides_alike_everywhere(cluster) -> None:
    cluster, installs = cluster
    index = cluster.write(Put("d", {1: "int key"})).index
    compact(cluster, index)
    join_through_snapshot(cluster, installs, 4)
    cluster.wait_applied(index, nodes=[4])
    assert same(value_on(cluster, 4, "d"), {1: "int key"})  # was {"1": "int key"}
    response = cluster.write(CompareAndSet("d", {1: "int key"}, "swapped"))
    assert response.data == CasResult(True, {1: "int key"})
    cluster.wait_applied(response.index, nodes=[1, 2, 3, 4])
    for node_id in (1, 2, 3, 4):
        assert value_on(cluster, node_id, "d") == "swapped", f"node {node_id} did not swap"


@attrs.frozen
class NotRegistered:
    x: int = 1


def _function() -> None:
    pass


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param(_function, "data", id="function"),
        pytest.param(NotRegistered(), "data", id="unregistered-class"),
        pytest.param(Put("k", _function), "data.value", id="function-in-put"),
        pytest.param(Put("k", [0, 1, 2, {"k": NotRegistered()}]), 'data.value[3]["k"]', id="deep"),
        pytest.param(Put("k", {1, 2}), "data.value", id="set"),
    ],
)
def test_an_unencodable_value_is_refused_before_anything_is_appended(
    cluster, value: Any, path: str
) -> None:
    cluster, _ = cluster
    leader = cluster.leader()
    before = metrics(cluster, leader).last_log_index
    with pytest.raises(ApplicationError) as info:
        cluster.write(value)
    assert isinstance(info.value.error, EncodeError)
    assert info.value.error.path == path
    assert metrics(cluster, leader).last_log_index == before
    assert cluster.dump(leader).log[-1].index == before
    after = cluster.write(Put("k", "fine"))  # the cluster keeps taking writes
    assert after.index == before + 1
    cluster.wait_applied(after.index)


def test_an_oversized_value_is_refused_with_its_size_and_the_limit() -> None:
    made, _ = counting_cluster(attrs.evolve(BASE, max_entry_bytes=1024))
    try:
        made.initialize()
        leader = made.leader()
        before = metrics(made, leader).last_log_index
        with pytest.raises(ApplicationError) as info:
            made.write(Put("k", b"x" * 2000))
        error = info.value.error
        assert isinstance(error, EntryTooLarge)
        assert (error.size, error.limit) == (encoded_size(Put("k", b"x" * 2000)), 1024)
        assert "1,024" in str(error)
        assert metrics(made, leader).last_log_index == before
        assert made.write(Put("k", b"x" * 900)).index == before + 1
    finally:
        made.shutdown()


# --- the property -----------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, -0.0, math.inf]),
    st.text(max_size=6),
    st.sampled_from(["__type__", "__tuple__", "__dict__", "__int__", "__bytes__"]),
    st.binary(max_size=6),
)
_keys = st.one_of(_scalars, st.lists(_scalars, max_size=2).map(tuple))
app_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=3),
        st.builds(CasResult, st.booleans(), inner),
    ),
    max_leaves=8,
)
refused = st.recursive(
    st.sampled_from([_function, NotRegistered(), {1}, frozenset(), bytearray(), object()]),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=3), inner, min_size=1, max_size=2),
        st.builds(CasResult, st.booleans(), inner),
    ),
    max_leaves=3,
)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Cluster, Installs, Callable[[], int]]]:
    made, installs = counting_cluster()
    ids = itertools.count(4)
    try:
        made.initialize()
        made.leader()
        yield made, installs, lambda: next(ids)
    finally:
        made.shutdown()


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # each example costs a membership change
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)
@given(values=st.lists(app_values, min_size=1, max_size=3), bad=refused)
def test_values_end_equal_on_every_node_and_cas_agrees(
    shared: tuple[Cluster, Installs, Callable[[], int]], values: list[Any], bad: Any
) -> None:
    cluster, installs, new_id = shared
    joiner = new_id()
    keys = [f"n{joiner}-{i}" for i in range(len(values))]
    leader = cluster.leader()
    before = metrics(cluster, leader).last_log_index
    with pytest.raises(ApplicationError):
        cluster.write(Put(keys[0], bad))
    assert metrics(cluster, leader).last_log_index == before  # refused: nothing appended

    last = 0
    for key, value in zip(keys, values, strict=True):
        last = cluster.write(Put(key, value)).index
    compact(cluster, last)
    join_through_snapshot(cluster, installs, joiner)
    nodes = [1, 2, 3, joiner]
    cluster.wait_applied(last, nodes=nodes)
    for node_id in nodes:
        data = cluster.dump(node_id).state_machine
        for key, value in zip(keys, values, strict=True):
            assert same(data[key], value), f"node {node_id} holds {data[key]!r} at {key}"

    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        # The leader and its followers hold the client's objects, the joiner decoded
        # copies: an expected value that is a copy, or the very object, must decide alike.
        expected = value if i % 2 else decode(encode(value, Any), Any)
        swapped = cluster.write(CompareAndSet(key, expected, ("swapped", key)))
        assert swapped.data.swapped and same(swapped.data.previous, value)
        stale = cluster.write(CompareAndSet(key, value, "again"))
        assert not stale.data.swapped
        last = stale.index
    cluster.wait_applied(last, nodes=nodes)
    for node_id in nodes:
        data = cluster.dump(node_id).state_machine
        for key in keys:
            assert data[key] == ("swapped", key), f"node {node_id} decided otherwise at {key}"

    cluster.change_membership(remove=[joiner])
    cluster.stop_node(joiner)
