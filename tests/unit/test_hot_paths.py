"""The shortcuts on a client write's path give exactly what the plain code gives.

Each test puts a shortcut beside what it stands for: the cheap metrics headline beside
the headline of the full metrics, the counters' tuple beside ``attrs.astuple``, the log's
term lookup beside its definition, the commit and apply of a batch deciding each write by
its own entry, and the value check's field naming beside the codec's.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from pykka_raft.actor.events import headline
from pykka_raft.codec import check_app_value, register_app_type, to_primitive
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import Respond, Send
from pykka_raft.core.log import RaftLog
from pykka_raft.core.state import Counters
from pykka_raft.errors import EncodeError, ForwardToLeader
from pykka_raft.messages import (
    ClientPayload,
    ClientPayloadResponse,
    Entry,
    EntryNormal,
    ResponseMode,
    VoteRequest,
    VoteResponse,
)
from tests.paper.paper_helpers import CONFIG, lead_when_durable, make_core


def _core(members: tuple[int, ...] = (1, 2, 3), non_voters: tuple[int, ...] = ()) -> RaftCore:
    return make_core(1, members, non_voters=non_voters)


def _tick_until(core: RaftCore, roles: tuple[Role, ...]) -> None:
    for _ in range(1000):
        if core.role in roles:
            return
        core.tick(10)
        if Role.LEADER in roles:  # a lone voter leads once its term is durable
            lead_when_durable(core, core.take_commands())
    raise AssertionError(f"never {roles}")


def _tick_until_candidate(core: RaftCore) -> None:
    _tick_until(core, (Role.CANDIDATE,))


# --- the metrics headline ----------------------------------------------------------------


def _same_headline(core: RaftCore) -> None:
    assert core.metrics_headline() == headline(core.metrics())


def test_metrics_headline_is_the_headline_of_the_metrics_in_every_role() -> None:
    core = _core()
    _same_headline(core)  # follower, no leader
    _tick_until_candidate(core)
    _same_headline(core)  # candidate, new term
    core.counters.snapshots_sent = 2
    core.counters.snapshots_installed = 1
    core.counters.elections_started = 5
    _same_headline(core)
    requests = [
        c.request
        for c in core.take_commands()
        if isinstance(c, Send) and isinstance(c.request, VoteRequest)
    ]
    core.vote_result(requests[0], VoteResponse(core.current_term, True))
    assert core.role is Role.LEADER
    _same_headline(core)  # leader of its term
    core.log.compact(core.log.last_index, core.current_term, core.membership)
    _same_headline(core)  # a snapshot point


def test_metrics_headline_of_a_non_voter_and_of_a_starting_node() -> None:
    _same_headline(_core(members=(2, 3), non_voters=(1,)))
    starting = RaftCore(1, CONFIG, random.Random(0))
    assert starting.role is Role.INITIALIZING
    _same_headline(starting)


def test_counters_tuple_is_attrs_astuple() -> None:
    counters = Counters(1, 2, 3, 4, 5)
    assert counters.as_tuple() == attrs.astuple(counters)
    assert Counters().as_tuple() == attrs.astuple(Counters())


# --- the log's term lookup ----------------------------------------------------------------


def _term_at_by_definition(log: RaftLog, index: int) -> int | None:
    if index == log.offset:
        return log.offset_term
    if index == 0:
        return 0
    if index < log.offset or index > log.last_index:
        return None
    return log.get(index).term


@pytest.mark.parametrize("offset", [0, 1, 5])
@pytest.mark.parametrize("held", [0, 1, 4])
def test_term_at_agrees_with_its_definition(offset: int, held: int) -> None:
    entries = [Entry(3 + i // 2, offset + 1 + i, EntryNormal(i)) for i in range(held)]
    log = RaftLog(entries, offset=offset, offset_term=2 if offset else 0)
    for index in range(-2, offset + held + 3):
        assert log.term_at(index) == _term_at_by_definition(log, index), index


# --- commit of a range ---------------------------------------------------------------------


def _answers(core: RaftCore) -> dict[int, Respond]:
    return {c.token: c for c in core.take_commands() if isinstance(c, Respond)}


@pytest.mark.parametrize("mode", [ResponseMode.COMMITTED, ResponseMode.APPLIED])
def test_commit_of_a_range_with_several_terms_decides_each_write_by_its_own_entry(
    mode: ResponseMode,
) -> None:
    """Writes of term 1 wait at 1..3 and a write of term 2 at 4, on a log whose entries
    1..2 have term 1 and 3..4 term 2: committing 1..4 at once answers 1..2 (their entry),
    loses 3 (another entry), and leaves 4 (its entry) to commit or apply as its mode says."""
    core = _core()
    writes = core.writes
    for token in (1, 2, 3, 4):
        writes.accept(token)
    payload = ClientPayload.new("v", mode)
    for index, term, token in ((1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 4)):
        writes.wait_at(index, term, token, payload)
    log = RaftLog([Entry(t, i, EntryNormal(i)) for i, t in ((1, 1), (2, 1), (3, 2), (4, 2))])
    core.take_commands()
    writes.committed(0, 4, log)
    answers = _answers(core)
    assert isinstance(answers[3].error, ForwardToLeader)
    if mode is ResponseMode.COMMITTED:
        assert {t: a.value for t, a in answers.items() if t != 3} == {
            1: ClientPayloadResponse(1, mode),
            2: ClientPayloadResponse(2, mode),
            4: ClientPayloadResponse(4, mode),
        }
    else:
        assert set(answers) == {3}
        assert sorted(writes.pending) == [1, 2, 4]


def test_commit_of_a_range_with_one_term_loses_the_writes_of_another_term() -> None:
    core = _core()
    writes = core.writes
    payload = ClientPayload.new("v", ResponseMode.APPLIED)
    for index, term in ((1, 2), (2, 1), (3, 2)):
        writes.accept(index)
        writes.wait_at(index, term, index, payload)
    log = RaftLog([Entry(2, i, EntryNormal(i)) for i in (1, 2, 3)])
    core.take_commands()
    writes.committed(0, 3, log)
    assert set(_answers(core)) == {2}
    assert sorted(writes.pending) == [1, 3]


def test_the_leader_answers_each_write_once_through_commit_and_apply() -> None:
    core = _core(members=(1,))
    _tick_until(core, (Role.LEADER,))  # the only voter
    core.log_written(core.log.last_log_id, None, True)  # the leader's blank entry (§8)
    core.take_commands()
    start = core.log.last_index
    modes = [ResponseMode.COMMITTED, ResponseMode.APPLIED] * 3
    core.client_writes([(ClientPayload.new(f"v{t}", m), t) for t, m in enumerate(modes)])
    core.log_written(core.log.last_log_id, None, True)
    entries = core.log.slice(start + 1, core.log.last_index + 1)
    answers = _answers(core)
    assert sorted(answers) == [0, 2, 4]  # the COMMITTED ones, at commit
    core.applied(entries, tuple(f"r{e.index}" for e in entries))
    answers = _answers(core)
    assert sorted(answers) == [1, 3, 5]
    for token, answer in answers.items():
        index = start + 1 + token
        assert answer.value == ClientPayloadResponse(index, ResponseMode.APPLIED, f"r{index}")


# --- the value check --------------------------------------------------------------------


@register_app_type
@attrs.frozen
class Triple:
    a: Any
    b: Any = None
    c: Any = None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (Triple("x", object()), "value.b"),
        (Triple("x", "y", [1, {2}]), "value.c[1]"),
        (Triple(1, Triple("é", None, 2**70), object()), "value.c"),
    ],
)
def test_a_refused_field_is_named_as_the_codec_names_it(value: Any, path: str) -> None:
    with pytest.raises(EncodeError) as refused:
        to_primitive(value, Any)
    with pytest.raises(EncodeError) as checked:
        check_app_value(value, root="value")
    assert checked.value.path == refused.value.path == path
    assert checked.value.reason == refused.value.reason


def test_the_same_refused_object_in_two_fields_is_named_at_the_first() -> None:
    bad = object()
    with pytest.raises(EncodeError) as checked:
        check_app_value(Triple("x", bad, bad))
    assert checked.value.path == "data.b"


def test_sizes_of_fields_at_the_string_length_boundaries() -> None:
    msgpack = pytest.importorskip("msgpack")
    for n in (0, 31, 32, 255, 256, 65535, 65536):
        for value in (Triple("s" * n), Triple(None, True, "é" * n), ["s" * n, None, False]):
            assert check_app_value(value) == len(msgpack.packb(to_primitive(value, Any)))


# --- the leader's time stamp ------------------------------------------------------------


class _Unhashable(type):
    """A metaclass whose classes cannot be hashed (it defines ``__eq__`` only)."""

    def __eq__(cls, other: object) -> bool:
        return cls is other

    __hash__ = None  # type: ignore[assignment]


class _Stamped(metaclass=_Unhashable):
    def with_leader_time(self, now: float) -> str:
        return f"at {now}"


class _Plain(metaclass=_Unhashable):
    pass


def test_the_stamp_looks_each_type_up_once_and_takes_unhashable_types() -> None:
    from pykka_raft.actor.stamp import stamped

    class Reply:
        def set(self, value: Any = None) -> None:
            raise AssertionError("not answered here")

        def set_exception(self, error: BaseException) -> None:
            raise AssertionError("not refused")

    writes = [
        (ClientPayload.new(data, ResponseMode.COMMITTED), Reply())
        for data in (_Stamped(), _Plain(), _Stamped(), "text")
    ]
    out = stamped(True, writes)  # type: ignore[arg-type]
    datas = [payload.entry.data for payload, _ in out]
    assert datas[0].startswith("at ") and datas[2] == datas[0]
    assert isinstance(datas[1], _Plain) and datas[3] == "text"
    assert stamped(False, writes) is writes  # type: ignore[arg-type]
