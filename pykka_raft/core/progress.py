"""The leader's view of one follower: an explicit state machine with its in-flight window.

States (the names etcd-raft uses for the same idea):

* ``PROBE``: the leader does not know where the follower's log matches its own. At most
  one AppendEntries is in flight; each rejection moves ``next_index`` back (§5.3, with the
  conflict hint to skip whole terms).
* ``REPLICATE``: the logs are known to match up to ``match_index``; the leader pipelines
  up to ``Config.max_inflight`` AppendEntries and advances ``next_index`` optimistically.
* ``SNAPSHOT``: the follower needs entries the leader compacted away; the leader sends its
  snapshot one chunk at a time (§7), then probes again after the snapshot point.

A rejection, a lost request or a timeout in ``REPLICATE`` falls back to ``PROBE``. In
``SNAPSHOT`` the same events only reset the window: the transfer goes on.

A request the network cannot carry whole (it says how many of its entries fit) caps the
entries per request to that follower at that many (``fits``) until it has caught up.

A lost AppendEntries that carried several entries, to a follower that answered something
since it went out, also halves how many entries each request to that follower carries
(``batch``), and every answered one doubles it again, up to ``Config.max_payload_entries``:
a follower behind a slow link gets requests small enough to be answered within
``Config.rpc_timeout``, instead of the same full batch over and over (each one delivered
too late to count, and queued behind the last). Only requests still in the window count,
so a late answer changes nothing; a follower that answers nothing is down, not slow.
"""

from __future__ import annotations

import enum

import attrs

from pykka_raft.messages import SnapshotMeta
from pykka_raft.types import LogIndex

LACKING_LIMIT = 3
"""Rejections in a row at a follower's acknowledged match after which the leader takes it
that the follower lost its log (:meth:`Progress.lacks_its_match`)."""


class ProgressState(enum.Enum):
    """Which way the leader replicates to a follower."""

    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@attrs.define
class SnapshotTransfer:
    """A snapshot being sent to one node, a chunk at a time.

    ``offset`` is the next byte to send; ``sent_at`` is set while a chunk is being read or
    is on the wire (``None``: the next chunk is due).
    """

    meta: SnapshotMeta
    offset: int = 0
    sent_at: int | None = None


