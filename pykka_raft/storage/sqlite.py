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

The store is built in layers, one concept each (every layer extends the one before):
:mod:`~pykka_raft.storage.sqlite_txn` (state and transactions),
:mod:`~pykka_raft.storage.sqlite_log` (the log, hard state and applies),
:mod:`~pykka_raft.storage.sqlite_snapshots`, :mod:`~pykka_raft.storage.sqlite_open`
(opening and recovery checks) and :mod:`~pykka_raft.storage.sqlite_commit` (group commit);
this module adds opening, dumps and shutdown.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from typing import Any

import attrs

from pykka_raft.errors import StorageError
from pykka_raft.statemachine import StateMachine
from pykka_raft.storage.contract import StorageDump
from pykka_raft.storage.files import DirectoryLock
from pykka_raft.storage.sqlite_commit import GROUPABLE, SqliteGroupCommit
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine, SqliteStateMachine
from pykka_raft.storage.sqlite_open import MARKER, SCHEMA_VERSION
from pykka_raft.storage.sqlite_snapshots import RECEIVING
from pykka_raft.storage.sqlite_txn import DATABASE, DURABILITY, SNAPSHOTS, CommitStats
from pykka_raft.types import NodeId


class SqliteStore(SqliteGroupCommit):
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
        super().__init__(
            directory,
            node_id,
            state_machine,
            durability=durability,
            cluster_id=cluster_id,
            group_commit=group_commit,
            max_batch=max_batch,
        )
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
        self.answer_queued()
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


__all__ = [
    "DATABASE",
    "DURABILITY",
    "GROUPABLE",
    "MARKER",
    "RECEIVING",
    "SCHEMA_VERSION",
    "SNAPSHOTS",
    "CommitStats",
    "SqliteKeyValueStateMachine",
    "SqliteStateMachine",
    "SqliteStore",
]
