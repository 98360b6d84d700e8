"""SqliteStore beyond the conformance suite: the data directory, recovery checks, group
commit, durability modes, snapshot files, and I/O failures while running."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    ClientPayload,
    CloseSession,
    Config,
    CreateSnapshot,
    DumpStorage,
    Entry,
    EntryNormal,
    Get,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    KeyValueStateMachine,
    MembershipConfig,
    OutcomeUnknown,
    Put,
    ReadSnapshotChunk,
    RegisterClient,
    ReplicateToLog,
    ResponseMode,
    SessionCommand,
    SnapshotPolicy,
    SqliteKeyValueStateMachine,
    SqliteStore,
    State,
    StorageError,
    WriteSnapshotChunk,
)
from pykka_raft.calls import Call, FutureReply
from pykka_raft.codec import encode
from pykka_raft.sessions import MAX_SESSION_NUMBER
from pykka_raft.statemachine import InvalidCommand
from pykka_raft.storage import ApplyToStateMachine, SaveHardState
from pykka_raft.storage.messages import QueryStateMachine
from pykka_raft.storage.sqlite import DATABASE, MARKER, SNAPSHOTS
from pykka_raft.storage.sqlite_kv import QUERY_CHUNK
from pykka_raft.testing import Cluster
from pykka_raft.testing.conformance import puts
from pykka_raft.types import LogId

MEMBERS = MembershipConfig(members=(1,))
TIMEOUT = 10


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def start(path: Path, node_id: int = 1, **kwargs: Any) -> Any:
    return SqliteStore.start(path, node_id, **kwargs)


def filled(path: Path, last: int = 20, applied: int = 10, snapshot_at: int | None = None) -> None:
    """A directory with entries 1..last, applied through ``applied``, maybe compacted."""
    store = start(path)
    store.ask(SaveHardState(__import__("pykka_raft").HardState(2, 1, MEMBERS)))
    entries = puts(1, 1, last)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries[:applied]))
    if snapshot_at is not None:
        store.ask(CreateSnapshot(LogId(1, snapshot_at), MEMBERS))
    store.stop()


# --- the data directory ---------------------------------------------------------------


def test_a_new_directory_records_its_node(tmp_path: Path) -> None:
    store = start(tmp_path / "n1", 1)
    store.stop()
    assert sorted(os.listdir(tmp_path / "n1")) == sorted(["LOCK", DATABASE, SNAPSHOTS, MARKER])
    assert b'"node_id": 1' in (tmp_path / "n1" / MARKER).read_bytes()


def test_another_node_s_directory_is_refused(tmp_path: Path) -> None:
    start(tmp_path / "n1", 1).stop()
    with pytest.raises(StorageError, match=r"holds the data of node 1, not node 2"):
        start(tmp_path / "n1", 2)


def test_another_cluster_s_directory_is_refused(tmp_path: Path) -> None:
    start(tmp_path / "n1", 1, cluster_id="blue").stop()
    start(tmp_path / "n1", 1).stop()  # no id given: the recorded one is kept
    with pytest.raises(StorageError, match=r"belongs to cluster 'blue', not 'green'"):
        start(tmp_path / "n1", 1, cluster_id="green")


def test_a_directory_in_use_is_refused_in_the_same_process(tmp_path: Path) -> None:
    store = start(tmp_path / "n1")
    with pytest.raises(StorageError, match=rf"is in use: process {os.getpid()} holds the lock"):
        start(tmp_path / "n1")
    store.stop()
    start(tmp_path / "n1").stop()  # released with the store


def test_a_directory_in_use_by_another_process_is_refused_until_it_dies(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pykka_raft import SqliteStore
                SqliteStore.start({str(tmp_path / "n1")!r}, 1)
                print("open", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "open"
        with pytest.raises(StorageError, match=rf"process {child.pid} holds the lock"):
            start(tmp_path / "n1")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=TIMEOUT)
    start(tmp_path / "n1").stop()  # the kernel released the lock of the killed process


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        SqliteStore(tmp_path, 1, durability="sometimes")
    with pytest.raises(ValueError, match="node_id"):
        SqliteStore(tmp_path, -1)


def test_the_state_machine_kind_is_recorded(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    with pytest.raises(StorageError, match="state machine is 'durable:SqliteKeyValue"):
        start(tmp_path / "n1", state_machine=KeyValueStateMachine())


# --- recovery checks: bad state on disk refuses to start ---------------------------------


def _refused(path: Path, *patterns: str) -> str:
    with pytest.raises(StorageError) as info:
        start(path)
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_a_corrupt_database_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    db = tmp_path / "n1" / DATABASE
    with open(db, "r+b") as f:
        f.write(b"this is not a database header!!")
    _refused(tmp_path / "n1", str(db), "corrupt", "Restore the directory from a backup")


def test_a_truncated_database_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", last=400)
    db = tmp_path / "n1" / DATABASE
    size = db.stat().st_size
    assert size > 3 * 4096
    os.truncate(db, size // 2)
    _refused(tmp_path / "n1", str(db), "corrupt")


def test_an_emptied_database_is_refused_not_started_empty(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    db = tmp_path / "n1" / DATABASE
    os.truncate(db, 0)
    _refused(tmp_path / "n1", "missing, empty or truncated", MARKER)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("garbage", "the marker is not JSON with this node's id"),
        ('{"node_id": 2, "cluster_id": null}', "the marker names node 2, the database node 1"),
    ],
)
def test_a_damaged_marker_is_refused_and_named(tmp_path: Path, text: str, words: str) -> None:
    filled(tmp_path / "n1")
    (tmp_path / "n1" / MARKER).write_text(text)
    _refused(tmp_path / "n1", MARKER, words)


def test_a_deleted_database_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", snapshot_at=5)
    (tmp_path / "n1" / DATABASE).unlink()
    (tmp_path / "n1" / MARKER).unlink()  # even without the marker: a snapshot file remains
    _refused(tmp_path / "n1", "missing, empty or truncated")


def _execute(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path / DATABASE, isolation_level=None)
    for statement in statements:
        db.execute(statement)
    db.close()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    _execute(tmp_path / "n1", "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    _refused(tmp_path / "n1", "schema version 99", "reads version 1")


def test_a_log_that_does_not_reach_the_recorded_last_index_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    _execute(tmp_path / "n1", "DELETE FROM log WHERE idx > 15")
    _refused(tmp_path / "n1", "the log ends at index 15 but the store recorded 20")


def test_a_log_with_a_hole_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1")
    _execute(tmp_path / "n1", "DELETE FROM log WHERE idx = 12")
    _refused(tmp_path / "n1", "not contiguous")


def test_a_log_that_does_not_reach_last_applied_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", applied=10)
    _execute(
        tmp_path / "n1",
        "DELETE FROM log WHERE idx > 8",
        "UPDATE state SET last_log_index = 8",
    )
    _refused(tmp_path / "n1", "before the last applied index 10")


def test_a_snapshot_recorded_without_its_digest_gets_the_file_s_checksum(tmp_path: Path) -> None:
    """A database written before snapshot metas carried a digest: its snapshot is sent
    with the digest of its file all the same, so receivers check it."""
    filled(tmp_path / "n1", snapshot_at=8)
    store = start(tmp_path / "n1")
    meta = store.ask(GetInitialState()).snapshot
    data = b"".join(
        store.ask(ReadSnapshotChunk(meta.snapshot_id, offset, 100))
        for offset in range(0, meta.size, 100)
    )
    store.stop()
    assert meta.digest == hashlib.sha256(data).hexdigest()
    old = encode(attrs.evolve(meta, digest=None))
    db = sqlite3.connect(tmp_path / "n1" / DATABASE, isolation_level=None)
    db.execute("UPDATE state SET snapshot_meta = ?", (old,))
    db.close()
    store = start(tmp_path / "n1")
    assert store.ask(GetInitialState()).snapshot == meta
    store.stop()


def test_a_snapshot_file_that_does_not_match_its_checksum_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", snapshot_at=8)
    (snap,) = (tmp_path / "n1" / SNAPSHOTS).iterdir()
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0xFF
    snap.write_bytes(bytes(data))
    _refused(tmp_path / "n1", str(snap), "does not match its metadata")


def test_a_missing_snapshot_file_is_refused(tmp_path: Path) -> None:
    filled(tmp_path / "n1", snapshot_at=8)
    (snap,) = (tmp_path / "n1" / SNAPSHOTS).iterdir()
    snap.unlink()
    _refused(tmp_path / "n1", "snapshot's file is missing")


def test_leftovers_of_a_crash_are_removed_at_open(tmp_path: Path) -> None:
    filled(tmp_path / "n1", snapshot_at=8)
    snapshots = tmp_path / "n1" / SNAPSHOTS
    (current,) = snapshots.iterdir()
    for name in ("abc.tmp", "receiving.part", "9-1-unreferenced.snap"):
        (snapshots / name).write_bytes(b"half written")
    start(tmp_path / "n1").stop()
    assert list(snapshots.iterdir()) == [current]


# --- state machines at restart -----------------------------------------------------------


class CountingKeyValueStateMachine(KeyValueStateMachine):
    applies = 0

    def apply(self, entry: Entry) -> Any:
        CountingKeyValueStateMachine.applies += 1
        return super().apply(entry)


class CountingSqliteKeyValueStateMachine(SqliteKeyValueStateMachine):
    applies = 0

    def apply(self, entry: Entry) -> Any:
        CountingSqliteKeyValueStateMachine.applies += 1
        return super().apply(entry)


def test_an_in_memory_machine_is_rebuilt_from_the_snapshot_and_the_applied_log(
    tmp_path: Path,
) -> None:
    machine = CountingKeyValueStateMachine(keep_history=False)
    store = start(tmp_path / "n1", state_machine=machine)
    entries = puts(1, 1, 20)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries[:8]))
    store.ask(CreateSnapshot(LogId(1, 8), MEMBERS))
    store.ask(ApplyToStateMachine(entries[8:14]))
    state = dict(machine.data)
    store.stop()
    CountingKeyValueStateMachine.applies = 0
    again = CountingKeyValueStateMachine(keep_history=False)
    store = start(tmp_path / "n1", state_machine=again)
    assert CountingKeyValueStateMachine.applies == 6  # 9..14 replayed, 1..8 from the snapshot
    assert again.data == state
    assert store.ask(GetInitialState()).last_applied == 14


def test_a_durable_machine_replays_nothing_at_restart(tmp_path: Path) -> None:
    store = start(tmp_path / "n1", state_machine=CountingSqliteKeyValueStateMachine())
    entries = puts(1, 1, 20)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries[:14]))
    state = store.ask(DumpStorage()).state_machine
    store.stop()
    CountingSqliteKeyValueStateMachine.applies = 0
    store = start(tmp_path / "n1", state_machine=CountingSqliteKeyValueStateMachine())
    assert CountingSqliteKeyValueStateMachine.applies == 0
    assert store.ask(DumpStorage()).state_machine == state
    assert store.ask(GetInitialState()).last_applied == 14


# --- reads -------------------------------------------------------------------------------


def test_a_batch_of_queries_answers_as_one_query_at_a_time(tmp_path: Path) -> None:
    """``query_many`` (one SELECT per chunk of distinct keys) gives what ``query`` gives
    for each, in order, across several chunks, with repeated and missing keys, values of
    every storage class and a refused query; a mutable value is a copy per reader."""
    machine = SqliteKeyValueStateMachine()
    store = start(tmp_path / "n1", state_machine=machine)
    count = 2 * QUERY_CHUNK + 7
    values: list[Any] = ["text", 7, 2.5, b"raw", [1, {"x": (2, 3)}], None]
    puts_ = [Put(f"k{i}", values[i % len(values)]) for i in range(count)]
    written = [put for put in puts_ if put.value is not None]  # the others stay missing
    entries = tuple(Entry(1, n, EntryNormal(put)) for n, put in enumerate(written, 1))
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries))
    queries: list[Any] = [Get(f"k{i}") for i in range(count)]
    queries += [Get("k4"), Get("absent"), ("not", "a Get"), Get("k4"), Get("k0")]
    with contextlib.closing(sqlite3.connect(tmp_path / "n1" / DATABASE)) as reader:
        statements: list[str] = []
        reader.set_trace_callback(statements.append)
        machine.db, saved = reader, machine.db  # the store is idle: read on this thread
        try:
            batch = machine.query_many(tuple(queries))
            alone = machine.query_many((Get("k4"),)), machine.query_many((("not", "a Get"),))
            one_by_one: list[Any] = []
            for query in queries:
                try:
                    one_by_one.append(machine.query(query))
                except Exception as exc:  # compared below
                    one_by_one.append(exc)
            reader.close()  # a failing SELECT: each Get answers the error query() raises
            failing = machine.query_many((Get("k1"), ("not", "a Get"), Get("k2")))
            with pytest.raises(sqlite3.ProgrammingError) as raised:
                machine.query(Get("k1"))
        finally:
            machine.db = saved
    selects = [s for s in statements if s.startswith("SELECT key, value FROM kv WHERE key IN")]
    assert len(selects) == 3  # count distinct keys in chunks of QUERY_CHUNK
    assert len(batch) == len(queries)
    for got, expected in zip(batch, one_by_one, strict=True):
        if isinstance(expected, Exception):
            assert (type(got), str(got)) == (type(expected), str(expected))
        else:
            assert got == expected and type(got) is type(expected)
    assert batch[4] == [1, {"x": (2, 3)}]
    assert batch[count] == batch[4] and batch[count] is not batch[count + 3]
    assert batch[count + 1] is None
    assert alone[0] == [[1, {"x": (2, 3)}]]  # a lone query takes query()'s path
    assert [type(a) for a in failing] == [type(raised.value), InvalidCommand, type(raised.value)]
    assert str(failing[0]) == str(raised.value)
    assert len(alone[1]) == 1 and str(alone[1][0]) == str(batch[count + 2])


# --- group commit and durability modes ---------------------------------------------------


class CommitChecking:
    """A reply that, when answered, reads the database on its own connection: the write
    must already be committed (visible to another connection)."""

    def __init__(self, db: Path, index: int, seen: list[tuple[int, bool]]) -> None:
        self.db, self.index, self.seen = db, index, seen
        self.future: pykka.Future[Any] = pykka.ThreadingFuture()

    def set(self, value: Any = None) -> None:
        reader = sqlite3.connect(self.db)
        row = reader.execute("SELECT 1 FROM log WHERE idx = ?", (self.index,)).fetchone()
        reader.close()
        self.seen.append((self.index, row is not None))
        self.future.set(value)

    def set_exception(self, error: BaseException) -> None:
        self.future.set_exception((type(error), error, None))


@pytest.mark.parametrize("group_commit", [True, False])
def test_each_write_is_answered_only_after_its_commit(tmp_path: Path, group_commit: bool) -> None:
    store = start(tmp_path / "n1", group_commit=group_commit)
    seen: list[tuple[int, bool]] = []
    replies = []
    for entry in puts(1, 1, 200):
        reply = CommitChecking(tmp_path / "n1" / DATABASE, entry.index, seen)
        replies.append(reply)
        store.tell(Call(ReplicateToLog((entry,)), reply))
    for reply in replies:
        reply.future.get(timeout=TIMEOUT)
    assert seen == [(i, True) for i in range(1, 201)]
    stats = store.proxy().commit_stats().get(timeout=TIMEOUT)
    assert stats.messages == 200 and stats.entries == 200
    if group_commit:
        assert stats.commits < 200  # writes queued together shared transactions
    else:
        assert stats.commits == 200


def test_the_largest_client_id_and_sequence_fit_the_session_table(tmp_path: Path) -> None:
    """Client ids and sequences go up to 2**63 - 1, which SQLite keeps as they are: the
    session table answers for them and the store keeps running (a larger one is refused
    when the entry is built, tests/sessions/test_session_rules.py)."""
    store = start(tmp_path / "n1", state_machine=SqliteKeyValueStateMachine())
    entries = (
        Entry(1, 1, EntryNormal(RegisterClient(1.0))),
        Entry(1, 2, EntryNormal(SessionCommand(MAX_SESSION_NUMBER, 1, Put("k", 1), 2.0))),
        Entry(1, 3, EntryNormal(SessionCommand(1, MAX_SESSION_NUMBER, Put("k", 2), 3.0))),
        Entry(1, 4, EntryNormal(CloseSession(MAX_SESSION_NUMBER, 4.0))),
    )
    store.ask(ReplicateToLog(entries))
    responses = store.ask(ApplyToStateMachine(entries))
    assert responses[0] == 1 and responses[2] is None  # registered; "k" had no value
    for refused in (responses[1], responses[3]):
        assert isinstance(refused, ApplicationError) and "has no session" in str(refused)
    assert store.is_alive() and store.ask(QueryStateMachine((Get("k"),))) == (2,)


def test_fsync_mode_syncs_writes_and_not_applies(tmp_path: Path) -> None:
    store = start(tmp_path / "n1", group_commit=False)
    store.ask(SaveHardState(__import__("pykka_raft").HardState(1, 1, MEMBERS)))
    entries = puts(1, 1, 4)
    store.ask(ReplicateToLog(entries))
    before = store.proxy().commit_stats().get(timeout=TIMEOUT)
    assert before.synced_commits >= 2
    store.ask(ApplyToStateMachine(entries))
    after = store.proxy().commit_stats().get(timeout=TIMEOUT)
    # An apply commits without fsync: a lost apply is replayed from the durable log.
    assert (after.commits, after.synced_commits) == (before.commits + 1, before.synced_commits)


def test_os_mode_never_fsyncs_a_commit(tmp_path: Path) -> None:
    store = start(tmp_path / "n1", durability="os")
    store.ask(SaveHardState(__import__("pykka_raft").HardState(1, 1, MEMBERS)))
    store.ask(ReplicateToLog(puts(1, 1, 4)))
    stats = store.proxy().commit_stats().get(timeout=TIMEOUT)
    assert stats.commits >= 2 and stats.synced_commits == 0


def test_os_mode_fsyncs_the_switch_to_a_new_snapshot(tmp_path: Path) -> None:
    """The old snapshot's file is removed once the new one is current: that switch must
    survive a power cut in "os" mode too, or the database could name a removed file."""
    store = start(tmp_path / "n1", durability="os")
    entries = puts(1, 1, 20)
    store.ask(ReplicateToLog(entries))
    store.ask(ApplyToStateMachine(entries[:10]))
    store.ask(CreateSnapshot(LogId(1, 10), MEMBERS))
    before = store.proxy().commit_stats().get(timeout=TIMEOUT)
    store.ask(ApplyToStateMachine(entries[10:]))
    store.ask(CreateSnapshot(LogId(1, 20), MEMBERS))  # replaces the first one's file
    after = store.proxy().commit_stats().get(timeout=TIMEOUT)
    assert before.synced_commits == 1  # the first switch, and nothing else
    assert after.synced_commits == 2
    assert len(list((tmp_path / "n1" / SNAPSHOTS).iterdir())) == 1


# --- snapshot files ------------------------------------------------------------------------


def test_one_snapshot_file_at_a_time_named_by_the_store(tmp_path: Path) -> None:
    store = start(tmp_path / "n1")
    entries = puts(1, 1, 30)
    store.ask(ReplicateToLog(entries))
    metas = []
    for at in (10, 20, 30):
        store.ask(ApplyToStateMachine(entries[at - 10 : at]))
        metas.append(store.ask(CreateSnapshot(LogId(1, at), MEMBERS)))
        files = os.listdir(tmp_path / "n1" / SNAPSHOTS)
        assert files == [f"{metas[-1].snapshot_id}.snap"]
    # A received snapshot keeps the leader's id but gets a local file name.
    other = start(tmp_path / "n2", 2)
    meta = metas[-1]
    foreign = type(meta)(meta.last_included, meta.membership, "../../etc/passwd", meta.size)
    data = store.ask(ReadSnapshotChunk(meta.snapshot_id, 0, meta.size))
    other.ask(WriteSnapshotChunk(foreign, 0, data))
    other.ask(InstallSnapshot(foreign))
    assert other.ask(GetInitialState()).snapshot == foreign
    assert other.ask(ReadSnapshotChunk("../../etc/passwd", 0, 5)) == data[:5]
    (name,) = os.listdir(tmp_path / "n2" / SNAPSHOTS)
    assert name.startswith("30-1-") and name.endswith(".snap")


def test_a_durable_snapshot_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    store = start(tmp_path / "n1", group_commit=False)
    value = "v" * 4000
    entries = tuple(
        Entry(1, i, EntryNormal(Put(f"key{i:06}", value))) for i in range(1, 2001)
    )  # about 8 MB of state
    for start_at in range(0, 2000, 200):
        store.ask(ReplicateToLog(entries[start_at : start_at + 200]))
        store.ask(ApplyToStateMachine(entries[start_at : start_at + 200]))
    tracemalloc.start()
    try:
        meta = store.ask(CreateSnapshot(LogId(1, 2000), MEMBERS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert meta.size > 8_000_000
    assert peak < meta.size // 8, f"peak {peak} bytes while writing {meta.size}"
    # Received in chunks and installed: streamed as well.
    other = start(tmp_path / "n2", 2)
    tracemalloc.start()
    try:
        for offset in range(0, meta.size, 256 * 1024):
            chunk = store.ask(ReadSnapshotChunk(meta.snapshot_id, offset, 256 * 1024))
            other.ask(WriteSnapshotChunk(meta, offset, chunk))
        other.ask(InstallSnapshot(meta))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < meta.size // 8, f"peak {peak} bytes while receiving {meta.size}"
    assert other.ask(GetLogEntries(1, 10)) == ()
    dump = other.ask(DumpStorage())
    assert len(dump.state_machine) == 2000 and dump.last_applied == 2000


# --- I/O failures while running ------------------------------------------------------------


class SmallDiskStore(SqliteStore):
    """A store whose database may not grow past a few pages: SQLite's own "database or
    disk is full" error (SQLITE_FULL), as on a full disk."""

    def _open(self) -> None:
        super()._open()
        assert self._db is not None
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        self._db.execute(f"PRAGMA max_page_count = {pages + 6}")


