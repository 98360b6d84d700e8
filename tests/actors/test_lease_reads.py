"""``LEASE`` reads served on the caller's thread (``pykka_raft/actor/lease.py``): they bypass
the node, and the view they are served from is never ahead of what the node decided (every
answered write covered; no lease once ``TimeoutNow`` leaves; none once the lease ran out)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    Call,
    ClientPayload,
    ClientRead,
    ClientReadResponse,
    ForwardToLeader,
    Get,
    Put,
    RaftRouter,
    ReadPolicy,
    ResponseMode,
    TimeoutNowRequest,
    TransferLeadership,
)
from pykka_raft.actor.lease import LeasePublisher, LeaseView
from pykka_raft.driver import NodeDriver
from pykka_raft.read_answers import ReadAnswers, settle
from pykka_raft.testing import Cluster

LEASE = ReadPolicy.LEASE


def lease_read(cluster: Cluster, node_id: int, key: str = "k", timeout: float = 10) -> Any:
    response = cluster.nodes[node_id].ask(ClientRead(Get(key), LEASE), timeout=timeout)
    assert isinstance(response, ClientReadResponse)
    return response.data


def wait_for_view(cluster: Cluster, node_id: int, timeout: float = 15) -> LeaseView:
    """Ask lease reads until the node publishes a view that can serve one."""
    board = cluster.nodes[node_id].lease
    assert board is not None
    deadline = time.monotonic() + timeout
    while True:
        lease_read(cluster, node_id)
        view = board.view
        if view is not None and view.sent_through >= view.read_index:
            return view
        assert time.monotonic() < deadline, f"node {node_id} published no lease view"
        time.sleep(0.01)  # poll, with the deadline above


@pytest.fixture
def node_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many ClientReads reached a node's thread."""
    reached: list[int] = []
    original = NodeDriver.client_reads

    def counting(self: NodeDriver, reads: Any) -> None:
        reads = list(reads)
        reached.append(len(reads))
        original(self, reads)

    monkeypatch.setattr(NodeDriver, "client_reads", counting)
    return reached


def test_a_lease_read_in_lease_bypasses_the_node(formed: Cluster, node_reads: list[int]) -> None:
    leader = formed.leader()
    formed.wait_applied(formed.write(Put("k", "v")).index)
    wait_for_view(formed, leader)
    served_fast = 0
    deadline = time.monotonic() + 20
    while served_fast < 20:  # a lease that lapses under load sends a read to the node
        before = sum(node_reads)
        assert lease_read(formed, leader) == "v"
        served_fast += sum(node_reads) == before
        assert time.monotonic() < deadline, f"only {served_fast} reads bypassed the node"
    # Reads of other policies still go to the node.
    before = sum(node_reads)
    formed.nodes[leader].ask(ClientRead(Get("k"), ReadPolicy.READ_INDEX), timeout=10)
    assert sum(node_reads) == before + 1


class _Recording:
    """A write's reply that notes, on the node's thread as it answers, the lease view a
    caller would read at that instant."""

    def __init__(self, board: Any, seen: list[tuple[int, LeaseView | None]]) -> None:
        self.board = board
        self.seen = seen
        self.done = threading.Event()

    def set(self, value: Any = None) -> None:
        self.seen.append((value.index, self.board.view))
        self.done.set()

    def set_exception(self, error: BaseException) -> None:
        self.seen.append((-1, None))
        self.done.set()


def _answered_writes_are_covered(cluster: Cluster) -> list[tuple[int, LeaseView | None]]:
    leader = cluster.leader()
    ref = cluster.nodes[leader]
    wait_for_view(cluster, leader)
    seen: list[tuple[int, LeaseView | None]] = []
    for i in range(100):
        mode = ResponseMode.COMMITTED if i % 2 else ResponseMode.APPLIED
        reply = _Recording(ref.lease, seen)
        ref.tell(Call(ClientPayload.new(Put("k", i), mode), reply))
        assert reply.done.wait(10)
        lease_read(cluster, leader)  # keeps readers interested, and the view in use
    assert all(index > 0 for index, _ in seen), seen
    return [(i, v) for i, v in seen if v is not None and v.read_index < i]


def test_every_answered_write_is_covered_by_the_view_published_before_it(formed: Cluster) -> None:
    """At the instant the node answers a write, a caller that then reads finds a view whose
    read index reaches that write (or no view): the view changes before a step's answers."""
    assert _answered_writes_are_covered(formed) == []


