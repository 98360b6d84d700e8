"""Client interaction (§8), cluster formation (InitWithConfig) and leader check quorum."""

from __future__ import annotations

import random

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    Apply,
    DeleteLogsFrom,
    Respond,
    SaveHardState,
    WriteLog,
    ack,
    append_requests,
    elect,
    lead_when_durable,
    make_core,
    make_entries,
    of_type,
    payload,
    responds,
    tick_until,
    vote_requests,
)

from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import InstallSnapshot
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    ForwardToLeader,
    NotAllowed,
    OutcomeUnknown,
    ResultUnavailable,
    Unreachable,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    ClientPayloadResponse,
    ClientRead,
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    InstallSnapshotRequest,
    MembershipConfig,
    ResponseMode,
    SnapshotMeta,
    VoteRequest,
)
from pykka_raft.statemachine import Get
from pykka_raft.types import LogId

# --- client writes --------------------------------------------------------------------------


def test_follower_forwards_client_write_to_known_leader() -> None:
    """§8: "If a client contacts a follower, the follower ... supplies information about the
    most recent leader"; the payload is handed back untouched and nothing is appended."""
    core = make_core(1, term=1, entries=make_entries([1]))
    core.receive_append_entries(AppendEntriesRequest(1, 2, 3, 1, 1, (), 0), token=1)
    core.take_commands()
    write = payload("x")
    core.client_write(write, token=2)
    commands = core.take_commands()
    assert [(r.token, r.value) for r in responds(commands)] == [(2, None)]
    error = responds(commands)[0].error
    assert isinstance(error, ForwardToLeader)
    assert (error.leader_id, error.payload) == (3, write)
    assert error.payload is write
    assert of_type(commands, WriteLog) == []
    assert core.log.last_index == 1


def test_candidate_forwards_client_write_without_leader() -> None:
    """§8: while an election is under way no leader is known: ForwardToLeader(None)."""
    core = make_core(1, term=1, entries=make_entries([1]))
    tick_until(core, lambda: core.role is Role.CANDIDATE)
    core.take_commands()
    core.client_write(payload("x"), token=2)
    error = responds(core.take_commands())[0].error
    assert isinstance(error, ForwardToLeader)
    assert error.leader_id is None


def test_a_removed_node_says_so_instead_of_asking_to_retry() -> None:
    """A node no longer in the cluster knows no leader, and never will: its refusal says to
    ask a member, where "no leader is known yet: retry" had clients retry it forever."""
    core = make_core(4, members=(1, 2, 3), term=1, entries=make_entries([1]))
    core.client_write(payload("x"), token=2)
    error = responds(core.take_commands())[0].error
    assert isinstance(error, ForwardToLeader) and error.leader_id is None
    assert "node 4 is not in the configuration it knows (removed, or not added yet)" in str(error)
    pristine = make_core(1, members=())
    pristine.client_write(payload("x"), token=3)
    assert "no leader is known yet" in str(responds(pristine.take_commands())[0].error)


class _Cluster:
    """Leader 1 of (1, 2, 3) in term 2 whose follower 2 is matched and acknowledges."""

    def __init__(self) -> None:
        self.core = make_core(1, term=1, entries=make_entries([1]), last_applied=1)
        probe = append_requests(elect(self.core, granting=[2]), 2)[0].request
        self.core.append_entries_result(probe, ack(probe))
        self.commands = self.core.take_commands()

    def write_to_storage(self, index: int) -> None:
        self.core.log_written(LogId(2, index), leader=True)
        self.commands += self.core.take_commands()

    def replicate(self) -> None:
        """Node 2 acknowledges every AppendEntries sent to it so far."""
        while sends := append_requests(self.commands, 2):
            self.commands = [c for c in self.commands if c not in sends]
            for send in sends:
                self.core.append_entries_result(send.request, ack(send.request))
                self.commands += self.core.take_commands()

    def take(self) -> list:
        out, self.commands = self.commands, []
        return out


