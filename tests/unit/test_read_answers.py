"""``ReadAnswers``: a batch of readers answered once, from the storage's answers or a stop."""

from __future__ import annotations

from typing import Any

import pytest

from pykka_raft import ApplicationError, ClientReadResponse, ShuttingDown
from pykka_raft.read_answers import ReadAnswers


class _Done:
    def __init__(self) -> None:
        self.calls = 0

    def set(self, value: Any = None) -> None:
        self.calls += 1


def batch(readers: list[Any], index: int = 7) -> tuple[ReadAnswers, list[tuple[Any, ...]]]:
    answered: list[tuple[Any, ...]] = []
    answers = ReadAnswers(readers, index, lambda *a: answered.append(a))
    answers.done = _Done()
    return answers, answered


def test_each_reader_gets_its_answer_at_the_batch_index_then_done_is_told() -> None:
    answers, answered = batch(["a", "b"])
    answers.set(("x", "y"))
    assert answered == [
        ("a", ClientReadResponse(7, "x"), None),
        ("b", ClientReadResponse(7, "y"), None),
    ]
    assert answers.done.calls == 1


def test_a_refused_query_is_its_readers_error_only() -> None:
    answers, answered = batch(["a", "b"])
    own = ApplicationError(KeyError("k"), "query")
    answers.set((ValueError("bad"), own))
    (_, value_a, error_a), (_, value_b, error_b) = answered
    assert value_a is None and isinstance(error_a, ApplicationError)
    assert isinstance(error_a.error, ValueError)
    assert value_b is None and error_b is own  # the state machine's own refusal, as is


@pytest.mark.parametrize(("answers", "cause"), [((), IndexError), (None, TypeError)])
def test_a_storage_that_breaks_the_contract_gives_each_reader_an_error(
    answers: Any, cause: type[BaseException]
) -> None:
    readers, answered = batch(["a"])
    readers.set(answers)
    ((_, value, error),) = answered
    assert value is None and isinstance(error, ApplicationError)
    assert isinstance(error.error, cause)


def test_a_failed_query_fails_every_reader_and_still_completes() -> None:
    answers, answered = batch(["a", "b"])
    answers.set_exception(OSError("disk"))
    assert [type(e.error) for _, _, e in answered] == [OSError, OSError]
    assert answers.done.calls == 1


def test_readers_are_answered_once_whichever_comes_first() -> None:
    answers, answered = batch(["a"])
    answers.refuse(ShuttingDown("stopping"))
    answers.set(("late",))  # the storage's answer after the node stopped
    assert [(r, v, type(e)) for r, v, e in answered] == [("a", None, ShuttingDown)]
    assert answers.done.calls == 1  # the completion still goes out (a stopped node drops it)

    answers, answered = batch(["a"])
    answers.set(("x",))
    answers.refuse(ShuttingDown("stopping"))
    assert answered == [("a", ClientReadResponse(7, "x"), None)]


def test_a_reader_the_node_had_answered_already_is_skipped() -> None:
    answers, answered = batch([None, "b"])
    answers.set(("x", "y"))
    assert answered == [("b", ClientReadResponse(7, "y"), None)]
    answers, answered = batch([None])
    answers.refuse(ShuttingDown("stopping"))
    assert answered == []
