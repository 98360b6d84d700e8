"""``QueryStateMachine`` in ``RaftStorage``: a state machine's ``query_many`` answers the
batch, else ``query`` answers each query, else every query is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from pykka_raft import MemStore, StorageError
from pykka_raft.messages import Entry
from pykka_raft.storage import QueryStateMachine
from pykka_raft.storage.messages import InvalidRequest

TIMEOUT = 10


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


class OneByOne:
    """Answers each query with its double; refuses negative ones."""

    def __init__(self) -> None:
        self.calls = 0

    def apply(self, entry: Entry) -> Any:
        return None

    def query(self, query: Any) -> Any:
        self.calls += 1
        if query < 0:
            raise ValueError(f"negative query {query}")
        return 2 * query


class Batched(OneByOne):
    """Answers a whole batch at once (``answered`` answers: how many it gives back)."""

    def __init__(self, answered: int | None = None) -> None:
        super().__init__()
        self.batches: list[tuple[Any, ...]] = []
        self.answered = answered

    def query_many(self, queries: tuple[Any, ...]) -> list[Any]:
        self.batches.append(queries)
        answers = [3 * query for query in queries]
        return answers if self.answered is None else answers[: self.answered]


class Silent:
    def apply(self, entry: Entry) -> Any:
        return None


def test_query_answers_each_query_and_a_refusal_is_that_query_s_answer() -> None:
    machine = OneByOne()
    answers = MemStore.start(machine).ask(QueryStateMachine((1, -1, 4)), timeout=TIMEOUT)
    assert answers[0::2] == (2, 8)
    assert isinstance(answers[1], ValueError) and "negative query -1" in str(answers[1])
    assert machine.calls == 3


def test_query_many_answers_the_batch_in_one_call() -> None:
    machine = Batched()
    store = MemStore.start(machine)
    assert store.ask(QueryStateMachine((1, 2, 5)), timeout=TIMEOUT) == (3, 6, 15)
    assert machine.batches == [(1, 2, 5)] and machine.calls == 0


def test_query_many_with_the_wrong_number_of_answers_fails_the_message() -> None:
    store = MemStore.start(Batched(answered=2))
    with pytest.raises(StorageError, match="answered 2 of 3 queries"):
        store.ask(QueryStateMachine((1, 2, 5)), timeout=TIMEOUT)
    assert store.ask(QueryStateMachine((7,)), timeout=TIMEOUT) == (21,)  # it goes on


def test_without_query_every_query_is_refused() -> None:
    answers = MemStore.start(Silent()).ask(QueryStateMachine((1, 2)), timeout=TIMEOUT)
    assert all(isinstance(a, InvalidRequest) and "has no query()" in str(a) for a in answers)