def test_a_full_disk_fails_the_write_and_everything_after_it(tmp_path: Path) -> None:
    store = SmallDiskStore.start(tmp_path / "n1", 1)
    acknowledged = []
    with pytest.raises(StorageError, match="full"):
        for i in range(1, 1000):
            store.ask(ReplicateToLog((Entry(1, i, EntryNormal(Put(f"k{i}", "x" * 900))),)))
            acknowledged.append(i)
    assert 0 < len(acknowledged) < 100
    with pytest.raises(StorageError, match="failed earlier"):
        store.ask(GetInitialState())
    store.stop()
    store = start(tmp_path / "n1")
    assert [e.index for e in store.ask(GetLogEntries(1, 10_000))] == acknowledged


class _Hold:
    """Holds a :class:`FailingCommitStore`'s thread until its control's ``gate`` is set."""


class _CommitControl:
    def __init__(self) -> None:
        self.fail_commit = False  # armed: the next COMMIT fails
        self.gate = threading.Event()
        self.holding = threading.Event()


class FailingCommitStore(SqliteStore):
    """A store whose next COMMIT fails once armed: an I/O error at commit time, after the
    transaction's statements went through."""

    def __init__(self, *args: Any, control: _CommitControl, **kwargs: Any) -> None:
        self.control = control  # before the store opens: opening commits
        super().__init__(*args, **kwargs)

    def handle_other(self, message: Any) -> Any:
        if isinstance(message, _Hold):
            self.control.holding.set()
            self.control.gate.wait(10)
            return None
        return super().handle_other(message)

    def _commit_transaction(self) -> None:
        if self.control.fail_commit and self._txn is not None:
            self.control.fail_commit = False
            raise sqlite3.OperationalError("disk I/O error")
        super()._commit_transaction()


