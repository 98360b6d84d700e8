"""The session table: the rules of §6.3 (apply once, answer resends from a cache, expire on
the log's clock) over a small storage backend.

The rules are kept apart from where the rows live, so that the same table runs in memory
(:class:`MemorySessions`, for ``KeyValueStateMachine`` and :class:`SessionStateMachine`)
and in the store's SQLite database (``SqliteSessions`` of
:mod:`pykka_raft.storage.sqlite_sessions`), and so that every state machine with sessions
answers a resend the same way.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs

from pykka_raft.errors import ApplicationError, DecodeError
from pykka_raft.sessions.entries import (
    CachedResponse,
    CloseSession,
    RegisterClient,
    Rejected,
    SessionCommand,
)
from pykka_raft.sessions.errors import CommandRejected, SessionExpired, StaleSequence

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_SESSION_TIMEOUT",
    "MemorySessions",
    "Session",
    "SessionBackend",
    "SessionTable",
]

DEFAULT_SESSION_TIMEOUT = 3600.0
"""Seconds of log time without activity after which a session expires (one hour)."""

_MARKERS = (Rejected, CachedResponse)

DEFAULT_MAX_SESSIONS = 10_000
"""The most sessions a table holds: registering one more ends the least recently active
(dissertation §6.3: a bound on the table, and the same eviction on every node)."""


@attrs.frozen
class Session:
    """One client's row: its last applied ``sequence``, the ``response`` to it (a
    :class:`Rejected` if it was refused; a :class:`CachedResponse` around a response that
    is itself one of these two), and the log time of its last activity."""

    sequence: int
    response: Any
    last_active: float


class SessionBackend(Protocol):
    """Where a :class:`SessionTable` keeps its clock and rows.

    Rows are written with ``last_active`` equal to the current clock, which never
    decreases, so rows ordered by ``last_active`` are ordered by last activity. The
    table reads a row's position and its response apart, because only a resend needs
    the response.
    """

    def clock(self) -> float:
        """The log's clock: the largest leader time applied so far (0.0 at first)."""

    def set_clock(self, clock: float) -> None:
        """Move the clock (never backwards: the table checks)."""

    def position(self, client_id: int) -> tuple[int, float] | None:
        """``(sequence, last_active)`` of ``client_id``'s row, if there is one."""

    def response(self, client_id: int) -> Any:
        """The cached response of ``client_id``'s row (it exists)."""

    def put(self, client_id: int, session: Session) -> None:
        """Insert or replace the row of ``client_id``."""

    def touch(self, client_id: int, last_active: float) -> None:
        """Record activity on the row of ``client_id`` (it exists)."""

    def remove(self, client_id: int) -> None:
        """Delete the row of ``client_id`` (it exists)."""

    def expire(self, before: float) -> None:
        """Delete every row whose ``last_active`` is older than ``before``."""

    def count(self) -> int:
        """How many rows there are."""

    def oldest(self) -> int:
        """The client id of the least recently active row (there is one); of several
        equally old, the smallest id, so that every backend picks the same."""

    def rows(self) -> Iterator[tuple[int, Session]]:
        """Every row, by last activity, oldest first."""

    def replace(self, clock: float, rows: list[tuple[int, Session]]) -> None:
        """Replace the clock and every row (a restored snapshot)."""


class MemorySessions:
    """The in-memory backend: rows in order of last activity, so expiry pops from the
    front and costs nothing while nothing expires."""

    def __init__(self) -> None:
        self._clock = 0.0
        self._rows: collections.OrderedDict[int, Session] = collections.OrderedDict()

    def clock(self) -> float:
        return self._clock

    def set_clock(self, clock: float) -> None:
        self._clock = clock

    def position(self, client_id: int) -> tuple[int, float] | None:
        row = self._rows.get(client_id)
        return None if row is None else (row.sequence, row.last_active)

    def response(self, client_id: int) -> Any:
        return self._rows[client_id].response

    def put(self, client_id: int, session: Session) -> None:
        self._rows[client_id] = session
        self._rows.move_to_end(client_id)

    def touch(self, client_id: int, last_active: float) -> None:
        row = self._rows[client_id]
        self.put(client_id, Session(row.sequence, row.response, last_active))

    def remove(self, client_id: int) -> None:
        del self._rows[client_id]

    def expire(self, before: float) -> None:
        rows = self._rows
        while rows:
            client_id, oldest = next(iter(rows.items()))
            if oldest.last_active >= before:
                return
            del rows[client_id]

    def count(self) -> int:
        return len(self._rows)

    def oldest(self) -> int:
        rows = iter(self._rows.items())
        first, row = next(rows)
        ties = itertools.takewhile(lambda item: item[1].last_active == row.last_active, rows)
        return min([first, *(client_id for client_id, _ in ties)])

    def rows(self) -> Iterator[tuple[int, Session]]:
        return iter(list(self._rows.items()))

    def replace(self, clock: float, rows: list[tuple[int, Session]]) -> None:
        self._clock = clock
        ordered = sorted(rows, key=lambda row: row[1].last_active)  # stable: keeps ties
        self._rows = collections.OrderedDict(ordered)


def _check_timeout(timeout: float) -> float:
    if type(timeout) not in (int, float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"session timeout must be a finite number of seconds > 0: {timeout!r}")
    return float(timeout)


