"""Edges of the actors: stray messages, stopped or stuck storages, calls to stopping nodes,
and a node asked to form a cluster the moment it starts (issue: hardening the edges)."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    Busy,
    Call,
    ClientPayload,
    Config,
    ForwardToLeader,
    FutureReply,
    GetInitialState,
    GetMetrics,
    InitWithConfig,
    MemStore,
    NodeNotLeader,
    NotAllowed,
    Put,
    Raft,
    RaftRouter,
    Register,
    ShuttingDown,
    SnapshotPolicy,
    SqliteStore,
    State,
    StorageError,
    TransferLeadership,
    TriggerElection,
    UnknownMessage,
    Unreachable,
    VoteRequest,
)
from pykka_raft.logs import NODE
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing import MetricsHub, wait_until
from pykka_raft.testing.faultnet import Direction, FaultNetwork, LinkRule, SetLinkRule

FAST = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


class _Stray:
    """A message no actor of pykka_raft handles."""


def test_init_with_config_sent_right_after_start_waits_for_the_start() -> None:
    router, store, hub = RaftRouter.start(), MemStore.start(), MetricsHub()
    node = Raft.start(1, FAST, router, store, hub)
    try:
        router.ask(Register(1, node))
        node.ask(InitWithConfig([1]), timeout=10)  # no polling of the metrics first
        hub.wait_for(lambda m: m[1].state is State.LEADER, 10, "node 1 to lead")
    finally:
        for ref in (node, store, router):
            ref.stop()


class _SlowStartStore(MemStore):
    """Answers ``GetInitialState`` only once ``gate`` is set: the node stays starting."""

    gate = threading.Event()

    def handle(self, message: Any) -> Any:
        if isinstance(message, GetInitialState):
            _SlowStartStore.gate.wait(10)
        return super().handle(message)


@pytest.mark.parametrize("call", [TriggerElection(), TransferLeadership()])
def test_admin_calls_sent_while_starting_wait_for_the_start(call: Any) -> None:
    """Sent while the storage has not reported its state, they are answered from the
    started node (not refused as "still starting")."""
    _SlowStartStore.gate.clear()
    router, store, hub = RaftRouter.start(), _SlowStartStore.start(), MetricsHub()
    node = Raft.start(1, FAST, router, store, hub)
    try:
        waiting = node.ask(call, block=False)
        with pytest.raises(ForwardToLeader):  # taken (and refused) while still starting
            node.ask(ClientPayload.new(Put("k", "v")), timeout=10)
        with pytest.raises(Exception) as before:
            waiting.get(timeout=0)
        assert isinstance(before.value, pykka.Timeout)  # not answered while starting
        _SlowStartStore.gate.set()
        with pytest.raises(Exception) as answer:
            waiting.get(timeout=10)
        # A pristine node is no voter, and leads nothing: refused by the started node.
        assert isinstance(answer.value, (NotAllowed, NodeNotLeader)), answer.value
    finally:
        _SlowStartStore.gate.set()
        for ref in (node, store, router):
            ref.stop()


def test_stray_messages_do_not_stop_router_storage_or_node(formed: Any) -> None:
    leader = formed.leader()
    node = formed.nodes[leader]
    for ref in (formed.router, node):
        ref.tell(_Stray())
        with pytest.raises(UnknownMessage):
            ref.ask(_Stray(), timeout=10)
    assert formed.router.is_alive() and node.is_alive()
    response = formed.write(Put("after", "stray"))
    formed.wait_applied(response.index)


class _GatedRaft(Raft):
    """Holds its thread on a ``_Hold`` message until ``gate`` is set."""

    gate = threading.Event()
    holding = threading.Event()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Hold):
            _GatedRaft.holding.set()
            _GatedRaft.gate.wait(10)
        return super().on_receive(message)


class _Hold:
    pass


class _RaisingReply:
    """A reply whose every answer raises."""

    def set(self, *answer: Any) -> None:
        raise RuntimeError("the reply broke")

    set_exception = set


@pytest.mark.parametrize(
    "reply", [None, "not a reply", _RaisingReply()], ids=["none", "str", "raising"]
)
def test_a_broken_reply_queued_behind_a_stop_leaves_no_caller_unanswered(reply: Any) -> None:
    _GatedRaft.gate.clear()
    _GatedRaft.holding.clear()
    router, store = RaftRouter.start(), MemStore.start()
    node = _GatedRaft.start(1, FAST, router, store)
    try:
        node.tell(_Hold())
        assert _GatedRaft.holding.wait(10)
        stopped = node.stop(block=False)
        node.tell(Call(GetMetrics(), reply))  # the teardown answers it: it must not die
        asked = [node.ask(GetMetrics(), block=False) for _ in range(3)]
        _GatedRaft.gate.set()
        stopped.get(timeout=10)
        for future in asked:  # before the fix: pykka.Timeout, the teardown had died
            with pytest.raises((ShuttingDown, pykka.ActorDeadError)):
                future.get(timeout=10)
    finally:
        _GatedRaft.gate.set()
        pykka.ActorRegistry.stop_all()


def test_a_call_told_to_a_stopping_node_is_answered_not_accepted() -> None:
    router, store = RaftRouter.start(), MemStore.start()
    node = _GatedRaft.start(1, FAST, router, store)
    try:
        node.tell(_Hold())
        assert _GatedRaft.holding.wait(10)
        stopped = node.stop(block=False)  # queued behind the held message
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        node.tell(Call(GetMetrics(), FutureReply(future)))  # queued behind the stop
        _GatedRaft.gate.set()
        stopped.get(timeout=10)
        with pytest.raises(ShuttingDown, match="did not accept"):
            future.get(timeout=10)
    finally:
        _GatedRaft.gate.set()
        for ref in (node, store, router):
            ref.stop()


class _StuckApplyStore(MemStore):
    """On node ``stuck_node``, applying ``Put("stuck", 1)`` blocks (a hung disk or state
    machine) until ``release`` is set."""

    stuck_node: int | None = None
    entered = threading.Event()
    release = threading.Event()

    def __init__(self, node_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node_id = node_id

    def apply_to_state_machine(self, entries: Any) -> Any:
        if self.node_id == _StuckApplyStore.stuck_node and any(
            getattr(e.payload, "data", None) == Put("stuck", 1) for e in entries
        ):
            _StuckApplyStore.entered.set()
            _StuckApplyStore.release.wait(30)
        return super().apply_to_state_machine(entries)


@pytest.fixture
def stuck_store() -> Any:
    yield _StuckApplyStore
    _StuckApplyStore.release.set()
    _StuckApplyStore.stuck_node = None
    _StuckApplyStore.entered.clear()
    _StuckApplyStore.release.clear()


def _new_leader(cluster: Any, old: int) -> int:
    """Wait for a leader other than ``old`` (which stopped)."""
    cluster.isolated.add(old)
    leader: int = cluster.hub.wait_for(
        lambda m: next((n for n, x in m.items() if n != old and x.state is State.LEADER), None),
        20,
        "a new leader",
    )
    return leader


def _stuck_cluster(make_cluster: Any, storage_timeout: int) -> tuple[Any, int]:
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        storage_timeout=storage_timeout,
    )
    cluster = make_cluster(
        [1, 2, 3], config=config, storage=lambda n, data: _StuckApplyStore.start(n, data=data)
    )
    cluster.initialize()
    leader = cluster.leader()
    _StuckApplyStore.stuck_node = leader
    return cluster, leader


def test_a_hung_storage_stops_its_leader_and_another_is_elected(
    make_cluster: Any, stuck_store: Any
) -> None:
    """The leader's apply hangs; its heartbeats would keep the followers quiet forever.
    The storage deadline stops it, and the others elect a leader that commits."""
    cluster, old = _stuck_cluster(make_cluster, storage_timeout=1500)
    cluster.nodes[old].ask(ClientPayload.new(Put("stuck", 1)), block=False)
    assert stuck_store.entered.wait(10)  # the fault really happened: every apply is held
    cluster.hub.wait_for(lambda m: m[old].state is State.SHUTDOWN, 20, "the old leader to stop")
    new = _new_leader(cluster, old)
    assert new != old
    assert cluster.nodes[new].ask(ClientPayload.new(Put("after", 2)), timeout=20).index > 0


def test_a_leader_whose_storage_stopped_behind_a_slow_apply_steps_out(
    make_cluster: Any, stuck_store: Any
) -> None:
    """The storage actor is stopped while an apply runs: the stop queues behind it and the
    leader's next append behind the stop. The leader must not stay leader in the same term
    without ever answering a write."""
    cluster, old = _stuck_cluster(make_cluster, storage_timeout=60_000)
    cluster.nodes[old].ask(ClientPayload.new(Put("stuck", 1)), block=False)
    assert stuck_store.entered.wait(10)
    stopped = cluster.storages[old].stop(block=False)
    late = cluster.nodes[old].ask(ClientPayload.new(Put("late", 2)), block=False)
    stuck_store.release.set()
    stopped.get(timeout=10)
    cluster.hub.wait_for(lambda m: m[old].state is State.SHUTDOWN, 20, "the old leader to stop")
    with pytest.raises(Exception):  # noqa: B017 - any answer but silence
        late.get(timeout=10)
    new = _new_leader(cluster, old)
    assert cluster.nodes[new].ask(ClientPayload.new(Put("after", 3)), timeout=20).index > 0


def test_stray_messages_do_not_stop_a_storage(tmp_path: Any) -> None:
    for store in (MemStore.start(), SqliteStore.start(str(tmp_path / "n1"), 1)):
        try:
            store.tell(_Stray())
            with pytest.raises(UnknownMessage):
                store.ask(_Stray(), timeout=10)
            initial = store.ask(GetInitialState(), timeout=10)  # still serving
            assert initial.last_log_id.index == 0 and store.is_alive()
        finally:
            store.stop()


def test_a_storage_that_stops_answers_the_calls_still_queued() -> None:
    """Calls told to a storage behind its stop are answered with StorageError, so the node
    waiting for them stops at once instead of waiting for its storage deadline."""
    store = _GatedStore.start()
    try:
        store.tell(_Hold())
        assert _GatedStore.holding.wait(10)
        stopped = store.stop(block=False)
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        store.tell(Call(GetInitialState(), FutureReply(future)))
        _GatedStore.gate.set()
        stopped.get(timeout=10)
        with pytest.raises(StorageError, match="has stopped"):
            future.get(timeout=10)
    finally:
        _GatedStore.gate.set()


class _GatedStore(MemStore):
    """Holds its thread on a ``_Hold`` message until ``gate`` is set."""

    gate = threading.Event()
    holding = threading.Event()

    def receive(self, message: Any) -> Any:
        if isinstance(message, _Hold):
            _GatedStore.holding.set()
            _GatedStore.gate.wait(10)
            return None
        return super().receive(message)


def test_metrics_show_each_follower_and_the_counters(make_cluster: Any) -> None:
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        max_pending_writes=1,
        snapshot_policy=SnapshotPolicy.every(5),
    )
    cluster = make_cluster([1, 2, 3], config=config)
    cluster.initialize()
    leader = cluster.leader()
    last = None
    for i in range(12):
        last = cluster.write(Put(f"k{i}", i))
    cluster.wait_applied(last.index)
    # Two writes at once against max_pending_writes=1: the second is refused Busy.
    node = cluster.nodes[leader]
    futures = [node.ask(ClientPayload.new(Put("b", i)), block=False) for i in range(20)]
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.get(timeout=10))
        except Busy as exc:
            outcomes.append(exc)
    assert any(isinstance(o, Busy) for o in outcomes)
    with pytest.raises(ApplicationError):
        node.ask(ClientPayload.new(Put("bad", lambda: None)), timeout=10)

    def settled(m: dict[int, Any]) -> Any:
        metrics = m[leader]
        return (
            metrics.writes_refused_application >= 1
            and metrics.writes_refused_busy >= 1
            and {r.node_id for r in metrics.replication} == {1, 2, 3} - {leader}
            and all(r.lag == 0 for r in metrics.replication)
            and metrics
        )

    metrics = cluster.hub.wait_for(settled, 20, "settled leader metrics")
    assert metrics.elections_started >= 1 and metrics.snapshot_index >= 5
    assert all(r.matched == metrics.last_log_index for r in metrics.replication)


def test_role_term_and_membership_changes_are_logged(
    make_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pykka_raft.node"):
        cluster = make_cluster([1, 2, 3])
        cluster.initialize()
        leader = cluster.leader()
        cluster.wait_applied(1)
    lines = [r.getMessage() for r in caplog.records if r.name == "pykka_raft.node"]
    assert any(f"node {leader}: leader in term" in line for line in lines), lines
    assert any("follower in term" in line for line in lines), lines
    assert any("membership voters [1, 2, 3] committed" in line for line in lines), lines
    assert not any("Put(" in line for line in lines)  # never payloads at INFO


def test_an_unchanged_role_is_logged_once_across_periodic_pushes(
    make_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The periodic metrics push republishes unchanged metrics; the role line is logged
    when the role, term or leader changes, not at every push."""
    config = Config(
        election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50, metrics_rate=20
    )
    with caplog.at_level(logging.INFO, logger="pykka_raft.node"):
        cluster = make_cluster([1], config=config)
        cluster.initialize()
        leader = cluster.leader()
        pushes = len(cluster.hub.history)
        cluster.hub.wait_for(
            lambda m: len(cluster.hub.history) >= pushes + 10 and m, 20, "ten periodic pushes"
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "pykka_raft.node"]
    assert len(cluster.hub.history) >= pushes + 10  # the pushes happened
    assert len([line for line in lines if f"node {leader}: leader in term" in line]) == 1, lines


