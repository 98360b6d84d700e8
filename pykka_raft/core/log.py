"""The core's view of the log: every entry after the snapshot point, in memory."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from pykka_raft.messages import Entry, EntryConfigChange, MembershipConfig
from pykka_raft.types import LogId, LogIndex, Term


class RaftLog:
    """An in-memory copy of the log entries the storage holds.

    Index ``offset`` is the snapshot point (0 without snapshots); entries ``offset+1 ..
    last_index`` are held in order, and ``snapshot_membership`` is the configuration in
    effect at the snapshot point. The storage stays the durable source of truth; this
    copy lets the leader build AppendEntries and the follower check consistency without a
    storage round trip.
    """

    def __init__(
        self,
        entries: Iterable[Entry] = (),
        offset: LogIndex = 0,
        offset_term: Term = 0,
        snapshot_membership: MembershipConfig | None = None,
    ) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.snapshot_membership = snapshot_membership
        self._entries: list[Entry] = []
        self._config_indexes: list[LogIndex] = []
        self.append(entries)

    def __len__(self) -> int:
        """How many entries are held (after the snapshot point)."""
        return len(self._entries)

    @property
    def last_index(self) -> LogIndex:
        """The index of the last entry (``offset`` when empty)."""
        return self.offset + len(self._entries)

    @property
    def last_term(self) -> Term:
        """The term of the last entry."""
        return self._entries[-1].term if self._entries else self.offset_term

    @property
    def last_log_id(self) -> LogId:
        """The position of the last entry."""
        return LogId(self.last_term, self.last_index)

    def term_at(self, index: LogIndex) -> Term | None:
        """The term of the entry at ``index``; ``None`` if there is none (or compacted).

        Index 0, before the first entry, has term 0 in every log.
        """
        position = index - self.offset - 1
        if 0 <= position < len(self._entries):  # the common case first: a held entry
            return self._entries[position].term
        if position == -1:
            return self.offset_term
        if index == 0:
            return 0
        return None

    def get(self, index: LogIndex) -> Entry:
        """The entry at ``index`` (must exist)."""
        return self._entries[index - self.offset - 1]

    def slice(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """The entries in ``[start, stop)``, clipped to what the log holds."""
        lo = max(start, self.offset + 1) - self.offset - 1
        hi = min(stop, self.last_index + 1) - self.offset - 1
        return tuple(self._entries[lo:hi]) if hi > lo else ()

    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries that continue the log exactly."""
        batch = entries if isinstance(entries, (tuple, list)) else tuple(entries)
        for expected, entry in enumerate(batch, self.last_index + 1):
            if entry.index != expected:
                raise ValueError(f"entry {entry.index} does not follow {expected - 1}")
        self._entries.extend(batch)
        self._config_indexes.extend(e.index for e in batch if type(e.payload) is EntryConfigChange)

    def replace(self, entry: Entry) -> None:
        """Replace the entry at ``entry.index`` (same index, e.g. a rejected one blanked)."""
        self._entries[entry.index - self.offset - 1] = entry

    def truncate_from(self, index: LogIndex) -> None:
        """Drop the entries at ``index`` and after."""
        if self.offset and index <= self.offset:
            raise ValueError(
                f"cannot truncate at {index}: entries through {self.offset} are compacted"
            )
        del self._entries[max(0, index - self.offset - 1) :]
        while self._config_indexes and self._config_indexes[-1] >= index:
            self._config_indexes.pop()

    def compact(self, index: LogIndex, term: Term, membership: MembershipConfig) -> None:
        """A snapshot now covers everything through ``index`` (of ``term``): drop those
        entries, or all of them if the log does not hold that entry with that term."""
        if index <= self.offset:
            return
        if self.term_at(index) == term:
            del self._entries[: index - self.offset]
            self._config_indexes = [i for i in self._config_indexes if i > index]
        else:
            self._entries = []
            self._config_indexes = []  # their entries are gone with the rest of the log
        self.offset, self.offset_term = index, term
        self.snapshot_membership = membership

    def membership_at(self, index: LogIndex) -> MembershipConfig | None:
        """The configuration in effect at ``index``: the latest configuration entry at or
        before it, else the snapshot's (``None`` if neither exists)."""
        return self.config_through(index)[1]

    def config_through(self, index: LogIndex) -> tuple[LogIndex, MembershipConfig | None]:
        """The latest configuration entry at or before ``index``: its index and membership;
        else the snapshot point and the snapshot's membership (``None`` if neither)."""
        pos = bisect.bisect_right(self._config_indexes, index)
        if pos:
            at = self._config_indexes[pos - 1]
            payload = self.get(at).payload
            assert isinstance(payload, EntryConfigChange)
            return at, payload.membership
        return self.offset, self.snapshot_membership

    @property
    def config_index(self) -> LogIndex:
        """The index of the latest configuration entry in the log: the snapshot point if
        the snapshot holds it, 0 if there is none."""
        if self._config_indexes:
            return self._config_indexes[-1]
        return self.offset if self.snapshot_membership is not None else 0

    def previous_membership(self) -> MembershipConfig | None:
        """The configuration before the latest configuration entry (the snapshot's if that
        entry is the only one held), if any."""
        if len(self._config_indexes) < 2:
            return self.snapshot_membership if self._config_indexes else None
        payload = self.get(self._config_indexes[-2]).payload
        assert isinstance(payload, EntryConfigChange)
        return payload.membership

    def latest_membership(self) -> MembershipConfig | None:
        """The membership of the latest configuration entry in the log (or the
        snapshot's), if any (§6)."""
        if not self._config_indexes:
            return self.snapshot_membership
        payload = self.get(self._config_indexes[-1]).payload
        assert isinstance(payload, EntryConfigChange)
        return payload.membership