def test_control_a_view_published_only_after_each_step_lags_the_answers(
    make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative control: without the publication before a step's commands, the answers of
    a step that commits go out while the view still holds the previous read index."""
    monkeypatch.setattr(LeasePublisher, "before", lambda self: None)
    cluster = make_cluster([1, 2, 3])
    cluster.initialize()
    assert _answered_writes_are_covered(cluster) != []


def test_a_committed_write_is_read_back_by_the_next_lease_read(formed: Cluster) -> None:
    leader = formed.leader()
    wait_for_view(formed, leader)
    for i in range(200):
        formed.nodes[leader].ask(ClientPayload.new(Put("k", i), ResponseMode.COMMITTED), timeout=10)
        assert lease_read(formed, leader) == i


class _WatchingRouter:
    """The cluster's router, seen from the nodes: notes the sender's lease view at the
    instant a TimeoutNowRequest is sent (``tell`` runs on the sending node's thread)."""

    def __init__(self) -> None:
        self.router = RaftRouter.start()
        self.cluster: Cluster | None = None
        self.views: list[LeaseView | None] = []

    def tell(self, message: Any) -> None:
        if isinstance(message, Call) and isinstance(message.message, TimeoutNowRequest):
            assert self.cluster is not None
            board = self.cluster.nodes[message.message.leader_id].lease
            self.views.append(board.view if board is not None else None)
        self.router.tell(message)

    def ask(self, message: Any, **kwargs: Any) -> Any:
        return self.router.ask(message, **kwargs)

    def stop(self, *args: Any, **kwargs: Any) -> Any:
        return self.router.stop(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)


def _views_when_timeout_now_left(make_cluster: Callable[..., Cluster]) -> list[Any]:
    watching = _WatchingRouter()
    cluster = make_cluster([1, 2, 3], network=watching)
    watching.cluster = cluster
    cluster.initialize()
    leader = cluster.leader()
    cluster.wait_applied(cluster.write(Put("k", "v")).index)
    wait_for_view(cluster, leader)
    target = next(n for n in cluster.nodes if n != leader)
    cluster.nodes[leader].ask(TransferLeadership(target), timeout=30)
    assert cluster.leader(timeout=20) == target
    assert watching.views, "no TimeoutNowRequest was sent"
    return watching.views


def test_a_leader_gives_up_its_published_lease_before_timeout_now_leaves(
    make_cluster: Callable[..., Cluster],
) -> None:
    assert _views_when_timeout_now_left(make_cluster) == [None]


def test_control_without_the_early_publication_timeout_now_leaves_inside_the_lease(
    make_cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LeasePublisher, "before", lambda self: None)
    views = _views_when_timeout_now_left(make_cluster)
    assert any(view is not None for view in views)


def test_a_cut_off_leader_never_serves_a_value_the_majority_overwrote(formed: Cluster) -> None:
    old = formed.leader()
    formed.wait_applied(formed.write(Put("k", "before")).index)
    wait_for_view(formed, old)
    formed.isolate(old)
    new = formed.hub.wait_for(
        lambda m: next((n for n in m if n != old and m[n].current_leader == n), None),
        20,
        "a new leader on the majority side",
    )
    formed.nodes[new].ask(ClientPayload.new(Put("k", "after")), timeout=10)  # the fault
    board = formed.nodes[old].lease
    assert board is not None
    view = board.view  # gone once the old leader stepped down, else lapsed
    assert view is None or time.monotonic() * 1000 >= view.until
    with pytest.raises((ForwardToLeader, pykka.Timeout)):
        lease_read(formed, old, timeout=2)


def test_a_stopped_node_publishes_no_view(formed: Cluster) -> None:
    leader = formed.leader()
    wait_for_view(formed, leader)
    board = formed.nodes[leader].lease
    formed.stop_node(leader)
    assert board is not None and board.view is None


def test_a_refused_or_malformed_answer_reaches_the_reader_as_an_error(formed: Cluster) -> None:
    """The storage's answer to a read served on the caller's thread goes through the same
    rules as the node's: a query the state machine refuses, or an answer that is not one
    per query, is the reader's ``ApplicationError``; the node keeps serving."""
    leader = formed.leader()
    view = wait_for_view(formed, leader)
    board = formed.nodes[leader].lease
    assert board is not None
    for answers, cause in (((ValueError("no"),), ValueError), ((), IndexError), (None, TypeError)):
        reply = _Recording(board, [])
        errors: list[BaseException] = []
        reply.set_exception = errors.append  # type: ignore[method-assign]
        ReadAnswers([reply], view.sent_through, settle).set(answers)
        assert isinstance(errors[0], ApplicationError)
        assert isinstance(errors[0].error, cause)
    refused = formed.nodes[leader].ask(ClientRead("not a Get", LEASE), block=False)
    with pytest.raises(ApplicationError):
        refused.get(timeout=10)
    assert lease_read(formed, leader) is None  # key "k" was never written here
