"""Snapshots (§7): when to create one, the callers waiting for one, and receiving chunks.

Sending a snapshot is replication (``replication.py``: a follower in the ``SNAPSHOT``
state is sent chunks); installing one touches the log, the commit index and the pending
writes, so the façade orders those steps. This module keeps the rest.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pykka_raft.core.commands import CreateSnapshot, WriteSnapshotChunk
from pykka_raft.core.state import NodeState
from pykka_raft.messages import InstallSnapshotRequest, SnapshotMeta
from pykka_raft.types import LogId


class Snapshots:
    """The node's snapshot bookkeeping.

    Attributes:
        waiters: tokens of ``TriggerSnapshot`` callers waiting for the snapshot being built
            (``None``: none is being built; one build at a time).
        unsupported: the storage's ``SnapshotsUnsupported`` once it said so; the node then
            runs on without compaction.
        receiving: the snapshot being received: (its meta, offset of the last chunk
            stored, offset of the next one). A chunk continues it only if its meta is
            equal in every field, not just in ``snapshot_id``: two stores that reuse ids
            (a counter per process) never get their bytes spliced together.
        received: the ``receiving`` entry was completed (the snapshot installed): only
            its last chunk is acknowledged again; anything else starts a new reception.
        digest: the SHA-256 of the chunks of ``receiving`` stored so far, checked against
            ``meta.digest`` before the last one is stored.
    """

    def __init__(self, node: NodeState) -> None:
        self.node = node
        self.waiters: list[int] | None = None
        self.unsupported: BaseException | None = None
        self.receiving: tuple[SnapshotMeta, int, int] | None = None
        self.received = False
        self.digest: Any = None

    # --- creating -----------------------------------------------------------------------

    def due(self, sending: bool) -> bool:
        """The policy asks for a snapshot: the log grew ``logs_since_last`` entries past the
        last one (counted at what was sent to the state machine).

        A new snapshot replaces the one being sent and the transfer starts over at offset
        0, which never ends under a write load that compacts faster than one transfer
        takes. So while a follower acknowledged a chunk within two
        ``election_timeout_max`` (the transfer makes progress), compaction waits, however
        long the log grows meanwhile: the snapshot sent does not change, so the transfer
        ends. A leader sending its snapshot (``sending``) keeps it a while longer too, and
        so does a node that sent a chunk within two ``election_timeout_max``, leader or
        not: when leadership flaps during a transfer (each new term appends an entry), the
        same node leading again resumes the transfer of the same snapshot where the
        receiver stopped, instead of starting a new one. Without progress that wait is
        bounded (four policy intervals), so a transfer to a node that is down cannot grow
        the log without limit; so is it when a follower refused a whole transfer within two
        ``election_timeout_max`` (its bytes did not match the digest: acknowledged chunks
        then prove nothing, as the transfer may be refused again and again).
        """
        node = self.node
        since = node.config.snapshot_policy.logs_since_last
        if since is None or self.unsupported is not None:
            return False
        grown = node.apply_requested - node.log.offset
        window = 2 * node.config.election_timeout_max
        sent_at, acked_at = node.snapshot_chunk_sent_at, node.snapshot_chunk_acked_at
        refused_at = node.snapshot_refused_at
        refusing = refused_at is not None and node.now - refused_at < window
        if acked_at is not None and node.now - acked_at < window and not refusing:
            return False  # a transfer makes progress: let it end
        recently = sent_at is not None and node.now - sent_at < window
        return grown >= since and not ((sending or recently) and grown < 4 * since)

    def create(self) -> None:
        """Ask the storage for a snapshot at ``apply_requested``: the storage is FIFO, so its
        state machine will have applied exactly that far when it gets the command."""
        node = self.node
        if self.waiters is not None:
            return  # one at a time
        index = node.apply_requested
        term = node.log.term_at(index)
        if index <= node.log.offset or term is None:
            return
        membership = node.log.membership_at(index) or node.hard_membership
        self.waiters = []
        node.emit(CreateSnapshot(LogId(term, index), membership))

    def trigger(self, token: int) -> None:
        """``TriggerSnapshot``: the caller waits for the next snapshot (or gets the current
        one when nothing new was applied since)."""
        node = self.node
        if self.unsupported is not None:
            node.respond(token, error=self.unsupported)
            return
        if self.waiters is None and node.apply_requested <= node.log.offset:
            node.respond(token, node.snapshot)  # nothing new to compact
            return
        self.create()
        assert self.waiters is not None
        self.waiters.append(token)

    def created(self, meta: SnapshotMeta) -> None:
        """The storage stored a snapshot and dropped the log through it."""
        node = self.node
        waiters, self.waiters = self.waiters or [], None
        last = meta.last_included
        if last.index > node.log.offset:
            node.log.compact(last.index, last.term, meta.membership)
        if node.snapshot is None or last.index >= node.snapshot.last_included.index:
            node.snapshot = meta
        for token in waiters:
            node.respond(token, node.snapshot)

    def storage_unsupported(self, error: BaseException) -> None:
        """The storage cannot take snapshots: stop asking, answer the waiting callers."""
        self.unsupported = error
        waiters, self.waiters = self.waiters or [], None
        for token in waiters:
            self.node.respond(token, error=error)

    # --- receiving ----------------------------------------------------------------------

    def receive_chunk(self, request: InstallSnapshotRequest) -> tuple[bool, bool, int | None]:
        """Store a chunk of the leader's snapshot apart from the current one (§7).

        Returns ``(ok, stored, next_offset)``: ``stored`` when the chunk was the next one
        and is being stored (the façade installs the snapshot after the last one); ``ok``
        without ``stored`` when it is the chunk we stored last, again (our answer was
        lost: acknowledge it again rather than make the leader start over). Otherwise the
        chunk is refused, and ``next_offset`` says where we can go on if we hold the
        beginning of the same snapshot (a transfer an earlier leader started), so the
        sender resumes there instead of starting over; ``None``: start over.
        """
        meta = request.meta
        end = request.offset + len(request.data)
        receiving = self.receiving
        same = receiving is not None and receiving[0] == meta
        if same and receiving is not None:
            if request.offset > 0 and (receiving[1], receiving[2]) == (request.offset, end):
                return True, False, None
            if self.received:
                same = False  # it was installed: the storage holds no partial copy
            elif request.offset != receiving[2]:
                return False, False, receiving[2]
        if not same and request.offset != 0:
            return False, False, None
        digest = hashlib.sha256() if request.offset == 0 else self.digest
        digest.update(request.data)
        if request.done and not self.digest_matches(meta, digest):
            # Bytes the leader's snapshot does not hold (damaged on the way): the last
            # chunk is not stored and nothing is installed. The sender starts over.
            self.receiving, self.digest = None, None
            self.node.counters.snapshots_refused += 1
            return False, False, None
        self.digest = digest
        self.node.emit(WriteSnapshotChunk(meta, request.offset, request.data))
        self.receiving = (meta, request.offset, end)
        self.received = request.done
        return True, True, None

    @staticmethod
    def digest_matches(meta: SnapshotMeta, digest: Any) -> bool:
        """Whether the bytes received (their running ``digest``) are the snapshot's: they
        hash to ``meta.digest``. A meta without a digest is not checked."""
        return meta.digest is None or digest.hexdigest() == meta.digest
