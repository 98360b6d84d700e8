"""State machines that live in a :class:`~pykka_raft.storage.sqlite.SqliteStore`'s database.

Their writes run inside the store's transactions, so an entry's effects and the store's
``last_applied`` commit together: after a crash the database holds either both or neither,
a restart replays nothing, and no entry is ever applied twice.
"""

from __future__ import annotations

import abc
import sqlite3
import struct
from collections.abc import Callable, Iterator
from typing import IO, Any

from pykka_raft.codec import decode, encode
from pykka_raft.errors import StorageError
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TIMEOUT,
    SESSION_TYPES,
    SessionTable,
)
from pykka_raft.statemachine import (
    CasResult,
    CompareAndSet,
    Delete,
    Get,
    InvalidCommand,
    Put,
    check_kv_entry,
    same_value,
)
from pykka_raft.storage.sqlite_sessions import SESSION_ROWS, SESSION_SCHEMA, SqliteSessions

SnapshotSink = Callable[[IO[bytes]], None]
"""Streams a captured state into a binary file (runs on a background thread)."""


class SqliteStateMachine(abc.ABC):
    """Base of state machines whose state is tables in the store's database.

    :class:`~pykka_raft.storage.sqlite.SqliteStore` calls :meth:`attach` once with its
    connection, then ``apply`` inside its own transaction (one savepoint per entry, rolled
    back if the entry raises), and handles snapshots through :meth:`capture` and
    :meth:`restore_from`, which stream rows so a snapshot is never whole in memory.
    """

    db: sqlite3.Connection

    def attach(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (the store's connection) and create the tables if missing."""
        self.db = db
        for statement in self.schema():
            db.execute(statement)

    @abc.abstractmethod
    def schema(self) -> tuple[str, ...]:
        """``CREATE TABLE IF NOT EXISTS`` statements for this machine's tables."""

    @abc.abstractmethod
    def apply(self, entry: Entry) -> Any:
        """Apply one committed entry with SQL on :attr:`db`; return its response.

        Raise :class:`~pykka_raft.errors.ApplicationError` to refuse the entry: the store
        rolls back whatever this call wrote.
        """

    def validate(self, entry: Entry) -> None:  # noqa: B027 (optional hook)
        """Raise to refuse a client entry on the leader (default: accept)."""

    @abc.abstractmethod
    def capture(self, path: str) -> SnapshotSink:
        """Pin the current state (on the storage thread) and return a function that
        writes it to a file later, on a background thread, while ``apply`` goes on.

        ``path`` is the database file: open a second connection on it and start a read
        transaction now; in WAL mode it keeps seeing this state until it ends.
        """

    @abc.abstractmethod
    def restore_from(self, source: IO[bytes]) -> None:
        """Replace the whole state with the snapshot read from ``source`` (inside the
        store's transaction)."""

    @abc.abstractmethod
    def dump(self) -> Any:
        """The state as plain comparable data (for :class:`DumpStorage`)."""

    def snapshot(self) -> Callable[[], bytes]:
        """Not used: :class:`SqliteStore` streams snapshots with :meth:`capture`."""
        raise TypeError(f"{type(self).__name__} snapshots only inside a SqliteStore")

    def restore(self, data: bytes) -> None:
        """Not used: :class:`SqliteStore` restores with :meth:`restore_from`."""
        raise TypeError(f"{type(self).__name__} restores only inside a SqliteStore")


QUERY_CHUNK = 500
"""Distinct keys per ``SELECT`` of :meth:`SqliteKeyValueStateMachine.query_many` (SQLite
allows at least 999 parameters per statement)."""


def _read_key(query: Any) -> str | bytes | InvalidCommand:
    """A query's stored key, or the refusal of a query that is not a :class:`Get`."""
    if not isinstance(query, Get):
        return InvalidCommand(f"a read query must be a Get, got {type(query).__name__}")
    return _stored(query.key)


_MAGIC_V1 = b"pykka_raft kv snapshot 1\n"
_MAGIC = b"pykka_raft kv snapshot 2\n"
_LENGTH = struct.Struct(">I")
_TEXT, _ENCODED = b"s", b"e"


def _stored(value: Any) -> str | bytes:
    """How a key or value is stored: a string as TEXT, anything else encoded (a BLOB).

    SQLite keeps the two storage classes apart (a TEXT never equals a BLOB), so the
    shortcut for strings cannot make two different keys equal.
    """
    return value if type(value) is str else encode(value, Any)


def _loaded(stored: str | bytes) -> Any:
    return stored if isinstance(stored, str) else decode(stored, Any)


class SqliteKeyValueStateMachine(SqliteStateMachine):
    """The key-value state machine, durable: a table ``kv(key, value)`` in the store.

    It answers the commands of :class:`~pykka_raft.statemachine.KeyValueStateMachine`
    (``Put``, ``Get``, ``Delete``, ``CompareAndSet``) with the same responses. Strings are
    stored as SQLite text; every other key or value is stored with
    :func:`pykka_raft.codec.encode`, so it comes back as an equal value of the same type.
    Keys are compared by what is stored (use strings, as ``Put.key`` says). :meth:`dump`
    returns the dict ``KeyValueStateMachine.data`` would hold. It keeps no history of
    applied entries. Its ``apply`` refuses only session entries that the session rules
    refuse, before writing anything (a subclass may refuse more: the store then undoes
    the refused entry's writes with a savepoint).

    Client sessions are built in, as in ``KeyValueStateMachine``: :attr:`sessions` keeps
    its rows in the table ``sessions`` and the log's clock in ``session_clock``, written in
    the same transaction as the commands, so a write and its session row commit together.
    ``session_timeout`` and ``max_sessions`` must be the same on every node.

    Snapshot format: the line ``pykka_raft kv snapshot 2``; the session clock, then the
    number of sessions as a 4-byte big-endian integer and, for each session, two records:
    ``[client_id, sequence, last_active]`` and its response, both encoded; then for each
    key in key order its key and its value. A record is one byte (``s``: UTF-8 text, ``e``:
    encoded with the codec), the length of the data as a 4-byte big-endian integer, and
    the data. A version 1 snapshot (no sessions) restores with an empty session table.
    """

    def __init__(
        self,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.sessions = SessionTable(session_timeout, max_sessions=max_sessions)  # until attached

    def attach(self, db: sqlite3.Connection) -> None:
        """Use ``db``, create the tables if missing, keep the sessions there."""
        super().attach(db)
        table = self.sessions
        self.sessions = SessionTable(table.timeout, SqliteSessions(db), table.max_sessions)

    def schema(self) -> tuple[str, ...]:
        """The key-value table, keyed by the stored key, and the session tables."""
        return (
            "CREATE TABLE IF NOT EXISTS kv (key PRIMARY KEY, value NOT NULL)",
            *SESSION_SCHEMA,
        )

    def validate(self, entry: Entry) -> None:
        """Refuse client entries that are not key-value commands (or sessions of them)."""
        payload = entry.payload
        if isinstance(payload, EntryNormal):
            check_kv_entry(payload.data)

    def _get(self, key: str | bytes) -> Any:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else _loaded(row[0])

    def query(self, query: Any) -> Any:
        """Answer a :class:`Get` (the value, or ``None``) without the log."""
        key = _read_key(query)
        if isinstance(key, Exception):
            raise key
        return self._get(key)

    def query_many(self, queries: tuple[Any, ...]) -> list[Any]:
        """The answers :meth:`query` gives, one per query, in order (a refused query
        answers its exception), with one ``SELECT`` per :data:`QUERY_CHUNK` distinct keys
        instead of one per query."""
        keys = [_read_key(query) for query in queries]
        distinct = [key for key in dict.fromkeys(keys) if not isinstance(key, Exception)]
        if len(keys) == 1 and distinct:  # a lone read (LEASE): the plain lookup is cheaper
            try:
                return [self._get(distinct[0])]
            except Exception as exc:  # as below: the reader's error, not the store's
                return [exc]
        found: dict[Any, Any] = {}
        try:
            for start in range(0, len(distinct), QUERY_CHUNK):
                chunk = distinct[start : start + QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(
                    self.db.execute(f"SELECT key, value FROM kv WHERE key IN ({marks})", chunk)
                )
        except Exception as exc:  # as query() would fail: each reader's error, not the store's
            return [key if isinstance(key, Exception) else exc for key in keys]
        # Each reader decodes its own answer, as with query(): no two share an object.
        return [
            key if isinstance(key, Exception) else _loaded(found[key]) if key in found else None
            for key in keys
        ]

    def apply(self, entry: Entry) -> Any:
        """Apply one entry (blank and configuration entries respond ``None``)."""
        payload = entry.payload
        if not isinstance(payload, EntryNormal):
            return None
        command = payload.data
        if isinstance(command, SESSION_TYPES):
            # The session rules refuse before anything is written: no savepoint needed.
            return self.sessions.apply(entry.index, command, self._run)
        return self._run(command)

    def _run(self, command: Any) -> Any:
        if isinstance(command, Put):
            key = _stored(command.key)
            previous = self._get(key)
            self.db.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, _stored(command.value))
            )
            return previous
        if isinstance(command, Get):
            return self._get(_stored(command.key))
        if isinstance(command, Delete):
            key = _stored(command.key)
            previous = self._get(key)
            if previous is not None:
                self.db.execute("DELETE FROM kv WHERE key = ?", (key,))
            return previous
        if isinstance(command, CompareAndSet):
            key = _stored(command.key)
            previous = self._get(key)
            if same_value(previous, command.expected):
                self.db.execute(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, _stored(command.new))
                )
                return CasResult(True, previous)
            return CasResult(False, previous)
        return None  # refused on the leader; never committed as a normal entry

    def capture(self, path: str) -> SnapshotSink:
        """Start a read transaction on a second connection; stream its rows later."""
        reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM kv").fetchone()  # the read snapshot starts
        except BaseException:
            reader.close()
            raise

        def write(out: IO[bytes]) -> None:
            try:
                out.write(_MAGIC)
                clock = reader.execute("SELECT clock FROM session_clock WHERE id = 0")
                row = clock.fetchone()
                out.write(_record(encode(row[0] if row else 0.0, Any)))
                (count,) = reader.execute("SELECT count(*) FROM sessions").fetchone()
                out.write(_LENGTH.pack(count))
                for cid, seq, response, active in reader.execute(SESSION_ROWS):
                    out.write(_record(encode([cid, seq, active], Any)) + _record(response))
                for key, value in reader.execute("SELECT key, value FROM kv ORDER BY key"):
                    out.write(_record(key) + _record(value))
            finally:
                reader.close()

        return write

    def restore_from(self, source: IO[bytes]) -> None:
        """Replace the tables' rows with the snapshot's, streamed."""
        header = source.read(len(_MAGIC))
        if header not in (_MAGIC, _MAGIC_V1):
            raise StorageError("not a pykka_raft key-value snapshot (bad header)")
        self.db.execute("DELETE FROM sessions")
        self.db.execute("DELETE FROM session_clock")
        if header == _MAGIC:
            _restore_sessions(self.db, source)
        self.db.execute("DELETE FROM kv")
        self.db.executemany("INSERT INTO kv VALUES (?, ?)", _records(source))

    def dump(self) -> dict[Any, Any]:
        """Every key and value, decoded."""
        rows = self.db.execute("SELECT key, value FROM kv ORDER BY key")
        return {_loaded(key): _loaded(value) for key, value in rows}


def _restore_sessions(db: sqlite3.Connection, source: IO[bytes]) -> None:
    """Read the session part of a version 2 snapshot into the (emptied) tables."""
    try:
        clock: Any = decode(_read_encoded(source), Any)
        head = source.read(_LENGTH.size)
        if len(head) != _LENGTH.size or type(clock) not in (int, float):
            raise ValueError("no session count")
        db.execute("INSERT INTO session_clock VALUES (0, ?)", (float(clock),))
        (count,) = _LENGTH.unpack(head)
        for _ in range(count):
            meta: Any = decode(_read_encoded(source), Any)
            cid, seq, active = meta
            response = _read_encoded(source)
            decode(
                response, Any, wrapped=True
            )  # refuse a damaged response now, not at its first resend
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (cid, seq, response, active))
    except (TypeError, ValueError) as exc:  # DecodeError is a ValueError
        raise StorageError(f"damaged sessions in a key-value snapshot: {exc}") from exc


def _read_encoded(source: IO[bytes]) -> bytes:
    data = _read(source, source.read(1))
    if not isinstance(data, bytes):
        raise ValueError("a text record where an encoded one belongs")
    return data


def _record(stored: str | bytes) -> bytes:
    if isinstance(stored, str):
        data = stored.encode()
        return _TEXT + _LENGTH.pack(len(data)) + data
    return _ENCODED + _LENGTH.pack(len(stored)) + stored


def _records(source: IO[bytes]) -> Iterator[tuple[str | bytes, str | bytes]]:
    """Yield ``(key, value)`` pairs from a snapshot stream after its header."""
    while True:
        kind = source.read(1)
        if not kind:
            return
        key = _read(source, kind)
        yield key, _read(source, source.read(1))


def _read(source: IO[bytes], kind: bytes) -> str | bytes:
    head = source.read(_LENGTH.size)
    if kind not in (_TEXT, _ENCODED) or len(head) != _LENGTH.size:
        raise StorageError("truncated or damaged key-value snapshot")
    (length,) = _LENGTH.unpack(head)
    data = source.read(length)
    if len(data) != length:
        raise StorageError("truncated key-value snapshot")
    return data.decode() if kind == _TEXT else data
