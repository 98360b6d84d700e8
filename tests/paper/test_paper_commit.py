"""Commitment: §5.3/§5.4.2 (leader commit rules), §8 (blank entry), §6 (joint quorums)."""

from __future__ import annotations

import pytest
from paper_helpers import (
    CONFIG,
    Apply,
    WriteLog,
    ack,
    append_requests,
    elect,
    make_core,
    make_entries,
    of_type,
    tick_until,
    vote_requests,
)

from pykka_raft.admin import ProposeConfigChange
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.leader import DEPARTED_SILENCE
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
    EntryBlank,
    EntryConfigChange,
    MembershipConfig,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.types import LogId


def _only(commands, target: int) -> AppendEntriesRequest:
    sends = append_requests(commands, target)
    assert len(sends) == 1, sends
    return sends[0].request


def test_leader_commits_when_majority_has_entry() -> None:
    """§5.3: an entry of the leader's term is committed once the leader has replicated it
    on a majority (the leader's own durable copy counts), and then applied."""
    core = make_core(1, (1, 2, 3, 4, 5), term=1, entries=make_entries([1]), last_applied=1)
    commands = elect(core, granting=[2, 3])
    probes = {t: _only(commands, t) for t in (2, 3, 4, 5)}
    core.log_written(LogId(2, 2), leader=True)
    core.take_commands()
    core.append_entries_result(probes[2], ack(probes[2]))
    sent2 = _only(core.take_commands(), 2)
    core.append_entries_result(sent2, ack(sent2))
    assert core.commit_index == 1, "leader + one follower is not a majority of five"
    assert of_type(core.take_commands(), Apply) == []
    core.append_entries_result(probes[3], ack(probes[3]))
    sent3 = _only(core.take_commands(), 3)
    core.append_entries_result(sent3, ack(sent3))
    assert core.commit_index == 2
    assert of_type(core.take_commands(), Apply) == [Apply((Entry(2, 2, EntryBlank()),))]


def test_leader_counts_itself_only_once_durable() -> None:
    """Figure 2 / §5.3: the leader's own entry counts toward the majority only after its
    log write completed (it must be on stable storage before it can be counted)."""
    core = make_core(1, (1, 2, 3), term=1, entries=make_entries([1]), last_applied=1)
    probe = _only(elect(core, granting=[2]), 2)
    core.append_entries_result(probe, ack(probe))
    core.take_commands()
    # Follower 2 is pipelined; it gets entry 2 only once the leader wrote it. Pretend it
    # reported index 2 through a hand-made request: still no majority without our copy.
    early = AppendEntriesRequest(2, 2, 1, 1, 1, (Entry(2, 2, EntryBlank()),), 0)
    core.append_entries_result(early, ack(early))
    assert core.commit_index == 1
    core.log_written(LogId(2, 2), leader=True)
    assert core.commit_index == 2


def test_leader_never_commits_previous_term_entry_by_counting_replicas() -> None:
    """§5.4.2 (Figure 8 in miniature): an entry of an earlier term is not committed merely
    because a majority (here: all) servers store it; it is committed indirectly once an
    entry of the leader's current term is replicated to a majority."""
    # Node 1 has entry 2 from term 2, never committed; it is elected in term 4.
    core = make_core(1, (1, 2, 3), term=3, entries=make_entries([1, 2]), last_applied=1)
    commands = elect(core, granting=[2])
    assert core.current_term == 4
    probe2, probe3 = _only(commands, 2), _only(commands, 3)
    assert (probe2.prev_log_index, probe2.prev_log_term) == (2, 2)

    # Node 2 lacks entry 2: it gets it in a second round; node 3 already has it.
    core.append_entries_result(probe2, AppendEntriesResponse(4, False, ConflictOpt(1, 1)))
    retry = _only(core.take_commands(), 2)
    assert [e.log_id for e in retry.entries] == [LogId(2, 2)]
    core.append_entries_result(retry, ack(retry))
    core.append_entries_result(probe3, ack(probe3))
    assert core.commit_index == 1, "a term-2 entry was committed by counting replicas"
    assert of_type(core.take_commands(), Apply) == []

    core.log_written(LogId(4, 3), leader=True)  # the leader's own §8 blank is durable
    assert core.commit_index == 1
    sent = _only(core.take_commands(), 2)
    assert [e.log_id for e in sent.entries] == [LogId(4, 3)]
    core.append_entries_result(sent, ack(sent))
    assert core.commit_index == 3
    assert of_type(core.take_commands(), Apply) == [
        Apply((make_entries([2], 2)[0], Entry(4, 3, EntryBlank())))
    ]


