"""``MemLog``: what a node's storage holds, in memory, and the rules for changing it.

One pure model (no actor, no I/O, no clock) of a node's durable storage: the hard state,
the log after the current snapshot, the snapshot's metadata and bytes, a snapshot being
received, and the index the state machine applied through. It has one method per storage
operation, so each in-memory storage decision (where an entry goes, what a delete or a
compaction drops, whether an install keeps the log after the snapshot) is made here once.

:class:`~pykka_raft.storage.memory.MemStore` keeps its data in it (through
:class:`~pykka_raft.storage.memory.MemStoreData`), and so do the test harnesses that run
:class:`~pykka_raft.driver.NodeDriver` without actors (the seeded simulation and the
scenario harness): they check their oracles first (a committed entry is never deleted,
writes extend the log, applies come in order from the durable log) and then call the
model. The state machine is not part of it: its owner applies entries and restores
snapshots, and records the result here (:meth:`MemLog.mark_applied`, :meth:`MemLog.install`).

A request that makes no sense raises :class:`~pykka_raft.storage.messages.InvalidRequest`
(a ``ValueError``) before anything changes.
"""

from __future__ import annotations

import attrs

from pykka_raft.messages import Entry, HardState, InitialState, SnapshotMeta
from pykka_raft.storage.messages import InvalidRequest
from pykka_raft.types import LogId, LogIndex, Term

__all__ = ["MemLog"]


