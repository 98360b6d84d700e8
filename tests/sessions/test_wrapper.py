"""SessionStateMachine around a state machine of its own: refusals, history, snapshots,
and what passes through untouched; and the session table in the key-value machines'
snapshots."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from pykka_raft import (
    ApplicationError,
    DecodeError,
    Entry,
    EntryBlank,
    EntryNormal,
    Put,
)
from pykka_raft.codec import MAX_DEPTH, check_app_value, decode, encode
from pykka_raft.errors import StorageError
from pykka_raft.sessions import (
    CloseSession,
    CommandRejected,
    RegisterClient,
    Rejected,
    Session,
    SessionCommand,
    SessionExpired,
    SessionStateMachine,
)
from pykka_raft.statemachine import CasResult, CompareAndSet, Get, KeyValueStateMachine
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine


class Tally:
    """Counts ``("add", key)``; refuses ``("add-if-even", key)`` while the count is odd."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.calls = 0

    def apply(self, entry: Entry) -> Any:
        payload = entry.payload
        if not isinstance(payload, EntryNormal):
            return None
        self.calls += 1
        kind, key = payload.data
        count = self.data.get(key, 0)
        if kind == "add-if-even" and count % 2:
            raise ApplicationError(ValueError(f"{key} is odd"))
        self.data[key] = count + 1
        return count + 1

    def validate(self, entry: Entry) -> None:
        payload = entry.payload
        if isinstance(payload, EntryNormal) and not isinstance(payload.data, tuple):
            raise TypeError("a tuple, please")

    def snapshot(self) -> Callable[[], bytes]:
        copy = dict(self.data)
        return lambda: encode(copy, Any)

    def restore(self, data: bytes) -> None:
        self.data = decode(data, Any)


class Feed:
    def __init__(self, machine: Any) -> None:
        self.machine = machine
        self.index = 0

    def __call__(self, data: Any) -> Any:
        self.index += 1
        return self.machine.apply(Entry(1, self.index, EntryNormal(data)))


def test_a_refused_write_is_remembered_so_a_resend_is_never_applied_later() -> None:
    inner = Tally()
    machine = SessionStateMachine(inner, keep_history=True)
    feed = Feed(machine)
    client = feed(RegisterClient(1.0))
    feed(("add", "x"))  # x is odd now
    refused = SessionCommand(client, 1, ("add-if-even", "x"), 2.0)
    with pytest.raises(ApplicationError) as first:
        feed(refused)
    assert isinstance(first.value.error, ValueError)  # the machine's own error, first time
    feed(("add", "x"))  # x is even now: applied afresh, the resend would succeed
    calls = inner.calls
    with pytest.raises(ApplicationError) as again:
        feed(refused)
    error = again.value.error
    assert isinstance(error, CommandRejected)
    assert (error.kind, error.message) == ("ValueError", "x is odd")
    assert inner.calls == calls  # not even tried
    assert inner.data == {"x": 2}
    assert machine.sessions.get(client) == Session(1, Rejected("ValueError", "x is odd"), 2.0)
    assert [row[3] for row in machine.history] == ["register", "rejected", "rejected"]


def test_the_history_records_what_each_session_entry_did() -> None:
    machine = SessionStateMachine(Tally(), timeout=10.0, keep_history=True)
    feed = Feed(machine)
    client = feed(RegisterClient(0.0))  # index 1
    feed(SessionCommand(client, 1, ("add", "a"), 1.0))  # 2
    feed(SessionCommand(client, 1, ("add", "a"), 2.0))  # 3: a resend
    feed(SessionCommand(client, 2, ("add", "a"), 3.0))  # 4
    for data in (SessionCommand(client, 1, ("add", "a")), SessionCommand(7, 1, ("add", "a"))):
        with pytest.raises(ApplicationError):
            feed(data)  # 5 stale, 6 unknown client
    feed(CloseSession(client, 4.0))  # 7
    assert machine.history == [
        (1, 1, 0, "register"),
        (2, 1, 1, "applied"),
        (3, 1, 1, "duplicate"),
        (4, 1, 2, "applied"),
        (5, 1, 1, "stale"),
        (6, 7, 1, "expired"),
        (7, 1, 0, "close"),
    ]
    assert machine.inner.data == {"a": 2}


