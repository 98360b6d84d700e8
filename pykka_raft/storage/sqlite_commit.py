"""Group commit for a :class:`~pykka_raft.storage.sqlite.SqliteStore`: consecutive
queued writes share one transaction, and every call in it is answered after its commit;
anything else first commits and answers what is pending, then runs on its own."""

from __future__ import annotations

import contextlib
from typing import Any

import attrs

from pykka_raft.calls import Call, Reply, answer, deliver, deliver_error
from pykka_raft.errors import StorageError
from pykka_raft.storage.contract import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    ReplicateToLog,
    SaveHardState,
)
from pykka_raft.storage.sqlite_open import SqliteOpening
from pykka_raft.storage.sqlite_snapshots import _SnapshotFileBuilt
from pykka_raft.storage.sqlite_txn import _is_request_error

GROUPABLE = (SaveHardState, AppendEntryToLog, ReplicateToLog, DeleteLogsFrom, ApplyToStateMachine)
"""Calls whose transactions may share one commit (group commit)."""


@attrs.frozen
class _Flush:
    """Internal: commit the open batch. Told to itself when a batch starts, so it arrives
    behind every message queued then: those may join the batch, and the batch is committed
    even if none of them is a storage message (a proxy call, for instance)."""


class SqliteGroupCommit(SqliteOpening):
    """The store's message handling, with group commit."""

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
            deliver(reply, value)

    def _flushed(self) -> bool:
        """:meth:`_flush`; whether the store is still sound after it."""
        self._flush()
        return self._failed is None

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
                deliver_error(message.reply, refusal)
                return None
            if isinstance(message, _Flush):
                self._flush_told = False
                return None
            if isinstance(message, _SnapshotFileBuilt):
                deliver_error(message.reply, refusal)
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
        if not self._flushed():  # the commit just failed: refuse this message too
            return self.receive(message)
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
            deliver_error(reply, exc)
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
