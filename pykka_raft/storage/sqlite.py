"""``SqliteStore``: a durable storage actor on the standard library's ``sqlite3``.

One data directory per node::

    <directory>/
        LOCK                   flock-ed while a store has the directory open
        pykka_raft.node        marker: the node (and cluster) the directory belongs to
        raft.sqlite3           the database, in WAL mode (+ raft.sqlite3-wal, -shm)
        snapshots/
            <index>-<term>-<unique>.snap   the current snapshot's data, exactly its bytes
            *.tmp, receiving.part          a snapshot being built / received

Tables of ``raft.sqlite3``:

- ``meta(key, value)``: ``schema_version``, ``node_id``, ``cluster_id``;
- ``state`` (one row): the hard state, the recorded last log index, ``last_applied``,
  and the current snapshot's meta, file name and checksum;
- ``log(idx, term, entry)``: the entries after the snapshot;
- the tables of a :class:`~pykka_raft.storage.sqlite_kv.SqliteStateMachine`, if one is
  used (``kv`` for the key-value machine).

Entries, the hard state and snapshot metas are stored with
:func:`pykka_raft.codec.encode`. See ``docs/storage.md`` for the durability modes, the
recovery checks and the errors.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import IO, Any

import attrs

from pykka_raft.calls import Call, Reply, answer
from pykka_raft.codec import decode, encode
from pykka_raft.errors import (
    ApplicationError,
    DecodeError,
    SnapshotsUnsupported,
    StorageError,
    UnknownMessage,
)
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryNormal,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.statemachine import StateMachine
from pykka_raft.storage.contract import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    InvalidRequest,
    RaftStorage,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
)
from pykka_raft.storage.files import (
    DirectoryLock,
    Reception,
    SnapshotWriter,
    file_checksum,
    sync_dir,
    write_atomically,
)
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine, SqliteStateMachine
from pykka_raft.types import LogId, LogIndex, NodeId

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DATABASE = "raft.sqlite3"
MARKER = "pykka_raft.node"
SNAPSHOTS = "snapshots"
RECEIVING = "receiving.part"
DURABILITY = ("fsync", "os")

GROUPABLE = (SaveHardState, AppendEntryToLog, ReplicateToLog, DeleteLogsFrom, ApplyToStateMachine)
"""Calls whose transactions may share one commit (group commit)."""

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), hard_state BLOB NOT NULL, "
    "last_log_index INTEGER NOT NULL, last_applied INTEGER NOT NULL, snapshot_meta BLOB, "
    "snapshot_file TEXT, snapshot_checksum TEXT)",
    "CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, entry BLOB NOT NULL)",
)

_ADVICE = (
    "The node must not start on damaged data: it may have voted or acknowledged entries "
    "that are gone. Restore the directory from a backup; or remove this node from the "
    "cluster (ProposeConfigChange on the leader), delete the directory and add the node "
    "back as a new member"
)


@attrs.frozen
class _Flush:
    """Internal: commit the open batch. Told to itself when a batch starts, so it arrives
    behind every message queued then: those may join the batch, and the batch is committed
    even if none of them is a storage message (a proxy call, for instance)."""


@attrs.frozen
class _SnapshotFileBuilt:
    """Internal: a background thread finished writing a snapshot file (or failed)."""

    request: CreateSnapshot
    reply: Reply
    path: Path
    size: int
    checksum: str
    error: BaseException | None


@attrs.define
class CommitStats:
    """Counters of a store's transactions (for benchmarks and tests of group commit)."""

    messages: int = 0
    """Calls whose writes were committed."""
    commits: int = 0
    """Transactions committed."""
    synced_commits: int = 0
    """Of which committed with ``synchronous=FULL`` (an fsync)."""
    entries: int = 0
    """Log entries written."""


