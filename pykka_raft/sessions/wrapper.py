"""``SessionStateMachine``: client sessions in front of any state machine.

``KeyValueStateMachine`` and ``SqliteKeyValueStateMachine`` hold a
:class:`~pykka_raft.sessions.table.SessionTable` themselves; this wrapper gives one to
any other :class:`~pykka_raft.statemachine.StateMachine`, without that machine knowing:
session entries are answered here, everything else passes through. It is kept apart
from the table because it adds what only a wrapper needs: passing entries on, snapshots
that hold the inner machine's snapshot next to the table, and the test history.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pykka_raft.codec import decode, encode
from pykka_raft.errors import ApplicationError, DecodeError
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.sessions.entries import SESSION_TYPES, RegisterClient, SessionCommand
from pykka_raft.sessions.errors import SessionExpired, StaleSequence
from pykka_raft.sessions.table import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TIMEOUT, SessionTable

if TYPE_CHECKING:
    from pykka_raft.statemachine import StateMachine

__all__ = ["SessionStateMachine"]


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
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.inner = inner
        self.sessions = SessionTable(timeout, max_sessions=max_sessions)
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
            return encode(doc, Any, wrapped=True)

        return build

    def restore(self, data: bytes) -> None:
        """Replace ``inner``'s state and the table with a snapshot's.

        Raises:
            DecodeError: ``data`` is not a snapshot of a session state machine.
        """
        doc: Any = decode(data, Any, wrapped=True)
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
