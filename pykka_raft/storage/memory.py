"""``MemStore``: the in-memory reference implementation of the storage contract."""

from __future__ import annotations

import itertools

import attrs

from pykka_raft.messages import Entry, HardState, InitialState, MembershipConfig, SnapshotMeta
from pykka_raft.statemachine import KeyValueStateMachine, StateMachine
from pykka_raft.storage.contract import DumpStorage, RaftStorage, StorageDump

__all__ = ["DumpStorage", "MemStore", "MemStoreData", "StorageDump"]
from pykka_raft.types import LogId, LogIndex


@attrs.define
class MemStoreData:
    """Everything a :class:`MemStore` holds.

    Keep the object and start a new ``MemStore(data=...)`` on it to model a node that
    restarts with what its storage had acknowledged (every handled message is "durable").

    ``log`` holds the entries after the current snapshot (``snapshot_meta``, whose data is
    ``snapshot_data``); ``receiving`` is a snapshot being received: its id and the bytes
    so far.
    """

    state_machine: StateMachine = attrs.field(factory=KeyValueStateMachine)
    hard_state: HardState = attrs.field(factory=HardState)
    log: list[Entry] = attrs.field(factory=list)
    last_applied: LogIndex = 0
    snapshot_meta: SnapshotMeta | None = None
    snapshot_data: bytes = b""
    receiving: tuple[str, bytearray] | None = None

    @property
    def offset(self) -> LogIndex:
        """The index the snapshot covers through (0 without a snapshot)."""
        return self.snapshot_meta.last_included.index if self.snapshot_meta else 0

    def entry(self, index: LogIndex) -> Entry | None:
        """The entry at ``index``, if the log holds it."""
        pos = index - self.offset - 1
        return self.log[pos] if 0 <= pos < len(self.log) else None


class MemStore(RaftStorage):
    """A storage actor that keeps the hard state, the log and the state machine in memory.

    It keeps the durability contract within one process: a message's effect is complete
    when its answer is sent. It survives a restart of the Raft node (pass the same
    :class:`MemStoreData`), not of the process.
    """

    def __init__(
        self, state_machine: StateMachine | None = None, data: MemStoreData | None = None
    ) -> None:
        if data is None:
            data = MemStoreData(state_machine or KeyValueStateMachine())
        super().__init__(data.state_machine)
        self.data = data

    _ids = itertools.count(1)

    def get_initial_state(self) -> InitialState:
        """Report the last log id, the hard state, the last applied index and snapshot."""
        data = self.data
        if data.log:
            last = data.log[-1].log_id
        else:
            last = data.snapshot_meta.last_included if data.snapshot_meta else LogId(0, 0)
        return InitialState(last, data.last_applied, data.hard_state, data.snapshot_meta)

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state."""
        self.data.hard_state = hard_state

    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """Entries in ``[start, stop)`` (those after the snapshot)."""
        offset = self.data.offset
        return tuple(self.data.log[max(start - offset, 1) - 1 : max(stop - offset, 1) - 1])

    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index (the log must stay contiguous)."""
        log, offset = self.data.log, self.data.offset
        if entries and entries[0].index == offset + len(log) + 1:
            log.extend(entries)  # the common case: they continue the log
            return
        for entry in entries:
            pos = entry.index - offset
            if pos <= 0:
                continue  # covered by the snapshot: committed, and identical
            if pos <= len(log):
                log[pos - 1] = entry
            elif pos == len(log) + 1:
                log.append(entry)
            else:
                raise ValueError(f"entry {entry.index} would leave a gap after {offset + len(log)}")

    def delete_logs_from(self, index: LogIndex) -> None:
        """Truncate the log before ``index``."""
        del self.data.log[max(index - self.data.offset, 1) - 1 :]

    def set_last_applied(self, index: LogIndex) -> None:
        """Record the last applied index."""
        self.data.last_applied = index

    def store_snapshot(
        self, last_included: LogId, membership: MembershipConfig, data: bytes
    ) -> SnapshotMeta:
        """Keep the snapshot and drop the log through it (unless a newer one is current)."""
        current = self.data.snapshot_meta
        if current is not None and current.last_included.index >= last_included.index:
            return current
        meta = SnapshotMeta(
            last_included, membership, f"{last_included.index}-{next(self._ids)}", len(data)
        )
        self._set_snapshot(meta, data)
        return meta

    def read_snapshot_chunk(self, snapshot_id: str, offset: int, size: int) -> bytes | None:
        """A slice of the current snapshot's data; ``None`` if it was replaced."""
        meta = self.data.snapshot_meta
        if meta is None or meta.snapshot_id != snapshot_id:
            return None
        return self.data.snapshot_data[offset : offset + size]

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Append a chunk to the snapshot being received (offset 0 starts over)."""
        if offset == 0:
            self.data.receiving = (meta.snapshot_id, bytearray())
        receiving = self.data.receiving
        if receiving is None or receiving[0] != meta.snapshot_id or len(receiving[1]) != offset:
            raise ValueError(f"chunk at offset {offset} of {meta.snapshot_id!r} is out of order")
        receiving[1].extend(data)

    def install_snapshot(self, meta: SnapshotMeta) -> None:
        """Restore the state machine from the received snapshot and make it current."""
        receiving = self.data.receiving
        if receiving is None or receiving[0] != meta.snapshot_id or len(receiving[1]) != meta.size:
            raise ValueError(f"snapshot {meta.snapshot_id!r} was not fully received")
        data = bytes(receiving[1])
        self.state_machine.restore(data)
        self.data.receiving = None
        self._set_snapshot(meta, data)
        self.data.last_applied = meta.last_included.index

    def _set_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        last = meta.last_included
        kept = self.data.entry(last.index)
        if kept is not None and kept.term == last.term:
            del self.data.log[: last.index - self.data.offset]
        else:
            self.data.log.clear()  # the log does not continue the snapshot
        self.data.snapshot_meta, self.data.snapshot_data = meta, data

    def dump_storage(self) -> StorageDump:
        """Answer :class:`DumpStorage` straight from :class:`MemStoreData`."""
        return StorageDump(
            self.data.hard_state,
            tuple(self.data.log),
            self.data.last_applied,
            self.dump_state_machine(),
            self.data.snapshot_meta,
        )
