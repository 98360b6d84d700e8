"""§5.3 log replication: the AppendEntries receiver (Figure 2) and the leader's side."""

from __future__ import annotations

import attrs
import pytest
from paper_helpers import (
    CONFIG,
    Apply,
    DeleteLogsFrom,
    Respond,
    WriteLog,
    ack,
    append_requests,
    elect,
    log_terms,
    make_core,
    make_entries,
    of_type,
    payload,
    responds,
)

from pykka_raft.core import RaftCore
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
)
from pykka_raft.types import LogId

# --- receiver -----------------------------------------------------------------------------


def _follower(terms: list[int], term: int = 3, **kwargs) -> RaftCore:
    return make_core(1, (1, 2, 3), term=term, entries=make_entries(terms), **kwargs)


def _append(
    core: RaftCore,
    prev_index: int,
    prev_term: int,
    entries: tuple[Entry, ...] = (),
    leader_commit: int = 0,
    term: int = 3,
    token: int = 1,
):
    request = AppendEntriesRequest(1, term, 2, prev_index, prev_term, entries, leader_commit)
    core.receive_append_entries(request, token)
    return core.take_commands()


# (follower log terms, prev_log_index, prev_log_term, expected hint)
CONFLICT_CASES = [
    ([1, 1], 4, 1, ConflictOpt(1, 2)),  # prev entry missing: hint at our last entry
    ([], 3, 2, ConflictOpt(0, 0)),  # empty log
    ([1, 1, 2, 2, 2], 7, 3, ConflictOpt(2, 5)),  # missing, shorter log of an older term
    ([1, 1, 2, 2, 2], 5, 3, ConflictOpt(2, 5)),  # prev term on follower lower than leader's
    ([1, 1, 3, 3], 4, 2, ConflictOpt(1, 2)),  # higher term on follower: skip the whole term
    ([1, 1, 3, 3, 3], 5, 1, ConflictOpt(1, 2)),
]


@pytest.mark.parametrize(("terms", "prev_index", "prev_term", "hint"), CONFLICT_CASES)
def test_reject_append_when_prev_entry_missing_or_term_differs(
    terms: list[int], prev_index: int, prev_term: int, hint: ConflictOpt
) -> None:
    """Figure 2 AppendEntries 2: "Reply false if log doesn't contain an entry at prevLogIndex
    whose term matches prevLogTerm"; the rejection carries a ConflictOpt hint (§5.3) and
    the log is left alone."""
    core = _follower(terms)
    commands = _append(core, prev_index, prev_term, make_entries([3], prev_index + 1), 9)
    assert commands == [Respond(1, AppendEntriesResponse(3, False, hint), None, True)]
    assert log_terms(core) == terms
    assert core.commit_index == 0
    assert core.leader_id == 2, "a rejected append still comes from the current leader"


def test_accept_append_and_write_new_entries_before_durable_success() -> None:
    """Figure 2 AppendEntries 4: "Append any new entries not already in the log"; the
    success reply waits for the write (after_durable=True, issued after the WriteLog)."""
    core = _follower([1, 1])
    commands = _append(core, 2, 1, make_entries([3, 3], 3))
    assert commands == [
        WriteLog(make_entries([3, 3], 3), leader=False),
        Respond(1, AppendEntriesResponse(3, True), None, True),
    ]
    assert log_terms(core) == [1, 1, 3, 3]


def test_only_entries_not_already_in_the_log_are_written() -> None:
    """Figure 2 AppendEntries 4: entries the follower already has are not written again."""
    core = _follower([1, 1, 3])
    commands = _append(core, 1, 1, make_entries([1, 3, 3], 2))
    assert of_type(commands, WriteLog) == [WriteLog(make_entries([3], 4), leader=False)]
    assert of_type(commands, DeleteLogsFrom) == []
    assert log_terms(core) == [1, 1, 3, 3]


