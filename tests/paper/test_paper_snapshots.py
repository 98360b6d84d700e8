"""§7 log compaction: snapshot creation, InstallSnapshot sender and receiver, on the core."""

from __future__ import annotations

import hashlib
import random

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    Respond,
    Send,
    ack,
    append_requests,
    elect,
    make_core,
    make_entries,
    of_type,
    responds,
)

from pykka_raft.config import SnapshotPolicy
from pykka_raft.core import RaftCore, Role, replication
from pykka_raft.core.commands import (
    Apply,
    CreateSnapshot,
    InstallSnapshot,
    ReadSnapshotChunk,
    WriteSnapshotChunk,
)
from pykka_raft.errors import SafetyViolation
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
    EntryConfigChange,
    HardState,
    InitialState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.types import LogId

MEMBERS = MembershipConfig((1, 2, 3))


def meta(index: int, term: int = 1, size: int = 25, sid: str = "s1") -> SnapshotMeta:
    return SnapshotMeta(LogId(term, index), MEMBERS, sid, size)


def chunk(m: SnapshotMeta, offset: int, data: bytes, term: int = 2) -> InstallSnapshotRequest:
    return InstallSnapshotRequest(2, term, 1, m, offset, data, offset + len(data) >= m.size)


def answer(core: RaftCore, token: int) -> Respond:
    (respond,) = responds(core.take_commands(), token)
    return respond


# --- the receiver -------------------------------------------------------------------------


def test_receiver_stores_chunks_in_order_and_installs_at_the_last() -> None:
    """§7 receiver steps 2-5 and 7-8: each chunk is written apart and answered after it is
    stored; the last one installs: log reset, commit and applied move to the snapshot."""
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    m = meta(10, size=25)
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10), token=1)
    commands = follower.take_commands()
    assert of_type(commands, WriteSnapshotChunk) == [WriteSnapshotChunk(m, 0, b"x" * 10)]
    assert responds(commands, 1)[0] == Respond(1, InstallSnapshotResponse(2, True), None, True)
    follower.receive_install_snapshot(chunk(m, 10, b"y" * 10), token=2)
    follower.receive_install_snapshot(chunk(m, 20, b"z" * 5), token=3)
    commands = follower.take_commands()
    assert of_type(commands, InstallSnapshot) == [InstallSnapshot(m, keep_log=False)]
    assert (follower.log.offset, follower.log.last_index) == (10, 10)
    assert follower.commit_index == follower.last_applied == 10
    assert follower.snapshot == m


def test_receiver_refuses_a_chunk_out_of_order_and_restarts_at_offset_zero() -> None:
    follower = make_core(2, term=2)
    m = meta(10, size=30)
    follower.receive_install_snapshot(chunk(m, 10, b"y" * 10), token=1)
    assert answer(follower, 1).value == InstallSnapshotResponse(2, False)
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10), token=2)
    assert answer(follower, 2).value == InstallSnapshotResponse(2, True)
    other = meta(12, sid="s2", size=30)
    follower.receive_install_snapshot(chunk(other, 10, b"y" * 10), token=3)
    assert answer(follower, 3).value == InstallSnapshotResponse(2, False)


def test_receiver_acknowledges_a_repeated_chunk_whose_answer_was_lost() -> None:
    follower = make_core(2, term=2)
    m = meta(10, size=30)
    for token, offset in ((1, 0), (2, 10)):
        follower.receive_install_snapshot(chunk(m, offset, b"x" * 10), token=token)
    follower.take_commands()
    follower.receive_install_snapshot(chunk(m, 10, b"x" * 10), token=3)  # again
    commands = follower.take_commands()
    assert responds(commands, 3)[0].value == InstallSnapshotResponse(2, True)
    assert of_type(commands, WriteSnapshotChunk) == []  # not stored twice
    follower.receive_install_snapshot(chunk(m, 20, b"z" * 10), token=4)
    assert answer(follower, 4).value == InstallSnapshotResponse(2, True)


def test_receiver_keeps_the_log_suffix_after_a_matching_snapshot_point() -> None:
    """§7 receiver step 6: if an entry matches the snapshot's last one, keep what follows."""
    follower = make_core(2, term=2, entries=make_entries([1, 1, 1, 2, 2]))
    m = meta(3, term=1, size=4)
    follower.receive_install_snapshot(chunk(m, 0, b"data"), token=1)
    commands = follower.take_commands()
    assert (follower.log.offset, follower.log.last_index, follower.log.term_at(5)) == (3, 5, 2)
    # The decision travels in the command: the storage keeps the same suffix.
    assert of_type(commands, InstallSnapshot) == [InstallSnapshot(m, keep_log=True)]


