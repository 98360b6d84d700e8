"""The state of a :class:`~pykka_raft.storage.sqlite.SqliteStore` and its transactions:
what the database holds, kept in memory, and the commits at the level each change needs
(an fsync for what the node acknowledges, none for applies); a failure leaves the store
failed, refusing everything after."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

import attrs

from pykka_raft.calls import Reply, deliver_error
from pykka_raft.errors import SnapshotsUnsupported, StorageError, UnknownMessage
from pykka_raft.messages import HardState, SnapshotMeta
from pykka_raft.statemachine import StateMachine
from pykka_raft.storage.contract import InvalidRequest, RaftStorage
from pykka_raft.storage.files import DirectoryLock, Reception
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine, SqliteStateMachine
from pykka_raft.types import LogId, LogIndex, NodeId

logger = logging.getLogger("pykka_raft.storage.sqlite")
"""The logger of every part of :class:`~pykka_raft.storage.sqlite.SqliteStore`."""

DATABASE = "raft.sqlite3"

SNAPSHOTS = "snapshots"

DURABILITY = ("fsync", "os")


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


_ADVICE = (
    "The node must not start on damaged data: it may have voted or acknowledged entries "
    "that are gone. Restore the directory from a backup; or remove this node from the "
    "cluster (ProposeConfigChange on the leader), delete the directory and add the node "
    "back as a new member"
)
"""What a refusal of damaged data says to do (every such :class:`StorageError` ends so)."""


class SqliteTransactions(RaftStorage):
    """The store's state and transactions (the base of
    :class:`~pykka_raft.storage.sqlite.SqliteStore`, which documents the arguments)."""

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
        # The current file's digest, by the offset the next chunk read in order starts at.
        self._chunk_digests: dict[int, Any] = {}
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

    def _damaged(self, path: Path, what: str) -> StorageError:
        """The error for damaged data at ``path``: what is wrong, and what to do."""
        return StorageError(f"{path}: {what}. {_ADVICE}")

    @property
    def _snapshot_index(self) -> LogIndex:
        return self._snapshot.last_included.index if self._snapshot else 0

    # --- transactions -----------------------------------------------------------------

    def _set_sync(self, level: str) -> None:
        if self._sync != level:
            assert self._db is not None
            self._db.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    def _begin(self, sync: bool, always: bool = False) -> None:
        """Make sure a transaction is open; ``sync`` if its commit must be fsynced (in
        ``fsync`` mode), ``always`` if in ``os`` mode too.

        Applying entries needs no fsync (a lost apply is replayed from the log, which was
        durable before the entries were applied), so a transaction of applies only commits
        with ``synchronous=NORMAL``; a durable write that joins it starts a new one.
        """
        level = "FULL" if always or (sync and self.durability == "fsync") else "NORMAL"
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
    def _transaction(self, sync: bool, always: bool = False) -> Any:
        """One transaction for a block (committed at its end, rolled back on error);
        ``sync`` and ``always`` as for :meth:`_begin`."""
        self._begin(sync, always)
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

    def _fail(self, error: BaseException, waiting: list[tuple[Reply, Any]] | None = None) -> None:
        """An I/O failure or a broken state machine: nothing more is acknowledged."""
        if self._failed is None:
            logger.error("node %s: storage failed: %r", self.node_id, error)
            self._failed = error
        self._rollback()
        for reply, _ in [*self._deferred, *(waiting or ())]:
            deliver_error(reply, self._failure(error))
        self._deferred = []

    def _failure(self, error: BaseException | None = None) -> StorageError:
        cause = error or self._failed
        if isinstance(cause, StorageError):
            return cause
        return StorageError(f"{self.directory}: the storage failed: {cause!r}")


def _is_request_error(error: BaseException) -> bool:
    """A request the store refused before changing anything (e.g. a gap in the log), as
    opposed to a failure while writing or applying, which leaves the store failed."""
    return isinstance(error, (InvalidRequest, UnknownMessage, SnapshotsUnsupported))