# --- §8 -----------------------------------------------------------------------------------


def test_new_leader_appends_blank_entry_of_its_term() -> None:
    """§8: "each leader commit a blank no-op entry into the log at the start of its term"."""
    core = make_core(1, term=2, entries=make_entries([1, 2]))
    commands = elect(core, granting=[3])
    writes = of_type(commands, WriteLog)
    assert writes == [WriteLog((Entry(3, 3, EntryBlank()),), leader=True)]
    assert core.log.last_log_id == LogId(3, 3)


def test_first_leader_of_new_cluster_commits_its_configuration() -> None:
    """§8 / §6: the first leader of a brand-new cluster (empty log) commits an
    EntryConfigChange with the membership instead of a blank entry."""
    core = make_core(1, members=(), membership=MembershipConfig())
    core.init_with_config([1, 2, 3], token=1)
    requests = {s.request.target: s.request for s in vote_requests(core.take_commands())}
    core.vote_result(requests[2], VoteResponse(1, True))
    assert core.role is Role.LEADER
    commands = core.take_commands()
    config_entry = Entry(1, 1, EntryConfigChange(MembershipConfig(members=(1, 2, 3))))
    assert of_type(commands, WriteLog) == [WriteLog((config_entry,), leader=True)]
    probe = _only(commands, 3)
    core.log_written(LogId(1, 1), leader=True)
    core.take_commands()
    core.append_entries_result(probe, ack(probe))
    sent = _only(core.take_commands(), 3)
    assert sent.entries == (config_entry,)
    core.append_entries_result(sent, ack(sent))
    assert core.commit_index == 1
    assert of_type(core.take_commands(), Apply) == [Apply((config_entry,))]


# --- §6 joint consensus ---------------------------------------------------------------------

JOINT = MembershipConfig(members=(1, 2, 3), members_after_consensus=(3, 4, 5), non_voters=(6,))


def _joint_core() -> RaftCore:
    """Node 1 (in C_old only) whose latest configuration entry is C_old,new."""
    entries = (Entry(1, 1, EntryConfigChange(JOINT)),)
    return make_core(1, (1, 2, 3), term=1, entries=entries, last_applied=1)


@pytest.mark.parametrize(
    ("granting", "wins_at"),
    [
        ([2, 3, 4], 4),  # C_old majority after 2, C_new needs a second vote (4)
        ([4, 5, 2], 2),  # C_new majority after 4 and 5, C_old needs 2
        ([6, 2, 4, 5], 5),  # the non-voter's grant counts for nothing
    ],
)
def test_joint_consensus_election_needs_majority_of_both_configurations(
    granting: list[int], wins_at: int
) -> None:
    """§6: during joint consensus "agreement (for elections and entry commitment) requires
    separate majorities from both the old and new configurations"."""
    core = _joint_core()
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    commands = core.take_commands()
    requests = {s.request.target: s.request for s in vote_requests(commands)}
    assert sorted(requests) == [2, 3, 4, 5], "every voter of both configurations is asked"
    for node in granting:
        request = requests.get(node, VoteRequest(node, core.current_term, 1, 1, 1))
        assert core.role is Role.CANDIDATE, f"leader before the vote of {node}"
        core.vote_result(request, VoteResponse(core.current_term, True))
        if node == wins_at:
            assert core.role is Role.LEADER
    assert core.role is Role.LEADER