@pytest.mark.parametrize(
    ("terms", "prev_index", "new_terms", "first_conflict"),
    [
        ([1, 1, 2, 2, 2], 2, [3, 3], 3),
        ([1, 1, 2, 2, 2], 1, [1, 3], 3),  # first entry matches, the second conflicts
        ([1, 2], 0, [1, 3, 3, 3], 2),
    ],
)
def test_conflicting_entries_are_truncated_before_new_ones_are_written(
    terms: list[int], prev_index: int, new_terms: list[int], first_conflict: int
) -> None:
    """Figure 2 AppendEntries 3: "If an existing entry conflicts with a new one (same index
    but different terms), delete the existing entry and all that follow it" — a
    DeleteLogsFrom at the first conflicting index, issued before the WriteLog."""
    core = _follower(terms)
    entries = make_entries(new_terms, prev_index + 1)
    commands = _append(core, prev_index, terms[prev_index - 1] if prev_index else 0, entries)
    deletes = [i for i, c in enumerate(commands) if isinstance(c, DeleteLogsFrom)]
    writes = [i for i, c in enumerate(commands) if isinstance(c, WriteLog)]
    assert [commands[i] for i in deletes] == [DeleteLogsFrom(first_conflict)]
    assert len(writes) == 1 and deletes[0] < writes[0]
    assert commands[writes[0]].entries == tuple(e for e in entries if e.index >= first_conflict)
    assert log_terms(core) == terms[:prev_index] + new_terms
    assert responds(commands)[0].value == AppendEntriesResponse(3, True)


def test_stale_shorter_append_never_truncates_matching_entries() -> None:
    """Figure 2 AppendEntries 3 applies only to *conflicting* entries (actix D6): a delayed
    or duplicated shorter request arriving after a longer one must not remove the entries
    that follow it, since the leader may already count them as replicated."""
    core = _follower([], term=3)
    long_request = make_entries([3, 3, 3, 3])
    _append(core, 0, 0, long_request)
    commands = _append(core, 0, 0, long_request[:2], token=2)
    assert of_type(commands, DeleteLogsFrom) == []
    assert of_type(commands, WriteLog) == []
    assert responds(commands)[0].value == AppendEntriesResponse(3, True)
    commands = _append(core, 1, 3, (), token=3)  # a late heartbeat
    assert of_type(commands, DeleteLogsFrom) == []
    assert log_terms(core) == [3, 3, 3, 3]


def test_follower_commit_is_min_of_leader_commit_and_last_new_entry() -> None:
    """Figure 2 AppendEntries 5: "If leaderCommit > commitIndex, set commitIndex =
    min(leaderCommit, index of last new entry)" — heartbeats included (actix D2): entries
    past the request may still be replaced, so they must not be committed. Newly committed
    entries are applied in order (Figure 2, All Servers)."""
    core = _follower([1, 1, 1, 1, 1])
    # A heartbeat vouching for the log up to 3: entries 4-5 (term 1) are not the leader's.
    commands = _append(core, 3, 1, (), leader_commit=5)
    assert core.commit_index == 3
    assert of_type(commands, Apply) == [Apply(make_entries([1, 1, 1]))]

    commands = _append(core, 3, 1, make_entries([3], 4), leader_commit=5)
    assert of_type(commands, DeleteLogsFrom) == [DeleteLogsFrom(4)]
    assert core.commit_index == 4
    assert of_type(commands, Apply) == [Apply(make_entries([3], 4))]
    assert commands.index(of_type(commands, WriteLog)[0]) < commands.index(
        of_type(commands, Apply)[0]
    )

    commands = _append(core, 4, 3, make_entries([3, 3], 5), leader_commit=5)
    assert core.commit_index == 5, "leader_commit below the last new entry bounds the commit"
    assert of_type(commands, Apply) == [Apply(make_entries([3], 5))]

    commands = _append(core, 6, 3, (), leader_commit=6)
    assert core.commit_index == 6
    assert of_type(commands, Apply) == [Apply(make_entries([3], 6))]


