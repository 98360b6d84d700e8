"""Replication, leader side: what to send each follower, and what its answers mean (§5.3, §7).

The functions here work on the shared :class:`~pykka_raft.core.state.NodeState` and on one
follower's :class:`~pykka_raft.core.progress.Progress`; they emit ``Send`` and
``ReadSnapshotChunk`` commands and return what the façade must do next (commit, forget a
departed node). Whether an answer still concerns this leadership, and what a newer term
in it means, is the façade's decision.
"""

from __future__ import annotations

import enum

from pykka_raft.core.commands import ReadSnapshotChunk
from pykka_raft.core.leader import LeaderState
from pykka_raft.core.progress import Progress, ProgressState
from pykka_raft.core.state import NodeState
from pykka_raft.errors import SafetyViolation
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
)
from pykka_raft.types import LogIndex, NodeId


class Outcome(enum.Enum):
    """What an answer from a follower changed."""

    NOTHING = "nothing"  # nothing more to send now
    CONTINUE = "continue"  # send what the follower needs next
    MATCHED = "matched"  # match_index may have moved: try to commit, then send
    DEPARTED = "departed"  # a removed node learned its removal: it was forgotten


def append_request(
    node: NodeState,
    peer: NodeId,
    prev_index: LogIndex,
    entries: tuple[Entry, ...],
    round: int = 0,
) -> AppendEntriesRequest:
    """An AppendEntries to ``peer`` after ``prev_index`` carrying ``entries``, sent in
    heartbeat ``round``."""
    prev_term = node.log.term_at(prev_index)
    if prev_term is None:
        raise SafetyViolation(f"leader has no term for prev_log_index {prev_index}")
    return AppendEntriesRequest(
        target=peer,
        term=node.current_term,
        leader_id=node.id,
        prev_log_index=prev_index,
        prev_log_term=prev_term,
        entries=entries,
        leader_commit=node.commit_index,
        round=round,
    )


def send_heartbeat(node: NodeState, leader: LeaderState, peer: NodeId) -> None:
    """The periodic empty AppendEntries (§5.2), which also resumes probes and transfers."""
    pr = leader.progress[peer]
    if pr.state is ProgressState.PROBE and not pr.inflight and node.now >= pr.retry_at:
        send_append(node, leader, peer)  # the probe doubles as the heartbeat
        return
    if pr.state is ProgressState.SNAPSHOT:
        send_append(node, leader, peer)  # resumes a paused transfer; the heartbeat goes too
    # A match below our snapshot point has no term here; index 0 matches every log,
    # and a heartbeat never conflicts with a transfer in progress (D7).
    prev = pr.match_index if node.log.term_at(pr.match_index) is not None else 0
    node.send(append_request(node, peer, prev, (), leader.round))


def send_append(node: NodeState, leader: LeaderState, peer: NodeId) -> None:
    """Send what the follower lacks: one probe, a pipeline of batches, or (if its next
    entry was compacted away) the next chunk of our snapshot."""
    pr = leader.progress[peer]
    if node.now < pr.retry_at:
        return
    if pr.state is not ProgressState.SNAPSHOT and pr.next_index <= node.log.offset:
        if node.snapshot is None:
            raise SafetyViolation(f"log compacted through {node.log.offset} without a snapshot")
        pr.become_snapshot(node.snapshot)
        node.snapshot_transfer_changes += 1
    transfer = pr.snapshot
    if transfer is not None:
        if transfer.sent_at is None:
            transfer.sent_at = node.snapshot_chunk_sent_at = node.now
            node.emit(
                ReadSnapshotChunk(
                    peer,
                    transfer.meta.snapshot_id,
                    transfer.offset,
                    node.config.snapshot_max_chunk_size,
                )
            )
        return
    config = node.config
    while pr.can_send(config.max_inflight, node.flushed_index):
        stop = min(
            node.flushed_index + 1, pr.next_index + pr.batch_size(config.max_payload_entries)
        )
        entries = node.log.slice(pr.next_index, stop)
        request = append_request(node, peer, pr.next_index - 1, entries, leader.round)
        pr.sent(request.last_index, node.now, len(entries))
        node.send(request)
        if pr.probing:
            return


def resend_timed_out(node: NodeState, leader: LeaderState) -> None:
    """Requests and chunks unanswered within ``Config.rpc_timeout`` are taken as lost."""
    timeout = node.config.rpc_timeout
    for peer, pr in leader.progress.items():
        transfer = pr.snapshot
        sent_at = transfer.sent_at if transfer is not None else None
        if transfer is not None and sent_at is not None and node.now - sent_at >= timeout:
            transfer.sent_at = None  # no answer in time: send the chunk again
            send_append(node, leader, peer)
        if pr.timed_out(node.now, timeout):
            _, sent_at, entries = pr.inflight[0]
            pr.lost(entries, sent_at)  # a smaller batch may get through in time
            pr.become_probe()  # find the match again
            send_append(node, leader, peer)


def next_after_rejection(
    node: NodeState, request: AppendEntriesRequest, hint: ConflictOpt | None
) -> LogIndex:
    """Where to probe next after a rejection; always below the rejected prev index."""
    if hint is None:
        return request.prev_log_index
    # Skip every entry of a term the follower cannot share (§5.3, the optimization):
    # the highest index of ours at or below the hint whose term is at most its term.
    log = node.log
    index = min(hint.index, log.last_index)
    while index > log.offset and (log.term_at(index) or 0) > hint.term:
        index -= 1
    return min(index + 1, request.prev_log_index)