def test_leader_answers_committed_write_at_commit() -> None:
    """§5.3 / §8: with ResponseMode.COMMITTED the leader answers once the entry is
    committed — not when it is merely appended or written locally."""
    cluster = _Cluster()
    cluster.core.client_write(payload("x"), token=5)
    cluster.write_to_storage(2)  # the §8 blank; the write was batched behind it
    assert [e.index for e in of_type(cluster.commands, WriteLog)[-1].entries] == [3]
    cluster.write_to_storage(3)
    assert responds(cluster.commands, 5) == [], "answered before the entry was committed"
    assert cluster.core.commit_index == 1
    cluster.replicate()
    assert cluster.core.commit_index == 3
    assert responds(cluster.commands, 5) == [
        Respond(5, ClientPayloadResponse(3, ResponseMode.COMMITTED), None, False)
    ]


def test_leader_answers_applied_write_only_after_apply() -> None:
    """§8: with ResponseMode.APPLIED the answer carries the state machine's response, so it
    is sent only once the entry was applied, not at commit."""
    cluster = _Cluster()
    cluster.core.client_write(payload("x", ResponseMode.APPLIED), token=5)
    cluster.write_to_storage(2)
    cluster.write_to_storage(3)
    cluster.replicate()
    assert cluster.core.commit_index == 3
    commands = cluster.take()
    assert responds(commands, 5) == []
    applies = of_type(commands, Apply)
    entries = tuple(e for a in applies for e in a.entries)
    assert [e.index for e in entries] == [2, 3]
    assert entries[1].payload == EntryNormal("x")

    cluster.core.applied(entries[:1], (None,))
    assert responds(cluster.core.take_commands()) == []
    cluster.core.applied(entries[1:], ("sm-result",))
    assert responds(cluster.core.take_commands()) == [
        Respond(5, ClientPayloadResponse(3, ResponseMode.APPLIED, "sm-result"), None, False)
    ]


@pytest.mark.parametrize("mode", list(ResponseMode))
def test_write_truncated_after_leader_stepped_down_is_forwarded(mode: ResponseMode) -> None:
    """§5.3 / §8: a deposed leader's uncommitted entry that the new leader overwrites is not
    answered at truncation (another node may still hold it and a later leader commit it),
    but once a different entry commits at its index: then its client gets ForwardToLeader
    (naming the new leader) with the payload, so it can retry there."""
    cluster = _Cluster()
    write = payload("lost", mode)
    cluster.core.client_write(write, token=5)
    cluster.write_to_storage(2)
    cluster.write_to_storage(3)
    cluster.take()
    # Node 3 won term 3 with a log holding the blank of term 2 but not the write.
    request = AppendEntriesRequest(1, 3, 3, 2, 2, make_entries([3], 3), 2)
    cluster.core.receive_append_entries(request, token=9)
    commands = cluster.core.take_commands()
    assert of_type(commands, DeleteLogsFrom) == [DeleteLogsFrom(3)]
    assert responds(commands, 5) == []  # truncation alone proves nothing
    # The new leader's entry at index 3 commits: now the old write is known to be lost.
    cluster.core.receive_append_entries(AppendEntriesRequest(1, 3, 3, 3, 3, (), 3), token=10)
    commands += cluster.core.take_commands()
    assert cluster.core.commit_index == 3
    reply = responds(commands, 5)
    assert len(reply) == 1 and reply[0].value is None
    assert isinstance(reply[0].error, ForwardToLeader)
    assert (reply[0].error.leader_id, reply[0].error.payload) == (3, write)
    applied = tuple(e for a in of_type(commands, Apply) for e in a.entries)
    assert [e.log_id for e in applied] == [LogId(2, 2), LogId(3, 3)]
    cluster.core.applied(applied, (None, "other"))
    assert responds(cluster.core.take_commands(), 5) == []


