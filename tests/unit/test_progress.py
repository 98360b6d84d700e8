"""``core/progress.py``: the leader's state machine for one follower (probe, replicate,
snapshot) and its in-flight window, on ``Progress`` alone and through the leader's
replication functions (``core/replication.py``) that drive it."""

from __future__ import annotations

import random

from pykka_raft.config import Config
from pykka_raft.core import RaftCore, replication
from pykka_raft.core.commands import ReadSnapshotChunk
from pykka_raft.core.progress import LACKING_LIMIT, Progress, ProgressState
from pykka_raft.messages import (
    AppendEntriesResponse,
    ConflictOpt,
    HardState,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.types import LogId
from tests.paper.paper_helpers import CONFIG, append_requests, elect, make_entries, of_type

PROBE, REPLICATE, SNAPSHOT = ProgressState.PROBE, ProgressState.REPLICATE, ProgressState.SNAPSHOT
META = SnapshotMeta(LogId(1, 10), MembershipConfig((1, 2, 3)), "s1", 25)


def _replicating(next_index: int = 6, match: int = 5) -> Progress:
    pr = Progress(next_index=next_index, match_index=match)
    pr.become_replicate()
    return pr


# --- Progress alone -------------------------------------------------------------------------


def test_a_new_progress_probes() -> None:
    pr = Progress(next_index=11)
    assert pr.state is PROBE and pr.probing
    assert (pr.match_index, pr.inflight, pr.snapshot) == (0, [], None)


def test_an_accepted_probe_moves_probe_to_replicate() -> None:
    pr = Progress(next_index=11)
    assert pr.can_send(max_inflight=4, flushed=20)
    pr.sent(15, now=100, entries=1)  # a probe: next_index stays until the answer
    assert (pr.state, pr.next_index, pr.inflight) == (PROBE, 11, [(15, 100, 1)])
    pr.acknowledged(15)
    assert pr.state is REPLICATE and not pr.probing
    assert (pr.match_index, pr.next_index, pr.inflight) == (15, 16, [])


def test_an_acknowledgement_below_the_probe_point_keeps_probing() -> None:
    """A late answer to an older request says nothing about where the probe matches."""
    pr = Progress(next_index=11)
    pr.acknowledged(5)
    assert pr.state is PROBE and pr.match_index == 5 and pr.next_index == 11


def test_a_probe_has_one_request_in_flight() -> None:
    pr = Progress(next_index=11)
    pr.sent(15, now=0, entries=1)
    assert not pr.can_send(max_inflight=4, flushed=20)
    pr.acknowledged(15)
    assert pr.can_send(max_inflight=4, flushed=20)


def test_replicate_fills_the_window_to_max_inflight_and_frees_it_on_acks() -> None:
    pr = _replicating(next_index=6, match=5)
    for last in (7, 9, 11):
        assert pr.can_send(max_inflight=3, flushed=20)
        pr.sent(last, now=last, entries=1)
    assert pr.next_index == 12  # advanced optimistically with each send
    assert not pr.can_send(max_inflight=3, flushed=20), "the window is full"
    pr.acknowledged(7)  # frees the oldest slot
    assert pr.inflight == [(9, 9, 1), (11, 11, 1)]
    assert pr.can_send(max_inflight=3, flushed=20)
    pr.acknowledged(11)  # frees everything up to 11
    assert (pr.inflight, pr.match_index, pr.state) == ([], 11, REPLICATE)


def test_replicate_sends_nothing_past_what_the_leader_flushed() -> None:
    pr = _replicating(next_index=6, match=5)
    assert pr.can_send(max_inflight=3, flushed=6)
    pr.sent(6, now=0, entries=1)
    assert not pr.can_send(max_inflight=3, flushed=6), "entry 7 is not durable on the leader"
    assert pr.can_send(max_inflight=3, flushed=7)


def test_rejection_or_timeout_moves_replicate_back_to_probe() -> None:
    pr = _replicating(next_index=6, match=5)
    pr.sent(8, now=0, entries=1)
    pr.sent(10, now=10, entries=1)
    assert not pr.timed_out(now=149, timeout=150)
    assert pr.timed_out(now=150, timeout=150), "the oldest request got no answer in time"
    pr.become_probe()
    assert pr.state is PROBE
    assert (pr.inflight, pr.next_index, pr.match_index) == ([], 6, 5)  # from the known match


def test_a_lost_batch_halves_the_batch_and_answers_double_it_back_to_the_cap() -> None:
    """A follower behind a slow link gets smaller requests until they are answered in time."""
    pr = _replicating(next_index=6, match=5)
    pr.last_heard = 10  # it answered something at 10: alive
    assert pr.batch_size(300) == 300
    pr.lost(300, sent_at=10)
    assert pr.batch_size(300) == 150
    pr.lost(0, sent_at=10)  # a lost heartbeat says nothing about the batch
    pr.lost(1, sent_at=10)  # nor does a lost single entry
    assert pr.batch_size(300) == 150
    for _ in range(10):
        pr.lost(pr.batch_size(300), sent_at=10)
    assert pr.batch_size(300) == 1, "never below one entry"
    pr.lost(300, sent_at=10)  # an older full batch lost late does not raise the limit again
    assert pr.batch_size(300) == 1
    pr.answered(0, 300)  # an answered heartbeat does not grow it either
    assert pr.batch_size(300) == 1
    sizes = []
    while pr.batch:
        pr.answered(pr.batch_size(300), 300)
        sizes.append(pr.batch_size(300))
    assert sizes == [2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_a_request_too_large_to_send_caps_the_batch_and_never_raises_the_cap() -> None:
    """The network said how many entries of a request fit: at most that many (at least one,
    fewer than the request held), whatever a later failure says and whatever is answered,
    until the leader lifts it (the follower caught up)."""
    pr = _replicating(next_index=6, match=5)
    pr.too_large(16, 3)
    assert pr.batch_size(300) == 3
    pr.too_large(40, 30)  # a later, larger request: its 30 do not raise the cap
    assert pr.batch_size(300) == 3
    for _ in range(20):
        pr.answered(3, 300)
    assert pr.batch_size(300) == 3
    pr.too_large(3, 0)  # not even one fits: one at a time
    assert pr.batch_size(300) == 1


def test_a_follower_that_answers_nothing_keeps_its_batch_size() -> None:
    """Batches lost to a follower that has not answered anything since they went out (down,
    or cut off) are not too large: after it returns it catches up at full size."""
    pr = _replicating(next_index=6, match=5)
    pr.last_heard = 10
    for sent_at in (20, 120, 220):  # nothing heard since 10
        pr.lost(300, sent_at=sent_at)
    assert pr.batch_size(300) == 300
    pr.last_heard = 250  # it answers again (a heartbeat), while batches still go unanswered
    pr.lost(300, sent_at=240)
    assert pr.batch_size(300) == 150


def test_next_index_in_the_snapshot_moves_to_snapshot_and_done_probes_after_it() -> None:
    pr = _replicating(next_index=6, match=5)
    pr.sent(8, now=0, entries=1)
    pr.become_snapshot(META)
    assert pr.state is SNAPSHOT and pr.snapshot is not None
    assert (pr.snapshot.meta, pr.snapshot.offset, pr.inflight) == (META, 0, [])
    pr.snapshot_done(10)
    assert (pr.state, pr.snapshot, pr.match_index, pr.next_index) == (PROBE, None, 10, 11)


def test_a_failure_during_a_transfer_resets_the_window_only() -> None:
    pr = Progress(next_index=6)
    pr.become_snapshot(META)
    pr.become_probe()
    assert pr.state is SNAPSHOT and pr.snapshot is not None, "the transfer goes on"


# --- driven by the leader's replication -------------------------------------------------------


def _compacted_leader(config: Config = CONFIG) -> RaftCore:
    """Leader 1 of term 2 whose log was compacted through 10, entries 11-14 kept."""
    core = RaftCore(1, config, random.Random(0))
    membership = MembershipConfig((1, 2, 3))
    core.start(
        InitialState(LogId(1, 14), 10, HardState(1, None, membership), META),
        make_entries([1, 1, 1, 1], start=11),
    )
    core.take_commands()
    core.quiet_until = 0
    elect(core)
    core.take_commands()
    return core


def test_the_leader_switches_to_snapshot_when_next_index_is_at_the_snapshot_point() -> None:
    core = _compacted_leader()
    assert core.leader is not None
    pr = core.leader.progress[2]
    pr.next_index, pr.match_index, pr.inflight = 10, 0, []  # entry 10 was compacted away
    replication.send_append(core, core.leader, 2)
    assert pr.state is SNAPSHOT
    assert of_type(core.take_commands(), ReadSnapshotChunk) == [
        ReadSnapshotChunk(2, "s1", 0, CONFIG.snapshot_max_chunk_size)
    ]


def test_the_leader_probes_when_next_index_is_past_the_snapshot_point() -> None:
    core = _compacted_leader()
    assert core.leader is not None
    pr = core.leader.progress[2]
    pr.next_index, pr.match_index, pr.inflight = 11, 0, []  # entry 11 is in the log
    replication.send_append(core, core.leader, 2)
    assert pr.state is PROBE
    (probe,) = append_requests(core.take_commands(), 2)
    assert probe.request.prev_log_index == 10


def _replicating_leader() -> tuple[RaftCore, Progress]:
    """The compacted leader, node 2 matched through 14 by an accepted probe, in state
    ``REPLICATE``, and the leader's §8 blank (15) written, so it pipelines it to node 2."""
    core = _compacted_leader()
    assert core.leader is not None
    pr = core.leader.progress[2]
    pr.next_index, pr.match_index, pr.inflight = 11, 0, []
    replication.send_append(core, core.leader, 2)
    (probe,) = append_requests(core.take_commands(), 2)
    assert pr.state is PROBE
    core.append_entries_result(probe.request, AppendEntriesResponse(2, True))
    assert pr.state is REPLICATE and pr.match_index == 14
    core.take_commands()
    core.log_written(LogId(2, 15), leader=True)
    return core, pr


def test_the_leader_pipelines_after_an_accepted_probe_and_probes_after_a_rejection() -> None:
    core, pr = _replicating_leader()
    (send,) = append_requests(core.take_commands(), 2)
    assert (send.request.prev_log_index, send.request.last_index) == (14, 15)
    assert pr.inflight == [(15, core.now, 1)] and pr.next_index == 16
    core.append_entries_result(send.request, AppendEntriesResponse(2, False))
    assert pr.state is PROBE
    assert pr.next_index == 15  # just after the known match


def test_the_leader_probes_again_when_a_pipelined_request_times_out() -> None:
    core, pr = _replicating_leader()
    core.take_commands()
    assert pr.state is REPLICATE and pr.inflight
    core.tick(core.config.rpc_timeout)  # no answer from node 2
    assert pr.state is PROBE
    (probe,) = [s for s in append_requests(core.take_commands(), 2) if s.request.entries]
    assert probe.request.prev_log_index == 14  # probes again from the known match


def test_a_follower_lacking_its_match_is_paused_then_relearned_after_three() -> None:
    """A rejection at the acknowledged match pauses the probes a heartbeat (once, it may
    be a request that arrived after a later one); an acknowledgement clears the count.
    Three in a row: the follower lost its log, and its last index becomes the match."""
    pr = _replicating(next_index=8, match=7)
    pr.lacks_its_match(2, now=100, pause=50, round_now=4)
    assert (pr.match_index, pr.next_index, pr.retry_at, pr.relearning) == (7, 8, 150, False)
    pr.acknowledged(7)
    assert pr.lacking == 0
    for now in (200, 250):
        pr.lacks_its_match(2, now=now, pause=50, round_now=5)
    assert (pr.match_index, pr.lacking, pr.retry_at) == (7, 2, 300)
    pr.lacks_its_match(2, now=300, pause=50, round_now=6)
    assert (pr.match_index, pr.next_index, pr.retry_at, pr.relearning) == (2, 3, 0, True)
    assert pr.answers_from_round == 6
    assert pr.lacking == 0


def test_a_success_from_before_the_follower_lost_its_log_never_counts() -> None:
    """Node 2 acknowledged 14; a request through 15 is on its way when it loses its log.
    After three rejections at its match the leader relearns it from its last index (0);
    once a request sent since is acknowledged, the old request's success, arriving last,
    is still from an earlier round: it does not raise the match to 15."""
    core, pr = _replicating_leader()
    (old,) = append_requests(core.take_commands(), 2)
    assert core.leader is not None and old.request.last_index == 15
    for _ in range(LACKING_LIMIT):
        core.tick(CONFIG.heartbeat_interval)  # a new round: heartbeat or probe at 14
        (beat,) = append_requests(core.take_commands(), 2)
        assert beat.request.prev_log_index == pr.match_index == 14
        core.append_entries_result(beat.request, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    assert (pr.match_index, pr.relearning) == (0, True)
    assert pr.answers_from_round == core.leader.round > old.request.round
    core.take_commands()  # from the start of its log: our snapshot (compacted through 10)
    pr.relearning = False  # as once a request sent since is acknowledged
    core.append_entries_result(old.request, AppendEntriesResponse(2, True))
    assert pr.match_index == 0, "a success from before the loss counted"
