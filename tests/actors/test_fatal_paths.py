"""The Raft actor's failure paths: every caller gets an answer, and a failure outside the
protocol (a metrics subscriber that raises, a storage that dies at start) neither hides a
call that was carried out nor leaves a node half stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pykka
import pytest

from pykka_raft import (
    Call,
    ClientPayload,
    ClientRead,
    Config,
    Get,
    GetMetrics,
    InitWithConfig,
    MemStore,
    Put,
    Raft,
    ReadPolicy,
    ResponseMode,
    State,
)
from pykka_raft.actor.ref import WakeForClients
from pykka_raft.metrics import MetricsHub, RaftMetrics
from pykka_raft.network.router import RaftRouter, Register
from pykka_raft.storage.messages import GetInitialState, GetLogEntries
from pykka_raft.testing import Cluster, wait_until

CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


class FailingSubscriber(MetricsHub):
    """A metrics subscriber whose ``tell`` raises when ``fails(metrics)`` says so."""

    def __init__(self, fails: Callable[[RaftMetrics], bool]) -> None:
        super().__init__()
        self.fails = fails
        self.raised = 0

    def tell(self, metrics: RaftMetrics) -> None:
        if self.fails(metrics):
            self.raised += 1
            raise RuntimeError("the subscriber failed")
        super().tell(metrics)


def one_node(storage: Any, subscriber: Any = None) -> Any:
    router = RaftRouter.start()
    ref = Raft.start(1, CONFIG, router, storage, subscriber)
    router.ask(Register(1, ref))
    return ref


def outcome(future: Any) -> str:
    try:
        future.get(timeout=10)
    except pykka.Timeout:
        return "no answer"
    except Exception as exc:
        return type(exc).__name__
    return "ok"


@pytest.mark.parametrize("with_write", [True, False], ids=["with-a-write", "control"])
def test_reads_taken_with_a_write_that_fails_are_answered(
    make_cluster: Callable[..., Cluster], with_write: bool
) -> None:
    """A write and a read taken from the client queue in one batch: handing the write to
    the driver fails (the storage actor died), which stops the node; the read, which the
    driver never got, is answered too. The control: the read alone."""
    cluster = make_cluster([1])
    cluster.initialize()
    cluster.leader()
    # Nothing outstanding on the storage before it stops (the leader's first entry is
    # applied), so the node dies of the batch below and not of an earlier command.
    cluster.hub.wait_for(
        lambda m: 1 in m and m[1].last_applied == m[1].last_log_index > 0, 10, "an idle node"
    )
    ref = cluster.nodes[1]
    cluster.storages[1].stop()
    ref.clients.wake_pending = True  # both land in the queue before the node wakes
    write = ClientPayload.new(Put("x", 1), ResponseMode.COMMITTED)
    writing = ref.ask(write, block=False) if with_write else None
    reading = ref.ask(ClientRead(Get("x"), ReadPolicy.READ_INDEX), block=False)
    pykka.ActorRef.tell(ref, WakeForClients())
    if writing is not None:
        assert outcome(writing) in ("OutcomeUnknown", "StorageError")
    assert outcome(reading) in ("ShuttingDown", "StorageError")
    wait_until(lambda: not ref.is_alive(), 10, "node 1 to stop")  # the failure happened


def test_a_subscriber_that_raises_neither_stops_the_node_nor_hides_an_answer() -> None:
    """The subscriber raises on the push after InitWithConfig: the caller still gets the
    init's answer (not "not accepted" for a call that was carried out), and the node leads."""
    subscriber = FailingSubscriber(lambda m: m.state is State.LEADER)
    ref = one_node(MemStore.start(), subscriber)
    subscriber.wait_for(lambda latest: 1 in latest, 10, "the node to start")
    assert ref.ask(InitWithConfig({1}), timeout=10) is None
    wait_until(lambda: ref.ask(GetMetrics()).state is State.LEADER, 10, "node 1 to lead")
    assert subscriber.raised >= 1 and ref.is_alive()


def test_a_node_whose_shutdown_push_fails_stops_and_refuses_every_later_write() -> None:
    """The storage dies, so InitWithConfig takes the fatal path, and the subscriber raises
    on the SHUTDOWN push: the node stops all the same, and every write sent afterwards is
    answered (not left waiting on a node that would never wake up)."""
    subscriber = FailingSubscriber(lambda m: m.state is State.SHUTDOWN)
    storage = MemStore.start()
    ref = one_node(storage, subscriber)
    subscriber.wait_for(lambda latest: 1 in latest, 10, "the node to start")
    storage.stop()
    with pytest.raises(Exception, match="storage"):
        ref.ask(InitWithConfig({1}), timeout=10)
    wait_until(lambda: not ref.is_alive(), 10, "node 1 to stop")
    assert subscriber.raised == 1
    writes = [ref.ask(ClientPayload.new(Put("k", i)), block=False) for i in range(3)]
    assert [outcome(w) for w in writes] == ["ShuttingDown"] * 3


class HeldStart(MemStore):
    """Holds its first ``GetInitialState`` until ``release`` is set."""

    release = threading.Event()

    def receive(self, message: Any) -> Any:
        if isinstance(message, Call) and isinstance(message.message, GetInitialState):
            self.release.wait(10)
        return super().receive(message)


@attrs.define
class DyingAfterLoad:
    """The storage's ref as the node sees it: gone once it was asked for the log."""

    ref: Any
    dead: bool = False

    def tell(self, message: Any) -> None:
        if self.dead:
            raise pykka.ActorDeadError("the storage actor has stopped")
        if isinstance(message, Call) and isinstance(message.message, GetLogEntries):
            self.dead = True
        self.ref.tell(message)

    def is_alive(self) -> bool:
        return True


def test_calls_that_wait_for_the_start_are_answered_when_one_of_them_fails() -> None:
    """InitWithConfig and GetMetrics wait while the node starts; when they are taken up,
    the init fails (the storage is gone) and the node stops: GetMetrics, behind it, is
    answered too."""
    HeldStart.release.clear()
    ref = one_node(DyingAfterLoad(HeldStart.start()))
    init = ref.ask(InitWithConfig({1}), block=False)
    metrics = ref.ask(GetMetrics(), block=False)
    HeldStart.release.set()
    assert outcome(init) == "StorageError"
    assert outcome(metrics) in ("ok", "ShuttingDown", "StorageError")


def test_a_follower_catching_up_is_pushed_at_the_next_tick(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Only the leader's replication progress changes when a follower catches up: that is
    pushed at the next tick, not at the periodic push (a minute away here)."""
    cluster = make_cluster([1, 2, 3], config=attrs.evolve(CONFIG, metrics_rate=60_000))
    cluster.initialize()
    leader = cluster.leader()
    lagger = next(n for n in (1, 2, 3) if n != leader)
    cluster.isolate(lagger)
    for i in range(5):
        cluster.write(Put("k", i))
    target = cluster.nodes[leader].ask(GetMetrics(), timeout=5).last_log_index

    def matched(metrics: RaftMetrics | None) -> int:
        progress = {r.node_id: r.matched for r in metrics.replication} if metrics else {}
        return progress.get(lagger, 0)

    assert matched(cluster.hub.snapshot().get(leader)) < target
    cluster.restore(lagger)
    cluster.hub.wait_for(lambda latest: matched(latest.get(leader)) >= target, 10, "the push")