def test_receiver_ignores_a_snapshot_it_already_holds() -> None:
    follower = make_core(2, term=2, entries=make_entries([1, 1, 1]), last_applied=3)
    follower.commit_index = 3
    m = meta(2, size=4)
    follower.receive_install_snapshot(chunk(m, 0, b"data"), token=1)
    commands = follower.take_commands()
    assert of_type(commands, InstallSnapshot) == []
    assert follower.log.offset == 0 and follower.log.last_index == 3


def test_receiver_refuses_an_older_term() -> None:
    follower = make_core(2, term=5)
    follower.receive_install_snapshot(chunk(meta(10), 0, b"x", term=4), token=1)
    assert answer(follower, 1).value == InstallSnapshotResponse(5, False)
    assert follower.snapshots.receiving is None


def test_after_a_snapshot_an_append_below_its_point_matches() -> None:
    """Everything through the snapshot point is committed, so a leader's request whose
    prev index lies inside it (a heartbeat with prev 0, or a resend) is accepted."""
    follower = make_core(2, term=2)
    m = meta(10, size=4)
    follower.receive_install_snapshot(chunk(m, 0, b"data"), token=1)
    follower.take_commands()
    heartbeat = AppendEntriesRequest(2, 2, 1, 0, 0, (), 10)
    follower.receive_append_entries(heartbeat, token=2)
    assert answer(follower, 2).value == AppendEntriesResponse(2, True)
    overlap = AppendEntriesRequest(2, 2, 1, 8, 1, make_entries([1, 1, 2, 2], start=9), 12)
    follower.receive_append_entries(overlap, token=3)
    assert answer(follower, 3).value == AppendEntriesResponse(2, True)
    assert (follower.log.last_index, follower.log.term_at(12)) == (12, 2)


# --- the sender ---------------------------------------------------------------------------


def compacted_leader() -> tuple[RaftCore, list[Send]]:
    """Leader 1 of term 2 whose log was compacted through 10 (entries 11-12 kept), and the
    commands of its election (its first AppendEntries)."""
    m = meta(10, term=1, size=25)
    core = RaftCore(1, CONFIG, random.Random(0))
    entries = make_entries([1, 1], start=11)
    core.start(InitialState(LogId(1, 12), 10, HardState(1, None, MEMBERS), m), entries)
    core.take_commands()
    commands = elect(core) + core.take_commands()
    return core, append_requests(commands, 2)


