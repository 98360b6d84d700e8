"""``core/writes.py``: a client write is answered exactly once, and only once accepted.

``ClientWrites`` is the one place a write is answered; every answer goes through its
``_answer``, which raises :class:`~pykka_raft.errors.SafetyViolation` on a second answer
(or an answer to a token it never accepted) instead of sending the caller two replies.
These tests drive it through a started core (``paper_helpers.make_core``) and its public
methods.
"""

from __future__ import annotations

import pytest

from pykka_raft.core import RaftCore
from pykka_raft.core.commands import Command, Respond
from pykka_raft.errors import Busy, ForwardToLeader, OutcomeUnknown, SafetyViolation
from pykka_raft.messages import ClientPayloadResponse, ResponseMode
from pykka_raft.types import LogId
from tests.paper.paper_helpers import (
    ack,
    append_requests,
    elect,
    make_core,
    make_entries,
    payload,
    responds,
)


def _leader() -> RaftCore:
    """Leader 1 of (1, 2, 3) in term 2, follower 2 matched, its §8 blank (index 2) written."""
    core = make_core(1, term=1, entries=make_entries([1]), last_applied=1)
    probe = append_requests(elect(core, granting=[2]), 2)[0].request
    core.append_entries_result(probe, ack(probe))
    core.log_written(LogId(2, 2), leader=True)
    core.take_commands()
    return core


def _commit_everything(core: RaftCore) -> list[Command]:
    """Write the leader's log and let follower 2 acknowledge every AppendEntries; return
    the commands produced on the way."""
    core.log_written(LogId(core.current_term, core.log.last_index), leader=True)
    commands = core.take_commands()
    while sends := append_requests(commands, 2):
        commands = [c for c in commands if c not in sends]
        for send in sends:
            core.append_entries_result(send.request, ack(send.request))
            commands += core.take_commands()
    return commands


def test_the_normal_path_answers_a_write_once() -> None:
    core = _leader()
    core.client_write(payload("x"), token=5)
    commands = _commit_everything(core)
    assert core.commit_index == 3
    assert responds(commands, 5) == [
        Respond(5, ClientPayloadResponse(3, ResponseMode.COMMITTED), None, False)
    ]
    assert core.writes.pending == {}
    # Later events that answer whatever is still open leave it alone: it was answered.
    core.tick(core.config.heartbeat_interval)
    core.stop(RuntimeError("shutting down"))
    assert responds(core.take_commands(), 5) == []


def test_a_write_answered_twice_raises_and_sends_no_second_answer() -> None:
    core = _leader()
    core.client_write(payload("x"), token=5)
    _commit_everything(core)  # answered: committed at index 3
    with pytest.raises(SafetyViolation, match="client write 5 answered twice"):
        core.writes.refuse(5, Busy(payload("x"), 1))
    assert responds(core.take_commands(), 5) == []


def test_a_refused_write_answered_again_raises() -> None:
    """A follower refuses at once (ForwardToLeader): that was its one answer."""
    core = make_core(1, term=1)
    core.client_write(payload("x"), token=9)
    (answer,) = responds(core.take_commands(), 9)
    assert isinstance(answer.error, ForwardToLeader)
    with pytest.raises(SafetyViolation):
        core.writes.refuse(9, ForwardToLeader(payload("x"), None))
    assert responds(core.take_commands()) == []


def test_answering_a_token_never_accepted_raises() -> None:
    core = make_core(1, term=1)
    with pytest.raises(SafetyViolation, match="never accepted"):
        core.writes.refuse(42, ForwardToLeader(payload("x"), None))
    assert responds(core.take_commands()) == []


def test_a_waiting_write_is_answered_once_when_the_node_stops() -> None:
    """The write waits at its index; the stop answers it (outcome unknown), and nothing
    can answer it after that."""
    core = _leader()
    core.client_write(payload("x"), token=5)
    core.log_written(LogId(2, 3), leader=True)
    core.take_commands()
    assert [p.token for p in core.writes.pending[3]] == [5]
    core.stop(RuntimeError("shutting down"))
    (answer,) = responds(core.take_commands(), 5)
    assert isinstance(answer.error, OutcomeUnknown)
    with pytest.raises(SafetyViolation):
        core.writes.refuse(5, Busy(payload("x"), 1))