def test_other_entries_go_to_the_inner_machine_untouched() -> None:
    inner = Tally()
    machine = SessionStateMachine(inner)
    assert machine.apply(Entry(1, 1, EntryBlank())) is None
    assert machine.apply(Entry(1, 2, EntryNormal(("add", "y")))) == 1
    machine.validate(Entry(1, 3, EntryNormal(("add", "y"))))
    with pytest.raises(TypeError, match="a tuple"):
        machine.validate(Entry(1, 3, EntryNormal("no")))
    with pytest.raises(TypeError, match="a tuple"):  # the command inside, checked the same
        machine.validate(Entry(1, 3, EntryNormal(SessionCommand(1, 1, "no"))))
    machine.validate(Entry(1, 3, EntryNormal(RegisterClient())))
    assert machine.sessions.dump() == {}


def test_queries_go_to_the_inner_machine() -> None:
    kv = KeyValueStateMachine()
    machine = SessionStateMachine(kv)
    machine.apply(Entry(1, 1, EntryNormal(Put("k", "v"))))
    assert machine.query(Get("k")) == "v"
    with pytest.raises(TypeError, match="has no query"):
        SessionStateMachine(Tally()).query(("add", "x"))


def test_a_snapshot_carries_the_inner_state_the_table_and_the_history() -> None:
    machine = SessionStateMachine(Tally(), timeout=50.0, keep_history=True)
    feed = Feed(machine)
    client = feed(RegisterClient(10.0))
    feed(SessionCommand(client, 1, ("add", "a"), 11.0))
    build = machine.snapshot()
    feed(SessionCommand(client, 2, ("add", "a"), 12.0))  # after the capture
    data = build()

    restored = SessionStateMachine(Tally(), timeout=50.0, keep_history=True)
    restored.restore(data)
    assert restored.inner.data == {"a": 1}
    assert restored.sessions.clock == 11.0
    assert restored.sessions.dump() == {client: Session(1, 1, 11.0)}
    assert restored.history == [(1, 1, 0, "register"), (2, 1, 1, "applied")]
    assert restored.applied == [
        (1, RegisterClient(10.0)),
        (2, SessionCommand(client, 1, ("add", "a"), 11.0)),
    ]
    # The restored table answers a resend from its cache, like the original would have.
    again = Feed(restored)
    again.index = 2
    assert again(SessionCommand(client, 1, ("add", "a"), 12.0)) == 1
    assert restored.inner.data == {"a": 1}
    assert restored.dump() == {
        "state": {"a": 1},
        "sessions": {client: Session(1, 1, 12.0)},
    }


def test_a_snapshot_of_something_else_is_refused() -> None:
    with pytest.raises(DecodeError, match="not a SessionStateMachine snapshot"):
        SessionStateMachine(Tally()).restore(encode({"data": {}}, Any))


# --- the key-value machines ----------------------------------------------------------------


def _with_sessions(machine: Any) -> tuple[int, Feed]:
    feed = Feed(machine)
    client = feed(RegisterClient(5.0))
    feed(SessionCommand(client, 1, Put("k", b"v"), 6.0))
    return client, feed


def test_the_in_memory_key_value_snapshot_carries_the_sessions() -> None:
    machine = KeyValueStateMachine()
    client, _ = _with_sessions(machine)
    restored = KeyValueStateMachine()
    restored.restore(machine.snapshot()())
    assert restored.data == {"k": b"v"}
    assert restored.sessions.dump() == {client: Session(1, None, 6.0)}
    assert restored.sessions.clock == 6.0
    # A snapshot written before sessions existed restores with none.
    restored.restore(encode({"data": {"a": 1}, "applied": None}, Any))
    assert (restored.data, restored.sessions.dump(), restored.sessions.clock) == (
        {"a": 1},
        {},
        0.0,
    )