def test_leader_sends_its_snapshot_in_chunks_to_a_node_missing_compacted_entries() -> None:
    leader, probes = compacted_leader()
    probe = probes[0].request
    # Node 2's log is empty: its hint points at index 0, inside our snapshot.
    leader.append_entries_result(probe, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    reads = of_type(leader.take_commands(), ReadSnapshotChunk)
    assert reads == [ReadSnapshotChunk(2, "s1", 0, CONFIG.snapshot_max_chunk_size)]


def test_leader_chunk_loop_until_done_then_appends_again() -> None:
    leader, _ = compacted_leader()
    leader.leader.progress[2].next_index = 5  # compacted away
    leader.leader.progress[2].become_probe()
    replication.send_append(leader, leader.leader, 2)
    m = leader.snapshot
    assert m is not None
    offset = 0
    for data in (b"a" * 10, b"b" * 10, b"c" * 5):
        (read,) = of_type(leader.take_commands(), ReadSnapshotChunk)
        assert read.offset == offset
        leader.snapshot_chunk_read(2, m.snapshot_id, offset, data)
        (send,) = of_type(leader.take_commands(), Send)
        request = send.request
        assert isinstance(request, InstallSnapshotRequest)
        assert (request.offset, request.done) == (offset, offset + len(data) == m.size)
        leader.install_snapshot_result(request, InstallSnapshotResponse(2, True))
        offset += len(data)
    assert (
        leader.leader.progress[2].match_index == 10 and leader.leader.progress[2].snapshot is None
    )
    (resume,) = append_requests(leader.take_commands(), 2)
    assert resume.request.prev_log_index == 10


@pytest.mark.parametrize(("offset", "data"), [(20, b"x" * 6), (10, b"")])
def test_a_chunk_the_storage_reads_past_or_short_of_the_snapshot_is_a_safety_violation(
    offset: int, data: bytes
) -> None:
    """A chunk that ends past the snapshot's size, or an empty one before its end, means
    the storage's snapshot is not the one it described: the leader stops rather than send
    it (a receiver would install it, or never see its end)."""
    leader, _ = compacted_leader()
    leader.leader.progress[2].next_index = 5
    replication.send_append(leader, leader.leader, 2)
    m = leader.snapshot
    assert m is not None and m.size == 25
    transfer = leader.leader.progress[2].snapshot
    assert transfer is not None
    transfer.offset = offset
    with pytest.raises(SafetyViolation, match=f"returned {len(data)} bytes at offset {offset}"):
        leader.snapshot_chunk_read(2, m.snapshot_id, offset, data)


def test_leader_restarts_a_transfer_the_receiver_refused() -> None:
    leader, _ = compacted_leader()
    leader.leader.progress[2].next_index = 5
    replication.send_append(leader, leader.leader, 2)
    m = leader.snapshot
    assert m is not None
    leader.take_commands()
    leader.snapshot_chunk_read(2, m.snapshot_id, 0, b"a" * 10)
    (send,) = of_type(leader.take_commands(), Send)
    leader.install_snapshot_result(send.request, InstallSnapshotResponse(2, True))
    (read,) = of_type(leader.take_commands(), ReadSnapshotChunk)
    assert read.offset == 10
    leader.snapshot_chunk_read(2, m.snapshot_id, 10, b"b" * 10)
    (send,) = of_type(leader.take_commands(), Send)
    leader.install_snapshot_result(send.request, InstallSnapshotResponse(2, False))
    (read,) = of_type(leader.take_commands(), ReadSnapshotChunk)
    assert read.offset == 0


def test_heartbeat_during_a_transfer_uses_prev_zero_and_does_not_disturb_it() -> None:
    """D7: the heartbeat must not break the transfer; prev index 0 matches every log."""
    leader, _ = compacted_leader()
    leader.leader.progress[2].next_index = 5
    leader.leader.progress[2].match_index = 3  # below the snapshot point: no term known here
    replication.send_append(leader, leader.leader, 2)
    leader.take_commands()
    leader.tick(CONFIG.heartbeat_interval)
    (beat,) = append_requests(leader.take_commands(), 2)
    assert (beat.request.prev_log_index, beat.request.entries) == (0, ())
    assert leader.leader.progress[2].snapshot is not None


# --- creating snapshots -------------------------------------------------------------------


def test_policy_asks_for_a_snapshot_at_the_last_index_sent_to_apply() -> None:
    config = attrs.evolve(CONFIG, snapshot_policy=SnapshotPolicy.every(5))
    core = make_core(1, term=1, entries=make_entries([1] * 6), config=config)
    core._advance_commit(6)
    (apply,) = of_type(core.take_commands(), Apply)
    core.applied(apply.entries, (None,) * len(apply.entries))
    (create,) = of_type(core.take_commands(), CreateSnapshot)
    assert create == CreateSnapshot(LogId(1, 6), MEMBERS)


def test_start_refuses_a_storage_whose_state_machine_lags_its_snapshot() -> None:
    core = RaftCore(1, CONFIG, random.Random(0))
    with pytest.raises(ValueError, match="restored from the snapshot"):
        core.start(InitialState(LogId(1, 10), 4, HardState(1), meta(10)), ())


JOINT = MembershipConfig((1, 2, 3), (2, 3, 4))


def _restarted_from_a_joint_snapshot(node_id: int, hard: MembershipConfig) -> RaftCore:
    """Node ``node_id`` restarted from a snapshot through 5 whose membership is the joint
    {1,2,3} | {2,3,4}, with no entry after it and ``hard`` as the membership it was formed
    with."""
    snapshot = SnapshotMeta(LogId(1, 5), JOINT, "s1", 10)
    core = RaftCore(node_id, CONFIG, random.Random(node_id))
    core.start(InitialState(LogId(1, 5), 5, HardState(1, None, hard), snapshot), ())
    core.take_commands()
    core.quiet_until = 0
    return core


def test_a_leader_restarted_from_a_joint_snapshot_finishes_the_change() -> None:
    """§6, §7: the membership of a snapshot is the node's membership when its log holds no
    later configuration entry, joint included. Node 1, restarted from such a snapshot, is
    elected by both majorities and, once its blank entry committed, appends the final
    configuration itself, as a leader that finds a joint entry in its log does."""
    core = _restarted_from_a_joint_snapshot(1, MEMBERS)
    assert core.membership == JOINT and core.role is Role.FOLLOWER
    commands = elect(core, granting=[2, 3, 4])
    core.log_written(LogId(core.current_term, 6), leader=True)
    for _ in range(2):
        for send in append_requests(commands):
            core.append_entries_result(send.request, ack(send.request))
        commands = core.take_commands()
    assert core.commit_index == 6
    assert core.membership == MembershipConfig((2, 3, 4))
    assert core.log.config_index == 7


def test_a_new_voter_restarted_from_a_joint_snapshot_may_campaign() -> None:
    """A node added by the change (formed with no membership) takes the joint membership of
    its snapshot: a voter of C_new, it may campaign."""
    core = _restarted_from_a_joint_snapshot(4, MembershipConfig())
    assert core.membership == JOINT and core.may_campaign()


def test_a_snapshot_compacts_the_core_log() -> None:
    core = make_core(1, term=1, entries=make_entries([1] * 6), last_applied=6)
    core.apply_requested = core.commit_index = 6
    core.trigger_snapshot(token=9)
    (create,) = of_type(core.take_commands(), CreateSnapshot)
    core.snapshot_created(SnapshotMeta(create.last_included, create.membership, "s", 3))
    assert core.log.offset == 6 and len(core.log) == 0
    assert responds(core.take_commands(), 9)[0].value.last_included == LogId(1, 6)
    assert core.role is Role.FOLLOWER


def test_install_over_a_divergent_suffix_with_a_configuration_entry() -> None:
    """A follower whose uncommitted suffix (from a deposed leader) holds a configuration
    entry installs a snapshot that does not match it: the suffix and its configuration go,
    the snapshot's membership rules (regression: it raised IndexError on every retry)."""
    m4 = MembershipConfig((1, 2, 3), None, (4,))
    entries = (
        Entry(1, 1, EntryConfigChange(MEMBERS)),
        *make_entries([2, 2, 2, 2], start=2),
        Entry(2, 6, EntryConfigChange(m4)),
    )
    follower = RaftCore(2, CONFIG, random.Random(0))
    follower.start(InitialState(LogId(2, 6), 1, HardState(2, None, MEMBERS)), entries)
    follower.take_commands()
    assert follower.membership == m4
    follower.receive_install_snapshot(chunk(meta(4, term=3, size=4), 0, b"data", term=3), 1)
    assert answer_of(follower, 1) == InstallSnapshotResponse(3, True)
    assert (follower.log.offset, follower.log.last_index) == (4, 4)
    assert follower.membership == MEMBERS


def answer_of(core: RaftCore, token: int) -> object:
    (respond,) = responds(core.take_commands(), token)
    return respond.value


def leader_sending_its_snapshot() -> RaftCore:
    """Node 1 leads term 2 with a snapshot at 10 (policy: every 2 entries), entries 11-13,
    and has sent node 2 the first chunk of its snapshot."""
    config = attrs.evolve(CONFIG, snapshot_policy=SnapshotPolicy.every(2))
    core = RaftCore(1, config, random.Random(0))
    core.start(
        InitialState(LogId(1, 12), 10, HardState(1, None, MEMBERS), meta(10)),
        make_entries([1, 1], start=11),
    )
    core.take_commands()
    elect(core)
    core.take_commands()
    core.leader.progress[2].next_index = 5
    replication.send_append(core, core.leader, 2)  # a transfer to node 2 starts
    core.take_commands()
    return core


def test_leader_sending_a_snapshot_puts_off_its_own_compaction() -> None:
    """A new snapshot would restart a transfer at offset 0, and under a steady write load a
    transfer could then never finish: the leader waits, up to four policy intervals."""
    core = leader_sending_its_snapshot()
    core.commit_index = core.apply_requested = 13  # 3 entries past the snapshot point
    core.applied(core.log.slice(11, 14), (None,) * 3)
    assert of_type(core.take_commands(), CreateSnapshot) == []  # put off
    assert not core.snapshots.due(sending=core.leader.sending_snapshot())
    core.apply_requested = 18  # four policy intervals past it: no longer put off
    assert core.snapshots.due(sending=core.leader.sending_snapshot())
    core.apply_requested = 13
    finish_transfer(core, 2)
    core.applied(core.log.slice(13, 14), (None,))
    assert of_type(core.take_commands(), CreateSnapshot) == [CreateSnapshot(LogId(2, 13), MEMBERS)]


def test_a_transfer_that_makes_progress_is_never_cut_short_by_compaction() -> None:
    """Under a write load that outgrows four policy intervals during one transfer (a slow
    link, a large state), compacting would replace the snapshot being sent and restart
    the transfer at offset 0, forever. While the follower acknowledges chunks, the leader
    waits however long the log grows; once it stops answering for two maximal election
    timeouts, the bounded wait applies again."""
    core = leader_sending_its_snapshot()
    transfer = core.leader.progress[2].snapshot
    assert transfer is not None
    m = transfer.meta
    core.snapshot_chunk_read(2, m.snapshot_id, 0, b"x")  # the first byte only: not done
    (request,) = [c.request for c in of_type(core.take_commands(), Send)]
    assert isinstance(request, InstallSnapshotRequest) and not request.done
    core.install_snapshot_result(request, InstallSnapshotResponse(core.current_term, True))
    core.apply_requested = 100  # far past four policy intervals
    assert not core.snapshots.due(sending=core.leader.sending_snapshot())
    core.now += 2 * core.config.election_timeout_max  # no chunk acknowledged since
    assert core.snapshots.due(sending=core.leader.sending_snapshot())


def test_a_follower_that_refuses_whole_transfers_does_not_hold_off_compaction() -> None:
    """A follower that refuses each transfer at its last chunk (the bytes it got do not
    match the digest, again and again) acknowledges every other chunk: that is no
    progress, so the bounded wait applies, and each new transfer starts after a pause."""
    core = leader_sending_its_snapshot()
    transfer = core.leader.progress[2].snapshot
    assert transfer is not None
    m = transfer.meta
    core.snapshot_chunk_read(2, m.snapshot_id, 0, b"x")  # the first byte only: not done
    (first,) = [c.request for c in of_type(core.take_commands(), Send)]
    core.install_snapshot_result(first, InstallSnapshotResponse(core.current_term, True))
    core.snapshot_chunk_read(2, m.snapshot_id, 1, b"x" * (m.size - 1))
    (last,) = [c.request for c in of_type(core.take_commands(), Send)]
    assert isinstance(last, InstallSnapshotRequest) and last.done
    core.install_snapshot_result(last, InstallSnapshotResponse(core.current_term, False))
    assert of_type(core.take_commands(), ReadSnapshotChunk) == []  # not at once
    assert core.leader.progress[2].retry_at == core.now + core.config.heartbeat_interval
    # The next transfer's chunks are acknowledged again: still no reason to wait.
    core.now += core.config.heartbeat_interval
    replication.send_append(core, core.leader, 2)
    assert of_type(core.take_commands(), ReadSnapshotChunk) == [
        ReadSnapshotChunk(2, m.snapshot_id, 0, core.config.snapshot_max_chunk_size)
    ]
    core.snapshot_chunk_read(2, m.snapshot_id, 0, b"x")
    (again,) = [c.request for c in of_type(core.take_commands(), Send)]
    core.install_snapshot_result(again, InstallSnapshotResponse(core.current_term, True))
    assert core.snapshot_chunk_acked_at == core.now
    core.apply_requested = 100  # far past four policy intervals
    assert core.snapshots.due(sending=core.leader.sending_snapshot())
    core.apply_requested = 10 + 3 * 2  # within four policy intervals: the bounded wait
    assert not core.snapshots.due(sending=core.leader.sending_snapshot())


def finish_transfer(core: RaftCore, peer: int) -> None:
    """The storage reads the whole snapshot for ``peer`` and ``peer`` installs it."""
    transfer = core.leader.progress[peer].snapshot
    assert transfer is not None
    m = transfer.meta
    core.snapshot_chunk_read(
        peer, m.snapshot_id, transfer.offset, b"x" * (m.size - transfer.offset)
    )
    (request,) = [c.request for c in of_type(core.take_commands(), Send)]
    assert isinstance(request, InstallSnapshotRequest) and request.done
    core.install_snapshot_result(request, InstallSnapshotResponse(core.current_term, True))
    assert core.leader.progress[peer].snapshot is None


def test_a_node_that_was_sending_a_snapshot_puts_off_compaction_across_a_lost_term() -> None:
    """Leadership flaps during a transfer (a disruptive node, each new term appending an
    entry): the node that sent chunks keeps its snapshot for two maximal election timeouts
    after its last chunk, leader or not, so leading again it resumes the same snapshot
    where the receiver stopped; a new snapshot would restart it at offset 0 (seen as a
    livelock of the simulation, membership seed 2116659264 with the paper's elections).
    Bounded like the leader's own wait: four policy intervals."""
    core = leader_sending_its_snapshot()
    config = core.config
    core.become_follower(core.current_term + 1, None)  # a higher term: no longer leader
    assert core.leader is None
    core.commit_index = core.apply_requested = 13  # 3 entries past the snapshot point
    core.applied(core.log.slice(11, 14), (None,) * 3)
    assert of_type(core.take_commands(), CreateSnapshot) == []  # put off, not leading
    core.apply_requested = 18  # four policy intervals past it: no longer put off
    assert core.snapshots.due(sending=False)
    core.apply_requested = 13
    core.now += 2 * config.election_timeout_max  # long after the last chunk
    core.applied(core.log.slice(13, 14), (None,))
    assert of_type(core.take_commands(), CreateSnapshot) == [CreateSnapshot(LogId(2, 13), MEMBERS)]


# --- resumable transfers --------------------------------------------------------------


def test_receiver_holding_part_of_the_same_snapshot_says_where_to_resume() -> None:
    """A new leader sends the snapshot an earlier leader was sending (the same id): the
    receiver holds its first 20 bytes and answers with the offset it expects instead of
    starting over."""
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    m = meta(10, size=25)
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10), token=1)
    follower.receive_install_snapshot(chunk(m, 10, b"y" * 10), token=2)
    follower.take_commands()
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10, term=3), token=3)
    assert answer(follower, 3).value == InstallSnapshotResponse(3, False, 20)
    follower.receive_install_snapshot(chunk(m, 20, b"z" * 5, term=3), token=4)
    commands = follower.take_commands()
    assert of_type(commands, InstallSnapshot) == [InstallSnapshot(m, keep_log=False)]
    assert responds(commands, 4)[0].value == InstallSnapshotResponse(3, True)


