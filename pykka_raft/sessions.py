"""Client sessions: exactly-once writes (Raft dissertation §6.3), in front of a state machine.

A write whose answer was lost leaves its client stuck: resending it may apply it twice,
not resending may lose it. With a session the client can resend safely:

* the client registers once (:class:`RegisterClient`, through the log) and gets a client
  id: the log index of that entry, the same on every node;
* each write carries ``(client_id, sequence)`` (:class:`SessionCommand`), the sequence
  growing by one per new write, and the same for every resend of one write;
* the session layer keeps, per client, the highest sequence it applied and that
  write's response. A write whose sequence was applied already is answered with the
  cached response and not applied again; an older one answers :class:`StaleSequence`;
  a client the table does not know answers :class:`SessionExpired`.

**Time comes from the log.** Sessions expire after ``timeout`` seconds without
activity, measured on a clock carried by the session entries themselves: the leader
stamps each one with its wall-clock time when it accepts it (the entry's
``with_leader_time`` hook, called by the Raft actor), and the state machine's clock is
the largest time it has applied, so it never runs backwards when a leader with a slower
clock takes over. Every node applies the same entries, so every node expires the same
sessions at the same entry: no node's own clock decides anything.

**Rejections are data of the session.** A command the wrapped machine refuses
(:class:`~pykka_raft.errors.ApplicationError`) is recorded as that sequence's answer,
so a resend of it is refused the same way (:class:`CommandRejected`) and never applied
later: the application's state is unchanged by a refusal, only the session table moves
(the one deliberate exception to "refuse before changing anything": it is the same on
every node; a store that rolls refused entries back, as ``SqliteStore`` does for a
database state machine whose ``apply`` raises, rolls the record back with them).
Refusals of the session layer itself (:class:`SessionExpired`, :class:`StaleSequence`)
change nothing at all.

The rules live in :class:`SessionTable`, which stores its rows through a small backend
(in memory here, in SQLite for
:class:`~pykka_raft.storage.sqlite_kv.SqliteKeyValueStateMachine`).
:class:`SessionStateMachine` wraps any :class:`~pykka_raft.statemachine.StateMachine`;
:class:`~pykka_raft.statemachine.KeyValueStateMachine` has a table built in.
See ``docs/clients.md``.
"""

from __future__ import annotations

import collections
import copy
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from pykka_raft.codec import decode, encode, register_app_type
from pykka_raft.errors import ApplicationError, ClientError, DecodeError
from pykka_raft.messages import Entry, EntryNormal

if TYPE_CHECKING:
    from pykka_raft.statemachine import StateMachine

__all__ = [
    "DEFAULT_SESSION_TIMEOUT",
    "CloseSession",
    "CommandRejected",
    "MemorySessions",
    "RegisterClient",
    "Rejected",
    "Session",
    "SessionBackend",
    "SessionCommand",
    "SessionError",
    "SessionExpired",
    "SessionStateMachine",
    "SessionTable",
    "StaleSequence",
]

DEFAULT_SESSION_TIMEOUT = 3600.0
"""Seconds of log time without activity after which a session expires (one hour)."""


# --- errors --------------------------------------------------------------------------------


class SessionError(ClientError):
    """Base of the errors of the session layer. They reach the caller wrapped in
    :class:`~pykka_raft.errors.ApplicationError` (``exc.error``): the entry that carried
    the write changed nothing."""


class SessionExpired(SessionError):
    """The session of ``client_id`` is not in the table: it expired (no activity for the
    session timeout, on the log's clock), was closed, or was never registered.

    This entry applied nothing. If the write was a resend, an earlier copy of it may have
    been applied before the session expired: its outcome is unknown. A first attempt is
    definitely not applied: register a new session and send it again.
    """

    def __init__(self, client_id: int, sequence: int | None, detail: str | None = None) -> None:
        self.client_id = client_id
        self.sequence = sequence
        super().__init__(
            detail
            or f"client {client_id} has no session (it expired, was closed, or was never "
            "registered); this entry applied nothing: register again before writing"
        )


class StaleSequence(SessionExpired):
    """``sequence`` is older than the last write this session answered (``latest``): the
    response to it is gone. This entry applied nothing; whether the original write was
    applied is unknown (a client that waits for one write at a time never sees this for
    the write it waits for)."""

    def __init__(self, client_id: int, sequence: int, latest: int) -> None:
        self.latest = latest
        super().__init__(
            client_id,
            sequence,
            f"client {client_id} sent sequence {sequence}, older than the last one its "
            f"session answered ({latest}): that response is gone and this entry applied "
            "nothing",
        )