def test_snapshots_membership_and_a_transfer_are_logged_and_measured(
    make_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A node added to a compacted cluster catches up through a snapshot: the creation, the
    transfer and the install are logged, and so is the joint configuration on the way; the
    leader's metrics show the follower in a snapshot transfer, then count it as sent."""
    network = FaultNetwork.start(seed=3)
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        snapshot_policy=SnapshotPolicy.every(20),
        snapshot_max_chunk_size=256,
    )
    with caplog.at_level(logging.INFO, logger=NODE):
        cluster = make_cluster([1, 2, 3], config=config, network=network)
        cluster.initialize()
        leader = cluster.leader()
        last = 0
        for i in range(60):
            last = cluster.write(Put(f"k{i}", i)).index
        cluster.hub.wait_for(lambda m: m[leader].snapshot_index >= 20, 20, "a snapshot")
        # Every chunk to node 4 waits 25 ms: the transfer spans many metrics pushes.
        slow = LinkRule(delay_ms=(25, 25), direction=Direction.REQUESTS)
        network.ask(SetLinkRule(leader, 4, slow))
        cluster.start_node(4)
        cluster.change_membership(add=[4])
        cluster.wait_applied(last, nodes=[4], timeout=30)
        metrics = cluster.hub.wait_for(
            lambda m: m[leader].snapshots_sent >= 1 and m[4].snapshots_installed >= 1 and m,
            20,
            "the transfer to be counted",
        )
        # The leader answers the change from its step, and logs the commit just after: wait
        # for the line rather than race the leader's thread to it.
        final = r"node \d: membership voters \[1, 2, 3, 4\] committed at index \d+"
        wait_until(
            lambda: any(re.fullmatch(final, r.getMessage()) for r in list(caplog.records)),
            10,
            "the final configuration's commit to be logged",
        )
    assert metrics[leader].snapshots_sent >= 1
    assert any(
        m.id == leader and any(r.node_id == 4 and r.snapshotting for r in m.replication)
        for m in cluster.hub.history
    ), "the leader's metrics never showed node 4 in a snapshot transfer"
    lines = [r.getMessage() for r in caplog.records if r.name == NODE]

    def logged(pattern: str) -> None:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)

    logged(rf"node {leader}: snapshot through index \d+ created")
    logged(r"node 4: snapshot through index \d+ installed")
    logged(rf"node {leader}: a snapshot transfer to a follower completed")
    logged(rf"node {leader}: membership is now voters \[1, 2, 3\] joint with \[1, 2, 3, 4\].*")
    # Each committed configuration once, the joint one included (the leader proposes the
    # final one in the step that commits it); compacting does not log the same one again.
    logged(rf"node {leader}: membership voters \[1, 2, 3\] joint with \[1, 2, 3, 4\] committed.*")
    first = f"node {leader}: membership voters [1, 2, 3] committed at index"
    assert len([line for line in lines if line.startswith(first)]) == 1, lines


