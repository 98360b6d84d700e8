"""SqliteStore under faults a review found: a failure in the middle of switching snapshots
or of taking the directory's lock, a store stopped while it builds a snapshot, an install
that claims a log the store does not hold, tables gone from the database, a database of
another schema, and what "os" mode fsyncs when a directory is created."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from pykka_raft import (
    CreateSnapshot,
    GetInitialState,
    InstallSnapshot,
    MembershipConfig,
    ReadSnapshotChunk,
    ReplicateToLog,
    SqliteStore,
    StorageError,
    WriteSnapshotChunk,
)
from pykka_raft.calls import Call, FutureReply
from pykka_raft.statemachine import Get
from pykka_raft.storage import ApplyToStateMachine, files, sqlite_open, sqlite_snapshots, sqlite_txn
from pykka_raft.storage.messages import QueryStateMachine
from pykka_raft.storage.sqlite import DATABASE
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine
from pykka_raft.testing.conformance import puts
from pykka_raft.types import LogId

ONE = MembershipConfig((1,))


@pytest.fixture(autouse=True)
def stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def filled(directory: Path, count: int = 20, applied: int | None = None) -> Any:
    store = SqliteStore.start(directory, 1)
    entries = puts(1, 1, count)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries[: applied or count]))
    return store


def test_a_snapshot_switch_that_cannot_open_the_new_file_leaves_no_stale_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = filled(tmp_path / "n1", applied=10)
    store.ask(CreateSnapshot(LogId(1, 5), ONE))
    real_open = os.open

    def no_descriptors_left(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith(".snap"):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args)

    monkeypatch.setattr(sqlite_snapshots.os, "open", no_descriptors_left)
    with pytest.raises(StorageError, match="Too many open files"):
        store.ask(CreateSnapshot(LogId(1, 10), ONE))
    monkeypatch.setattr(sqlite_snapshots.os, "open", real_open)
    with tempfile.TemporaryFile() as bystander:  # takes the lowest free descriptor
        store.stop()
        bystander.write(b"still mine")  # EBADF if the store closed its descriptor again
        bystander.seek(0)
        assert bystander.read() == b"still mine"


def test_a_failed_open_releases_the_directory_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "pwrite", disk_full)
    with pytest.raises(StorageError, match="No space left on device"):
        SqliteStore.start(tmp_path / "n1", 1)
    monkeypatch.undo()
    SqliteStore.start(tmp_path / "n1", 1).stop()  # not "in use: another process holds..."


def test_a_snapshot_being_built_when_the_store_stops_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing = threading.Event()
    real_write = files.SnapshotWriter.write

    def slow_write(self: Any, data: bytes) -> Any:
        writing.set()
        self._cancelled.wait(10)  # until the store stops
        return real_write(self, data)

    monkeypatch.setattr(files.SnapshotWriter, "write", slow_write)
    store = filled(tmp_path / "n1")
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    store.tell(Call(CreateSnapshot(LogId(1, 20), ONE), FutureReply(future)))
    assert writing.wait(10), "the build did not start"
    store.stop()
    with pytest.raises(StorageError):
        future.get(timeout=10)


def test_an_install_that_claims_a_log_the_store_lacks_drops_the_log(tmp_path: Path) -> None:
    source = filled(tmp_path / "a", applied=20)
    members = MembershipConfig((1, 2))
    meta = source.ask(CreateSnapshot(LogId(1, 20), members))
    data = source.ask(ReadSnapshotChunk(meta.snapshot_id, 0, meta.size))
    target = SqliteStore.start(tmp_path / "b", 2)
    target.ask(ReplicateToLog(puts(1, 1, 5)))  # the log ends at 5, the snapshot at 20
    target.ask(WriteSnapshotChunk(meta, 0, data))
    target.ask(InstallSnapshot(meta, True))
    assert target.ask(GetInitialState()).last_log_id == LogId(1, 20)
    target.stop()
    reopened = SqliteStore.start(tmp_path / "b", 2)
    assert reopened.ask(GetInitialState()).last_log_id == LogId(1, 20)


def drop_table(directory: Path, table: str) -> None:
    """Damage a stopped store's database the way ``quick_check`` cannot see."""
    with contextlib.closing(sqlite3.connect(directory / DATABASE)) as db:
        db.execute(f"DROP TABLE {table}")
        db.commit()


def test_a_state_machine_table_gone_from_the_database_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", count=10).stop()
    drop_table(tmp_path / "n1", "kv")
    with pytest.raises(StorageError, match=r"the state machine's tables are missing: kv"):
        SqliteStore.start(tmp_path / "n1", 1)


def test_a_database_of_another_schema_is_reported_as_damaged_data(tmp_path: Path) -> None:
    filled(tmp_path / "n1", count=3).stop()
    drop_table(tmp_path / "n1", "log")
    with pytest.raises(StorageError, match=r"raft\.sqlite3: unexpected schema \(no such table"):
        SqliteStore.start(tmp_path / "n1", 1)


