"""Opening a :class:`~pykka_raft.storage.sqlite.SqliteStore`'s directory: creating it,
or checking its identity, schema, log and snapshot file, and rebuilding the state machine.
It never starts empty on a directory that had data."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

import attrs

from pykka_raft.codec import decode, encode
from pykka_raft.errors import ApplicationError, DecodeError, StorageError
from pykka_raft.messages import HardState, SnapshotMeta
from pykka_raft.storage.files import file_checksum, sync_dir, write_atomically
from pykka_raft.storage.sqlite_kv import SqliteStateMachine
from pykka_raft.storage.sqlite_snapshots import SqliteSnapshots
from pykka_raft.storage.sqlite_txn import logger
from pykka_raft.types import LogId

SCHEMA_VERSION = 1

MARKER = "pykka_raft.node"


_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), hard_state BLOB NOT NULL, "
    "last_log_index INTEGER NOT NULL, last_applied INTEGER NOT NULL, snapshot_meta BLOB, "
    "snapshot_file TEXT, snapshot_checksum TEXT)",
    "CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, entry BLOB NOT NULL)",
)


class SqliteOpening(SqliteSnapshots):
    """Opening and recovery checks."""

    # --- opening and recovery --------------------------------------------------------

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
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                raise self._damaged(self.db_path, f"unexpected schema ({exc})") from exc
            raise
        except sqlite3.DatabaseError as exc:
            raise self._damaged(self.db_path, f"the database is corrupt ({exc})") from exc
        except DecodeError as exc:
            raise self._damaged(self.db_path, f"a stored record cannot be decoded ({exc})") from exc

    def _create(self, marker: Path) -> None:
        """A new directory: the schema and the identity, then the marker file."""
        db = self._db
        assert db is not None
        # Fsynced in "os" mode too: the marker written next is, and must not outlive it.
        with self._transaction(sync=True, always=True):
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
                with self._transaction(sync=True, always=True):  # the marker names it next
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
            if not isinstance(found, dict):
                raise self._damaged(marker, "the marker is not JSON with this node's id")
            if found.get("node_id") != self.node_id:
                why = f"the marker names node {found.get('node_id')!r}, the database node "
                raise self._damaged(marker, f"{why}{self.node_id}")
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
            recorded: SnapshotMeta = decode(meta_blob, SnapshotMeta)
            # Recorded before metas carried a digest: the file's checksum is the digest.
            digest = recorded.digest if recorded.digest is not None else checksum
            snapshot = attrs.evolve(recorded, digest=digest)
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
            self._attach_machine()
        else:
            self._rebuild_state_machine()

    def _attach_machine(self) -> None:
        """Attach the durable state machine; its tables recorded at an earlier open must
        all be there (an attach would create a missing one empty, with ``last_applied``
        claiming what it held was applied). Tables it adds are recorded."""
        db = self._db
        assert db is not None
        tables = self._machine_tables()
        row = db.execute("SELECT value FROM meta WHERE key = 'machine_tables'").fetchone()
        recorded = set(json.loads(row[0])) if row is not None else set()
        if recorded - tables:
            missing = ", ".join(sorted(recorded - tables))
            raise self._damaged(self.db_path, f"the state machine's tables are missing: {missing}")
        machine: SqliteStateMachine = self.state_machine  # type: ignore[assignment]
        with self._transaction(sync=True):
            machine.attach(db)
            now = self._machine_tables()
            if now != recorded:
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('machine_tables', ?)",
                    (json.dumps(sorted(now)),),
                )

    def _machine_tables(self) -> set[str]:
        """The tables in the database besides the store's own."""
        assert self._db is not None
        rows = self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows if not name.startswith("sqlite_")} - {
            "meta",
            "state",
            "log",
        }

    def _clean_snapshot_dir(self) -> None:
        """Remove what a crash left behind: unfinished builds and receptions, and files
        of snapshots that are no longer current."""
        for path in self.snapshot_dir.iterdir():
            if path.name != self._snapshot_file:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

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
                "node %s: state machine rebuilt from %sentries %s-%s",
                self.node_id,
                "the snapshot and " if self._snapshot_index else "",
                start,
                self._last_applied,
            )