@pytest.mark.parametrize(
    "other",
    [meta(10, size=30), meta(11, size=25), meta(10, term=2, size=25)],
    ids=["other size", "other index", "other term"],
)
def test_a_snapshot_with_the_same_id_but_another_meta_starts_over(other: SnapshotMeta) -> None:
    """Two stores can give different snapshots the same id (``MemStore`` once numbered
    them per process): a chunk continues a reception only if its whole meta matches, so
    the bytes of two snapshots are never spliced into one."""
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    held = meta(10, size=25)
    follower.receive_install_snapshot(chunk(held, 0, b"x" * 10), token=1)
    follower.take_commands()
    follower.receive_install_snapshot(chunk(other, 10, b"y" * 10, term=3), token=2)
    commands = follower.take_commands()
    assert of_type(commands, WriteSnapshotChunk) == []
    assert responds(commands, 2)[0].value == InstallSnapshotResponse(3, False, None)
    follower.receive_install_snapshot(chunk(other, 0, b"z" * 10, term=3), token=3)
    assert of_type(follower.take_commands(), WriteSnapshotChunk) == [
        WriteSnapshotChunk(other, 0, b"z" * 10)
    ]


def test_after_an_install_the_same_snapshot_starts_a_new_reception() -> None:
    """The storage holds no partial copy of an installed snapshot: offset 0 of it again is
    stored afresh (only its last chunk, repeated, is acknowledged again)."""
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    m = meta(10, size=10)
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10), token=1)
    follower.take_commands()
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10, term=3), token=2)
    commands = follower.take_commands()
    assert of_type(commands, WriteSnapshotChunk) == [WriteSnapshotChunk(m, 0, b"x" * 10)]
    assert responds(commands, 2)[0].value == InstallSnapshotResponse(3, True)


