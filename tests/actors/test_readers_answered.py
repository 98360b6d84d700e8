"""A Raft actor's readers are answered on the storage's thread, and once."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplyToStateMachine,
    Call,
    ClientPayload,
    ClientRead,
    ClientReadResponse,
    Get,
    MemStore,
    Put,
    QueryStateMachine,
    ReadPolicy,
    ResponseMode,
    ShuttingDown,
    State,
    StorageError,
)
from pykka_raft.testing import wait_until


class _Probe:
    """What a test sees of its storage's queries: the thread each ran on; while ``hold`` is
    set, a query is held (``held``) until ``release`` is set."""

    def __init__(self) -> None:
        self.query_threads: list[str] = []
        self.hold = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()


class _QueryStore(MemStore):
    def __init__(self, probe: _Probe) -> None:
        super().__init__()
        self.probe = probe

    def receive(self, message: Any) -> Any:
        inner = message.message if isinstance(message, Call) else None
        if isinstance(inner, ApplyToStateMachine) and any(_is_boom(e) for e in inner.entries):
            # A failed apply (a disk that went away): held until released, then failed
            # without applying.
            self.probe.held.set()
            self.probe.release.wait(10)
            message.reply.set_exception(OSError(5, "Input/output error"))
            return None
        if isinstance(message, Call) and isinstance(message.message, QueryStateMachine):
            probe = self.probe
            probe.query_threads.append(threading.current_thread().name)
            if probe.hold.is_set():
                probe.held.set()
                probe.release.wait(10)
        return super().receive(message)


def _is_boom(entry: Any) -> bool:
    return getattr(entry.payload, "data", None) == Put("boom", 1)


class _ThreadReply:
    """A reader's reply that notes the thread it was answered on."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, Any]] = []
        self.answered = threading.Event()

    def set(self, value: Any = None) -> None:
        self.answers.append((threading.current_thread().name, value))
        self.answered.set()

    def set_exception(self, error: BaseException) -> None:
        self.set(error)


def one_node(make_cluster: Any) -> tuple[Any, _Probe]:
    probe = _Probe()
    cluster = make_cluster([1], storage=lambda node_id, data: _QueryStore.start(probe))
    cluster.initialize()
    cluster.leader()
    cluster.write(Put("k", "v"))
    return cluster, probe


@pytest.mark.parametrize("policy", [ReadPolicy.READ_INDEX, ReadPolicy.STALE])
def test_readers_are_answered_on_the_storage_thread(make_cluster: Any, policy: Any) -> None:
    """The node's thread sends the query; the storage's thread, which runs it, answers the
    reader: the node hears only that the query completed."""
    cluster, store = one_node(make_cluster)
    reply = _ThreadReply()
    cluster.nodes[1].tell(Call(ClientRead(Get("k"), policy), reply))
    assert reply.answered.wait(10)
    ((thread, value),) = reply.answers
    assert isinstance(value, ClientReadResponse) and value.data == "v"
    assert store.query_threads and thread == store.query_threads[-1]
    # And the node goes on serving: the completion reached it.
    assert cluster.nodes[1].ask(ClientRead(Get("k"), policy), timeout=10).data == "v"


def test_a_node_that_stops_answers_readers_whose_query_is_held(make_cluster: Any) -> None:
    """Every caller gets an answer: a node stopping while its storage holds a query answers
    that query's readers itself; the storage's late answer reaches nobody twice."""
    cluster, store = one_node(make_cluster)
    store.hold.set()
    try:
        future: pykka.Future[Any] = cluster.nodes[1].ask(ClientRead(Get("k")), block=False)
        assert store.held.wait(10)  # the query is with the storage, not answered
        cluster.nodes[1].stop()
        with pytest.raises(ShuttingDown):
            future.get(timeout=10)
    finally:
        store.release.set()


@pytest.mark.parametrize("policy", [ReadPolicy.READ_INDEX, ReadPolicy.LEASE])
def test_a_read_behind_a_failed_apply_is_refused_not_answered(
    make_cluster: Any, policy: Any
) -> None:
    """The storage fails an apply, then runs a read's query queued behind it: the reader
    gets ``StorageError`` (the node stops), never a value read from a state that missed
    the entry its read index covers. ``LEASE``: served from the lease view, on the
    caller's thread, once a first lease read asked for the view."""
    cluster, probe = one_node(make_cluster)
    board = cluster.nodes[1].lease
    try:
        cluster.nodes[1].ask(ClientRead(Get("k"), policy), timeout=10)
        if policy is ReadPolicy.LEASE:
            wait_until(lambda: board.view is not None, 10, "the lease view")
        cluster.nodes[1].ask(ClientPayload.new(Put("boom", 1), ResponseMode.COMMITTED), block=False)
        assert probe.held.wait(10)  # the apply of "boom" is on the storage's thread
        reply = _ThreadReply()
        cluster.nodes[1].tell(Call(ClientRead(Get("boom"), policy), reply))
        inbox = cluster.storages[1].actor_inbox
        wait_until(lambda: inbox.qsize() >= 1, 10, "the read's query queued behind the apply")
        probe.release.set()
        assert reply.answered.wait(10)
        ((_, answer),) = reply.answers
        assert isinstance(answer, StorageError), answer
        cluster.hub.wait_for(lambda m: m[1].state is State.SHUTDOWN, 20, "the node to stop")
    finally:
        probe.release.set()
