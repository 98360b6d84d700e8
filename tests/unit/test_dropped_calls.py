"""A call told to a storage is answered even when the storage never handles it: it stopped
or failed first (each test shows its window was reached), and the readers of a query it
dropped hear why, not a refusal of their query."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from pykka_raft import Get, KeyValueStateMachine, MemStore
from pykka_raft.actor.ports import ActorPorts, _StorageReply
from pykka_raft.calls import AskAwareRef, Call, FutureReply
from pykka_raft.errors import ApplicationError, SnapshotsUnsupported, StorageError
from pykka_raft.messages import ClientReadResponse
from pykka_raft.read_answers import ReadAnswers, settle
from pykka_raft.storage.messages import GetInitialState, QueryStateMachine
from pykka_raft.testing import wait_until

TIMEOUT = 10


class _Reader:
    """A reader's reply that records its one answer."""

    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.heard = threading.Event()

    def set(self, value: Any = None) -> None:
        self.answers.append(value)
        self.heard.set()

    def set_exception(self, error: BaseException) -> None:
        self.set(error)


class _Boom:
    """A told message the storage below fails on (a bug in a storage of one's own)."""


class _FailingStore(MemStore):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__(KeyValueStateMachine())
        self.gate = gate

    def handle_other(self, message: Any) -> Any:
        if isinstance(message, _Boom):
            self.gate.wait(TIMEOUT)  # the calls below are queued behind it by now
            raise RuntimeError("a bug in the storage")
        return super().handle_other(message)


def test_calls_queued_behind_a_failure_are_answered_and_readers_hear_why() -> None:
    """Pykka stops a storage that fails on a told message without ``on_stop`` and drops
    every told message still queued: a call there (a LEASE read's query, sent from its
    reader's thread) was never answered."""
    gate = threading.Event()
    store = _FailingStore.start(gate)
    store.tell(_Boom())
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    store.tell(Call(GetInitialState(), FutureReply(future)))
    reader = _Reader()
    queries: Any = (Get("k"),)
    store.tell(Call(QueryStateMachine(queries), ReadAnswers([reader], 7, settle)))
    gate.set()
    with pytest.raises(StorageError, match="has stopped"):
        future.get(timeout=TIMEOUT)
    assert reader.heard.wait(TIMEOUT), "the query's reader was never answered"
    (answer,) = reader.answers
    assert isinstance(answer, StorageError) and not isinstance(answer, ApplicationError)
    assert not store.is_alive(), "the storage did not fail: the fault did not happen"


class _StopsSlowly(MemStore):
    def __init__(self, release: threading.Event) -> None:
        super().__init__(KeyValueStateMachine())
        self.release = release

    def on_start(self) -> None:
        self.thread = threading.current_thread()

    def on_stop(self) -> None:
        super().on_stop()
        self.release.wait(TIMEOUT)  # a call lands after this drain, before Pykka's teardown


def test_a_told_call_that_pykkas_teardown_takes_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sender passed the liveness check before the stop and puts its call after the
    store's ``on_stop`` emptied the inbox; Pykka's teardown takes the call before the
    sender looks again (``left_behind``): only an envelope with a ``reply_to`` is answered
    there."""
    release = threading.Event()
    store = _StopsSlowly.start(release)
    actor: Any = store._actor_weakref()
    thread = actor.thread
    store.stop(block=False)
    alive = AskAwareRef.is_alive
    checks: list[bool] = []
    sender = threading.current_thread()

    def is_alive(ref: Any) -> bool:  # the sender's check ran before the stop
        if ref is store and threading.current_thread() is sender and not checks:
            checks.append(True)
            return True
        return alive(ref)

    look_again = AskAwareRef.answer_left_behind

    def too_late(ref: Any) -> None:  # the teardown runs before the sender looks again
        if ref is store:
            release.set()
            thread.join(TIMEOUT)
        look_again(ref)

    monkeypatch.setattr(AskAwareRef, "is_alive", is_alive)
    monkeypatch.setattr(AskAwareRef, "answer_left_behind", too_late)
    wait_until(actor.actor_stopped.is_set, TIMEOUT, "the store to take its stop request")
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    store.tell(Call(GetInitialState(), FutureReply(future)))
    assert checks and not thread.is_alive(), "the window was not reached"
    with pytest.raises(StorageError, match="has stopped"):
        future.get(timeout=TIMEOUT)


class _Node:
    def set(self, value: Any = None) -> None:
        pass

    def set_exception(self, error: BaseException) -> None:
        pass


@pytest.mark.parametrize("skippable", [False, True], ids=["install", "create-snapshot"])
def test_snapshots_unsupported_guards_the_next_query_unless_a_compaction_skipped(
    skippable: bool,
) -> None:
    """``SnapshotsUnsupported`` from anything but ``CreateSnapshot`` stops the node (the
    driver's rule): a query behind such an install must not answer from the state before
    it; behind a skipped compaction the node goes on and the query answers."""
    ports = ActorPorts.__new__(ActorPorts)
    ports.storage_failure = None
    node: Any = _Node()
    _StorageReply(node, ports, skippable).set_exception(SnapshotsUnsupported("MyStore"))
    reader = _Reader()
    readers = ReadAnswers([reader], 500, settle)
    readers.guard = ports
    readers.set(("a value read before the snapshot",))
    (answer,) = reader.answers
    if skippable:
        assert answer == ClientReadResponse(500, "a value read before the snapshot")
    else:
        assert isinstance(answer, StorageError)
