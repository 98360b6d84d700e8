"""The log part of the storage conformance suite: writes, reads, deletes, refusals."""

from __future__ import annotations

import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types with the codec)
from pykka_raft.statemachine import Get, InvalidCommand, Put
from pykka_raft.storage.contract import (
    AppendEntryToLog,
    DeleteLogsFrom,
    GetLogEntries,
    ReplicateToLog,
)
from pykka_raft.testing.conformance_kit import ConformanceHarness, blank, normal, puts
from pykka_raft.types import LogId


class LogConformance(ConformanceHarness):
    """The tests of ``AppendEntryToLog``, ``ReplicateToLog``, ``GetLogEntries`` and
    ``DeleteLogsFrom``."""

    def test_append_and_read_half_open_ranges(self) -> None:
        """Entries are read back by half-open ranges ``[start, stop)``."""
        store = self.store()
        entries = (blank(1, 1), *puts(1, 2, 6))
        assert store.ask(AppendEntryToLog(entries)) == {}
        assert store.ask(GetLogEntries(1, 7)) == entries
        assert store.ask(GetLogEntries(2, 4)) == entries[1:3]
        assert store.ask(GetLogEntries(5, 100)) == entries[4:]
        assert store.ask(GetLogEntries(7, 9)) == ()
        assert store.ask(GetLogEntries(3, 3)) == ()
        assert store.initial().last_log_id == LogId(1, 6)

    def test_replicated_entries_continue_the_log(self) -> None:
        """``ReplicateToLog`` writes each entry at its index, batch after batch."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 3)))
        store.ask(ReplicateToLog(puts(2, 4, 5)))
        assert store.log() == (*puts(1, 1, 3), *puts(2, 4, 5))
        assert store.initial().last_log_id == LogId(2, 5)

    def test_a_write_at_an_existing_index_replaces_that_entry(self) -> None:
        """An entry written at an index the log holds replaces the entry there."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 3)))
        replacement = normal(2, 3, Put("other", "x"))
        store.ask(ReplicateToLog((replacement,)))
        assert store.log() == (*puts(1, 1, 2), replacement)
        assert store.initial().last_log_id == LogId(2, 3)

    def test_delete_logs_from_then_rewrite(self) -> None:
        """``DeleteLogsFrom`` removes a conflicting suffix; new entries take its place,
        and a restart sees the result."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 6)))
        store.ask(DeleteLogsFrom(4))
        assert store.initial().last_log_id == LogId(1, 3)
        assert store.ask(GetLogEntries(1, 10)) == puts(1, 1, 3)
        store.ask(ReplicateToLog(puts(3, 4, 5, prefix="new")))
        store.restart()
        assert store.log() == (*puts(1, 1, 3), *puts(3, 4, 5, prefix="new"))
        assert store.initial().last_log_id == LogId(3, 5)
        store.ask(DeleteLogsFrom(1))
        assert store.initial().last_log_id == LogId(0, 0)
        assert store.log() == ()

    def test_an_entry_that_would_leave_a_gap_is_refused(self) -> None:
        """A request that makes no sense raises, changes nothing, and the storage goes
        on answering (through ``ask`` and through a ``Call``)."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 2)))
        with pytest.raises(ValueError):
            store.ask(ReplicateToLog((normal(1, 4, Put("a", 1)),)))
        with pytest.raises(ValueError):
            store.call(AppendEntryToLog((normal(1, 5, Put("a", 1)),))).get(timeout=self.timeout)
        assert store.log() == puts(1, 1, 2)
        store.ask(ReplicateToLog(puts(1, 3, 3)))
        assert store.initial().last_log_id == LogId(1, 3)

    def test_append_entry_to_log_blanks_refused_entries(self) -> None:
        """The application refuses a client entry on the leader: it is stored blank at
        its index and its error returned, the others are stored as they are."""
        store = self.store()
        entries = (blank(2, 1), normal(2, 2, Put("a", 1)), normal(2, 3, "not a command"))
        refused = store.ask(AppendEntryToLog((*entries, normal(2, 4, Get("a")))))
        assert set(refused) == {3}
        assert isinstance(refused[3], InvalidCommand)
        assert store.log() == (entries[0], entries[1], blank(2, 3), normal(2, 4, Get("a")))

    def test_a_batch_with_a_gap_inside_changes_nothing(self) -> None:
        """A batch that continues the log but leaves a gap further on is refused whole:
        not even its first entries are written."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 2)))
        with pytest.raises(ValueError):
            store.ask(ReplicateToLog((*puts(1, 3, 3), normal(1, 5, Put("a", 1)))))
        with pytest.raises(ValueError):  # as many entries as 3..5 holds, still a gap
            store.ask(ReplicateToLog((*puts(1, 3, 3), *puts(1, 5, 5), *puts(1, 5, 5))))
        assert store.log() == puts(1, 1, 2)
        assert store.initial().last_log_id == LogId(1, 2)

    def test_rewriting_a_held_entry_keeps_the_entries_after_it(self) -> None:
        """Only ``DeleteLogsFrom`` removes entries: writing an entry the log already holds
        (a duplicated or late AppendEntries) keeps everything after it."""
        store = self.store()
        store.ask(ReplicateToLog(puts(1, 1, 6)))
        store.ask(ReplicateToLog(puts(1, 3, 3)))
        assert store.log() == puts(1, 1, 6)

    def test_a_replicated_entry_is_stored_as_the_leader_sent_it(self) -> None:
        """``ReplicateToLog`` stores what the leader accepted, even a value this node's
        ``validate`` would refuse (another version, other rules): only the leader's
        ``AppendEntryToLog`` blanks a refused entry, or the replicas would differ."""
        store = self.store()
        entry = normal(1, 1, "not a command")
        store.ask(ReplicateToLog((entry,)))
        assert store.log() == (entry,)