def test_write_beyond_a_newer_committed_entry_is_known_lost() -> None:
    """§5.4.3 with §5.3: terms never decrease along a log and every later leader holds each
    committed entry, so once an entry of a newer term commits at index k, a pending write
    of an older term at an index above k can never commit: it is answered ForwardToLeader
    even though nothing was ever written at its own index again."""
    cluster = _Cluster()
    cluster.core.client_write(payload("a"), token=5)
    cluster.write_to_storage(2)
    cluster.write_to_storage(3)
    cluster.core.client_write(payload("b"), token=6)
    cluster.write_to_storage(4)
    cluster.take()
    # Node 3 leads term 3 with a log that ends at index 2; its blank (index 3) conflicts.
    request = AppendEntriesRequest(1, 3, 3, 2, 2, make_entries([3], 3), 2)
    cluster.core.receive_append_entries(request, token=9)
    assert responds(cluster.core.take_commands(), 5) == []
    assert responds(cluster.core.take_commands(), 6) == []
    # The term-3 blank commits at index 3: write "a" (index 3) lost its slot, and write "b"
    # (index 4, term 2) sits after a committed term-3 entry, so it can never commit either.
    cluster.core.receive_append_entries(AppendEntriesRequest(1, 3, 3, 3, 3, (), 3), token=10)
    commands = cluster.core.take_commands()
    for token in (5, 6):
        (reply,) = responds(commands, token)
        assert isinstance(reply.error, ForwardToLeader)
    assert cluster.core.writes.pending == {}


def test_queued_writes_are_forwarded_when_leader_steps_down() -> None:
    """§5.1 / §8: writes the deposed leader had not yet appended are handed back."""
    cluster = _Cluster()  # the §8 blank's write is still in flight: the next write waits
    cluster.core.client_write(payload("queued"), token=5)
    assert of_type(cluster.core.take_commands(), WriteLog) == []
    cluster.core.receive_append_entries(AppendEntriesRequest(1, 3, 3, 1, 1, (), 1), token=9)
    error = responds(cluster.core.take_commands(), 5)[0].error
    assert isinstance(error, ForwardToLeader)
    assert error.leader_id == 3


def test_entry_rejected_by_application_answers_error_and_becomes_blank() -> None:
    """§5.3 with application validation: an entry the storage refuses is answered with
    ApplicationError (carrying the application's exception), replaced by a blank entry in
    the log, and only the blank is replicated and later committed."""
    cluster = _Cluster()
    cluster.write_to_storage(2)
    cluster.replicate()
    cluster.take()
    cluster.core.client_write(payload("bad"), token=5)
    cluster.core.client_write(payload("good"), token=6)  # batched behind "bad"
    cluster.commands = cluster.core.take_commands()
    assert [e.index for e in of_type(cluster.commands, WriteLog)[0].entries] == [3]
    refusal = ValueError("refused by the application")
    cluster.core.log_written(LogId(2, 3), rejected={3: refusal}, leader=True)
    commands = cluster.core.take_commands()
    reply = responds(commands, 5)
    assert len(reply) == 1 and reply[0].value is None
    assert isinstance(reply[0].error, ApplicationError)
    assert reply[0].error.error is refusal
    assert cluster.core.log.get(3) == Entry(2, 3, EntryBlank())
    sent = [e for s in append_requests(commands, 2) for e in s.request.entries]
    assert sent == [Entry(2, 3, EntryBlank())]

    cluster.commands = commands
    cluster.write_to_storage(4)
    cluster.replicate()
    assert cluster.core.commit_index == 4
    assert responds(cluster.commands, 5) == reply, "the refused write was answered again"
    assert [r.value for r in responds(cluster.commands, 6)] == [
        ClientPayloadResponse(4, ResponseMode.COMMITTED)
    ]
    applied = [e for a in of_type(cluster.commands, Apply) for e in a.entries]
    assert [e.payload for e in applied] == [EntryBlank(), EntryNormal("good")]


def _overtaken_by_a_snapshot() -> tuple[_Cluster, tuple[Entry, ...]]:
    """Leader 1 of term 2: APPLIED write "x" (token 5) committed at 3 and sent to the
    state machine, not applied yet; APPLIED "y" (6) at 4 and COMMITTED "z" (7) at 5
    appended, not committed. Returns the cluster and the entries sent to apply."""
    cluster = _Cluster()
    cluster.core.client_write(payload("x", ResponseMode.APPLIED), token=5)
    cluster.write_to_storage(2)
    cluster.write_to_storage(3)
    cluster.replicate()
    cluster.core.client_write(payload("y", ResponseMode.APPLIED), token=6)
    cluster.write_to_storage(4)
    cluster.core.client_write(payload("z"), token=7)
    cluster.write_to_storage(5)
    assert (cluster.core.commit_index, cluster.core.log.last_index) == (3, 5)
    applying = tuple(e for a in of_type(cluster.take(), Apply) for e in a.entries)
    assert [e.index for e in applying] == [2, 3]
    assert sorted(cluster.core.writes.pending) == [3, 4, 5]
    return cluster, applying