def test_joint_consensus_commit_needs_majority_of_both_configurations() -> None:
    """§6: an entry commits only once a majority of C_old and a majority of C_new hold it;
    non-voters never count."""
    core = _joint_core()
    commands = elect(core, granting=[2, 4, 5])
    probes = {t: _only(commands, t) for t in (2, 3, 4, 5, 6)}
    core.log_written(LogId(2, 2), leader=True)
    core.take_commands()

    def replicate(node: int) -> None:
        core.append_entries_result(probes[node], ack(probes[node]))
        sent = _only(core.take_commands(), node)
        assert [e.index for e in sent.entries] == [2]
        core.append_entries_result(sent, ack(sent))

    replicate(2)  # C_old: {1, 2} is a majority; C_new: none
    replicate(6)  # non-voter
    replicate(4)  # C_new: {4} only
    assert core.commit_index == 1
    assert of_type(core.take_commands(), Apply) == []
    replicate(5)  # C_new: {4, 5}
    assert core.commit_index == 2
    assert of_type(core.take_commands(), Apply) == [Apply((Entry(2, 2, EntryBlank()),))]


def _serve(core: RaftCore, answering: set[int], commands: list[object]) -> list[object]:
    """Carry out the leader's commands: its writes complete, and the AppendEntries to the
    ``answering`` nodes succeed; return the AppendEntries sent to the others."""
    unanswered: list[object] = []
    for _ in range(50):
        for write in of_type(commands, WriteLog):
            core.log_written(write.entries[-1].log_id, leader=write.leader)
        for send in append_requests(commands):
            if send.request.target in answering:
                core.append_entries_result(send.request, ack(send.request))
            else:
                unanswered.append(send.request)
        commands = core.take_commands()
        if not commands:
            break
    return unanswered


def test_a_removed_node_that_never_answers_is_forgotten() -> None:
    """A node removed while down (or added, never started, then removed) is sent to until
    it learns its removal: if it stays silent for DEPARTED_SILENCE election timeouts after
    the removal committed, the leader stops sending to it and stops reporting it."""
    core = make_core(1, members=(1, 2, 3, 4))
    commands = elect(core, granting=[2, 3])
    _serve(core, {2, 3}, commands)
    core.propose_config_change(ProposeConfigChange(remove_members=[4]), token=5)
    _serve(core, {2, 3}, core.take_commands())
    assert core.membership.members == (1, 2, 3) and not core.membership.is_in_joint_consensus
    assert 4 in core.leader.progress  # still sent to, so it may learn its removal
    window = CONFIG.election_timeout_max
    for _ in range(DEPARTED_SILENCE - 1):
        core.tick(window)
        _serve(core, {2, 3}, core.take_commands())
    assert 4 in core.leader.progress  # silent, but not for long enough yet
    core.tick(window)
    _serve(core, {2, 3}, core.take_commands())
    assert 4 not in core.leader.progress and 4 not in core.leader.departing
    core.tick(window)
    assert append_requests(core.take_commands(), 4) == []
    assert core.role is Role.LEADER


def test_a_removed_node_that_answers_is_not_forgotten_before_it_learns() -> None:
    core = make_core(1, members=(1, 2, 3, 4))
    commands = elect(core, granting=[2, 3])
    _serve(core, {2, 3, 4}, commands)
    core.propose_config_change(ProposeConfigChange(remove_members=[4]), token=5)
    unanswered = _serve(core, {2, 3}, core.take_commands())  # 4 is slow, not silent
    assert core.membership.members == (1, 2, 3) and 4 in core.leader.progress
    for _ in range(2 * DEPARTED_SILENCE):
        core.tick(CONFIG.election_timeout_max // 2)
        unanswered += _serve(core, {2, 3}, core.take_commands())
        heartbeat = next(r for r in reversed(unanswered) if r.target == 4)
        core.append_entries_result(heartbeat, AppendEntriesResponse(core.current_term, False))
        core.take_commands()
    assert 4 in core.leader.progress  # it answers: it is sent to until it learns