def _check_max_sessions(max_sessions: int) -> int:
    if type(max_sessions) is not int or max_sessions < 1:
        raise ValueError(f"max_sessions must be an int >= 1: {max_sessions!r}")
    return max_sessions


class SessionTable:
    """The rules of §6.3 over a backend: register, apply once, answer from the cache,
    expire on the log's clock. Deterministic: the same entries give the same table and
    the same answers on every node.

    ``timeout`` and ``max_sessions`` must be the same on every node of a cluster (they
    decide which sessions the entries expire). A registration that finds ``max_sessions``
    sessions ends the least recently active one first: its client's next write is
    answered :class:`~pykka_raft.sessions.SessionExpired`, as after a timeout.
    """

    def __init__(
        self,
        timeout: float = DEFAULT_SESSION_TIMEOUT,
        backend: SessionBackend | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.timeout = _check_timeout(timeout)
        self.max_sessions = _check_max_sessions(max_sessions)
        self.backend: SessionBackend = backend if backend is not None else MemorySessions()

    @property
    def clock(self) -> float:
        """The log's clock (seconds of the leaders' wall clocks)."""
        return self.backend.clock()

    def __len__(self) -> int:
        return self.backend.count()

    def get(self, client_id: int) -> Session | None:
        """The row of ``client_id`` (even if it would expire at the next entry)."""
        position = self.backend.position(client_id)
        if position is None:
            return None
        return Session(position[0], self.backend.response(client_id), position[1])

    def apply(self, index: int, data: Any, run: Callable[[Any], Any]) -> Any:
        """Apply the session entry ``data`` at log index ``index``; ``run(command)``
        applies a command to the wrapped state machine. Returns the response, or raises
        :class:`~pykka_raft.errors.ApplicationError` (a refusal, the same on every node).
        """
        backend = self.backend
        clock = now = backend.clock()
        if data.time is not None and data.time > now:
            now = float(data.time)
        if isinstance(data, RegisterClient):
            self._advance(clock, now)
            while backend.count() >= self.max_sessions:  # the bound: end the idlest
                backend.remove(backend.oldest())
            backend.put(index, Session(0, None, now))
            return index
        if isinstance(data, CloseSession):
            if self._live(data.client_id, now) is None:
                raise ApplicationError(SessionExpired(data.client_id, None))
            self._advance(clock, now)
            backend.remove(data.client_id)
            return None
        if not isinstance(data, SessionCommand):
            raise TypeError(f"not a session entry: {type(data).__name__}")
        client_id, sequence = data.client_id, data.sequence
        latest = self._live(client_id, now)
        if latest is None:
            raise ApplicationError(SessionExpired(client_id, sequence))
        if sequence < latest:
            raise ApplicationError(StaleSequence(client_id, sequence, latest))
        if sequence == latest:  # a resend of the last write: answer from the cache
            cached = backend.response(client_id)
            if isinstance(cached, Rejected):
                raise ApplicationError(CommandRejected(cached.kind, cached.message))
            self._advance(clock, now)
            backend.touch(client_id, now)
            return cached.response if isinstance(cached, CachedResponse) else cached
        try:
            response = run(data.command)
        except ApplicationError as exc:
            # Remember the refusal, so a resend cannot be applied later (§6.3: at most once).
            refused = exc.error
            self._advance(clock, now)
            backend.put(
                client_id, Session(sequence, Rejected(type(refused).__name__, str(refused)), now)
            )
            raise
        self._advance(clock, now)
        # A response that reads as a marker (a client stored a Rejected, and a later write
        # gives it back) is cached wrapped, so that its resend is not taken for a refusal.
        kept = CachedResponse(response) if isinstance(response, _MARKERS) else response
        backend.put(client_id, Session(sequence, kept, now))
        return response

    def _live(self, client_id: int, now: float) -> int | None:
        """The session's last sequence if it exists and has not expired at ``now``."""
        position = self.backend.position(client_id)
        if position is None or position[1] < now - self.timeout:
            return None
        return position[0]

    def _advance(self, clock: float, now: float) -> None:
        """Move the clock from ``clock`` to ``now``, expiring what that leaves behind
        (rows older than the old clock allows went when the clock last moved)."""
        if now > clock:
            self.backend.set_clock(now)
            self.backend.expire(now - self.timeout)

    # --- snapshots ---------------------------------------------------------------------

    def capture(self) -> list[Any]:
        """The table as plain data (``[clock, [[client_id, sequence, response,
        last_active], ...]]``), for a snapshot; later changes do not show in it."""
        return [
            self.backend.clock(),
            [[cid, s.sequence, s.response, s.last_active] for cid, s in self.backend.rows()],
        ]

    def load(self, captured: Any) -> None:
        """Replace the table with one :meth:`capture` produced (``None``: empty).

        Raises:
            DecodeError: ``captured`` is not a captured table.
        """
        if captured is None:
            self.backend.replace(0.0, [])
            return
        try:
            clock, rows = captured
            table = [
                (int(cid), Session(int(seq), response, float(active)))
                for cid, seq, response, active in rows
            ]
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"not a session table: {exc}") from exc
        self.backend.replace(float(clock), table)

    def dump(self) -> dict[int, Session]:
        """Every row, by client id: comparable across nodes."""
        return dict(sorted(self.backend.rows()))
