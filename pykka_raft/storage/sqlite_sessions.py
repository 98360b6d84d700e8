"""Client sessions in the store's SQLite database: the
:class:`~pykka_raft.sessions.SessionBackend` of
:class:`~pykka_raft.storage.sqlite_kv.SqliteKeyValueStateMachine`, written in the same
transactions as the commands."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from pykka_raft.codec import decode, encode
from pykka_raft.sessions import Session

SESSION_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (client_id INTEGER PRIMARY KEY, "
    "sequence INTEGER NOT NULL, response BLOB NOT NULL, last_active REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_by_activity ON sessions (last_active)",
    "CREATE TABLE IF NOT EXISTS session_clock (id INTEGER PRIMARY KEY CHECK (id = 0), "
    "clock REAL NOT NULL)",
)
"""The tables of :class:`SqliteSessions` (created by the machine's :meth:`schema`)."""

SESSION_ROWS = (
    "SELECT client_id, sequence, response, last_active FROM sessions "
    "ORDER BY last_active, client_id"
)


class SqliteSessions:
    """A :class:`~pykka_raft.sessions.SessionBackend` on the store's connection: rows in
    ``sessions`` (responses encoded with the codec), the clock in ``session_clock``.
    Expiry is one ``DELETE`` on the index of ``last_active``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def clock(self) -> float:
        row = self.db.execute("SELECT clock FROM session_clock WHERE id = 0").fetchone()
        return float(row[0]) if row else 0.0

    def set_clock(self, clock: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO session_clock VALUES (0, ?)", (clock,))

    def position(self, client_id: int) -> tuple[int, float] | None:
        row = self.db.execute(
            "SELECT sequence, last_active FROM sessions WHERE client_id = ?", (client_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def response(self, client_id: int) -> Any:
        row = self.db.execute(
            "SELECT response FROM sessions WHERE client_id = ?", (client_id,)
        ).fetchone()
        return decode(row[0], Any, wrapped=True)

    def put(self, client_id: int, session: Session) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
            (
                client_id,
                session.sequence,
                encode(session.response, Any, wrapped=True),
                session.last_active,
            ),
        )

    def touch(self, client_id: int, last_active: float) -> None:
        self.db.execute(
            "UPDATE sessions SET last_active = ? WHERE client_id = ?", (last_active, client_id)
        )

    def remove(self, client_id: int) -> None:
        self.db.execute("DELETE FROM sessions WHERE client_id = ?", (client_id,))

    def expire(self, before: float) -> None:
        self.db.execute("DELETE FROM sessions WHERE last_active < ?", (before,))

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0])

    def oldest(self) -> int:
        row = self.db.execute(
            "SELECT client_id FROM sessions ORDER BY last_active, client_id LIMIT 1"
        ).fetchone()
        return int(row[0])

    def rows(self) -> Iterator[tuple[int, Session]]:
        rows = self.db.execute(SESSION_ROWS).fetchall()
        return iter(
            [
                (cid, Session(seq, decode(r, Any, wrapped=True), active))
                for cid, seq, r, active in rows
            ]
        )

    def replace(self, clock: float, rows: list[tuple[int, Session]]) -> None:
        self.db.execute("DELETE FROM sessions")
        self.set_clock(clock)
        for client_id, session in rows:
            self.put(client_id, session)
