"""RaftClient when a node answers ``ResultUnavailable``: the write committed, but whether
the state machine applied it or refused it is gone on that node. The client never calls
that applied: in a session a resend gets the cached answer; without one, or when the
cache is gone too, the outcome is unknown (the error says it committed)."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    ClientPayloadResponse,
    Outcome,
    Put,
    RaftClient,
    ResponseMode,
    ResultUnavailable,
)
from pykka_raft.sessions import CommandRejected, RegisterClient, SessionExpired

COMMITTED = ResultUnavailable(5)


class ScriptedRef:
    """A stand-in for a Raft ref: registers sessions as client 7, and answers the writes
    with ``answers`` in turn (an exception is raised), then with ``pykka.Timeout``."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.writes = 0

    def ask(self, message: Any, timeout: float | None = None) -> ClientPayloadResponse:
        if isinstance(message.entry.data, RegisterClient):
            return ClientPayloadResponse(1, ResponseMode.APPLIED, 7)
        self.writes += 1
        answer = self.answers.pop(0) if self.answers else pykka.Timeout("no answer")
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


def write(ref: ScriptedRef, sessions: bool = True) -> Any:
    client = RaftClient({1: ref}, timeout=1.0, attempt_timeout=0.1, sessions=sessions)
    return client.write(Put("k", 1))


def test_without_a_session_a_committed_write_is_unknown_not_applied() -> None:
    committed = ResultUnavailable(5)
    result = write(ScriptedRef(committed), sessions=False)
    assert result.outcome is Outcome.UNKNOWN and result.error is committed
    assert committed.__cause__ is None  # not its own cause: a walk of causes ends


def test_in_a_session_the_resend_gets_the_cached_response() -> None:
    ref = ScriptedRef(COMMITTED, ClientPayloadResponse(5, ResponseMode.APPLIED, "old"))
    result = write(ref)
    assert (result.outcome, result.response, ref.writes) == (Outcome.APPLIED, "old", 2)


def test_in_a_session_the_resend_gets_the_cached_refusal() -> None:
    refused = ApplicationError(CommandRejected("ValueError", "no"))
    result = write(ScriptedRef(COMMITTED, refused))
    assert result.outcome is Outcome.NOT_APPLIED and result.error is refused


def test_a_committed_write_whose_session_expired_since_is_unknown() -> None:
    expired = ApplicationError(SessionExpired(7, 1))
    result = write(ScriptedRef(COMMITTED, expired))
    assert result.outcome is Outcome.UNKNOWN and result.error is COMMITTED


def test_a_committed_write_whose_resend_is_never_answered_is_unknown() -> None:
    result = write(ScriptedRef(COMMITTED))
    assert result.outcome is Outcome.UNKNOWN and result.error is COMMITTED


def test_a_state_machine_without_sessions_is_named_when_a_session_is_opened() -> None:
    class NoSessions(ScriptedRef):
        def ask(self, message: Any, timeout: float | None = None) -> ClientPayloadResponse:
            return ClientPayloadResponse(1, ResponseMode.APPLIED, None)  # applied, no id

    with pytest.raises(TypeError, match=r"answered RegisterClient with None.*sessions=False"):
        write(NoSessions())


def test_without_a_session_a_write_whose_answer_was_lost_is_never_resent() -> None:
    """The attempt timed out: the node may have applied it. Without a session a resend
    could apply it a second time, so the client sends it once and says unknown."""
    ref = ScriptedRef(pykka.Timeout("lost"), ClientPayloadResponse(6, ResponseMode.APPLIED, 2))
    result = write(ref, sessions=False)
    assert (result.outcome, ref.writes) == (Outcome.UNKNOWN, 1)


def test_a_write_that_may_have_been_applied_is_not_resent_in_a_new_session() -> None:
    """The first copy committed, then the session expired: a new session would not know
    that copy, so a resend in it could apply the write twice. The client stops: unknown."""
    expired = ApplicationError(SessionExpired(7, 1))
    ref = ScriptedRef(COMMITTED, expired, ClientPayloadResponse(9, ResponseMode.APPLIED, 2))
    result = write(ref)
    assert (result.outcome, result.error, ref.writes) == (Outcome.UNKNOWN, COMMITTED, 2)