def test_a_commit_that_fails_under_a_query_fails_the_query_too(tmp_path: Path) -> None:
    """An apply grouped into a transaction whose COMMIT fails when a query arrives: the
    query must not be answered from the rolled-back state (its reader would miss the
    apply), but refused like every message after a failure."""
    control = _CommitControl()
    store = FailingCommitStore.start(tmp_path / "n1", 1, control=control)
    try:
        store.ask(ApplyToStateMachine(puts(1, 1, 1)))
        store.tell(_Hold())
        assert control.holding.wait(10)
        control.fail_commit = True
        applied: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        queried: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        store.tell(Call(ApplyToStateMachine(puts(1, 2, 2)), FutureReply(applied)))
        store.tell(Call(QueryStateMachine((Get("k2"),)), FutureReply(queried)))
        control.gate.set()
        with pytest.raises(StorageError, match="disk I/O error"):
            applied.get(timeout=10)
        assert not control.fail_commit  # the commit did fail
        with pytest.raises(StorageError, match="failed earlier"):
            queried.get(timeout=10)
    finally:
        control.gate.set()
        store.stop()


def test_a_failing_fsync_fails_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = start(tmp_path / "n1")
    entries = puts(1, 1, 10)
    source.ask(ReplicateToLog(entries))
    source.ask(ApplyToStateMachine(entries))
    meta = source.ask(CreateSnapshot(LogId(1, 10), MEMBERS))
    data = source.ask(ReadSnapshotChunk(meta.snapshot_id, 0, meta.size))
    target = start(tmp_path / "n2", 2)
    target.ask(WriteSnapshotChunk(meta, 0, data))

    import pykka_raft.storage.files as files

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="Input/output error"):
        target.ask(InstallSnapshot(meta))
    monkeypatch.undo()
    with pytest.raises(StorageError, match="failed earlier"):
        target.ask(GetInitialState())
    target.stop()
    target = start(tmp_path / "n2", 2)
    assert target.ask(GetInitialState()).snapshot is None  # nothing was installed


