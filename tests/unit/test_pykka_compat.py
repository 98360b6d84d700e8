"""The uses of Pykka internals (pykka_raft/_pykka.py) still work with this Pykka."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest
from pykka._envelope import Envelope

from pykka_raft._pykka import (
    drain_inbox,
    is_stop_request,
    left_behind,
    put_with_reply_to,
    use_ref_class,
)
from pykka_raft.calls import AskAwareRef
from pykka_raft.testing import wait_until


class _Blocked(pykka.ThreadingActor):
    def __init__(self, gate: threading.Event, started: threading.Event, left: list[Any]) -> None:
        super().__init__()
        self.gate, self.started, self.left = gate, started, left

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.started.set()
            self.gate.wait(10)
        return None

    def on_stop(self) -> None:
        self.left.extend(drain_inbox(self))


def test_drain_inbox_returns_the_messages_queued_behind_a_stop() -> None:
    gate, started, left = threading.Event(), threading.Event(), []
    ref = _Blocked.start(gate, started, left)
    ref.tell("block")
    assert started.wait(10)
    stopped = ref.stop(block=False)
    ref.tell("first")
    ref.tell({"second": 2})
    asked = ref.ask("third", block=False)
    gate.set()
    stopped.get(timeout=10)
    assert left == ["first", {"second": 2}, "third"]
    with pytest.raises(pykka.ActorDeadError):  # answered as Pykka's teardown answers it
        asked.get(timeout=10)


class _SeeingRef(pykka.ActorRef[Any]):
    seen: list[bool] = []

    def ask(self, message: Any, **kwargs: Any) -> Any:
        self.seen.append(is_stop_request(message))
        return super().ask(message, **kwargs)


class _Plain(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        use_ref_class(self, _SeeingRef)


def test_start_returns_the_ref_class_and_stop_requests_are_recognized() -> None:
    ref = _Plain.start()
    assert isinstance(ref, _SeeingRef)
    ref.stop(timeout=10)
    assert _SeeingRef.seen == [True]
    assert not is_stop_request("stop")


class _ReplyTo:
    def __init__(self) -> None:
        self.values: list[Any] = []
        self.errors: list[Any] = []
        self.done = threading.Event()

    def set(self, value: Any = None) -> None:
        self.values.append(value)
        self.done.set()

    def set_exception(self, exc_info: Any = None) -> None:
        self.errors.append(exc_info)
        self.done.set()


class _BlockedKeepsInbox(_Blocked):
    def on_stop(self) -> None:
        pass  # leaves the inbox to Pykka's teardown


def test_reply_to_hears_the_result_or_that_the_actor_stopped_first() -> None:
    gate, started, left = threading.Event(), threading.Event(), []
    ref = _BlockedKeepsInbox.start(gate, started, left)
    handled = _ReplyTo()
    put_with_reply_to(ref, "handled", handled)
    assert handled.done.wait(10) and handled.values == [None]
    ref.tell("block")
    assert started.wait(10)
    stopped = ref.stop(block=False)
    dropped = _ReplyTo()
    put_with_reply_to(ref, "dropped", dropped)
    gate.set()
    stopped.get(timeout=10)
    assert dropped.done.wait(10) and dropped.values == [] and len(dropped.errors) == 1
    assert dropped.errors[0][0] is pykka.ActorDeadError


def test_proxy_calls_are_pykka_messages() -> None:
    from pykka.messages import ProxyCall

    from pykka_raft._pykka import is_pykka_message

    assert is_pykka_message(ProxyCall(attr_path=("x",), args=(), kwargs={}))
    assert not is_pykka_message("x")


class _PausingInbox(queue.Queue):  # type: ignore[type-arg]
    """An inbox whose ``empty()``, called by the stopped actor's own thread (Pykka's
    teardown), pauses right after answering "not empty" until ``resume`` is set: the
    thread switch that lets another thread take the last message first, made certain."""

    def __init__(self) -> None:
        super().__init__()
        self.actor: pykka.Actor | None = None
        self.paused, self.resume = threading.Event(), threading.Event()

    def empty(self) -> bool:
        answer = super().empty()
        actor = self.actor
        in_teardown = actor is not None and actor.actor_stopped.is_set()
        if not answer and in_teardown and threading.current_thread() is actor.thread:
            self.paused.set()
            self.resume.wait(10)
        return answer


class _TornDown(pykka.ThreadingActor):
    use_daemon_thread = True  # a failing run must not keep the test process alive

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        use_ref_class(self, AskAwareRef)
        self.stopping = stopping
        self.actor_inbox.actor = self  # type: ignore[attr-defined]

    @staticmethod
    def _create_actor_inbox() -> Any:
        return _PausingInbox()

    def on_start(self) -> None:
        self.thread = threading.current_thread()

    def on_stop(self) -> None:
        self.stopping.wait(10)  # the late message lands before the teardown starts


def test_a_drain_racing_the_teardown_never_leaves_the_actor_thread_waiting() -> None:
    """The sender's drain takes the last message between the teardown's ``empty()`` and
    its blocking ``get()``; the no-op message it puts back lets the teardown finish."""
    stopping = threading.Event()
    ref = _TornDown.start(stopping)
    actor = ref._actor_weakref()  # type: ignore[attr-defined]
    inbox, thread = actor.actor_inbox, actor.thread
    ref.stop(block=False)
    wait_until(lambda: not ref.is_alive(), 10, "the actor to stop")
    inbox.put(Envelope("late"))  # a sender whose liveness check passed before the stop
    stopping.set()
    assert inbox.paused.wait(10), "the teardown did not see the late message"
    taken = list(left_behind(ref))  # the sender looks again and takes it
    inbox.resume.set()
    assert taken == ["late"]
    thread.join(10)
    assert not thread.is_alive(), "the actor's thread waits forever in its teardown"