class SqliteStore(RaftStorage):
    """A storage actor that keeps a node's hard state, log and snapshots on disk.

    Args:
        directory: the node's data directory (created if missing). It records the node id
            and is refused to another node or to a second store while this one is open.
        node_id: the id of the node this storage serves.
        state_machine: a :class:`~pykka_raft.storage.sqlite_kv.SqliteStateMachine` (its
            state lives in the database and commits with ``last_applied``: a restart
            replays nothing), or any in-memory ``StateMachine`` (rebuilt at start from the
            snapshot plus the committed log up to the durable ``last_applied``). Default: a
            new :class:`~pykka_raft.storage.sqlite_kv.SqliteKeyValueStateMachine`.
        durability: ``"fsync"`` (default): every acknowledged write was fsynced and
            survives power loss; ``"os"``: writes are handed to the operating system at
            commit and survive a crash of the process, not of the machine.
        cluster_id: recorded on first use; a directory of another cluster is refused.
        group_commit: let consecutive queued writes share one transaction (default on).
        max_batch: at most this many calls share one transaction.

    Opening checks the directory and raises :class:`~pykka_raft.errors.StorageError`,
    naming the file and what to do, on damaged or foreign data; it never starts empty on a
    directory that had data. Errors while running (a full disk, a failed fsync) are
    raised to the node, which stops; the store then refuses every later message.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        node_id: NodeId,
        state_machine: StateMachine | SqliteStateMachine | None = None,
        *,
        durability: str = "fsync",
        cluster_id: str | None = None,
        group_commit: bool = True,
        max_batch: int = 64,
    ) -> None:
        if durability not in DURABILITY:
            raise ValueError(f"durability must be 'fsync' or 'os', not {durability!r}")
        if isinstance(node_id, bool) or not isinstance(node_id, int) or node_id < 0:
            raise ValueError(f"node_id must be a non-negative integer, not {node_id!r}")
        machine = SqliteKeyValueStateMachine() if state_machine is None else state_machine
        super().__init__(machine)
        self.directory = Path(directory).resolve()
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.durability = durability
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.stats = CommitStats()
        self.durable_state_machine = isinstance(machine, SqliteStateMachine)
        # The stock key-value apply never raises ApplicationError (and any other error
        # fails the store): it needs no savepoint per entry. Subclasses get one.
        self._apply_never_refuses = type(machine).apply is SqliteKeyValueStateMachine.apply
        self.db_path = self.directory / DATABASE
        self.snapshot_dir = self.directory / SNAPSHOTS

        self._db: sqlite3.Connection | None = None
        self._sync: str | None = None  # the connection's current synchronous level
        self._txn: str | None = None  # the open transaction's level, None if none is open
        self._deferred: list[tuple[Reply, Any]] = []  # answers waiting for the commit
        self._in_batch = 0
        self._flush_told = False  # a _Flush is on its way through the inbox
        self._failed: BaseException | None = None
        self._receiving: Reception | None = None
        self._snapshot_fd: int | None = None
        self._builder: threading.Thread | None = None
        self._closing = threading.Event()
        inbox = self.actor_inbox
        assert isinstance(inbox, queue.Queue), "a ThreadingActor's inbox is a queue.Queue"
        self._queued = inbox.qsize  # public queue API: how many messages wait
        # What the database holds, kept in memory (read at open, updated with each change).
        self._hard_state = HardState()
        self._last_log_id = LogId(0, 0)
        self._last_applied: LogIndex = 0
        self._snapshot: SnapshotMeta | None = None
        self._snapshot_file: str | None = None
        self._snapshot_checksum: str | None = None

        self._lock: DirectoryLock | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = DirectoryLock(self.directory)
            self._open()
        except BaseException as exc:
            self._close()
            if isinstance(exc, (OSError, sqlite3.OperationalError)):
                raise StorageError(
                    f"{self.directory}: cannot open the data directory ({exc}); check that "
                    "it exists, is writable by this process and that the disk is healthy"
                ) from exc
            raise
        self.stats = CommitStats()  # count from here: not the opening's own transactions

    # --- opening and recovery --------------------------------------------------------

    def _damaged(self, path: Path, what: str) -> StorageError:
        return StorageError(f"{path}: {what}. {_ADVICE}")

    def _open(self) -> None:
        """Open or create the database, check it, and rebuild the in-memory view."""
        self.snapshot_dir.mkdir(exist_ok=True)
        marker = self.directory / MARKER
        snapshot_files = [p for p in self.snapshot_dir.iterdir() if p.suffix == ".snap"]
        try:
            db = sqlite3.connect(
                self.db_path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._db = db
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise self._damaged(self.db_path, f"cannot use WAL mode (got {mode!r})")
            self._set_sync("FULL" if self.durability == "fsync" else "NORMAL")
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                problems = "; ".join(row[0] for row in check[:3])
                raise self._damaged(self.db_path, f"the database is corrupt ({problems})")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.OperationalError:
            raise  # cannot open or read (permissions, I/O): not a verdict on the data
        except sqlite3.DatabaseError as exc:
            raise self._damaged(
                self.db_path, f"the database is corrupt or truncated ({exc})"
            ) from exc
        if "meta" not in tables:
            if marker.exists() or snapshot_files or tables:
                raise self._damaged(
                    self.db_path,
                    "the database is missing, empty or truncated although the directory "
                    f"held a node's data ({MARKER} or snapshot files are present)",
                )
            self._create(marker)
        try:
            self._check_identity(marker)
            self._load()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._damaged(self.db_path, f"the database is corrupt ({exc})") from exc
        except DecodeError as exc:
            raise self._damaged(self.db_path, f"a stored record cannot be decoded ({exc})") from exc

    def _create(self, marker: Path) -> None:
        """A new directory: the schema and the identity, then the marker file."""
        db = self._db
        assert db is not None
        with self._transaction(sync=True):
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("node_id", str(self.node_id)),
                    ("cluster_id", self.cluster_id),
                    ("state_machine", self._machine_kind()),
                ],
            )
            db.execute(
                "INSERT INTO state VALUES (0, ?, 0, 0, NULL, NULL, NULL)",
                (encode(HardState()),),
            )
        sync_dir(self.directory)
        logger.info("node %s: new data directory %s", self.node_id, self.directory)

    def _machine_kind(self) -> str:
        """``durable:<class>`` for a state machine in the database, else ``memory``."""
        if self.durable_state_machine:
            return f"durable:{type(self.state_machine).__name__}"
        return "memory"

    def _check_identity(self, marker: Path) -> None:
        db = self._db
        assert db is not None
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise StorageError(
                f"{self.db_path}: written with schema version {version}; this pykka_raft "
                f"reads version {SCHEMA_VERSION}. Run the pykka_raft version that wrote it"
            )
        if meta.get("node_id") != str(self.node_id):
            raise StorageError(
                f"{self.directory} holds the data of node {meta.get('node_id')}, not node "
                f"{self.node_id}: give each node its own directory"
            )
        kind = meta.get("state_machine")
        if kind != self._machine_kind():
            raise StorageError(
                f"{self.db_path}: this directory's state machine is {kind!r}, not "
                f"{self._machine_kind()!r}: open it with the kind of state machine it was "
                "created with (a durable one keeps its state in the database)"
            )
        recorded = meta.get("cluster_id")
        if self.cluster_id is not None:
            if recorded is None:
                with self._transaction(sync=True):
                    db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'cluster_id'", (self.cluster_id,)
                    )
            elif recorded != self.cluster_id:
                raise StorageError(
                    f"{self.directory} belongs to cluster {recorded!r}, not {self.cluster_id!r}"
                )
        self.cluster_id = self.cluster_id or recorded
        identity = {"node_id": self.node_id, "cluster_id": self.cluster_id}
        text = json.dumps(identity, sort_keys=True).encode() + b"\n"
        if marker.exists():
            try:
                found = json.loads(marker.read_bytes())
            except ValueError:
                found = None
            if not isinstance(found, dict) or found.get("node_id") != self.node_id:
                raise self._damaged(marker, f"the marker does not match the database ({found})")
        if not marker.exists() or marker.read_bytes() != text:
            write_atomically(marker, text)  # also after a crash during the creation

    def _load(self) -> None:
        """Read the state row, check the log and the snapshot, rebuild the state machine."""
        db = self._db
        assert db is not None
        row = db.execute(
            "SELECT hard_state, last_log_index, last_applied, snapshot_meta, snapshot_file, "
            "snapshot_checksum FROM state WHERE id = 0"
        ).fetchone()
        if row is None:
            raise self._damaged(self.db_path, "the state row is missing")
        hard, recorded_last, last_applied, meta_blob, snap_file, checksum = row
        self._hard_state = decode(hard, HardState)
        snapshot: SnapshotMeta | None = None
        if meta_blob is not None:
            snapshot = decode(meta_blob, SnapshotMeta)
        self._snapshot = snapshot
        self._snapshot_file = snap_file
        self._snapshot_checksum = checksum
        snap_index = self._snapshot_index
        first, last, count = db.execute("SELECT min(idx), max(idx), count(*) FROM log").fetchone()
        if count == 0:
            last = snap_index
        elif first != snap_index + 1 or last - first + 1 != count:
            raise self._damaged(
                self.db_path,
                f"the log is not contiguous after the snapshot at {snap_index} (it holds "
                f"{count} entries from {first} to {last})",
            )
        if last != recorded_last:
            raise self._damaged(
                self.db_path,
                f"the log ends at index {last} but the store recorded {recorded_last}: "
                "entries are missing",
            )
        if count:
            term = db.execute("SELECT term FROM log WHERE idx = ?", (last,)).fetchone()[0]
            self._last_log_id = LogId(term, last)
        else:
            self._last_log_id = self._snapshot.last_included if self._snapshot else LogId(0, 0)
        if last_applied > last:
            raise self._damaged(
                self.db_path,
                f"the log ends at index {last}, before the last applied index {last_applied}",
            )
        if last_applied < snap_index:
            raise self._damaged(
                self.db_path,
                f"the last applied index {last_applied} is before the snapshot's {snap_index}",
            )
        self._last_applied = last_applied
        self._clean_snapshot_dir()
        if self._snapshot is not None:
            self._check_snapshot_file()
        if self.durable_state_machine:
            machine: SqliteStateMachine = self.state_machine  # type: ignore[assignment]
            with self._transaction(sync=True):
                machine.attach(db)
        else:
            self._rebuild_state_machine()

    def _clean_snapshot_dir(self) -> None:
        """Remove what a crash left behind: unfinished builds and receptions, and files
        of snapshots that are no longer current."""
        for path in self.snapshot_dir.iterdir():
            if path.name != self._snapshot_file:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _snapshot_path(self, name: str | None = None) -> Path:
        name = name or self._snapshot_file
        assert name is not None
        return self.snapshot_dir / name

    def _check_snapshot_file(self) -> None:
        assert self._snapshot is not None
        path = self._snapshot_path()
        if not path.exists():
            raise self._damaged(path, "the current snapshot's file is missing")
        size, checksum = file_checksum(path)
        if size != self._snapshot.size or checksum != self._snapshot_checksum:
            raise self._damaged(
                path,
                f"the snapshot file does not match its metadata (size {size}, expected "
                f"{self._snapshot.size}; checksum {checksum[:16]}..., expected "
                f"{(self._snapshot_checksum or '')[:16]}...)",
            )
        self._snapshot_fd = os.open(path, os.O_RDONLY)

    def _rebuild_state_machine(self) -> None:
        """An in-memory state machine: restore the snapshot, replay to ``last_applied``."""
        if self._snapshot is not None:
            restore = getattr(self.state_machine, "restore", None)
            if restore is None:
                raise StorageError(
                    f"{self._snapshot_path()}: the state machine "
                    f"{type(self.state_machine).__name__} has no restore(); it cannot start "
                    "from this directory's snapshot"
                )
            try:
                restore(self._snapshot_path().read_bytes())
            except Exception as exc:
                raise StorageError(
                    f"{self._snapshot_path()}: the state machine "
                    f"{type(self.state_machine).__name__} cannot restore this snapshot "
                    f"({exc!r}); is it the state machine the cluster runs?"
                ) from exc
        start = self._snapshot_index + 1
        for begin in range(start, self._last_applied + 1, 1000):
            stop = min(begin + 1000, self._last_applied + 1)
            for entry in self.get_log_entries(begin, stop):
                with contextlib.suppress(ApplicationError):  # refused the first time too
                    self.state_machine.apply(entry)
        if self._last_applied >= start:
            logger.info(
                "node %s: state machine rebuilt from the snapshot and entries %s-%s",
                self.node_id,
                start,
                self._last_applied,
            )

    # --- transactions and group commit -----------------------------------------------

    def _set_sync(self, level: str) -> None:
        if self._sync != level:
            assert self._db is not None
            self._db.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    def _begin(self, sync: bool) -> None:
        """Make sure a transaction is open; ``sync`` if its commit must be fsynced.

        Applying entries needs no fsync (a lost apply is replayed from the log, which was
        durable before the entries were applied), so a transaction of applies only commits
        with ``synchronous=NORMAL``; a durable write that joins it starts a new one.
        """
        level = "FULL" if sync and self.durability == "fsync" else "NORMAL"
        if self._txn is not None:
            if self._txn == level or self._txn == "FULL":
                return
            self._commit_transaction()
        assert self._db is not None
        self._set_sync(level)
        self._db.execute("BEGIN")
        self._txn = level

    def _commit_transaction(self) -> None:
        if self._txn is None:
            return
        assert self._db is not None
        self._db.execute("COMMIT")
        self.stats.commits += 1
        if self._txn == "FULL":
            self.stats.synced_commits += 1
        self._txn = None

    @contextlib.contextmanager
    def _transaction(self, sync: bool) -> Any:
        """One transaction for a block (committed at its end, rolled back on error)."""
        self._begin(sync)
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        self._commit_transaction()

    def _rollback(self) -> None:
        if self._txn is not None and self._db is not None:
            self._txn = None
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _flush(self) -> None:
        """Commit the open transaction, then answer the calls that waited for it."""
        deferred, self._deferred = self._deferred, []
        messages, self._in_batch = self._in_batch, 0
        try:
            self._commit_transaction()
        except Exception as exc:
            self._fail(exc, deferred)
            return
        self.stats.messages += messages
        for reply, value in deferred:
            _deliver(reply, value)

    def _fail(self, error: BaseException, waiting: list[tuple[Reply, Any]] | None = None) -> None:
        """An I/O failure or a broken state machine: nothing more is acknowledged."""
        if self._failed is None:
            logger.error("node %s: storage failed: %r", self.node_id, error)
            self._failed = error
        self._rollback()
        for reply, _ in [*self._deferred, *(waiting or ())]:
            _deliver_error(reply, self._failure(error))
        self._deferred = []

    def _failure(self, error: BaseException | None = None) -> StorageError:
        cause = error or self._failed
        if isinstance(cause, StorageError):
            return cause
        return StorageError(f"{self.directory}: the storage failed: {cause!r}")

    # --- messages --------------------------------------------------------------------

    def receive(self, message: Any) -> Any:
        """Group consecutive queued writes into one transaction; everything else first
        commits what is pending and answers it, then runs on its own."""
        if self._failed is not None:
            refusal = StorageError(
                f"{self.directory}: the storage failed earlier ({self._failed!r}) and "
                "accepts nothing more; restart the node"
            )
            if isinstance(message, Call):
                _deliver_error(message.reply, refusal)
                return None
            if isinstance(message, _Flush):
                self._flush_told = False
                return None
            if isinstance(message, _SnapshotFileBuilt):
                _deliver_error(message.reply, refusal)
                with contextlib.suppress(OSError):
                    message.path.unlink()
                return None
            raise refusal
        if isinstance(message, _Flush):
            self._flush_told = False
            self._flush()
            return None
        if isinstance(message, Call) and isinstance(message.message, GROUPABLE):
            self._grouped(message.message, message.reply)
            return None
        self._flush()
        if isinstance(message, _SnapshotFileBuilt):
            self._snapshot_file_built(message)
            return None
        if isinstance(message, Call):
            if isinstance(message.message, CreateSnapshot):
                self._build_snapshot_file(message.message, message.reply)
            else:
                answer(message.reply, self._handle_alone, message.message)
            return None
        return self._handle_alone(message)

    def _grouped(self, message: Any, reply: Reply) -> None:
        try:
            value = self.handle(message)
        except Exception as exc:
            if self._failed is not None or not _is_request_error(exc):
                self._fail(exc, [(reply, None)])
                return
            self._flush()  # the calls before it are answered first, in order
            _deliver_error(reply, exc)
            return
        self._deferred.append((reply, value))
        self._in_batch += 1
        if self.group_commit and len(self._deferred) < self.max_batch and self._queued() > 0:
            # More is queued: it may join this transaction. The commit comes at the latest
            # with the _Flush told now, behind everything queued so far.
            if not self._flush_told:
                self._flush_told = True
                self.actor_ref.tell(_Flush())
            return
        self._flush()

    def _handle_alone(self, message: Any) -> Any:
        try:
            value = self.handle(message)
            self._commit_transaction()
        except Exception as exc:
            if self._failed is not None or not _is_request_error(exc):
                self._fail(exc)
                raise self._failure(exc) from exc
            self._rollback()
            raise
        return value

    # --- the storage methods ---------------------------------------------------------

    @property
    def _snapshot_index(self) -> LogIndex:
        return self._snapshot.last_included.index if self._snapshot else 0

    def get_initial_state(self) -> InitialState:
        """The hard state, last log id, last applied index and snapshot, from memory
        (the database was read when the store opened and every change since)."""
        return InitialState(self._last_log_id, self._last_applied, self._hard_state, self._snapshot)

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state (committed before the answer)."""
        blob = encode(hard_state)
        self._begin(sync=True)
        assert self._db is not None
        self._db.execute("UPDATE state SET hard_state = ? WHERE id = 0", (blob,))
        self._hard_state = hard_state

    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """Entries in ``[start, stop)`` that the log holds (those after the snapshot)."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx",
            (max(start, self._snapshot_index + 1), stop),
        )
        return tuple(decode(blob, Entry) for (blob,) in rows)

    def append_entry_to_log(self, entries: tuple[Entry, ...]) -> dict[LogIndex, BaseException]:
        """Validate and encode the leader's entries; an entry the state machine refuses,
        or that the codec cannot encode, is stored blank and its error returned."""
        refused: dict[LogIndex, BaseException] = {}
        rows = []
        for entry in entries:
            stored = entry
            if isinstance(entry.payload, EntryNormal):
                try:
                    self.validate_entry(entry)
                    blob = encode(entry)
                except Exception as exc:  # the application's refusal, or unencodable data
                    refused[entry.index] = exc
                    stored = Entry(entry.term, entry.index, EntryBlank())
                    blob = encode(stored)
            else:
                blob = encode(entry)
            rows.append((stored, blob))
        self._write_rows(rows)
        return refused

    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index (committed before the answer)."""
        self._write_rows([(entry, encode(entry)) for entry in entries])

    def _write_rows(self, rows: list[tuple[Entry, bytes]]) -> None:
        snap, last = self._snapshot_index, self._last_log_id
        kept = []
        for entry, blob in rows:
            if entry.index <= snap:
                continue  # covered by the snapshot: committed, and identical
            if entry.index > last.index + 1:
                raise InvalidRequest(f"entry {entry.index} would leave a gap after {last.index}")
            if entry.index >= last.index:
                last = entry.log_id
            kept.append((entry.index, entry.term, blob))
        if not kept:
            return
        self._begin(sync=True)
        assert self._db is not None
        self._db.executemany("INSERT OR REPLACE INTO log VALUES (?, ?, ?)", kept)
        if last.index != self._last_log_id.index:
            self._db.execute("UPDATE state SET last_log_index = ? WHERE id = 0", (last.index,))
        self._last_log_id = last
        self.stats.entries += len(kept)

    def delete_logs_from(self, index: LogIndex) -> None:
        """Delete the entries at ``index`` and after (never applied ones)."""
        first = max(index, self._snapshot_index + 1)
        if first > self._last_log_id.index:
            return
        if first <= self._last_applied:
            raise InvalidRequest(
                f"cannot delete entries from {index}: entries through {self._last_applied} "
                "were applied (committed entries are never deleted)"
            )
        self._begin(sync=True)
        assert self._db is not None
        self._db.execute("DELETE FROM log WHERE idx >= ?", (first,))
        self._db.execute("UPDATE state SET last_log_index = ? WHERE id = 0", (first - 1,))
        if first - 1 == self._snapshot_index:
            self._last_log_id = self._snapshot.last_included if self._snapshot else LogId(0, 0)
        else:
            term = self._db.execute("SELECT term FROM log WHERE idx = ?", (first - 1,))
            self._last_log_id = LogId(term.fetchone()[0], first - 1)

    def apply_to_state_machine(self, entries: tuple[Entry, ...]) -> tuple[Any, ...]:
        """Apply in one transaction with ``last_applied``; a failure other than an
        :class:`~pykka_raft.errors.ApplicationError` leaves the store failed."""
        if entries and entries[0].index != self._last_applied + 1:
            raise InvalidRequest(
                f"entries from {entries[0].index} applied after {self._last_applied}: "
                "each entry is applied once, in order"
            )
        self._begin(sync=False)
        return super().apply_to_state_machine(entries)

    def apply_entry(self, entry: Entry) -> Any:
        """Apply one entry; a durable state machine's refused entry is rolled back."""
        if not self.durable_state_machine or self._apply_never_refuses:
            return self.state_machine.apply(entry)
        assert self._db is not None
        self._db.execute("SAVEPOINT apply")
        try:
            response = self.state_machine.apply(entry)
        except BaseException:
            self._db.execute("ROLLBACK TO apply")
            self._db.execute("RELEASE apply")
            raise
        self._db.execute("RELEASE apply")
        return response

    def set_last_applied(self, index: LogIndex) -> None:
        """Record ``last_applied`` in the transaction of the applies."""
        assert self._db is not None
        self._db.execute("UPDATE state SET last_applied = ? WHERE id = 0", (index,))
        self._last_applied = index

    # --- snapshots -------------------------------------------------------------------

    _names = itertools.count(1)

    def _new_name(self, last: LogId) -> str:
        return f"{last.index}-{last.term}-{uuid.uuid4().hex[:12]}.snap"

    def _build_snapshot_file(self, request: CreateSnapshot, reply: Reply) -> None:
        """Capture the state now; write the file on a background thread."""
        current = self._snapshot
        if current is not None and current.last_included.index >= request.last_included.index:
            _deliver(reply, current)
            return
        try:
            sink = self._capture()
        except Exception as exc:
            _deliver_error(reply, exc)
            return
        path = self.snapshot_dir / f"{uuid.uuid4().hex}.tmp"
        closing = self._closing

        def run() -> None:
            size, checksum, error = 0, "", None
            writer = None
            try:
                writer = SnapshotWriter(path, closing)
                sink(writer)
                size, checksum = writer.finish()
            except BaseException as exc:
                error = exc
                if writer is not None:
                    writer.abort()
            with contextlib.suppress(Exception):
                self.actor_ref.tell(_SnapshotFileBuilt(request, reply, path, size, checksum, error))

        name = f"SqliteStore-{self.node_id}-snapshot-{next(self._names)}"
        self._builder = threading.Thread(target=run, name=name, daemon=True)
        self._builder.start()

    def _capture(self) -> Any:
        """A function that streams the state as it is now into a binary file."""
        if self.durable_state_machine:
            machine: SqliteStateMachine = self.state_machine  # type: ignore[assignment]
            return machine.capture(str(self.db_path))
        if not callable(getattr(self.state_machine, "snapshot", None)):
            raise SnapshotsUnsupported(type(self.state_machine).__name__)
        build = self.state_machine.snapshot()  # the capture, on this thread

        def sink(out: IO[bytes]) -> None:
            out.write(build())  # a generic state machine gives its bytes whole

        return sink

    def _snapshot_file_built(self, built: _SnapshotFileBuilt) -> None:
        if built.error is not None:
            _deliver_error(built.reply, built.error)
            return
        try:
            meta = self._store_snapshot_file(
                built.request.last_included,
                built.request.membership,
                built.path,
                built.size,
                built.checksum,
            )
        except Exception as exc:
            self._fail(exc)
            _deliver_error(built.reply, self._failure(exc))
            return
        _deliver(built.reply, meta)

    def _store_snapshot_file(
        self, last: LogId, membership: MembershipConfig, path: Path, size: int, checksum: str
    ) -> SnapshotMeta:
        """Make a built file the current snapshot and drop the log through it."""
        current = self._snapshot
        if current is not None and current.last_included.index >= last.index:
            path.unlink()
            return current  # a newer snapshot was installed meanwhile
        name = self._new_name(last)
        meta = SnapshotMeta(last, membership, name.removesuffix(".snap"), size)
        os.rename(path, self._snapshot_path(name))
        sync_dir(self.snapshot_dir)
        self._switch_snapshot(meta, name, checksum, applied=None)
        return meta

    def store_snapshot(
        self, last_included: LogId, membership: MembershipConfig, data: bytes
    ) -> SnapshotMeta:
        """Keep ``data`` as the current snapshot (the plain ``ask`` path)."""
        path = self.snapshot_dir / f"{uuid.uuid4().hex}.tmp"
        writer = SnapshotWriter(path)
        writer.write(data)
        size, checksum = writer.finish()
        return self._store_snapshot_file(last_included, membership, path, size, checksum)

    def handle(self, message: Any) -> Any:
        """As :meth:`RaftStorage.handle`; a plain ``CreateSnapshot`` streams to a file."""
        if isinstance(message, CreateSnapshot):
            current = self._snapshot
            if current is not None and current.last_included.index >= message.last_included.index:
                return current
            sink = self._capture()
            path = self.snapshot_dir / f"{uuid.uuid4().hex}.tmp"
            writer = SnapshotWriter(path)
            try:
                sink(writer)
                size, checksum = writer.finish()
            except BaseException:
                writer.abort()
                raise
            return self._store_snapshot_file(
                message.last_included, message.membership, path, size, checksum
            )
        return super().handle(message)

    def _switch_snapshot(
        self, meta: SnapshotMeta, name: str, checksum: str, applied: LogIndex | None
    ) -> None:
        """One transaction: the new snapshot, the log it leaves, ``last_applied`` (for an
        install) and, for a durable state machine, its restored state."""
        db = self._db
        assert db is not None
        last = meta.last_included
        row = db.execute("SELECT term FROM log WHERE idx = ?", (last.index,)).fetchone()
        keeps_suffix = row is not None and row[0] == last.term
        with self._transaction(sync=True):
            if applied is not None and self.durable_state_machine:
                machine: SqliteStateMachine = self.state_machine  # type: ignore[assignment]
                with open(self._snapshot_path(name), "rb") as source:
                    machine.restore_from(source)
            if keeps_suffix:
                db.execute("DELETE FROM log WHERE idx <= ?", (last.index,))
                last_log = self._last_log_id
            else:  # the log does not continue the snapshot
                db.execute("DELETE FROM log")
                last_log = last
            db.execute(
                "UPDATE state SET snapshot_meta = ?, snapshot_file = ?, snapshot_checksum = ?, "
                "last_log_index = ?, last_applied = coalesce(?, last_applied) WHERE id = 0",
                (encode(meta), name, checksum, last_log.index, applied),
            )
        old = self._snapshot_file
        self._snapshot, self._snapshot_file, self._snapshot_checksum = meta, name, checksum
        self._last_log_id = last_log
        if applied is not None:
            self._last_applied = applied
        if self._snapshot_fd is not None:
            os.close(self._snapshot_fd)
        self._snapshot_fd = os.open(self._snapshot_path(name), os.O_RDONLY)
        if old is not None and old != name:
            with contextlib.suppress(FileNotFoundError):
                self._snapshot_path(old).unlink()

    def read_snapshot_chunk(self, snapshot_id: str, offset: int, size: int) -> bytes | None:
        """Up to ``size`` bytes of the current snapshot's file at ``offset``; ``None`` if
        ``snapshot_id`` is not current."""
        meta = self._snapshot
        if meta is None or meta.snapshot_id != snapshot_id or self._snapshot_fd is None:
            return None
        if offset < 0 or size < 0:
            raise InvalidRequest(f"bad chunk request: offset {offset}, size {size}")
        return os.pread(self._snapshot_fd, size, offset)

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Append a received chunk to ``receiving.part`` (offset 0 starts over)."""
        if offset == 0:
            if self._receiving is not None:
                self._receiving.discard()
                self._receiving = None
            self._receiving = Reception(self.snapshot_dir / RECEIVING, meta.snapshot_id, meta.size)
        receiving = self._receiving
        if (
            receiving is None
            or receiving.snapshot_id != meta.snapshot_id
            or receiving.written != offset
        ):
            raise InvalidRequest(
                f"chunk at offset {offset} of {meta.snapshot_id!r} is out of order"
            )
        if offset + len(data) > meta.size:
            raise InvalidRequest(
                f"chunk at offset {offset} of {meta.snapshot_id!r} ends past its size {meta.size}"
            )
        try:
            receiving.append(data)
        except OSError:
            receiving.discard()
            self._receiving = None
            raise

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Make the received snapshot current: its file renamed into place, then one
        transaction with the log, ``last_applied`` and a durable machine's state."""
        receiving = self._receiving
        if (
            receiving is None
            or receiving.snapshot_id != meta.snapshot_id
            or receiving.written != meta.size
        ):
            raise InvalidRequest(f"snapshot {meta.snapshot_id!r} was not fully received")
        self._receiving = None
        checksum = receiving.finish()
        name = self._new_name(meta.last_included)
        os.rename(receiving.path, self._snapshot_path(name))
        sync_dir(self.snapshot_dir)
        if not self.durable_state_machine:
            # The in-memory machine first: if the commit below fails the node stops, and
            # a restart rebuilds the machine from the snapshot the database points to.
            self.state_machine.restore(self._snapshot_path(name).read_bytes())
        self._switch_snapshot(meta, name, checksum, applied=meta.last_included.index)

    # --- dumps and shutdown ----------------------------------------------------------

    def commit_stats(self) -> CommitStats:
        """A copy of the transaction counters (ask it through ``ref.proxy()``)."""
        return attrs.evolve(self.stats)

    def dump_storage(self) -> StorageDump:
        """The store's contents, read from the database."""
        start = self._snapshot_index + 1
        log = self.get_log_entries(start, self._last_log_id.index + 1)
        return StorageDump(
            self._hard_state, log, self._last_applied, self.dump_state_machine(), self._snapshot
        )

    def on_stop(self) -> None:
        """Commit and answer what is pending, then close the database and unlock."""
        if self._failed is None:
            self._flush()
        else:
            self._fail(self._failed)
        super().on_stop()
        self._close()

    def on_failure(self, *exc_info: Any) -> None:
        """An unexpected failure: answer what waits with the error, close, unlock."""
        self._fail(exc_info[1] or StorageError("the storage actor failed"))
        self._close()

    def _close(self) -> None:
        self._closing.set()
        builder = self._builder
        if builder is not None and builder is not threading.current_thread():
            builder.join(timeout=10)
        if self._receiving is not None:
            self._receiving.discard()
            self._receiving = None
        if self._snapshot_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._snapshot_fd)
            self._snapshot_fd = None
        if self._db is not None:
            self._rollback()
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _is_request_error(error: BaseException) -> bool:
    """A request the store refused before changing anything (e.g. a gap in the log), as
    opposed to a failure while writing or applying, which leaves the store failed."""
    return isinstance(error, (InvalidRequest, UnknownMessage, SnapshotsUnsupported))


def _deliver(reply: Reply, value: Any) -> None:
    try:
        reply.set(value)
    except Exception:
        logger.warning("an answer could not be delivered", exc_info=True)


def _deliver_error(reply: Reply, error: BaseException) -> None:
    try:
        reply.set_exception(error)
    except Exception:
        logger.warning("an answer could not be delivered", exc_info=True)


__all__ = [
    "DURABILITY",
    "SCHEMA_VERSION",
    "CommitStats",
    "SqliteKeyValueStateMachine",
    "SqliteStateMachine",
    "SqliteStore",
]