def test_a_node_whose_disk_fills_stops_and_acknowledges_nothing_that_failed(
    tmp_path: Path,
) -> None:
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        snapshot_policy=SnapshotPolicy.disabled(),
    )

    def storage(node_id: int, _: object) -> Any:
        return SmallDiskStore.start(tmp_path / f"n{node_id}", node_id)

    cluster = Cluster([1], config=config, storage=storage)
    try:
        cluster.initialize()
        cluster.leader()
        acknowledged, failed = [], None
        for i in range(1000):
            try:
                reply = cluster.nodes[1].ask(
                    ClientPayload.new(Put(f"k{i}", "x" * 900), ResponseMode.COMMITTED),
                    timeout=TIMEOUT,
                )
                acknowledged.append((i, reply.index))
            except Exception as exc:
                failed = exc
                break
        # A write pending when the node stopped: unknown outcome, caused by the disk.
        assert isinstance(failed, OutcomeUnknown), failed
        assert isinstance(failed.__cause__, StorageError), failed.__cause__
        cluster.hub.wait_for(lambda m: m[1].state is State.SHUTDOWN, TIMEOUT, "shutdown")
    finally:
        cluster.shutdown()
    assert acknowledged
    store = start(tmp_path / "n1")
    log = {e.index: e.payload for e in store.ask(GetLogEntries(1, 10_000))}
    for i, index in acknowledged:
        assert log[index] == EntryNormal(Put(f"k{i}", "x" * 900))


