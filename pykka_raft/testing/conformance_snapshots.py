"""The snapshot part of the storage conformance suite: create, read, receive, install."""

from __future__ import annotations

import hashlib

import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types with the codec)
from pykka_raft.messages import Entry, HardState, InitialState, SnapshotMeta
from pykka_raft.storage.contract import (
    ApplyToStateMachine,
    CreateSnapshot,
    GetLogEntries,
    InstallSnapshot,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    WriteSnapshotChunk,
)
from pykka_raft.testing.conformance_kit import (
    MEMBERS,
    ConformanceHarness,
    Store,
    blank,
    config,
    model_state,
    puts,
)
from pykka_raft.types import LogId


class SnapshotConformance(ConformanceHarness):
    """The tests of ``CreateSnapshot``, ``ReadSnapshotChunk``, ``WriteSnapshotChunk`` and
    ``InstallSnapshot`` (skipped for a storage with ``supports_snapshots = False``)."""

    def _compacted(self, store: Store, last: int = 10, at: int = 6) -> SnapshotMeta:
        """Entries 1..last, applied through ``at`` and compacted there (through a Call,
        as a node asks)."""
        entries = (config(1, 1, MEMBERS), *puts(1, 2, last))
        store.ask(ReplicateToLog(entries))
        store.ask(ApplyToStateMachine(entries[:at]))
        meta: SnapshotMeta = store.call(CreateSnapshot(LogId(1, at), MEMBERS)).get(
            timeout=self.timeout
        )
        return meta

    def test_create_snapshot_keeps_the_log_after_it(self) -> None:
        """``CreateSnapshot`` answers the new snapshot's meta and drops the log through
        it; the entries after it stay, and a restart reports the snapshot."""
        self._need_snapshots()
        store = self.store()
        meta = self._compacted(store)
        assert (meta.last_included, meta.membership) == (LogId(1, 6), MEMBERS)
        assert meta.size > 0
        assert store.ask(GetLogEntries(1, 11)) == puts(1, 7, 10)
        initial = store.initial()
        assert (initial.snapshot, initial.last_log_id) == (meta, LogId(1, 10))
        store.restart()
        initial = store.initial()
        assert (initial.snapshot, initial.last_log_id) == (meta, LogId(1, 10))
        assert initial.last_applied >= 6
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 10))
        assert store.dump().state_machine == model_state(entries[: initial.last_applied])

    def test_read_snapshot_chunks_and_a_replaced_snapshot(self) -> None:
        """Chunks at any offset read the snapshot's bytes; a snapshot replaced by a newer
        one reads as ``None``; an older request answers the current snapshot. A digest,
        if the storage gives one, is the SHA-256 of those bytes (a receiver refuses
        bytes that do not match it)."""
        self._need_snapshots()
        store = self.store()
        first = self._compacted(store, last=12, at=6)
        data = store.snapshot_bytes(first, chunk=7)
        assert len(data) == first.size
        assert first.digest in (None, hashlib.sha256(data).hexdigest()), "wrong digest"
        assert store.snapshot_bytes(first, chunk=first.size) == data
        assert store.ask(ReadSnapshotChunk("no such snapshot", 0, 10)) is None
        entries = puts(1, 2, 12)
        store.ask(ApplyToStateMachine(entries[5:9]))
        second = store.call(CreateSnapshot(LogId(1, 10), MEMBERS)).get(timeout=self.timeout)
        assert second.snapshot_id != first.snapshot_id
        assert store.ask(ReadSnapshotChunk(first.snapshot_id, 0, 10)) is None
        assert len(store.snapshot_bytes(second)) == second.size
        older = store.call(CreateSnapshot(LogId(1, 8), MEMBERS)).get(timeout=self.timeout)
        assert older == second

    def test_writes_go_on_while_a_snapshot_is_built(self) -> None:
        """Messages sent after ``CreateSnapshot`` are handled (the answer to the snapshot
        may come later), and the snapshot holds the state at its own index."""
        self._need_snapshots()
        store = self.store()
        entries = puts(1, 1, 30)
        store.ask(ReplicateToLog(entries[:20]))
        store.ask(ApplyToStateMachine(entries[:12]))
        snapshot = store.call(CreateSnapshot(LogId(1, 12), MEMBERS))
        later = [
            store.call(ReplicateToLog(entries[20:])),
            store.call(ApplyToStateMachine(entries[12:])),
        ]
        for future in later:
            future.get(timeout=self.timeout)
        meta = snapshot.get(timeout=self.timeout)
        assert meta.last_included == LogId(1, 12)
        target = self.store()
        target.receive(meta, store.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.dump().state_machine == model_state(entries[:12])

    def test_install_a_snapshot_received_in_chunks(self) -> None:
        """A snapshot received chunk by chunk and installed replaces the state machine,
        sets ``last_applied`` to its index and drops a log that does not continue it;
        all of it survives a restart."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        data = source.snapshot_bytes(meta)
        target = self.store()
        target.ask(SaveHardState(HardState(2, 1, MEMBERS)))
        target.ask(ReplicateToLog((blank(1, 1), *puts(1, 2, 4, prefix="old"))))
        target.receive(meta, data, chunk=5)
        assert target.initial().snapshot is None  # received, not installed yet
        target.call(InstallSnapshot(meta)).get(timeout=self.timeout)
        expected = (meta, LogId(1, 6), 6)
        initial = target.initial()
        assert (initial.snapshot, initial.last_log_id, initial.last_applied) == expected
        assert target.ask(GetLogEntries(1, 10)) == ()
        assert target.dump().state_machine == source.dump().state_machine
        assert target.snapshot_bytes(meta) == data  # it can send it on, under the same id
        target.restart()
        initial = target.initial()
        assert (initial.snapshot, initial.last_log_id, initial.hard_state) == (
            meta,
            LogId(1, 6),
            HardState(2, 1, MEMBERS),
        )
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 10))
        assert target.dump().state_machine == model_state(entries[: initial.last_applied])
        target.ask(ReplicateToLog(puts(2, 7, 8)))  # the log continues after the snapshot
        assert target.log() == puts(2, 7, 8)

    def test_install_keeps_the_log_suffix_that_continues_the_snapshot(self) -> None:
        """If the log holds the snapshot's last entry with the same term, the entries
        after it are kept."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        target = self.store()
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 9))
        target.ask(ReplicateToLog(entries))
        target.ask(ApplyToStateMachine(entries[:2]))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.log() == entries[6:]
        assert target.initial().last_log_id == LogId(1, 9)
        assert target.initial().last_applied == 6
        target.restart()
        assert target.log() == entries[6:]

    def test_install_drops_a_log_whose_entry_at_the_snapshot_has_another_term(self) -> None:
        """A log that holds another term at the snapshot's index is dropped whole."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        target = self.store()
        target.ask(ReplicateToLog(puts(2, 1, 9)))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        assert target.log() == ()
        assert target.initial().last_log_id == LogId(1, 6)

    def _received_over(self, log: tuple[Entry, ...]) -> tuple[SnapshotMeta, Store]:
        """A snapshot through (1, 6), received by a new store whose log is ``log``."""
        source = self.store()
        meta = self._compacted(source)
        target = self.store()
        target.ask(ReplicateToLog(log))
        target.receive(meta, source.snapshot_bytes(meta))
        return meta, target

    def test_install_follows_the_node_s_keep_log(self) -> None:
        """The node says whether the log stays (``InstallSnapshot(meta, keep_log)``):
        ``False`` drops the whole log (the node saw another term at the snapshot's index),
        ``True`` keeps the entries after the snapshot, also after a restart."""
        self._need_snapshots()
        meta, dropped = self._received_over(puts(2, 1, 9))
        dropped.ask(InstallSnapshot(meta, False))
        assert dropped.log() == () and dropped.initial().last_log_id == LogId(1, 6)
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 9))
        meta, kept = self._received_over(entries)
        kept.ask(InstallSnapshot(meta, True))
        assert kept.log() == entries[6:] and kept.initial().last_log_id == LogId(1, 9)
        kept.restart()
        assert kept.log() == entries[6:]

    def test_a_chunk_of_another_snapshot_does_not_continue_a_reception(self) -> None:
        """A chunk past offset 0 must continue the reception of the same snapshot (its
        whole meta): one of another snapshot is refused, not appended."""
        self._need_snapshots()
        first = self._compacted(self.store())
        source = self.store()
        second = self._compacted(source)
        data = source.snapshot_bytes(second)
        target = self.store()
        target.ask(WriteSnapshotChunk(first, 0, data[:4]))
        with pytest.raises(ValueError):
            target.ask(WriteSnapshotChunk(second, 4, data[4:]))

    def test_a_reception_leaves_the_current_snapshot_alone(self) -> None:
        """Chunks being received are kept apart: the current snapshot's bytes, meta and
        state stay as they were while a reception is under way and after it is abandoned
        (here by a restart), so this node never sends or restores foreign bytes."""
        self._need_snapshots()
        source = self.store()
        incoming = self._compacted(source, last=12, at=9)
        target = self.store()
        current = self._compacted(target)
        before, machine = target.snapshot_bytes(current), target.dump().state_machine
        target.ask(WriteSnapshotChunk(incoming, 0, source.snapshot_bytes(incoming)[:3]))
        assert target.snapshot_bytes(current) == before
        target.restart()
        assert target.initial().snapshot == current
        assert target.snapshot_bytes(current) == before
        assert target.dump().state_machine == machine

    def test_two_stores_never_name_their_snapshots_alike(self) -> None:
        """Snapshot ids are unique across the nodes of a cluster, not just in one store: a
        receiver resumes a transfer from another leader by the snapshot's meta, and ids
        every node derives alike (from the index and term, or a counter in each process)
        would give equal metas to different bytes. Two stores snapshot the same entries
        here; give each id a random part."""
        self._need_snapshots()
        first, second = self._compacted(self.store()), self._compacted(self.store())
        assert first.last_included == second.last_included
        assert first.snapshot_id != second.snapshot_id

    def test_snapshot_requests_that_make_no_sense_are_refused(self) -> None:
        """A chunk out of order, an install of a snapshot not fully received (or never
        received) raise, and change nothing; offset 0 starts a reception over."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source)
        data = source.snapshot_bytes(meta)
        target = self.store()
        with pytest.raises(ValueError):
            target.ask(InstallSnapshot(meta))
        with pytest.raises(ValueError):
            target.ask(WriteSnapshotChunk(meta, 3, data[3:6]))
        target.ask(WriteSnapshotChunk(meta, 0, data[:4]))
        with pytest.raises(ValueError):
            target.ask(WriteSnapshotChunk(meta, 6, data[6:8]))
        with pytest.raises(ValueError):
            target.ask(InstallSnapshot(meta))
        assert target.initial() == InitialState(LogId(0, 0), 0, HardState(), None)
        target.ask(WriteSnapshotChunk(meta, 0, data[:2]))  # starts over
        target.ask(WriteSnapshotChunk(meta, 2, data[2:]))
        target.ask(InstallSnapshot(meta))
        assert target.initial().snapshot == meta

    def test_a_newer_snapshot_wins_over_an_older_create(self) -> None:
        """``CreateSnapshot`` for an index below the current snapshot (one installed
        meanwhile) answers the current snapshot and changes nothing."""
        self._need_snapshots()
        source = self.store()
        meta = self._compacted(source, last=12, at=9)
        target = self.store()
        entries = (config(1, 1, MEMBERS), *puts(1, 2, 12))
        target.ask(ReplicateToLog(entries[:6]))
        target.ask(ApplyToStateMachine(entries[:5]))
        create = target.call(CreateSnapshot(LogId(1, 5), MEMBERS))
        target.receive(meta, source.snapshot_bytes(meta))
        target.ask(InstallSnapshot(meta))
        answered = create.get(timeout=self.timeout)
        # Built before the install (its own meta) or after it (the installed one) ...
        assert answered.last_included in (LogId(1, 5), meta.last_included)
        # ... either way the installed snapshot is current, and stays so.
        assert target.initial().snapshot == meta
        assert target.call(CreateSnapshot(LogId(1, 5), MEMBERS)).get(timeout=5) == meta
        assert target.initial().last_applied == 9