@attrs.define(kw_only=True)
class MemLog:
    """A node's storage in memory.

    ``log`` holds the entries after the current snapshot (``snapshot_meta``, whose bytes
    are ``snapshot_data``), so the entry at index ``i`` is ``log[i - offset - 1]``.
    ``receiving`` is a snapshot being received, kept apart from the current one: its meta
    and the bytes so far. ``last_applied`` is the index the state machine applied through.
    """

    hard_state: HardState = attrs.field(factory=HardState)
    log: list[Entry] = attrs.field(factory=list)
    last_applied: LogIndex = 0
    snapshot_meta: SnapshotMeta | None = None
    snapshot_data: bytes = b""
    receiving: tuple[SnapshotMeta, bytearray] | None = None

    # --- reading ---------------------------------------------------------------------

    @property
    def offset(self) -> LogIndex:
        """The index the snapshot covers through (0 without a snapshot)."""
        return self.snapshot_meta.last_included.index if self.snapshot_meta else 0

    @property
    def offset_term(self) -> Term:
        """The term of the snapshot's last entry (0 without a snapshot)."""
        return self.snapshot_meta.last_included.term if self.snapshot_meta else 0

    @property
    def last_index(self) -> LogIndex:
        """The index of the last entry, counting the snapshot's."""
        return self.offset + len(self.log)

    @property
    def last_log_id(self) -> LogId:
        """The id of the last entry: the log's last, else the snapshot's, else ``(0, 0)``."""
        if self.log:
            return self.log[-1].log_id
        return self.snapshot_meta.last_included if self.snapshot_meta else LogId(0, 0)

    def entry(self, index: LogIndex) -> Entry | None:
        """The entry at ``index``, if the log holds it (not compacted, not past the end)."""
        pos = index - self.offset - 1
        return self.log[pos] if 0 <= pos < len(self.log) else None

    def holds(self, entry: Entry) -> bool:
        """The log holds ``entry``, or the snapshot covers its index (a snapshot covers
        committed entries only, so it holds the same entry there)."""
        return entry.index <= self.offset or self.entry(entry.index) == entry

    def continues(self, last: LogId) -> bool:
        """Whether the log holds the entry ``last`` with its term, so that the entries after
        it continue a snapshot through ``last`` (Log Matching, §5.3) and may stay (§7)."""
        held = self.entry(last.index)
        return held is not None and held.term == last.term

    def initial_state(self) -> InitialState:
        """What a starting node reads first (``GetInitialState``)."""
        return InitialState(
            self.last_log_id, self.last_applied, self.hard_state, self.snapshot_meta
        )

    def entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """The entries in ``[start, stop)`` that the log holds (those after the snapshot)."""
        offset = self.offset
        return tuple(self.log[max(start - offset, 1) - 1 : max(stop - offset, 1) - 1])

    def snapshot_covering(self, index: LogIndex) -> SnapshotMeta | None:
        """The current snapshot if it covers ``index`` already: a snapshot built through
        ``index`` is then superseded and not stored."""
        meta = self.snapshot_meta
        return meta if meta is not None and meta.last_included.index >= index else None

    def snapshot_chunk(self, snapshot_id: str, offset: int, size: int) -> bytes | None:
        """Up to ``size`` bytes of the current snapshot at ``offset``; ``None`` if
        ``snapshot_id`` is not the current snapshot (it was replaced)."""
        meta = self.snapshot_meta
        if meta is None or meta.snapshot_id != snapshot_id:
            return None
        return self.snapshot_data[offset : offset + size]

    def received(self, meta: SnapshotMeta) -> bytes:
        """The bytes of snapshot ``meta``, fully received; else :class:`InvalidRequest`."""
        receiving = self.receiving
        if receiving is None or receiving[0] != meta or len(receiving[1]) != meta.size:
            raise InvalidRequest(f"snapshot {meta.snapshot_id!r} was not fully received")
        return bytes(receiving[1])

    # --- writing ---------------------------------------------------------------------

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state."""
        self.hard_state = hard_state

    def write(self, entries: tuple[Entry, ...] | list[Entry]) -> None:
        """Write each entry at its index; the log must stay contiguous.

        An entry the snapshot covers is skipped (it is committed, hence identical); one
        the log holds is replaced; one past the end must follow on. An entry that would
        leave a gap raises :class:`InvalidRequest`, and then nothing is written.
        """
        log, offset = self.log, self.offset
        first = offset + len(log) + 1
        if entries and all(e.index == i for i, e in enumerate(entries, first)):
            log.extend(entries)  # the common case: a run that continues the log
            return
        end = offset + len(log)
        for entry in entries:
            if entry.index > end + 1:
                raise InvalidRequest(f"entry {entry.index} would leave a gap after {end}")
            end = max(end, entry.index)
        for entry in entries:
            pos = entry.index - offset
            if pos <= 0:
                continue
            if pos <= len(log):
                log[pos - 1] = entry
            else:
                log.append(entry)

    def delete_from(self, index: LogIndex) -> None:
        """Delete every entry at ``index`` and after (the whole log after the snapshot if
        ``index`` is inside it)."""
        del self.log[max(index - self.offset, 1) - 1 :]

    def mark_applied(self, index: LogIndex) -> None:
        """The state machine applied every entry through ``index``."""
        self.last_applied = index

    def compact(self, meta: SnapshotMeta, data: bytes) -> bool:
        """Make the snapshot ``meta`` (bytes ``data``) current and drop the log through it.

        The log after it stays if it continues the snapshot (:meth:`continues`), as it
        does for a snapshot of this node's own applied entries; otherwise the whole log
        goes. Returns whether the log after it was kept.
        """
        return self._set_snapshot(meta, data, self.continues(meta.last_included))

    def write_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Append a received chunk of ``meta``, kept apart from the current snapshot.

        Offset 0 starts the snapshot over; any other chunk must follow on the bytes so far
        of the same snapshot, else :class:`InvalidRequest`.
        """
        receiving = (meta, bytearray()) if offset == 0 else self.receiving
        if receiving is None or receiving[0] != meta or len(receiving[1]) != offset:
            raise InvalidRequest(
                f"chunk at offset {offset} of {meta.snapshot_id!r} is out of order"
            )
        receiving[1].extend(data)
        self.receiving = receiving

    def install(self, meta: SnapshotMeta, keep_log: bool | None = None) -> bool:
        """Make the fully received snapshot ``meta`` current; the state machine holds
        exactly its state now (its owner restored it from :meth:`received`).

        ``keep_log`` says whether the log after the snapshot stays; ``None`` decides it
        here (:meth:`continues`). Returns whether it was kept.
        """
        data = self.received(meta)
        keep = self.continues(meta.last_included) if keep_log is None else keep_log
        self.receiving = None
        self.last_applied = meta.last_included.index
        return self._set_snapshot(meta, data, keep)

    def _set_snapshot(self, meta: SnapshotMeta, data: bytes, keep_log: bool) -> bool:
        if keep_log:
            del self.log[: meta.last_included.index - self.offset]
        else:
            self.log.clear()
        self.snapshot_meta, self.snapshot_data = meta, data
        return keep_log