def test_creating_a_directory_in_os_mode_fsyncs_it_before_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker file says the directory holds a node's data: it is fsynced, so the
    database it vouches for must be too, or a power cut right after a first start leaves a
    marker over an empty database, which is then refused as damaged."""
    events: list[str] = []
    real_commit = sqlite_txn.SqliteTransactions._commit_transaction
    real_marker = sqlite_open.write_atomically

    def commit(self: Any) -> None:
        events.append(f"commit {self._txn}")
        real_commit(self)

    def marker(path: Path, data: bytes) -> None:
        events.append("marker")
        real_marker(path, data)

    monkeypatch.setattr(sqlite_txn.SqliteTransactions, "_commit_transaction", commit)
    monkeypatch.setattr(sqlite_open, "write_atomically", marker)
    SqliteStore.start(tmp_path / "n1", 1, durability="os").stop()
    assert events[: events.index("marker")] == ["commit FULL"]


class _FailingReads(SqliteKeyValueStateMachine):
    """Its reads hit a database error (as a failing disk gives)."""

    def attach(self, db: sqlite3.Connection) -> None:
        super().attach(db)
        self.db = _ReadsFail(db)  # type: ignore[assignment]


class _ReadsFail:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("SELECT") and "FROM kv" in sql:
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)


@pytest.mark.parametrize("count", [1, 2])
def test_a_database_error_in_a_read_is_the_readers_alone(tmp_path: Path, count: int) -> None:
    """A lone read (LEASE) and a batch answer the same: each reader gets the error, and
    the store goes on (a read changes nothing; a failing disk fails the next write)."""
    store = SqliteStore.start(tmp_path / "n1", 1, state_machine=_FailingReads())
    answers = store.ask(QueryStateMachine(tuple(Get(f"k{i}") for i in range(count))))
    assert [str(a) for a in answers] == ["disk I/O error"] * count
    assert store.ask(GetInitialState()).last_log_id == LogId(0, 0)


def _read_in_chunks(store: Any, meta: Any, chunk: int = 16) -> bytes:
    data = b""
    while len(data) < meta.size:
        data += store.ask(ReadSnapshotChunk(meta.snapshot_id, len(data), chunk))
    return data


def test_a_snapshot_file_damaged_after_open_is_never_sent_whole(tmp_path: Path) -> None:
    """The file was checked at open; chunks read in order are hashed, and the last one is
    refused if the whole does not match the recorded checksum (a receiver would install
    what the damage left, or fail to restore it)."""
    store = filled(tmp_path / "n1", applied=20)
    meta = store.ask(CreateSnapshot(LogId(1, 20), ONE))
    good = _read_in_chunks(store, meta)
    assert len(good) == meta.size > 3 * 16
    assert _read_in_chunks(store, meta) == good  # a second transfer, checked again
    (snap,) = (tmp_path / "n1" / sqlite_txn.SNAPSHOTS).iterdir()
    with open(snap, "r+b") as file:  # one byte flipped in the middle, size unchanged
        file.seek(meta.size // 2)
        file.write(bytes([good[meta.size // 2] ^ 0xFF]))
    assert store.ask(ReadSnapshotChunk(meta.snapshot_id, 0, 16)) == good[:16]
    with pytest.raises(StorageError, match="does not match its checksum") as refused:
        _read_in_chunks(store, meta)
    assert str(snap) in str(refused.value) and "Restore the directory" in str(refused.value)


def _sync_and_commits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the snapshot directory's syncs and the commits, in order."""
    events: list[str] = []
    real_sync = sqlite_snapshots.sync_dir
    real_commit = sqlite_txn.SqliteTransactions._commit_transaction

    def sync(path: Any) -> None:
        events.append(f"sync {Path(path).name}")
        real_sync(path)

    def commit(self: Any) -> None:
        if self._txn is not None:
            events.append(f"commit {self._txn}")
        real_commit(self)

    monkeypatch.setattr(sqlite_snapshots, "sync_dir", sync)
    monkeypatch.setattr(sqlite_txn.SqliteTransactions, "_commit_transaction", commit)
    return events


def test_an_install_fsyncs_the_snapshot_directory_before_the_switch_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The received file is renamed into the snapshot directory, then the database is
    switched to name it: the rename must be durable first, or a power cut right after the
    commit leaves a database naming a snapshot file that is not there."""
    source = filled(tmp_path / "a", count=10)
    meta = source.ask(CreateSnapshot(LogId(1, 10), ONE))
    data = source.ask(ReadSnapshotChunk(meta.snapshot_id, 0, meta.size))
    target = SqliteStore.start(tmp_path / "b", 2)
    target.ask(WriteSnapshotChunk(meta, 0, data))
    events = _sync_and_commits(monkeypatch)
    target.ask(InstallSnapshot(meta))
    assert events[: events.index("commit FULL")] == [f"sync {sqlite_txn.SNAPSHOTS}"]


@pytest.mark.parametrize("durability", ["fsync", "os"])
def test_a_built_snapshot_fsyncs_the_directory_before_the_switch_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    """The same for a snapshot the store builds (the switch drops the log it covers)."""
    store = SqliteStore.start(tmp_path / "n1", 1, durability=durability)
    entries = puts(1, 1, 10)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries))
    events = _sync_and_commits(monkeypatch)
    store.ask(CreateSnapshot(LogId(1, 10), ONE))
    assert events[: events.index("commit FULL")] == [f"sync {sqlite_txn.SNAPSHOTS}"]
