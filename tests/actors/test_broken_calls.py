"""Calls whose reply is broken, or that an actor cannot handle, and components that are not
actors: each is refused or logged, and every other caller is still answered."""

from __future__ import annotations

import logging
import random
from typing import Any

import pykka
import pytest

from pykka_raft import (
    Call,
    Config,
    FutureReply,
    GetInitialState,
    GetMetrics,
    MemStore,
    Put,
    Raft,
    RaftClient,
    RaftRouter,
    Register,
    SqliteStore,
    UnknownMessage,
    UnknownNode,
    Unregister,
    VoteRequest,
)


class _RaisingReply:
    """A reply whose every answer raises."""

    def set(self, value: Any = None) -> None:
        raise RuntimeError("set broke")

    def set_exception(self, error: BaseException) -> None:
        raise RuntimeError("set_exception broke")


BROKEN = [None, "not a reply", _RaisingReply()]


def _node() -> tuple[Any, Any, Any]:
    router, store = RaftRouter.start(), MemStore.start()
    node = Raft.start(1, Config(), router, store)
    router.ask(Register(1, node))
    node.ask(GetMetrics(), timeout=10)
    return router, store, node


@pytest.mark.parametrize("reply", BROKEN, ids=["none", "str", "raising"])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_broken_reply_does_not_stop_a_storage(
    reply: Any, kind: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemStore.start() if kind == "memory" else SqliteStore.start(str(tmp_path), 1)
    try:
        store.tell(Call(GetInitialState(), reply))
        store.ask(GetInitialState(), timeout=10)  # answered after it: still running
        assert store.is_alive()
        assert any("could not be delivered" in r.getMessage() for r in caplog.records)
    finally:
        store.stop()


def test_a_broken_reply_does_not_stop_the_node_of_a_storage() -> None:
    _, store, node = _node()
    try:
        store.tell(Call(GetInitialState(), None))
        store.ask(GetInitialState(), timeout=10)
        assert node.ask(GetMetrics(), timeout=10).current_term >= 0  # the node still runs
    finally:
        pykka.ActorRegistry.stop_all()


def test_a_network_answers_a_call_it_cannot_handle() -> None:
    router = RaftRouter.start()
    try:
        future = pykka.ThreadingFuture[Any]()
        router.tell(Call("junk", FutureReply(future)))
        with pytest.raises(UnknownMessage):  # before: logged and dropped, never answered
            future.get(timeout=10)
        assert router.is_alive()
    finally:
        router.stop()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param((Config(), None, "store"), "network must be an actor ref", id="network"),
        pytest.param((Config(), "router", None), "storage must be an actor ref", id="storage"),
        pytest.param(({}, "router", "store"), "config must be a Config", id="config"),
    ],
)
def test_raft_start_refuses_what_it_cannot_run_with(args: tuple[Any, ...], words: str) -> None:
    router, store = RaftRouter.start(), MemStore.start()
    refs = {"router": router, "store": store}
    config, network, storage = (refs.get(a, a) if isinstance(a, str) else a for a in args)
    before = len(pykka.ActorRegistry.get_all())
    try:
        with pytest.raises(TypeError, match=words):
            Raft.start(1, config, network, storage)
        with pytest.raises(TypeError, match=r"rng must be a random\.Random"):
            Raft.start(1, Config(), router, store, None, "seed")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="metrics must be an actor ref"):
            Raft.start(1, Config(), router, store, object())
        assert len(pykka.ActorRegistry.get_all()) == before  # no node was started
        Raft.start(1, Config(), router, store, None, random.Random(1)).stop()
    finally:
        router.stop()
        store.stop()


class _BrokenRoute:
    """A route whose every delivery raises."""

    def tell(self, message: Any) -> None:
        raise RuntimeError("route broke")


def test_a_failing_route_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    router = RaftRouter.start()
    try:
        router.ask(Register(5, _BrokenRoute()))
        futures = []
        for _ in range(50):  # routed in this thread (the router's direct send)
            future = pykka.ThreadingFuture[Any]()
            router.tell(Call(VoteRequest(5, 1, 1, 0, 0), FutureReply(future)))
            futures.append(future)
        for future in futures:  # every caller is answered with the route's error
            with pytest.raises(RuntimeError, match="route broke"):
                future.get(timeout=10)
        lines = [r for r in caplog.records if "routing VoteRequest failed" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    finally:
        router.stop()


@pytest.mark.parametrize(
    ("start", "words"),
    [
        pytest.param(lambda _: MemStore.start("notsm"), "state_machine must be", id="mem-machine"),
        pytest.param(lambda _: MemStore.start(data=5), "data must be a MemStoreData", id="data"),
        pytest.param(
            lambda tmp: SqliteStore.start(str(tmp), 9, state_machine="x"),
            "state_machine must be",
            id="sqlite-machine",
        ),
    ],
)
def test_a_storage_refuses_what_is_not_a_state_machine(
    start: Any, words: str, tmp_path: Any
) -> None:
    # It started, and failed at the first apply (or at once with an AttributeError).
    before = len(pykka.ActorRegistry.get_all())
    with pytest.raises(TypeError, match=words):
        start(tmp_path)
    assert len(pykka.ActorRegistry.get_all()) == before


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"backoff": (1,)}, ValueError),
        ({"backoff": ("a", "b")}, ValueError),
        ({"timeout": "x"}, TypeError),
        ({"attempt_timeout": float("nan")}, ValueError),
    ],
)
def test_a_raft_client_refuses_bad_settings(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        RaftClient({}, **kwargs)
    with pytest.raises(TypeError, match="timeout must be a number"):
        RaftClient({}).write(Put("k", 1), timeout="x")  # type: ignore[arg-type]


def test_a_request_for_a_node_without_a_route_is_answered_unknown_node() -> None:
    """No node registered as 5 (or no longer): the sender hears ``UnknownNode`` at once,
    never silence (an unanswered request would hold its caller until its own timeout)."""
    router = RaftRouter.start()
    try:
        for step in ("never registered", "unregistered"):
            future = pykka.ThreadingFuture[Any]()
            router.tell(Call(VoteRequest(5, 1, 1, 0, 0), FutureReply(future)))
            with pytest.raises(UnknownNode):
                future.get(timeout=10)
            if step == "never registered":
                router.ask(Register(5, _BrokenRoute()))
                router.ask(Unregister(5))
    finally:
        router.stop()