@attrs.define
class Progress:
    """§5.3's ``nextIndex`` and ``matchIndex`` for one follower, and how to replicate to it.

    Attributes:
        next_index: the next entry to send.
        match_index: the highest entry known replicated on the follower.
        state: see :class:`ProgressState`.
        inflight: AppendEntries in flight with entries: (last index, sent at, number of
            entries), oldest first.
        retry_at: nothing is sent before this time (after a failed request).
        last_heard: when the follower last answered (for the leader's quorum check).
        snapshot: the transfer in progress, in state ``SNAPSHOT``.
        acked_round: the latest heartbeat round the follower answered (``reads.py``).
        batch: the most entries one AppendEntries carries since one was lost (0: no limit
            but ``Config.max_payload_entries``).
        fits: the most entries one AppendEntries carries since the network could not carry
            a larger one (:class:`~pykka_raft.errors.RequestTooLarge`), until the follower
            has caught up (0: no such limit).
        relearning: what the follower holds is unknown again (it was removed and added
            again, or lost its log): until a request sent since is acknowledged, a late
            answer, which may speak of the log it had, is ignored.
        answers_from_round: the heartbeat round in which that became so: a success to a
            request of an earlier round never counts, however late it comes.
        lacking: rejections in a row saying the follower lacks an entry it acknowledged
            (see :meth:`lacks_its_match`).
    """

    next_index: LogIndex
    match_index: LogIndex = 0
    state: ProgressState = ProgressState.PROBE
    inflight: list[tuple[LogIndex, int, int]] = attrs.field(factory=list)
    retry_at: int = 0
    last_heard: int = 0
    snapshot: SnapshotTransfer | None = None
    acked_round: int = 0
    batch: int = 0
    fits: int = 0
    relearning: bool = False
    answers_from_round: int = 0
    lacking: int = 0

    @property
    def probing(self) -> bool:
        """True while the match point is being looked for."""
        return self.state is ProgressState.PROBE

    def become_probe(self) -> None:
        """Look for the match point again, from just after the known match (a transfer in
        progress goes on; only its window is reset)."""
        if self.state is not ProgressState.SNAPSHOT:
            self.state = ProgressState.PROBE
        self.inflight = []
        self.next_index = self.match_index + 1

    def become_replicate(self) -> None:
        """The logs match through ``match_index``: pipeline from here."""
        self.state = ProgressState.REPLICATE
        self.inflight = []

    def become_snapshot(self, meta: SnapshotMeta) -> None:
        """Send snapshot ``meta`` (from its first byte)."""
        self.state = ProgressState.SNAPSHOT
        self.snapshot = SnapshotTransfer(meta)
        self.inflight = []

    def snapshot_done(self, index: LogIndex) -> None:
        """The follower installed a snapshot through ``index``: probe after it."""
        self.snapshot = None
        self.state = ProgressState.PROBE
        self.match_index = max(self.match_index, index)
        self.relearning = False
        self.lacking = 0
        self.become_probe()

    def can_send(self, max_inflight: int, flushed: LogIndex) -> bool:
        """Whether another AppendEntries with entries may go now."""
        if self.state is ProgressState.PROBE:
            return not self.inflight
        return len(self.inflight) < max_inflight and self.next_index <= flushed

    def batch_size(self, most: int) -> int:
        """How many entries the next AppendEntries may carry (``most``: the configured cap)."""
        size = min(self.batch, most) if self.batch else most
        return min(self.fits, size) if self.fits else size

    def too_large(self, entries: int, fits: int) -> None:
        """An AppendEntries carrying ``entries`` was too large to send; ``fits`` of them
        fit: send at most that many (at least one, and never more than before)."""
        limit = max(1, min(fits, entries - 1))
        self.fits = min(self.fits, limit) if self.fits else limit

    def sent(self, last_index: LogIndex, now: int, entries: int) -> None:
        """An AppendEntries through ``last_index``, carrying ``entries``, went out."""
        self.inflight.append((last_index, now, entries))
        if self.state is ProgressState.REPLICATE:
            self.next_index = last_index + 1

    def sent_at(self, last_index: LogIndex, entries: int) -> int | None:
        """When the AppendEntries through ``last_index`` carrying ``entries`` went out, if
        it is still in the window (not acknowledged, not given up on): only such a
        request's answer or failure tells how large a batch gets through in time."""
        return next((f[1] for f in self.inflight if f[0] == last_index and f[2] == entries), None)

    def lost(self, entries: int, sent_at: int) -> None:
        """An AppendEntries carrying ``entries``, sent at ``sent_at``, got no answer: send
        at most half as many (an older, larger request lost late never raises the limit).
        Only if the follower answered something since it went out: a follower that answers
        nothing is down or cut off, and its batches are not the reason. Nor does a lost
        request of one entry say anything about the size."""
        if entries > 1 and self.last_heard >= sent_at:
            half = entries // 2
            self.batch = min(self.batch, half) if self.batch else half

    def answered(self, entries: int, most: int) -> None:
        """An AppendEntries carrying ``entries`` was answered: send up to twice as many."""
        if self.batch and entries:
            self.batch = 0 if self.batch * 2 >= most else self.batch * 2

    def lacks_its_match(self, last: LogIndex, now: int, pause: int, round_now: int) -> None:
        """The follower rejected a request at ``match_index``: it lacks an entry it
        acknowledged. Once, it may be a reordering (a request sent before the
        acknowledgement arrived after it): probe again after ``pause``, not at once (a
        follower that lost its log would be probed in a tight loop). Three times in a row,
        it lost its log (started again empty under the same id, which Raft does not
        allow: it may have voted): take ``last``, its last index, as the match and relearn
        it from there, so it catches up instead of being probed for ever."""
        self.lacking += 1
        self.retry_at = now + pause
        if self.lacking >= LACKING_LIMIT:
            self.lacking = 0
            self.match_index = min(self.match_index, last)
            self.relearning, self.answers_from_round = True, round_now
            self.retry_at = 0
        self.next_index = self.match_index + 1

    def acknowledged(self, last_index: LogIndex) -> None:
        """The follower holds everything through ``last_index``."""
        self.relearning = False
        self.lacking = 0
        self.match_index = max(self.match_index, last_index)
        self.next_index = max(self.next_index, self.match_index + 1)
        self.inflight = [f for f in self.inflight if f[0] > last_index]
        if self.state is ProgressState.PROBE and last_index >= self.next_index - 1:
            self.become_replicate()

    def timed_out(self, now: int, timeout: int) -> bool:
        """The oldest request in flight got no answer within ``timeout``."""
        return bool(self.inflight) and now - self.inflight[0][1] >= timeout