def test_follower_commit_never_moves_backwards() -> None:
    """Figure 2: commitIndex increases monotonically; a stale request with a lower
    leaderCommit changes nothing and re-applies nothing."""
    core = _follower([3, 3, 3])
    _append(core, 3, 3, (), leader_commit=3)
    assert core.commit_index == 3
    commands = _append(core, 1, 3, (), leader_commit=1)
    assert core.commit_index == 3
    assert of_type(commands, Apply) == []


# --- leader side --------------------------------------------------------------------------


def _leader(terms: list[int], term: int, config=CONFIG, members=(1, 2, 3)) -> RaftCore:
    """Node 1 elected (by node 2's vote) in ``term + 1`` over a log with ``terms``."""
    core = make_core(1, members, term=term, entries=make_entries(terms), config=config)
    elect(core, granting=[2])
    core.take_commands()
    return core


def _send_to(commands, target: int) -> AppendEntriesRequest:
    sends = append_requests(commands, target)
    assert len(sends) == 1, sends
    return sends[0].request


@pytest.mark.parametrize(
    ("hint", "next_prev"),
    [
        (ConflictOpt(2, 6), (3, 1)),  # the follower's term-2 entries: skip all our term-4 ones
        (ConflictOpt(1, 2), (2, 1)),  # the follower has only two entries
        (ConflictOpt(4, 5), (5, 4)),  # the follower has our entries up to 5
        (None, (6, 4)),  # no hint: one entry back
    ],
)
def test_leader_backs_up_after_rejection_using_the_hint(
    hint: ConflictOpt | None, next_prev: tuple[int, int]
) -> None:
    """§5.3: after a rejection the leader decrements nextIndex and retries; with the
    conflict hint it skips every entry of a term the follower cannot share in one step."""
    core = make_core(1, term=4, entries=make_entries([1, 1, 1, 4, 4, 4, 4]))
    commands = elect(core, granting=[2])
    probe = _send_to(commands, 3)
    assert (probe.prev_log_index, probe.prev_log_term) == (7, 4)
    core.append_entries_result(probe, AppendEntriesResponse(5, False, hint))
    retry = _send_to(core.take_commands(), 3)
    assert (retry.prev_log_index, retry.prev_log_term) == next_prev
    assert retry.prev_log_index < probe.prev_log_index
    assert [e.index for e in retry.entries] == list(range(next_prev[0] + 1, 8))
    assert retry.entries == tuple(core.log.get(e.index) for e in retry.entries)