class CommandRejected(SessionError):
    """A resend of a write the state machine had refused: it is refused again, the same
    way, without being applied. ``kind`` and ``message`` are the type name and text of
    the first refusal's error."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"the state machine refused this write: {kind}: {message}")


# --- the entries ---------------------------------------------------------------------------


def _leader_time(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be None or a finite number "
            f"of seconds >= 0, got {value!r}"
        )


def _positive_int(instance: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be an int >= 1, got {value!r}"
        )


def _not_a_session_entry(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, SESSION_TYPES):
        raise TypeError(f"a SessionCommand cannot carry a {type(value).__name__}")


@register_app_type
@attrs.frozen
class RegisterClient:
    """Open a session. The response is the new client id: this entry's log index.

    ``time`` is filled in by the leader (leave it ``None``).
    """

    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> RegisterClient:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return RegisterClient(now)


@register_app_type
@attrs.frozen
class SessionCommand:
    """``command`` sent by ``client_id`` as its write number ``sequence``.

    Send a new write with the next sequence (one more than the last), and every resend
    of a write with the same sequence. The response is the wrapped state machine's
    response to ``command`` (cached: a resend gets the first answer). ``time`` is filled
    in by the leader (leave it ``None``).
    """

    client_id: int = attrs.field(validator=_positive_int)
    sequence: int = attrs.field(validator=_positive_int)
    command: Any = attrs.field(validator=_not_a_session_entry)
    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> SessionCommand:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return SessionCommand(self.client_id, self.sequence, self.command, now)


@register_app_type
@attrs.frozen
class CloseSession:
    """Remove the session of ``client_id`` (its table row) before it expires. Responds
    ``None``; a session already gone answers :class:`SessionExpired`."""

    client_id: int = attrs.field(validator=_positive_int)
    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> CloseSession:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return CloseSession(self.client_id, now)


@register_app_type
@attrs.frozen
class Rejected:
    """What a session remembers of a refused write: the error's type name and text.

    Reserved for the session layer: a state machine must not answer a write with it (a
    resend would be refused as :class:`CommandRejected`).
    """

    kind: str
    message: str


SESSION_TYPES = (RegisterClient, SessionCommand, CloseSession)
"""The entries the session layer handles; everything else goes to the state machine."""


# --- the table -----------------------------------------------------------------------------


@attrs.frozen
class Session:
    """One client's row: its last applied ``sequence``, the ``response`` to it (a
    :class:`Rejected` if it was refused), and the log time of its last activity."""

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


class SessionTable:
    """The rules of §6.3 over a backend: register, apply once, answer from the cache,
    expire on the log's clock. Deterministic: the same entries give the same table and
    the same answers on every node.

    ``timeout`` must be the same on every node of a cluster (it decides which sessions
    the entries expire).
    """

    def __init__(
        self, timeout: float = DEFAULT_SESSION_TIMEOUT, backend: SessionBackend | None = None
    ) -> None:
        self.timeout = _check_timeout(timeout)
        self.backend: SessionBackend = backend if backend is not None else MemorySessions()

    @property
    def clock(self) -> float:
        """The log's clock (seconds of the leaders' wall clocks)."""
        return self.backend.clock()

    def __len__(self) -> int:
        return sum(1 for _ in self.backend.rows())

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
            return cached
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
        backend.put(client_id, Session(sequence, response, now))
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


# --- the wrapper ---------------------------------------------------------------------------


class SessionStateMachine:
    """Client sessions in front of any state machine.

    Session entries (:class:`RegisterClient`, :class:`SessionCommand`,
    :class:`CloseSession`) are handled here and their commands applied to ``inner`` at
    most once; every other entry goes to ``inner`` as it is. Snapshots hold ``inner``'s
    snapshot and the session table.

    With ``keep_history``, :attr:`applied` records every entry as ``(index, data)`` (as
    ``KeyValueStateMachine`` does, so the safety monitors of ``pykka_raft.testing`` can
    compare nodes), and :attr:`history` records every
    session entry applied as ``(index, client_id, sequence, outcome)``, where outcome is
    ``"applied"``, ``"duplicate"`` (answered from the cache), ``"rejected"`` (``inner``
    refused it, or it is a resend of a refused write), ``"expired"`` or ``"stale"``;
    registrations and closes are recorded with sequence 0 as ``"register"`` and
    ``"close"``. Like ``KeyValueStateMachine``'s history it grows without bound: tests
    only.

    ``inner.validate`` must depend on the command alone (not on the state), as
    ``KeyValueStateMachine``'s does: a resend of an applied write is then accepted like
    its first copy, and answered from the cache.
    """

    def __init__(
        self,
        inner: StateMachine,
        timeout: float = DEFAULT_SESSION_TIMEOUT,
        keep_history: bool = False,
    ) -> None:
        self.inner = inner
        self.sessions = SessionTable(timeout)
        self.keep_history = keep_history
        self.applied: list[tuple[int, Any]] = []
        self.history: list[tuple[int, int, int, str]] = []

    def apply(self, entry: Entry) -> Any:
        """Apply a session entry here, anything else in ``inner``."""
        payload = entry.payload
        data = payload.data if isinstance(payload, EntryNormal) else None
        if self.keep_history:
            self.applied.append((entry.index, data))
        if not isinstance(data, SESSION_TYPES):
            return self.inner.apply(entry)
        applied: list[bool] = []

        def run(command: Any) -> Any:
            applied.append(True)
            return self.inner.apply(Entry(entry.term, entry.index, EntryNormal(command)))

        if not self.keep_history:
            return self.sessions.apply(entry.index, data, run)
        try:
            response = self.sessions.apply(entry.index, data, run)
        except ApplicationError as exc:
            self._record(entry.index, data, _refusal(exc.error))
            raise
        if isinstance(data, SessionCommand):
            outcome = "applied" if applied else "duplicate"
        else:
            outcome = "register" if isinstance(data, RegisterClient) else "close"
        self._record(entry.index, data, outcome)
        return response

    def _record(self, index: int, data: Any, outcome: str) -> None:
        if isinstance(data, RegisterClient):
            self.history.append((index, index, 0, outcome))
        else:
            self.history.append((index, data.client_id, getattr(data, "sequence", 0), outcome))

    def validate(self, entry: Entry) -> None:
        """Validate a session command's command with ``inner``; pass other entries on."""
        payload = entry.payload
        data = payload.data if isinstance(payload, EntryNormal) else None
        if isinstance(data, SessionCommand):
            self.inner.validate(Entry(entry.term, entry.index, EntryNormal(data.command)))
        elif not isinstance(data, SESSION_TYPES):
            self.inner.validate(entry)

    def query(self, query: Any) -> Any:
        """``inner``'s answer to a read-only query (sessions are for writes)."""
        method = getattr(self.inner, "query", None)
        if not callable(method):
            raise TypeError(f"{type(self.inner).__name__} has no query(): read through the log")
        return method(query)

    def snapshot(self) -> Callable[[], bytes]:
        """Capture ``inner`` and the table now; serialize both later."""
        build_inner = self.inner.snapshot()
        table = self.sessions.capture()
        applied = list(self.applied) if self.keep_history else None
        history = list(self.history) if self.keep_history else None

        def build() -> bytes:
            doc = {
                "inner": build_inner(),
                "sessions": table,
                "applied": applied,
                "history": history,
            }
            return encode(doc, Any)

        return build

    def restore(self, data: bytes) -> None:
        """Replace ``inner``'s state and the table with a snapshot's.

        Raises:
            DecodeError: ``data`` is not a snapshot of a session state machine.
        """
        doc: Any = decode(data, Any)
        if type(doc) is not dict or type(doc.get("inner")) is not bytes:
            raise DecodeError("not a SessionStateMachine snapshot: no 'inner' snapshot")
        self.inner.restore(doc["inner"])
        self.sessions.load(doc.get("sessions"))
        if self.keep_history:
            self.applied = [(index, data) for index, data in doc.get("applied") or ()]
            self.history = [
                (int(index), int(client), int(sequence), str(outcome))
                for index, client, sequence, outcome in doc.get("history") or ()
            ]

    def dump(self) -> dict[str, Any]:
        """``{"state": inner's comparable data, "sessions": the table}`` (for
        :class:`~pykka_raft.storage.DumpStorage`)."""
        dump = getattr(self.inner, "dump", None)
        state = dump() if callable(dump) else copy.deepcopy(getattr(self.inner, "data", None))
        return {"state": state, "sessions": self.sessions.dump()}


def _refusal(error: BaseException) -> str:
    if isinstance(error, StaleSequence):
        return "stale"
    if isinstance(error, SessionExpired):
        return "expired"
    return "rejected"
