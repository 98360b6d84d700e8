"""Snapshots of a :class:`~pykka_raft.storage.sqlite.SqliteStore`: files written on a
background thread and renamed into place, chunks read and received, installs in one
transaction with the log and ``last_applied``."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import uuid
from pathlib import Path
from typing import IO, Any

import attrs

from pykka_raft.calls import Reply, deliver, deliver_error
from pykka_raft.codec import encode
from pykka_raft.errors import SnapshotsUnsupported
from pykka_raft.messages import MembershipConfig, SnapshotMeta
from pykka_raft.storage.contract import CreateSnapshot, InvalidRequest
from pykka_raft.storage.files import CHECKSUM, Reception, SnapshotWriter, sync_dir
from pykka_raft.storage.sqlite_kv import SqliteStateMachine
from pykka_raft.storage.sqlite_log import SqliteLog
from pykka_raft.types import LogId, LogIndex

RECEIVING = "receiving.part"
READS_FOLLOWED = 8
"""Transfers of the current snapshot whose chunks are checked against its checksum at
once (one per follower it is being sent to)."""


@attrs.frozen
class _SnapshotFileBuilt:
    """Internal: a background thread finished writing a snapshot file (or failed)."""

    request: CreateSnapshot
    reply: Reply
    path: Path
    size: int
    checksum: str
    error: BaseException | None


class SqliteSnapshots(SqliteLog):
    """The snapshot methods."""

    build_results = (_SnapshotFileBuilt,)

    def _snapshot_path(self, name: str | None = None) -> Path:
        name = name or self._snapshot_file
        assert name is not None
        return self.snapshot_dir / name

    # --- snapshots -------------------------------------------------------------------

    _names = itertools.count(1)

    def _new_name(self, last: LogId) -> str:
        return f"{last.index}-{last.term}-{uuid.uuid4().hex[:12]}.snap"

    def _build_snapshot_file(self, request: CreateSnapshot, reply: Reply) -> None:
        """Capture the state now; write the file on a background thread."""
        current = self._snapshot
        if current is not None and current.last_included.index >= request.last_included.index:
            deliver(reply, current)
            return
        try:
            sink = self._capture()
        except Exception as exc:
            deliver_error(reply, exc)
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
            self.built(_SnapshotFileBuilt(request, reply, path, size, checksum, error))

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
            deliver_error(built.reply, built.error)
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
            deliver_error(built.reply, self._failure(exc))
            return
        deliver(built.reply, meta)

    def _store_snapshot_file(
        self, last: LogId, membership: MembershipConfig, path: Path, size: int, checksum: str
    ) -> SnapshotMeta:
        """Make a built file the current snapshot and drop the log through it."""
        current = self._snapshot
        if current is not None and current.last_included.index >= last.index:
            path.unlink()
            return current  # a newer snapshot was installed meanwhile
        name = self._new_name(last)
        meta = SnapshotMeta(last, membership, name.removesuffix(".snap"), size, checksum)
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
        self,
        meta: SnapshotMeta,
        name: str,
        checksum: str,
        applied: LogIndex | None,
        keep_log: bool | None = None,
    ) -> None:
        """One transaction: the new snapshot, the log it leaves (the entries after it if
        ``keep_log``; ``None``: if the log continues the snapshot), ``last_applied`` (for
        an install) and, for a durable state machine, its restored state."""
        db = self._db
        assert db is not None
        last = meta.last_included
        # The suffix is kept only if the log holds the snapshot's last entry (whatever the
        # caller says: a log that does not continue the snapshot would leave a gap).
        row = db.execute("SELECT term FROM log WHERE idx = ?", (last.index,)).fetchone()
        keeps_suffix = keep_log is not False and row is not None and row[0] == last.term
        # Fsynced in "os" mode too: the old snapshot's file is removed right after, and a
        # switch lost to a power cut would leave the database naming that removed file.
        with self._transaction(sync=True, always=True):
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
        # Open the new file first: a failure leaves no closed descriptor number behind,
        # which _close would close again after another file of the process took it.
        fd, self._snapshot_fd = self._snapshot_fd, os.open(self._snapshot_path(name), os.O_RDONLY)
        self._chunk_digests.clear()
        if fd is not None:
            os.close(fd)
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
        data = os.pread(self._snapshot_fd, size, offset)
        self._follow_digest(meta, offset, data)
        return data

    def _follow_digest(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Hash chunks read in order from offset 0, and check the file against its
        recorded checksum before its last chunk leaves: a file damaged since the store
        opened it (checked then) is never sent whole, and a receiver never installs it.

        Raises:
            StorageError: the file does not match (the node stops, as on any storage
                failure; reopening the directory refuses the file too).
        """
        digests = self._chunk_digests
        digest = hashlib.new(CHECKSUM) if offset == 0 else digests.pop(offset, None)
        if digest is None:  # a transfer resumed, or one of many: not followed
            return
        digest.update(data)
        end = offset + len(data)
        if end < meta.size:
            if len(digests) < READS_FOLLOWED:
                digests[end] = digest
        elif digest.hexdigest() != self._snapshot_checksum:
            raise self._damaged(
                self._snapshot_path(),
                "the snapshot file, read to be sent, does not match its checksum (it was "
                "damaged after the store opened it)",
            )

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Append a received chunk to ``receiving.part`` (offset 0 starts over)."""
        if offset == 0:
            if self._receiving is not None:
                self._receiving.discard()
                self._receiving = None
            self._receiving = Reception(self.snapshot_dir / RECEIVING, meta)
        receiving = self._receiving
        if receiving is None or receiving.meta != meta or receiving.written != offset:
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

    def install_snapshot(self, meta: SnapshotMeta, keep_log: bool | None = None) -> None:
        """Make the received snapshot current: its file renamed into place, then one
        transaction with the log, ``last_applied`` and a durable machine's state."""
        receiving = self._receiving
        if receiving is None or receiving.meta != meta or receiving.written != meta.size:
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
        self._switch_snapshot(
            meta, name, checksum, applied=meta.last_included.index, keep_log=keep_log
        )