def test_leader_pipelines_after_a_successful_probe() -> None:
    """§5.3 (pipelining): once a follower's log matches, the leader sends several
    AppendEntries without waiting, up to max_inflight, each of at most max_payload_entries."""
    config = attrs.evolve(CONFIG, max_payload_entries=2, max_inflight=3)
    core = make_core(1, term=1, entries=make_entries([1] * 10), config=config)
    probe = _send_to(elect(core, granting=[2]), 3)
    assert (probe.prev_log_index, probe.entries) == (10, ())
    core.append_entries_result(probe, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    probe = _send_to(core.take_commands(), 3)
    assert (probe.prev_log_index, [e.index for e in probe.entries]) == (0, [1, 2])
    core.append_entries_result(probe, ack(probe))
    pipeline = [s.request for s in append_requests(core.take_commands(), 3)]
    assert [[e.index for e in r.entries] for r in pipeline] == [[3, 4], [5, 6], [7, 8]]
    assert [r.prev_log_index for r in pipeline] == [2, 4, 6]

    core.append_entries_result(pipeline[0], ack(pipeline[0]))
    more = [s.request for s in append_requests(core.take_commands(), 3)]
    assert [[e.index for e in r.entries] for r in more] == [[9, 10]]


def test_leader_batches_client_writes_while_a_write_is_in_flight() -> None:
    """§5.3 / batching: client writes arriving while the leader's log write is in flight go
    to storage and to followers together, at consecutive indexes of the leader's term."""
    core = _leader([1], term=1)  # the §8 blank (index 2) is being written
    for i in range(3):
        core.client_write(payload(f"w{i}"), token=10 + i)
    assert of_type(core.take_commands(), WriteLog) == []
    core.log_written(LogId(2, 2), leader=True)
    writes = of_type(core.take_commands(), WriteLog)
    assert len(writes) == 1
    assert [(e.term, e.index, e.payload.data) for e in writes[0].entries] == [
        (2, 3, "w0"),
        (2, 4, "w1"),
        (2, 5, "w2"),
    ]


def test_leader_ignores_stale_responses_from_an_older_term() -> None:
    """§5.1/§5.3: a success answering an AppendEntries of an earlier term says nothing about
    the current log: it must not raise matchIndex (nor commit)."""
    core = _leader([1], term=1)
    core.log_written(LogId(2, 2), leader=True)
    core.take_commands()
    stale = AppendEntriesRequest(2, 1, 1, 2, 2, (), 0)
    core.append_entries_result(stale, AppendEntriesResponse(1, True))
    core.append_entries_result(attrs.evolve(stale, target=3), AppendEntriesResponse(2, True))
    assert core.take_commands() == []
    assert core.commit_index == 0
    assert core.leader.progress[2].match_index == 0


def test_leader_resends_after_rpc_timeout() -> None:
    """§5.3: "If followers crash or run slowly, or if network packets are lost, the leader
    retries AppendEntries RPCs indefinitely" — here after rpc_timeout without an answer."""
    core = make_core(1, term=1, entries=make_entries([1]))
    probe = _send_to(elect(core, granting=[2]), 2)
    core.log_written(LogId(2, 2), leader=True)
    core.take_commands()
    core.append_entries_result(probe, ack(probe))  # follower 2 matches: pipelined from now
    sent = _send_to(core.take_commands(), 2)
    assert [e.index for e in sent.entries] == [2]
    elapsed = 0
    while elapsed + CONFIG.heartbeat_interval < CONFIG.rpc_timeout:
        core.tick(CONFIG.heartbeat_interval)
        elapsed += CONFIG.heartbeat_interval
        beats = [s.request for s in append_requests(core.take_commands(), 2)]
        assert all(r.entries == () for r in beats), "resent before the rpc timeout"
    core.tick(CONFIG.rpc_timeout - elapsed)
    resent = [s.request for s in append_requests(core.take_commands(), 2) if s.request.entries]
    assert [(r.prev_log_index, [e.index for e in r.entries]) for r in resent] == [(1, [2])]


def test_leader_sends_smaller_batches_to_a_follower_that_does_not_answer_in_time() -> None:
    """§5.3's retries must make progress on a slow link: a full batch that cannot cross it
    within rpc_timeout would be sent again and again, each copy arriving too late to count.
    Every lost batch halves the next one (while the follower answers something, so it is
    alive), and every answered one doubles it back to max_payload_entries."""
    config = attrs.evolve(CONFIG, max_payload_entries=16, max_inflight=1)
    core = make_core(1, term=1, entries=make_entries([1] * 40), config=config)
    probe = _send_to(elect(core, granting=[2]), 3)
    core.append_entries_result(probe, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    first = _batch_to(core, 3)
    core.tick(CONFIG.rpc_timeout)  # no answer in time
    second = _batch_to(core, 3)
    core.tick(1)
    core.leader.progress[3].last_heard = core.now  # an answer got through meanwhile: alive
    core.append_entries_result(second, None)  # the network gave up on it
    core.tick(CONFIG.heartbeat_interval)
    retry: AppendEntriesRequest | None = _batch_to(core, 3)
    assert retry is not None
    sizes = [len(r.entries) for r in (first, second, retry)]
    assert sizes == [16, 8, 4], "each batch that got no answer halves the next"
    assert retry.prev_log_index == 0, "from the known match"
    answered = []
    while retry is not None:
        answered.append([e.index for e in retry.entries])
        core.append_entries_result(retry, ack(retry))
        retry = _batch_to(core, 3, required=False)
    assert [len(b) for b in answered] == [4, 8, 16, 12], "answers double it back to the cap"
    assert answered[-1][-1] == core.leader.progress[3].match_index == 40  # 41: not flushed


def test_a_batch_the_network_cannot_carry_is_cut_to_what_fits_until_the_follower_caught_up() -> (
    None
):
    """A network that cannot carry an AppendEntries whole says how many of its entries fit
    (``RequestTooLarge.fits``): the leader sends that many at a time from then on, at
    once, rather than halving a batch again and again, and lifts the limit once the
    follower has caught up."""
    config = attrs.evolve(CONFIG, max_payload_entries=16, max_inflight=1)
    core = make_core(1, term=1, entries=make_entries([1] * 40), config=config)
    probe = _send_to(elect(core, granting=[2]), 3)
    core.append_entries_result(probe, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    first = _batch_to(core, 3)
    assert len(first.entries) == 16
    core.append_entries_result(first, None, fits=3)
    core.tick(CONFIG.heartbeat_interval)
    sizes = []
    retry = _batch_to(core, 3, required=False)
    while retry is not None:
        sizes.append(len(retry.entries))
        core.append_entries_result(retry, ack(retry))
        retry = _batch_to(core, 3, required=False)
    assert sizes == [3] * 13 + [1], "three at a time, from the known match"
    assert core.leader.progress[3].fits == 3, "41, the leader's blank entry, is not sent yet"
    core.log_written(LogId(2, 41), leader=True)
    last = _batch_to(core, 3)
    core.append_entries_result(last, ack(last))
    assert core.leader.progress[3].match_index == 41 and core.leader.progress[3].fits == 0


def test_a_late_answer_to_a_batch_given_up_on_does_not_restore_its_size() -> None:
    """The answer to a batch that already timed out arrives late: it acknowledges its
    entries, but it came too late to show that such a batch gets through in time."""
    config = attrs.evolve(CONFIG, max_payload_entries=16, max_inflight=1)
    core = make_core(1, term=1, entries=make_entries([1] * 40), config=config)
    probe = _send_to(elect(core, granting=[2]), 3)
    core.append_entries_result(probe, AppendEntriesResponse(2, False, ConflictOpt(0, 0)))
    first = _batch_to(core, 3)
    core.tick(CONFIG.rpc_timeout)  # no answer in time: the next batch is halved
    second = _batch_to(core, 3)
    assert (len(first.entries), len(second.entries)) == (16, 8)
    core.append_entries_result(first, ack(first))  # late
    assert core.leader.progress[3].match_index == 16
    after = _batch_to(core, 3)
    assert after.prev_log_index == 16 and len(after.entries) == 8, "still halved"


def _batch_to(core: RaftCore, target: int, required: bool = True) -> AppendEntriesRequest | None:
    """The one AppendEntries with entries just sent to ``target`` (heartbeats aside)."""
    sent = [s.request for s in append_requests(core.take_commands(), target) if s.request.entries]
    assert len(sent) == (1 if required else len(sent[:1])), sent
    return sent[0] if sent else None


def test_leader_sends_heartbeats_during_idle_periods_with_its_commit_index() -> None:
    """Figure 2 Leaders: "send initial empty AppendEntries RPCs (heartbeat) to each server;
    repeat during idle periods to prevent election timeouts"; each carries leaderCommit so
    followers learn what is committed."""
    core = make_core(1, term=1, entries=make_entries([1]))
    commands = elect(core, granting=[2])
    assert sorted(s.request.target for s in append_requests(commands)) == [2, 3]
    probe = _send_to(commands, 2)
    core.log_written(LogId(2, 2), leader=True)
    core.append_entries_result(probe, ack(probe))
    sent = _send_to(core.take_commands(), 2)
    core.append_entries_result(sent, ack(sent))
    assert core.commit_index == 2
    core.take_commands()

    core.tick(CONFIG.heartbeat_interval - 1)
    assert append_requests(core.take_commands()) == []
    for _ in range(3):
        core.tick(CONFIG.heartbeat_interval)
        beats = {s.request.target: s.request for s in append_requests(core.take_commands())}
        assert sorted(beats) == [2, 3]
        assert beats[2].entries == ()
        assert (beats[2].prev_log_index, beats[2].leader_commit) == (2, 2)
        assert all(b.term == 2 for b in beats.values())


# --- what counts as replicated ---------------------------------------------------------------


def test_a_heartbeat_ack_says_nothing_about_entries_still_in_flight() -> None:
    """§5.3: matchIndex is what the follower confirmed holding: a successful heartbeat
    (an empty AppendEntries at prev_log_index = matchIndex) confirms nothing past its prev,
    even while pipelined entries are on their way to that follower."""
    core = make_core(1, term=1, entries=make_entries([1]), last_applied=1, config=CONFIG)
    commands = elect(core, granting=[2])
    core.log_written(LogId(2, 2), leader=True)
    commands += core.take_commands()
    for _ in range(3):  # probes, then the blank: both followers match the leader
        for send in append_requests(commands):
            core.append_entries_result(send.request, AppendEntriesResponse(2, True))
        commands = core.take_commands()
    assert core.commit_index == 2
    core.client_write(payload("x"), token=5)
    (write,) = of_type(core.take_commands(), WriteLog)
    core.log_written(write.entries[-1].log_id, leader=True)
    sent = {s.request.target: s.request for s in append_requests(core.take_commands())}
    assert [e.index for e in sent[2].entries] == [3]  # in flight, unanswered
    core.tick(CONFIG.heartbeat_interval)
    beats = {s.request.target: s.request for s in append_requests(core.take_commands())}
    assert beats[2].entries == () and beats[2].prev_log_index == 2
    core.append_entries_result(beats[2], AppendEntriesResponse(2, True))
    core.append_entries_result(beats[3], AppendEntriesResponse(2, True))
    assert core.commit_index == 2, "entry 3 counted on followers that only acked a heartbeat"
    assert core.leader is not None and core.leader.progress[2].match_index == 2
    core.append_entries_result(sent[2], AppendEntriesResponse(2, True))
    assert core.commit_index == 3


def test_a_write_of_entries_since_replaced_does_not_make_their_replacements_durable() -> None:
    """Figure 2: a leader's own entry counts toward commitment only once it is on its
    stable storage. A follower's log write that completes after a new leader replaced those
    entries (truncation) says nothing about the replacements: if the node leads next, the
    entries it has not flushed must not count."""
    core = make_core(1, term=1, entries=make_entries([1]), last_applied=1, config=CONFIG)
    # Leader 2 of term 2 sends entries 2-4; their write is still under way.
    core.receive_append_entries(
        AppendEntriesRequest(1, 2, 2, 1, 1, make_entries([2, 2, 2], 2), 1), 1
    )
    core.take_commands()
    # Leader 3 of term 3 replaces them with one entry of its own at index 2.
    core.receive_append_entries(AppendEntriesRequest(1, 3, 3, 1, 1, make_entries([3], 2), 1), 2)
    core.take_commands()
    assert core.log.last_log_id == LogId(3, 2)
    core.log_written(LogId(2, 4))  # the first write completes: entries that are gone
    core.log_written(LogId(3, 2))  # the replacement is durable
    commands = elect(core, granting=[2])
    assert core.current_term == 4 and core.log.last_log_id == LogId(4, 3)
    for _ in range(3):
        for send in append_requests(commands, 2):
            core.append_entries_result(send.request, AppendEntriesResponse(4, True))
        commands = core.take_commands()
    assert core.commit_index < 3, "the leader counted its blank before writing it"
    core.log_written(LogId(4, 3), leader=True)
    commands = core.take_commands()
    for send in append_requests(commands, 2):
        core.append_entries_result(send.request, AppendEntriesResponse(4, True))
    assert core.commit_index == 3
