"""The log, the hard state and the applies of a
:class:`~pykka_raft.storage.sqlite.SqliteStore`: each change joins the open transaction,
which commits before the change is acknowledged."""

from __future__ import annotations

from typing import Any

from pykka_raft.codec import decode, encode
from pykka_raft.messages import Entry, HardState, InitialState
from pykka_raft.storage.contract import InvalidRequest
from pykka_raft.storage.messages import blank_refused
from pykka_raft.storage.sqlite_txn import SqliteTransactions
from pykka_raft.types import LogId, LogIndex


class SqliteLog(SqliteTransactions):
    """The storage methods of the log, the hard state and the applies."""

    def get_initial_state(self) -> InitialState:
        """The hard state, last log id, last applied index and snapshot, from memory
        (the database was read when the store opened and every change since)."""
        return InitialState(self._last_log_id, self._last_applied, self._hard_state, self._snapshot)

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state (committed before the answer)."""
        blob = encode(hard_state)
        self._begin(sync=True)
        assert self._db is not None
        self._db.execute("UPDATE state SET hard_state = ? WHERE id = 0", (blob,))
        self._hard_state = hard_state

    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """Entries in ``[start, stop)`` that the log holds (those after the snapshot)."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx",
            (max(start, self._snapshot_index + 1), stop),
        )
        return tuple(decode(blob, Entry) for (blob,) in rows)

    def append_entry_to_log(self, entries: tuple[Entry, ...]) -> dict[LogIndex, BaseException]:
        """Validate and encode the leader's entries; an entry the state machine refuses,
        or that the codec cannot encode, is stored blank and its error returned."""
        blobs: dict[LogIndex, bytes] = {}

        def check(entry: Entry) -> None:
            self.validate_entry(entry)
            blobs[entry.index] = encode(entry)  # data the codec cannot encode is refused too

        stored, refused = blank_refused(entries, check)
        self._write_rows([(e, blobs.get(e.index) or encode(e)) for e in stored])
        return refused

    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index (committed before the answer)."""
        self._write_rows([(entry, encode(entry)) for entry in entries])

    def _write_rows(self, rows: list[tuple[Entry, bytes]]) -> None:
        snap, last = self._snapshot_index, self._last_log_id
        last_index = last.index
        last_entry = None  # the entry that becomes the last one, if any
        kept = []
        for entry, blob in rows:
            index = entry.index
            if index <= snap:
                continue  # covered by the snapshot: committed, and identical
            if index > last_index + 1:
                raise InvalidRequest(f"entry {index} would leave a gap after {last_index}")
            if index >= last_index:
                last_index, last_entry = index, entry
            kept.append((index, entry.term, blob))
        if not kept:
            return
        if last_entry is not None:
            last = last_entry.log_id
        self._begin(sync=True)
        assert self._db is not None
        self._db.executemany("INSERT OR REPLACE INTO log VALUES (?, ?, ?)", kept)
        if last.index != self._last_log_id.index:
            self._db.execute("UPDATE state SET last_log_index = ? WHERE id = 0", (last.index,))
        self._last_log_id = last
        self.stats.entries += len(kept)

    def delete_logs_from(self, index: LogIndex) -> None:
        """Delete the entries at ``index`` and after (never applied ones)."""
        first = max(index, self._snapshot_index + 1)
        if first > self._last_log_id.index:
            return
        if first <= self._last_applied:
            raise InvalidRequest(
                f"cannot delete entries from {index}: entries through {self._last_applied} "
                "were applied (committed entries are never deleted)"
            )
        self._begin(sync=True)
        assert self._db is not None
        self._db.execute("DELETE FROM log WHERE idx >= ?", (first,))
        self._db.execute("UPDATE state SET last_log_index = ? WHERE id = 0", (first - 1,))
        if first - 1 == self._snapshot_index:
            self._last_log_id = self._snapshot.last_included if self._snapshot else LogId(0, 0)
        else:
            term = self._db.execute("SELECT term FROM log WHERE idx = ?", (first - 1,))
            self._last_log_id = LogId(term.fetchone()[0], first - 1)

    def apply_to_state_machine(self, entries: tuple[Entry, ...]) -> tuple[Any, ...]:
        """Apply in one transaction with ``last_applied``; a failure other than an
        :class:`~pykka_raft.errors.ApplicationError` leaves the store failed."""
        if entries and entries[0].index != self._last_applied + 1:
            raise InvalidRequest(
                f"entries from {entries[0].index} applied after {self._last_applied}: "
                "each entry is applied once, in order"
            )
        self._begin(sync=False)
        return super().apply_to_state_machine(entries)

    def apply_entry(self, entry: Entry) -> Any:
        """Apply one entry; a durable state machine's refused entry is rolled back."""
        if not self.durable_state_machine or self._apply_never_refuses:
            return self.state_machine.apply(entry)
        assert self._db is not None
        self._db.execute("SAVEPOINT apply")
        try:
            response = self.state_machine.apply(entry)
        except BaseException:
            self._db.execute("ROLLBACK TO apply")
            self._db.execute("RELEASE apply")
            raise
        self._db.execute("RELEASE apply")
        return response

    def set_last_applied(self, index: LogIndex) -> None:
        """Record ``last_applied`` in the transaction of the applies."""
        assert self._db is not None
        self._db.execute("UPDATE state SET last_applied = ? WHERE id = 0", (index,))
        self._last_applied = index