def with_digest(m: SnapshotMeta, data: bytes) -> SnapshotMeta:
    return attrs.evolve(m, digest=hashlib.sha256(data).hexdigest())


def test_receiver_installs_a_snapshot_whose_bytes_match_its_digest() -> None:
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    m = with_digest(meta(10, size=25), b"x" * 10 + b"y" * 10 + b"z" * 5)
    for token, (offset, data) in enumerate(((0, b"x" * 10), (10, b"y" * 10), (20, b"z" * 5))):
        follower.receive_install_snapshot(chunk(m, offset, data), token=token)
    commands = follower.take_commands()
    assert of_type(commands, InstallSnapshot) == [InstallSnapshot(m, keep_log=False)]
    assert follower.counters.snapshots_refused == 0


def test_receiver_refuses_a_snapshot_whose_bytes_do_not_match_its_digest() -> None:
    """Bytes damaged on the way but of the right size: the
    last chunk is refused before it is stored and nothing is installed, so the node's
    state does not move; the sender starts over, and the genuine bytes then install."""
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    genuine = b"x" * 10 + b"y" * 10 + b"z" * 5
    m = with_digest(meta(10, size=25), genuine)
    follower.receive_install_snapshot(chunk(m, 0, b"x" * 10), token=1)
    follower.receive_install_snapshot(chunk(m, 10, b"Y" * 10), token=2)  # damaged
    follower.take_commands()
    follower.receive_install_snapshot(chunk(m, 20, b"z" * 5), token=3)
    commands = follower.take_commands()
    assert responds(commands, 3)[0].value == InstallSnapshotResponse(2, False, None)
    assert of_type(commands, WriteSnapshotChunk) == []
    assert of_type(commands, InstallSnapshot) == []
    assert (follower.log.offset, follower.log.last_index, follower.commit_index) == (0, 2, 0)
    assert follower.snapshot is None and follower.snapshots.receiving is None
    assert follower.counters.snapshots_refused == 1
    assert follower.metrics().snapshots_refused == 1
    # The sender starts over; a chunk at the old offset is no longer a continuation.
    follower.receive_install_snapshot(chunk(m, 20, b"z" * 5), token=4)
    assert answer(follower, 4).value == InstallSnapshotResponse(2, False, None)
    for token, offset in ((5, 0), (6, 10), (7, 20)):
        follower.receive_install_snapshot(chunk(m, offset, genuine[offset : offset + 10]), token)
    commands = follower.take_commands()
    assert of_type(commands, InstallSnapshot) == [InstallSnapshot(m, keep_log=False)]
    assert follower.snapshot == m and follower.commit_index == 10