def on_append_result(
    node: NodeState,
    leader: LeaderState,
    pr: Progress,
    request: AppendEntriesRequest,
    response: AppendEntriesResponse | None,
    fits: int | None = None,
) -> Outcome:
    """A follower answered our AppendEntries (``None``: the request failed; ``fits``: it
    was too large to send, and that many of its entries fit)."""
    entries = len(request.entries)
    sent_at = pr.sent_at(request.last_index, entries)  # None: a late answer tells nothing
    if response is None:
        if fits is not None:
            if entries > 1 and sent_at is not None:  # a request of the current window
                pr.too_large(entries, fits)
        elif sent_at is not None:
            pr.lost(entries, sent_at)
        if request.entries or pr.state is not ProgressState.REPLICATE:
            pr.become_probe()
            pr.retry_at = node.now + node.config.heartbeat_interval
        return Outcome.NOTHING
    pr.last_heard = node.now
    pr.acked_round = max(pr.acked_round, request.round)  # it answered us, as leader
    if sent_at is not None:
        pr.answered(entries, node.config.max_payload_entries)
    if response.success:
        if request.round < pr.answers_from_round or (pr.relearning and sent_at is None):
            return Outcome.NOTHING  # sent before: it may speak of a log since lost
        pr.acknowledged(request.last_index)
        if pr.fits and pr.match_index >= node.log.last_index:
            pr.fits = 0  # caught up: later writes need not be as large
        committed = min(request.leader_commit, request.last_index)
        if leader.forget_if_departed(request.target, committed):
            return Outcome.DEPARTED
        return Outcome.MATCHED
    if request.prev_log_index < pr.match_index:
        return Outcome.NOTHING  # stale rejection: we already know a later match
    pr.become_probe()
    hint = next_after_rejection(node, request, response.conflict_opt)
    if request.prev_log_index == pr.match_index > 0:  # it lacks what it acknowledged
        pr.lacks_its_match(hint - 1, node.now, node.config.heartbeat_interval, leader.round)
    else:
        pr.next_index = max(pr.match_index + 1, hint)
    return Outcome.CONTINUE


def on_chunk_read(
    node: NodeState,
    leader: LeaderState,
    peer: NodeId,
    snapshot_id: str,
    offset: int,
    data: bytes | None,
) -> None:
    """The storage read a chunk of a snapshot for ``peer`` (``None``: it is gone)."""
    pr = leader.progress.get(peer)
    transfer = pr.snapshot if pr is not None else None
    if pr is None or transfer is None:
        return
    meta = transfer.meta
    if meta.snapshot_id != snapshot_id or transfer.offset != offset:
        return
    if data is None:
        if node.snapshot is None or node.snapshot.snapshot_id == snapshot_id:
            raise SafetyViolation(f"the storage lost the current snapshot {snapshot_id!r}")
        pr.become_snapshot(node.snapshot)  # a newer one replaced it
        send_append(node, leader, peer)
        return
    end = offset + len(data)
    if (not data and end < meta.size) or end > meta.size:
        raise SafetyViolation(
            f"the storage returned {len(data)} bytes at offset {offset} of snapshot "
            f"{snapshot_id!r} ({meta.size} bytes)"
        )
    done = end == meta.size
    node.send(InstallSnapshotRequest(peer, node.current_term, node.id, meta, offset, data, done))


def on_install_result(
    node: NodeState,
    leader: LeaderState,
    pr: Progress,
    request: InstallSnapshotRequest,
    response: InstallSnapshotResponse | None,
) -> Outcome:
    """A follower answered a snapshot chunk (``None``: the request failed)."""
    transfer = pr.snapshot
    if (
        transfer is None
        or transfer.meta.snapshot_id != request.meta.snapshot_id
        or transfer.offset != request.offset
    ):
        return Outcome.NOTHING  # an answer to an earlier or duplicated chunk
    if response is None:
        transfer.sent_at = None
        pr.retry_at = node.now + node.config.heartbeat_interval
        return Outcome.NOTHING
    pr.last_heard = node.now
    if not response.success:
        resume = response.next_offset
        if resume is not None and 0 <= resume <= transfer.meta.size:
            # It holds the beginning of this very snapshot (an earlier leader sent it):
            # go on from there.
            transfer.offset, transfer.sent_at = resume, None
        else:
            # It lost the chunks before this one (e.g. it restarted), or refused them all
            # at the last one (they did not match the digest): start over.
            if request.done:
                # Refused whole: no progress, and a heartbeat's pause before resending.
                node.snapshot_refused_at = node.now
                pr.retry_at = node.now + node.config.heartbeat_interval
            pr.become_snapshot(node.snapshot or transfer.meta)
    elif not request.done:
        transfer.offset += len(request.data)
        transfer.sent_at = None
        node.snapshot_chunk_acked_at = node.now  # it makes progress (Snapshots.due)
    else:
        index = transfer.meta.last_included.index
        pr.snapshot_done(index)
        node.counters.snapshots_sent += 1
        node.snapshot_transfer_changes += 1
        node.snapshot_chunk_sent_at = node.snapshot_chunk_acked_at = None  # nothing half sent
        if leader.forget_if_departed(request.target, index):
            return Outcome.DEPARTED
        return Outcome.MATCHED
    return Outcome.CONTINUE