class _ExplodingMachine(KeyValueStateMachine):
    """On the node named in ``broken[0]``, applying ``Put("explode", 1)`` raises a
    ``RuntimeError`` (a bug, not a refusal); the other nodes apply it."""

    def __init__(self, node_id: int, broken: list[int | None]) -> None:
        super().__init__()
        self.node_id, self.broken = node_id, broken

    def apply(self, entry: Any) -> Any:
        exploding = getattr(entry.payload, "data", None) == Put("explode", 1)
        if exploding and self.node_id == self.broken[0]:
            raise RuntimeError("the state machine is broken")
        return super().apply(entry)


def test_a_state_machine_that_fails_stops_its_node_and_the_others_go_on(
    make_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Any exception but ApplicationError from ``apply`` is fatal for that node (the storage
    contract): it stops, logs why at ERROR, and the other two keep committing."""
    broken: list[int | None] = [None]
    cluster = make_cluster(
        [1, 2, 3],
        storage=lambda n, _: MemStore.start(data=MemStoreData(_ExplodingMachine(n, broken))),
    )
    with caplog.at_level(logging.INFO, logger=NODE):
        cluster.initialize()
        leader = cluster.leader()
        failed = broken[0] = next(n for n in (1, 2, 3) if n != leader)
        cluster.write(Put("explode", 1))
        cluster.hub.wait_for(
            lambda m: m[failed].state is State.SHUTDOWN, 20, "the broken node to stop"
        )
    stops = [
        r
        for r in caplog.records
        if r.name == NODE and r.getMessage().startswith(f"node {failed} stops:")
    ]
    assert stops, [r.getMessage() for r in caplog.records]
    assert stops[0].levelno == logging.ERROR
    assert "the state machine is broken" in stops[0].getMessage()
    others = [n for n in (1, 2, 3) if n != failed]
    index = cluster.write(Put("after", 2)).index
    cluster.wait_applied(index, nodes=others, timeout=20)
    assert all(cluster.hub.get(n).state is not State.SHUTDOWN for n in others)


class _GatedRouter(RaftRouter):
    """Decides every request on its own thread, and holds that thread on a ``_Hold``
    message until ``gate`` is set."""

    direct_send = False
    gate = threading.Event()
    holding = threading.Event()

    def handle_other(self, message: Any) -> Any:
        if isinstance(message, _Hold):
            _GatedRouter.holding.set()
            _GatedRouter.gate.wait(10)
            return None
        return super().handle_other(message)


def test_a_router_that_stops_answers_the_calls_still_queued() -> None:
    """A call queued behind the router's stop is answered Unreachable (network.md: every
    request still waiting is answered), so its node never waits on it."""
    router = _GatedRouter.start()
    try:
        router.tell(_Hold())
        assert _GatedRouter.holding.wait(10)
        stopped = router.stop(block=False)
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        router.tell(Call(VoteRequest(2, 1, 1, 0, 0), FutureReply(future)))
        _GatedRouter.gate.set()
        stopped.get(timeout=10)
        with pytest.raises(Unreachable, match="stopped"):
            future.get(timeout=10)
    finally:
        _GatedRouter.gate.set()


class _AliveOnce:
    """Stands in for a stopped actor's ``is_alive``: says True once, then the truth. The
    sender's check passes, and its message lands after the actor's teardown emptied the
    inbox: the interleaving of a send racing a stop, made certain."""

    def __init__(self, ref: Any) -> None:
        self.real, self.lied = ref.is_alive, False

    def __call__(self) -> bool:
        if not self.lied:
            self.lied = True
            return True
        return bool(self.real())


def _sent_as_it_stopped(ref: Any, send: Any) -> pykka.ThreadingFuture[Any]:
    ref.stop(timeout=10)
    assert not ref.is_alive() and ref.actor_inbox.empty()  # stopped, teardown done
    ref.is_alive = _AliveOnce(ref)
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    send(FutureReply(future))
    assert ref.is_alive.lied, "the send did not pass the liveness check"
    return future


def test_a_call_sent_as_the_node_stops_is_answered_not_accepted() -> None:
    router, store = RaftRouter.start(), MemStore.start()
    node = Raft.start(1, FAST, router, store)
    try:
        future = _sent_as_it_stopped(node, lambda reply: node.tell(Call(GetMetrics(), reply)))
        with pytest.raises(ShuttingDown, match="did not accept"):
            future.get(timeout=10)
    finally:
        for ref in (store, router):
            ref.stop()


def test_calls_sent_as_a_storage_or_network_stops_are_answered() -> None:
    """Told or asked: nothing put in the inbox after the teardown drained it waits forever."""
    store = MemStore.start()
    future = _sent_as_it_stopped(store, lambda reply: store.tell(Call(GetInitialState(), reply)))
    with pytest.raises(StorageError, match="has stopped"):
        future.get(timeout=10)
    store = MemStore.start()
    asked: list[Any] = []
    _sent_as_it_stopped(store, lambda _: asked.append(store.ask(GetInitialState(), block=False)))
    with pytest.raises(pykka.ActorDeadError):
        asked[0].get(timeout=10)
    router = RaftRouter.start()
    future = _sent_as_it_stopped(
        router, lambda reply: router.tell(Call(Register(5, router), reply))
    )
    with pytest.raises(Unreachable, match="stopped"):
        future.get(timeout=10)