class GatedStore(SqliteStore):
    """Holds its first hard state write until the test opens the gate, so that messages
    queue up behind it."""

    gate = __import__("threading").Event()

    def save_hard_state(self, hard_state: Any) -> None:
        GatedStore.gate.wait(TIMEOUT)
        super().save_hard_state(hard_state)


def test_a_batch_is_committed_even_if_only_a_proxy_call_followed_it(tmp_path: Path) -> None:
    """A deferred batch must not wait for a storage message that never comes: the last
    message queued behind it here is a Pykka proxy call, which the store never sees."""
    GatedStore.gate.clear()
    store = GatedStore.start(tmp_path / "n1", 1)
    first = CommitChecking(tmp_path / "n1" / DATABASE, 0, [])
    second = CommitChecking(tmp_path / "n1" / DATABASE, 1, [])
    store.tell(Call(SaveHardState(__import__("pykka_raft").HardState(1, 1, MEMBERS)), first))
    store.tell(Call(ReplicateToLog(puts(1, 1, 1)), second))
    stats = store.proxy().commit_stats()
    GatedStore.gate.set()
    stats.get(timeout=TIMEOUT)
    first.future.get(timeout=TIMEOUT)
    second.future.get(timeout=TIMEOUT)
    assert second.seen == [(1, True)]
    assert store.proxy().commit_stats().get(timeout=TIMEOUT).commits == 1  # one shared commit


def test_a_directory_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot open the data directory"):
        start(tmp_path / "a file" / "n1")
