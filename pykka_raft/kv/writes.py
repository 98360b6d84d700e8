"""Exactly-once writes for :class:`~pykka_raft.kv.Client`: client sessions over HTTP.

The same behaviour as the library's :class:`~pykka_raft.client.RaftClient` (Raft
dissertation §6.3), through the service's API: the client opens a session
(``POST /v1/sessions``), sends each write with its ``client_id`` and the next
``sequence``, and whenever an attempt's outcome is unknown (a 504, a 500, a connection
that broke after the request went out, a leader that changed) it resends the write with
the **same** sequence, to whichever node leads by then. The state machine applies it at
most once and answers every resend with the first answer, so the write is applied
exactly once if any copy of it is. Every write ends in one of three outcomes
(:class:`~pykka_raft.client.Outcome`): applied, definitely not applied, or unknown once
the deadline passed while an attempt's fate was open.

A session has one write in flight at a time, so each write that runs at the same time as
another takes a session of its own from a small pool (opened when needed, reused after).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import attrs

from pykka_raft.client import Outcome, WriteResult
from pykka_raft.kv.errors import (
    BodyTooLarge,
    ClusterUnreachable,
    KvError,
    ServerError,
    SessionExpired,
    StaleSequence,
    Unauthorized,
    Unavailable,
    UnknownOutcome,
)

if TYPE_CHECKING:
    from pykka_raft.kv.client import Client

__all__ = ["Outcome", "SessionPool", "WriteResult"]
# WriteResult is the library's (pykka_raft.client): for the service, ``response`` is the
# node's JSON answer, ``error`` a KvError, and ``index`` is not filled in.

_FIRST_PAUSE, _LARGEST_PAUSE = 0.05, 0.5


class _Session:
    __slots__ = ("client_id", "sequence")

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.sequence = 0


class SessionPool:
    """The sessions of one client and the loop that sends a write exactly once."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._idle: list[_Session] = []
        self.registrations = 0
        """Sessions opened so far."""
        self.resends = 0
        """Attempts that repeated a sequence after an unknown outcome."""

    def write(self, method: str, path: str, body: dict[str, Any], deadline: float) -> WriteResult:
        """Send one write in a session until it has a definite answer or ``deadline``
        (``time.monotonic()``) passes."""
        session = self._take(deadline)
        if isinstance(session, WriteResult):
            return session
        try:
            return self._write_in(session, method, path, body, deadline)
        finally:
            if session.client_id:
                with self._lock:
                    self._idle.append(session)

    def _write_in(
        self, session: _Session, method: str, path: str, body: dict[str, Any], deadline: float
    ) -> WriteResult:
        session.sequence += 1
        maybe_applied = False
        attempts = 0
        pause = _FIRST_PAUSE
        last: KvError | None = None
        urls = self.client.urls
        while attempts == 0 or time.monotonic() < deadline:
            attempts += 1
            if maybe_applied:
                with self._lock:
                    self.resends += 1
            data = {**body, "client_id": session.client_id, "sequence": session.sequence}
            ids: dict[str, Any] = {"client_id": session.client_id, "sequence": session.sequence}
            # After an unknown outcome, ask around: the node that did not answer may be
            # cut off or gone, and the leader may have changed.
            target = urls[attempts % len(urls)] if maybe_applied else None
            try:
                response = self.client.call(method, path, data, target=target, until=deadline)
            except (UnknownOutcome, ServerError) as exc:
                maybe_applied, last = True, exc
                self.client.leader_url = None
            except (Unavailable, ClusterUnreachable) as exc:
                last = exc  # this attempt was not taken; the next one may be
            except SessionExpired as exc:
                last = exc
                session.client_id = 0  # gone, or out of step: never given back
                if maybe_applied or isinstance(exc, StaleSequence):
                    return _unknown(exc, attempts, ids)
                # No copy of this write was applied: a new session, the same write.
                fresh = self._register(deadline)
                if isinstance(fresh, WriteResult):
                    return attrs.evolve(fresh, attempts=attempts)
                session.client_id, session.sequence = fresh, 1
                continue
            except KvError as exc:  # a definite answer: refused, nothing written ...
                # ... but for one node's own limit or tokens: an earlier copy may
                # have gone through another node
                if maybe_applied and isinstance(exc, (BodyTooLarge, Unauthorized)):
                    return _unknown(exc, attempts, ids)
                return WriteResult(Outcome.NOT_APPLIED, error=exc, attempts=attempts, **ids)
            else:
                return WriteResult(Outcome.APPLIED, response, attempts=attempts, **ids)
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, _LARGEST_PAUSE)
        ids = {"client_id": session.client_id or None, "sequence": session.sequence}
        if maybe_applied:
            return _unknown(last, attempts, ids)
        return WriteResult(Outcome.NOT_APPLIED, error=last, attempts=attempts, **ids)

    def _take(self, deadline: float) -> _Session | WriteResult:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        client_id = self._register(deadline)
        return client_id if isinstance(client_id, WriteResult) else _Session(client_id)

    def _register(self, deadline: float) -> int | WriteResult:
        """A new session's client id, or the result of a write that could not be sent.

        A registration whose answer was lost is simply made again: at worst it leaves a
        session nobody uses, which expires.
        """
        last: KvError | None = None
        pause = _FIRST_PAUSE
        while last is None or time.monotonic() < deadline:
            try:
                answer = self.client.call(
                    "POST", "/v1/sessions", None, idempotent=True, until=deadline
                )
            except (UnknownOutcome, ServerError, Unavailable, ClusterUnreachable) as exc:
                last = exc
                time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
                pause = min(pause * 2, _LARGEST_PAUSE)
                continue
            except KvError as exc:
                return WriteResult(Outcome.NOT_APPLIED, error=exc)
            with self._lock:
                self.registrations += 1
            client_id: int = answer["client_id"]
            return client_id
        if not isinstance(last, (Unavailable, ClusterUnreachable)):
            error: KvError = Unavailable(
                "",
                f"no session could be opened before the deadline ({last}); the write was not sent",
            )
            error.__cause__ = last
            last = error
        return WriteResult(Outcome.NOT_APPLIED, error=last)

    def close(self, timeout: float = 2.0) -> None:
        """Close the idle sessions (best effort: a session not closed expires on its
        own, after the cluster's session timeout without writes)."""
        with self._lock:
            idle, self._idle = self._idle, []
        until = time.monotonic() + timeout
        for session in idle:
            if time.monotonic() >= until:
                return
            try:
                self.client.call("DELETE", f"/v1/sessions/{session.client_id}", until=until)
            except (KvError, OSError):
                continue


def _unknown(last: KvError | None, attempts: int, ids: dict[str, Any]) -> WriteResult:
    status = last.status if isinstance(last, UnknownOutcome) else 0
    error = UnknownOutcome(
        "outcome_unknown",
        f"no attempt gave a definite answer before the deadline (last: {last}); the write "
        "may have been applied, once: read it back",
        status,
        {**ids, "attempts": attempts},
    )
    error.__cause__ = last
    return WriteResult(Outcome.UNKNOWN, error=error, attempts=attempts, **ids)
