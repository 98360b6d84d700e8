"""Durable files for storages on disk: directory syncs, atomic writes, a lock file, and
snapshot files written with their checksum.

A file is durable only when its data **and** the directory entry that names it reached
the disk: :func:`sync_dir` after creating, renaming or removing files. Every helper here
raises ``OSError`` on failure; a storage lets that stop its node (it cannot know what was
written).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from pykka_raft.errors import StorageError
from pykka_raft.messages import SnapshotMeta

CHECKSUM = "sha256"
"""The digest recorded for every snapshot file (hex), checked when a store opens."""


def sync_dir(path: str | os.PathLike[str]) -> None:
    """Make the directory's entries (new, renamed and removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temporary file, fsynced, renamed over it, and the
    directory fsynced. After a crash ``path`` holds the old content or the new, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


def file_checksum(path: Path, block: int = 1 << 20) -> tuple[int, str]:
    """``(size, hex digest)`` of a file, read in blocks (never whole in memory)."""
    digest = hashlib.new(CHECKSUM)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/LOCK`` for as long as a store is open.

    The kernel drops the lock when the process ends, however it ends (SIGKILL included),
    so a stale lock file never blocks a restart. Two stores on one directory, in one
    process or in two, are refused: each open of the file is a separate lock holder.
    """

    NAME = "LOCK"

    def __init__(self, directory: Path) -> None:
        self.path = directory / self.NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 64, 0).decode().strip()
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f"process {holder}" if holder else "another process"
            raise StorageError(
                f"{directory} is in use: {who} holds the lock {self.path}. A data directory "
                "serves one node in one process at a time; stop the other store, or give "
                "this one its own directory"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # releases the lock: a failed open must not keep it
            raise
        self._fd: int | None = fd

    def release(self) -> None:
        """Unlock (closing the file releases the ``flock``). Safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class SnapshotWriter:
    """Writes a new snapshot file under a temporary name, counting its size and checksum.

    ``write`` accepts bytes as a binary file would, so a state machine can stream its state
    into it; :meth:`finish` fsyncs the data and returns ``(size, checksum)``. The caller
    renames the file into place and syncs the directory.
    """

    def __init__(self, path: Path, cancelled: Any = None) -> None:
        self.path = path
        self.size = 0
        self._digest = hashlib.new(CHECKSUM)
        self._file = open(path, "wb")  # noqa: SIM115 (closed by finish or abort)
        self._cancelled = cancelled

    def write(self, data: bytes) -> int:
        """Append ``data``; raise if the store is closing (the build is abandoned)."""
        if self._cancelled is not None and self._cancelled.is_set():
            raise OSError(errno.ECANCELED, "the storage is closing: snapshot abandoned")
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)
        return len(data)

    def finish(self) -> tuple[int, str]:
        """Flush and fsync the data; return ``(size, hex checksum)``."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.size, self._digest.hexdigest()

    def abort(self) -> None:
        """Close and remove the unfinished file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


class Reception:
    """A snapshot being received: chunks appended to a file apart from the current one.

    Not fsynced per chunk: a reception does not survive a restart of the node (its Raft
    core forgets it too and the leader starts over at offset 0), so only the install needs
    the data on disk, and :meth:`finish` syncs it then.
    """

    def __init__(self, path: Path, meta: SnapshotMeta) -> None:
        self.path = path
        self.meta = meta  # a chunk continues it only if its meta is equal in every field
        self.size = meta.size
        self.written = 0
        self._digest = hashlib.new(CHECKSUM)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end of what was received."""
        assert self._fd is not None
        view = memoryview(data)
        while view:
            done = os.write(self._fd, view)
            view = view[done:]
        self._digest.update(data)
        self.written += len(data)

    def finish(self) -> str:
        """Fsync the received data and close the file; return its checksum."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self._digest.hexdigest()

    def discard(self) -> None:
        """Close and remove the file (a reception abandoned or replaced)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink()