def _install(core: RaftCore, last: LogId) -> list:
    """Node 2, leader of term 3, installs a snapshot through ``last`` on ``core``."""
    meta = SnapshotMeta(last, MembershipConfig((1, 2, 3)), "s1", 4)
    core.receive_install_snapshot(InstallSnapshotRequest(2, 3, 1, meta, 0, b"data", True), 9)
    commands = core.take_commands()
    assert of_type(commands, InstallSnapshot), "the snapshot was not installed"
    assert core.commit_index == last.index
    return commands


def test_committed_write_whose_apply_is_queued_survives_an_install_over_another_log() -> None:
    """§7 with §8: a snapshot from a newer leader whose last entry this node's log does not
    hold replaces its whole log. A write at or below the commit index is still known: its
    own entry there is the committed one. Its apply was sent before the install (the
    storage is FIFO), so it keeps waiting and gets its real applied result, exactly once.
    A write above the commit index is unknown here."""
    cluster, applying = _overtaken_by_a_snapshot()
    commands = _install(cluster.core, LogId(3, 10))
    assert responds(commands, 5) == [], "a committed write whose apply is queued was answered"
    for token in (6, 7):
        (reply,) = responds(commands, token)
        assert isinstance(reply.error, OutcomeUnknown)
    cluster.core.applied(applying, (None, "sm-result"))
    assert responds(cluster.core.take_commands()) == [
        Respond(5, ClientPayloadResponse(3, ResponseMode.APPLIED, "sm-result"), None, False)
    ]
    assert cluster.core.writes.pending == {}


def test_writes_decided_by_an_install_over_a_matching_log() -> None:
    """§7 with §8: a snapshot through an entry this node holds covers its log up to it,
    which is then the committed one. The write committed before, whose apply is queued,
    gets its applied result; an APPLIED write never applied here gets ResultUnavailable
    (committed: not OutcomeUnknown); a COMMITTED write is answered committed."""
    cluster, applying = _overtaken_by_a_snapshot()
    commands = _install(cluster.core, LogId(2, 5))
    assert responds(commands, 5) == [], "a committed write whose apply is queued was answered"
    (unavailable,) = responds(commands, 6)
    assert isinstance(unavailable.error, ResultUnavailable)
    assert unavailable.error.index == 4
    assert responds(commands, 7) == [
        Respond(7, ClientPayloadResponse(5, ResponseMode.COMMITTED), None, False)
    ]
    cluster.core.applied(applying, (None, "sm-result"))
    assert responds(cluster.core.take_commands()) == [
        Respond(5, ClientPayloadResponse(3, ResponseMode.APPLIED, "sm-result"), None, False)
    ]
    assert cluster.core.writes.pending == {}


# --- InitWithConfig -------------------------------------------------------------------------


def _pristine(node_id: int = 1) -> RaftCore:
    return make_core(node_id, members=(), membership=MembershipConfig())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"term": 1, "entries": make_entries([1]), "members": ()},
        {"members": (1, 2)},
        {"members": (1, 2, 3), "term": 4, "voted_for": 2},
    ],
    ids=["log", "membership", "formed"],
)
def test_init_with_config_refused_on_non_pristine_node(kwargs: dict) -> None:
    """InitWithConfig forms a cluster only from a pristine node (no log and no membership;
    a term learned from a contacting leader does not count); otherwise NotAllowed, with a
    message that says what to do instead."""
    core = make_core(1, **kwargs)
    role, term = core.role, core.current_term
    core.init_with_config([1, 4, 5], token=3)
    commands = core.take_commands()
    assert len(commands) == 1
    error = responds(commands, 3)[0].error
    assert isinstance(error, NotAllowed)
    assert "not pristine" in str(error)
    assert "membership change" in str(error)
    assert (core.role, core.current_term) == (role, term)


