"""``MemStore``: the in-memory reference implementation of the storage contract."""

from __future__ import annotations

import hashlib
import uuid

import attrs

from pykka_raft.messages import Entry, HardState, InitialState, MembershipConfig, SnapshotMeta
from pykka_raft.statemachine import KeyValueStateMachine, StateMachine
from pykka_raft.storage.contract import DumpStorage, RaftStorage, StorageDump
from pykka_raft.storage.memlog import MemLog

__all__ = ["DumpStorage", "MemStore", "MemStoreData", "StorageDump"]
from pykka_raft.types import LogId, LogIndex


@attrs.define
class MemStoreData(MemLog):
    """Everything a :class:`MemStore` holds: its state machine and a
    :class:`~pykka_raft.storage.memlog.MemLog` (the hard state, the log after the current
    snapshot ``snapshot_meta`` whose data is ``snapshot_data``, ``last_applied``, and
    ``receiving``: a snapshot being received, its meta and the bytes so far).

    Keep the object and start a new ``MemStore(data=...)`` on it to model a node that
    restarts with what its storage had acknowledged (every handled message is "durable").
    The fields of the log are keyword-only: ``MemStoreData(machine, hard_state=...)``.
    """

    state_machine: StateMachine = attrs.field(factory=KeyValueStateMachine)


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
        elif not isinstance(data, MemStoreData):
            raise TypeError(f"data must be a MemStoreData, got {type(data).__name__} {data!r:.80}")
        super().__init__(data.state_machine)
        self.data = data

    def get_initial_state(self) -> InitialState:
        """Report the last log id, the hard state, the last applied index and snapshot."""
        return self.data.initial_state()

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state."""
        self.data.save_hard_state(hard_state)

    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """Entries in ``[start, stop)`` (those after the snapshot)."""
        return self.data.entries(start, stop)

    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index (the log must stay contiguous)."""
        self.data.write(entries)

    def delete_logs_from(self, index: LogIndex) -> None:
        """Truncate the log before ``index``."""
        self.data.delete_from(index)

    def set_last_applied(self, index: LogIndex) -> None:
        """Record the last applied index."""
        self.data.mark_applied(index)

    def store_snapshot(
        self, last_included: LogId, membership: MembershipConfig, data: bytes
    ) -> SnapshotMeta:
        """Keep the snapshot and drop the log through it (unless a newer one is current)."""
        current = self.data.snapshot_covering(last_included.index)
        if current is not None:
            return current
        meta = SnapshotMeta(
            # Unique across processes too: a receiver resumes a transfer by the meta, and
            # a counter per process would give two nodes the same ids.
            last_included,
            membership,
            f"{last_included.index}-{uuid.uuid4().hex}",
            len(data),
            hashlib.sha256(data).hexdigest(),
        )
        self.data.compact(meta, data)
        return meta

    def read_snapshot_chunk(self, snapshot_id: str, offset: int, size: int) -> bytes | None:
        """A slice of the current snapshot's data; ``None`` if it was replaced."""
        return self.data.snapshot_chunk(snapshot_id, offset, size)

    def write_snapshot_chunk(self, meta: SnapshotMeta, offset: int, data: bytes) -> None:
        """Append a chunk to the snapshot being received (offset 0 starts over)."""
        self.data.write_chunk(meta, offset, data)

    def install_snapshot(self, meta: SnapshotMeta, keep_log: bool | None = None) -> None:
        """Restore the state machine from the received snapshot and make it current,
        keeping the log after it as the node decided (``keep_log``)."""
        self.state_machine.restore(self.data.received(meta))
        self.data.install(meta, keep_log)

    def dump_storage(self) -> StorageDump:
        """Answer :class:`DumpStorage` straight from :class:`MemStoreData`."""
        return StorageDump(
            self.data.hard_state,
            tuple(self.data.log),
            self.data.last_applied,
            self.dump_state_machine(),
            self.data.snapshot_meta,
        )