def test_receiver_checks_the_digest_of_a_one_chunk_snapshot_and_of_a_resumed_one() -> None:
    follower = make_core(2, term=2, entries=make_entries([1, 1]))
    m = with_digest(meta(10, size=4), b"data")
    follower.receive_install_snapshot(chunk(m, 0, b"DATA"), token=1)
    assert answer(follower, 1).value == InstallSnapshotResponse(2, False, None)
    # A transfer a new leader resumes: the bytes before the offset are those stored.
    r = with_digest(meta(12, size=25), b"x" * 10 + b"y" * 10 + b"z" * 5)
    follower.receive_install_snapshot(chunk(r, 0, b"x" * 10), token=2)
    follower.receive_install_snapshot(chunk(r, 10, b"y" * 10), token=3)
    follower.receive_install_snapshot(chunk(r, 0, b"x" * 10, term=3), token=4)
    follower.take_commands()
    follower.receive_install_snapshot(chunk(r, 20, b"z" * 5, term=3), token=5)
    assert of_type(follower.take_commands(), InstallSnapshot) == [InstallSnapshot(r, False)]
    assert follower.counters.snapshots_refused == 1


def test_leader_resumes_a_transfer_at_the_offset_the_receiver_names() -> None:
    leader, _ = compacted_leader()
    pr = leader.leader.progress[2]
    pr.next_index = 5
    replication.send_append(leader, leader.leader, 2)
    leader.take_commands()
    leader.snapshot_chunk_read(2, "s1", 0, b"x" * 10)
    (send,) = [
        s
        for s in of_type(leader.take_commands(), Send)
        if isinstance(s.request, InstallSnapshotRequest)
    ]
    leader.install_snapshot_result(send.request, InstallSnapshotResponse(2, False, 15))
    reads = of_type(leader.take_commands(), ReadSnapshotChunk)
    assert reads == [ReadSnapshotChunk(2, "s1", 15, CONFIG.snapshot_max_chunk_size)]