def test_init_with_config_refused_while_starting() -> None:
    """InitWithConfig before the storage reported the initial state: NotAllowed, telling
    why (the driver holds such calls until the node has started)."""
    core = RaftCore(1, CONFIG, random.Random(0))
    core.init_with_config([1], token=3)
    error = responds(core.take_commands(), 3)[0].error
    assert isinstance(error, NotAllowed)
    assert "still starting" in str(error)


def test_admin_calls_and_reads_refused_while_starting() -> None:
    """TriggerSnapshot, TriggerElection and ClientRead before the storage reported the
    initial state: Unreachable, "still starting" (the caller retries)."""
    core = RaftCore(1, CONFIG, random.Random(0))
    core.trigger_snapshot(token=4)
    core.trigger_election(token=5)
    core.client_reads([(ClientRead(Get("k")), 6)])
    commands = core.take_commands()
    for token in (4, 5, 6):
        error = responds(commands, token)[0].error
        assert isinstance(error, Unreachable) and "still starting" in str(error)


def test_init_with_single_member_becomes_leader_once_its_term_is_durable() -> None:
    """InitWithConfig with only this node: it is a majority alone and leads as soon as
    its membership, term and vote are durable, committing the configuration (§8) as soon
    as that entry is durable."""
    core = _pristine()
    core.init_with_config([1], token=3)
    commands = core.take_commands()
    assert core.role is Role.CANDIDATE and core.current_term == 1
    saves = of_type(commands, SaveHardState)
    assert saves[0].hard_state.membership == MembershipConfig(members=(1,))
    assert (saves[-1].hard_state.current_term, saves[-1].hard_state.voted_for) == (1, 1)
    assert of_type(commands, WriteLog) == []
    assert responds(commands, 3) == [Respond(3, None, None, True)]
    commands = lead_when_durable(core, commands)
    assert core.role is Role.LEADER
    config_entry = Entry(1, 1, EntryConfigChange(MembershipConfig(members=(1,))))
    assert of_type(commands, WriteLog) == [WriteLog((config_entry,), leader=True)]
    core.log_written(LogId(1, 1), leader=True)
    assert core.commit_index == 1
    assert of_type(core.take_commands(), Apply) == [Apply((config_entry,))]


def test_init_with_several_members_becomes_candidate() -> None:
    """InitWithConfig with several members: the membership is persisted and the node stands
    for election at once (§5.2) instead of waiting for a timeout."""
    core = _pristine()
    core.init_with_config([1, 2, 3], token=3)
    commands = core.take_commands()
    assert core.role is Role.CANDIDATE
    assert (core.current_term, core.voted_for) == (1, 1)
    first_send = commands.index(vote_requests(commands)[0])
    assert any(
        isinstance(c, SaveHardState) and c.hard_state.membership.members == (1, 2, 3)
        for c in commands[:first_send]
    )
    assert sorted(s.request.target for s in vote_requests(commands)) == [2, 3]
    assert all(s.after_durable for s in vote_requests(commands))
    assert responds(commands, 3) == [Respond(3, None, None, True)]


def test_repeated_init_with_same_members_succeeds() -> None:
    """InitWithConfig again with the same members on an already formed node succeeds (so
    forming a cluster by calling it on every node, in any order, is safe); different
    members are still refused."""
    core = _pristine()
    core.init_with_config([1, 2, 3], token=1)
    core.take_commands()
    core.init_with_config([3, 2, 1], token=2)
    core.init_with_config([2, 3], token=3)  # the node itself is implied
    assert [(r.token, r.value, r.error) for r in responds(core.take_commands())] == [
        (2, None, None),
        (3, None, None),
    ]
    assert (core.role, core.current_term) == (Role.CANDIDATE, 1)
    core.init_with_config([1, 2], token=4)
    assert isinstance(responds(core.take_commands(), 4)[0].error, NotAllowed)


def test_init_with_same_members_on_node_formed_by_a_leader_succeeds() -> None:
    """A node that a leader reached (and configured) before its own InitWithConfig arrived
    accepts that InitWithConfig when the members agree."""
    core = _pristine(2)
    config_entry = Entry(1, 1, EntryConfigChange(MembershipConfig(members=(1, 2, 3))))
    core.receive_append_entries(AppendEntriesRequest(2, 1, 1, 0, 0, (config_entry,), 0), 1)
    core.take_commands()
    assert core.role is Role.FOLLOWER
    core.init_with_config([1, 2, 3], token=2)
    assert responds(core.take_commands(), 2) == [Respond(2, None, None, True)]
    assert (core.role, core.current_term, core.leader_id) == (Role.FOLLOWER, 1, 1)