def _attached(timeout: float = 3600.0) -> SqliteKeyValueStateMachine:
    machine = SqliteKeyValueStateMachine(session_timeout=timeout)
    machine.attach(sqlite3.connect(":memory:", isolation_level=None))
    return machine


def test_the_durable_key_value_snapshot_carries_the_sessions(tmp_path: Any) -> None:
    path = str(tmp_path / "kv.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # as in SqliteStore: a capture reads beside writes
    machine = SqliteKeyValueStateMachine()
    machine.attach(db)
    client, feed = _with_sessions(machine)
    other = feed(RegisterClient(7.0))
    sink = machine.capture(path)
    feed(SessionCommand(client, 2, Put("k", "after"), 8.0))  # after the capture
    out = io.BytesIO()
    sink(out)

    restored = _attached()
    restored.restore_from(io.BytesIO(out.getvalue()))
    assert restored.dump() == {"k": b"v"}
    assert restored.sessions.dump() == {client: Session(1, None, 6.0), other: Session(0, None, 7.0)}
    assert restored.sessions.clock == 7.0
    # The restored rows are rows like any other: a resend is answered from them.
    again = Feed(restored)
    again.index = 10
    assert again(SessionCommand(client, 1, Put("k", b"v"), 9.0)) is None


def test_a_durable_version_1_snapshot_restores_with_no_sessions() -> None:
    machine = _attached()
    _with_sessions(machine)
    old = b"pykka_raft kv snapshot 1\n" + b"s\x00\x00\x00\x01as\x00\x00\x00\x01b"
    machine.restore_from(io.BytesIO(old))
    assert machine.dump() == {"a": "b"}
    assert (machine.sessions.dump(), machine.sessions.clock) == ({}, 0.0)
    with pytest.raises(ApplicationError) as caught:
        Feed(machine)(SessionCommand(2, 2, Put("k", 1)))
    assert isinstance(caught.value.error, SessionExpired)


def test_a_durable_snapshot_with_damaged_sessions_is_refused() -> None:
    damaged = b"pykka_raft kv snapshot 2\n" + b"e\x00\x00\x00\x03" + b"1.5" + b"\x00\x00"
    with pytest.raises(StorageError, match="damaged sessions"):
        _attached().restore_from(io.BytesIO(damaged))


def _deepest_put() -> tuple[Any, Put]:
    """The deepest value a client may write, and its Put (the leader's check accepts it)."""
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    put = Put("k", deep)
    check_app_value(put)
    return deep, put


def test_the_deepest_value_survives_the_snapshots_and_the_session_cache(tmp_path: Any) -> None:
    """The snapshots nest values and cached answers a few levels down: those levels do not
    count against the depth a client may write (a CompareAndSet's answer wraps the value
    once more), so neither capture nor restore refuses what the log took."""
    deep, put = _deepest_put()
    durable = SqliteKeyValueStateMachine()
    durable.attach(sqlite3.connect(str(tmp_path / "kv.sqlite"), isolation_level=None))
    for machine in (KeyValueStateMachine(keep_history=True), durable):
        feed = Feed(machine)
        client = feed(RegisterClient(5.0))
        feed(SessionCommand(client, 1, put, 6.0))
        answer = feed(SessionCommand(client, 2, CompareAndSet("k", "other", "new"), 7.0))
        assert answer == CasResult(False, deep)
        if isinstance(machine, KeyValueStateMachine):
            restored: Any = KeyValueStateMachine(keep_history=True)
            restored.restore(machine.snapshot()())
            assert restored.data == {"k": deep} and restored.applied == machine.applied
        else:
            out = io.BytesIO()
            machine.capture(str(tmp_path / "kv.sqlite"))(out)
            restored = _attached()
            restored.restore_from(io.BytesIO(out.getvalue()))
            assert restored.dump() == {"k": deep}
        assert restored.sessions.dump()[client] == Session(2, CasResult(False, deep), 7.0)