def test_parallel_init_with_config_tolerates_leader_contact_first() -> None:
    """InitWithConfig sent to every node in parallel (admin.InitWithConfig: "sending in
    parallel is safe"): nodes 1 and 2 form a majority and elect node 1; node 1's first
    AppendEntries to node 3 is an empty probe (the configuration entry follows only after
    the probe's answer). Node 3's own InitWithConfig, arriving just after that probe, must
    still succeed: node 3 is a member of exactly that configuration."""
    node1, node2, node3 = (_pristine(n) for n in (1, 2, 3))
    node1.init_with_config([1, 2, 3], token=1)
    node2.init_with_config([1, 2, 3], token=1)
    requests = {s.request.target: s.request for s in vote_requests(node1.take_commands())}
    node2.take_commands()
    node2.receive_vote(requests[2], token=2)  # term 1: node 2 voted for itself
    assert responds(node2.take_commands())[0].value.vote_granted is False
    tick_until(node1, lambda: node1.current_term == 2)
    requests = {s.request.target: s.request for s in vote_requests(node1.take_commands())}
    node2.receive_vote(requests[2], token=3)
    node1.vote_result(requests[2], responds(node2.take_commands())[0].value)
    assert node1.role is Role.LEADER
    probe = append_requests(node1.take_commands(), 3)[0].request
    assert probe.entries == ()

    node3.receive_append_entries(probe, token=4)
    node3.take_commands()
    node3.init_with_config([1, 2, 3], token=5)
    assert responds(node3.take_commands(), 5) == [Respond(5, None, None, True)]


# --- check quorum -----------------------------------------------------------------------------


def _leader_of(members=(1, 2, 3), non_voters=()) -> RaftCore:
    core = make_core(1, members, term=1, entries=make_entries([1]), non_voters=non_voters)
    elect(core, granting=[2])
    core.take_commands()
    return core


def test_leader_that_hears_from_no_majority_steps_down() -> None:
    """Check quorum (§6 / dissertation §6.2): a leader that has not heard from a majority
    within election_timeout_max steps down, keeping its term, and hands queued writes back."""
    core = _leader_of()
    core.client_write(payload("queued"), token=5)  # waits behind the §8 blank
    elapsed = 0
    while elapsed < CONFIG.election_timeout_max:
        core.tick(CONFIG.heartbeat_interval)
        elapsed += CONFIG.heartbeat_interval
    assert core.role is Role.LEADER, "stepped down before election_timeout_max"
    while core.role is Role.LEADER and elapsed < 2 * CONFIG.election_timeout_max:
        core.tick(CONFIG.heartbeat_interval)
        elapsed += CONFIG.heartbeat_interval
    assert core.role is Role.FOLLOWER
    assert core.current_term == 2
    assert core.leader_id is None
    error = responds(core.take_commands(), 5)[0].error
    assert isinstance(error, ForwardToLeader)


@pytest.mark.parametrize(
    ("responders", "stays"),
    [((2,), True), ((4,), False), ((2, 3, 4), True)],
    ids=["one_voter", "only_non_voter", "everyone"],
)
def test_leader_hearing_from_a_majority_keeps_leading(responders: tuple, stays: bool) -> None:
    """Check quorum counts voters only: answers from one other voter of three keep the
    leader in place indefinitely; answers from a non-voter alone do not."""
    core = _leader_of(non_voters=(4,))
    for _ in range(10 * CONFIG.election_timeout_max // CONFIG.heartbeat_interval):
        if core.role is not Role.LEADER:
            break
        core.tick(CONFIG.heartbeat_interval)
        for send in append_requests(core.take_commands()):
            if send.request.target in responders:
                core.append_entries_result(send.request, ack(send.request))
    assert (core.role is Role.LEADER) == stays
    assert core.current_term == 2


def test_leader_refuses_writes_beyond_max_pending_writes_with_busy() -> None:
    """Backpressure: a leader holds at most ``max_pending_writes`` unanswered writes; the
    rest are refused at once (definitely not committed) and room returns as writes commit."""
    cluster = _Cluster()
    cluster.core.config = attrs.evolve(CONFIG, max_pending_writes=3)
    cluster.core.client_writes([(payload(f"w{i}"), i) for i in range(5)])
    cluster.commands += cluster.core.take_commands()
    refused = [r for r in responds(cluster.commands) if isinstance(r.error, Busy)]
    assert [r.token for r in refused] == [3, 4]
    assert refused[0].error.payload == payload("w3")
    assert "max_pending_writes" in str(refused[0].error)
    # Once they commit, there is room again.
    cluster.write_to_storage(2)
    cluster.write_to_storage(5)
    cluster.replicate()
    assert cluster.core.commit_index == 5 and cluster.core.writes.pending == {}
    cluster.take()
    cluster.core.client_write(payload("later"), 9)
    assert not [r for r in responds(cluster.core.take_commands()) if isinstance(r.error, Busy)]


def test_a_stopping_leader_refuses_its_unappended_writes_naming_no_leader() -> None:
    """Writes a leader took but never appended are definitely not committed when it stops:
    ForwardToLeader with the payload back, and no leader named (not the stopping node)."""
    core = make_core(1, term=1, entries=make_entries([1]))
    elect(core)  # the term's blank entry is being appended: writes queue behind it
    core.take_commands()
    write = payload("x")
    core.client_write(write, token=5)
    assert responds(core.take_commands()) == []
    core.stop(RuntimeError("stopping"))
    (respond,) = responds(core.take_commands(), 5)
    assert isinstance(respond.error, ForwardToLeader)
    assert (respond.error.leader_id, respond.error.payload) == (None, write)


def test_a_node_stopping_while_it_applies_a_committed_write_says_it_committed() -> None:
    """A write known committed is never answered OutcomeUnknown: one whose apply is under
    way when the node stops gets ResultUnavailable (committed; the state machine may have
    applied or refused it, as on every node). Writes above the commit index are unknown."""
    cluster, _ = _overtaken_by_a_snapshot()  # "x" committed at 3, applying; 4, 5 are not
    cluster.core.stop(RuntimeError("stopping"))
    commands = cluster.core.take_commands()
    (committed,) = responds(commands, 5)
    assert isinstance(committed.error, ResultUnavailable)
    assert committed.error.index == 3 and "stopped" in committed.error.why
    for token in (6, 7):
        (reply,) = responds(commands, token)
        assert isinstance(reply.error, OutcomeUnknown)


def test_a_lone_voter_elected_again_sends_nothing_its_pending_append_may_blank() -> None:
    """Node 1 is the only voter (2 is a non-voter). As leader of term 2 it appends "bad";
    before its storage answers, a higher term deposes it, and it wins again. Its storage
    then refuses "bad" and stores a blank: the new leader must not have sent the entry as
    it was, or 2 would hold "bad" where 1 holds a blank at the same index and term (a
    simulation seed found it). It leads only once every earlier write completed
    (``LeadWhenDurable``), and then from the log as the storage left it."""
    core = make_core(1, (1,), term=1, entries=make_entries([1]), non_voters=(2,))
    elect(core)
    core.log_written(core.log.last_log_id, leader=True)  # the §8 blank of term 2
    core.take_commands()
    core.client_write(payload("bad"), token=5)
    (write,) = of_type(core.take_commands(), WriteLog)
    (bad,) = write.entries
    core.receive_vote(VoteRequest(1, 3, 2, 0, 0), token=6)  # a higher term: step down
    assert core.role is not Role.LEADER
    tick_until(core, lambda: core.current_term == 4)
    commands = core.take_commands()
    assert core.role is Role.CANDIDATE and append_requests(commands, 2) == []
    core.log_written(bad.log_id, rejected={bad.index: ValueError("bad")}, leader=True)
    assert core.log.get(bad.index) == Entry(bad.term, bad.index, EntryBlank())
    assert core.flushed_index == bad.index
    commands += lead_when_durable(core, commands)  # the barrier: the blank is durable
    assert core.role is Role.LEADER
    sent = [e for s in append_requests(commands, 2) for e in s.request.entries]
    assert bad not in sent
