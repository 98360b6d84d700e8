"""Builders and command filters for the Raft paper tests.

The module has a distinctive name (not ``helpers.py``) so that it cannot clash with a helper
module of another test directory: the test directories have no ``__init__.py`` and pytest
puts each of them on ``sys.path`` under its basename.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from pykka_raft.config import Config
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import (
    Apply,
    Command,
    DeleteLogsFrom,
    LeadWhenDurable,
    Respond,
    SaveHardState,
    Send,
    WriteLog,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    Entry,
    EntryNormal,
    HardState,
    InitialState,
    MembershipConfig,
    ResponseMode,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.types import LogId, NodeId, Term

__all__ = [
    "CONFIG",
    "Apply",
    "DeleteLogsFrom",
    "LeadWhenDurable",
    "Respond",
    "SaveHardState",
    "Send",
    "WriteLog",
    "append_requests",
    "elect",
    "lead_when_durable",
    "log_terms",
    "make_core",
    "make_entries",
    "of_type",
    "payload",
    "responds",
    "tick_until",
    "vote_requests",
]

CONFIG = Config(
    election_timeout_min=150,
    election_timeout_max=300,
    heartbeat_interval=30,
    pre_vote=False,
    leader_stickiness=False,
)
"""The timing every paper test uses (rpc_timeout is election_timeout_min = 150 ms), and
the paper's elections (§5.2); tests of PreVote and leader stickiness turn them on."""

C = TypeVar("C")


def make_entries(terms: Sequence[Term], start: int = 1) -> tuple[Entry, ...]:
    """Normal entries with the given terms at consecutive indexes from ``start``.

    Each entry's data names its position, e.g. ``"t2i5"``, so logs are easy to compare.
    """
    return tuple(
        Entry(term, start + i, EntryNormal(f"t{term}i{start + i}")) for i, term in enumerate(terms)
    )


def make_core(
    node_id: NodeId = 1,
    members: Iterable[NodeId] = (1, 2, 3),
    *,
    term: Term = 0,
    voted_for: NodeId | None = None,
    entries: Iterable[Entry] = (),
    last_applied: int = 0,
    non_voters: Iterable[NodeId] = (),
    membership: MembershipConfig | None = None,
    config: Config = CONFIG,
    seed: int = 0,
    just_restarted: bool = False,
) -> RaftCore:
    """A started core (commands of the start drained) with the given durable state.

    With ``just_restarted`` it is in the quiet period of a node that restarted with a term
    (it refuses votes for ``election_timeout_min``); otherwise that period is over, as in a
    node that has been running for a while.
    """
    entries = tuple(entries)
    if membership is None:
        membership = MembershipConfig(members=tuple(members), non_voters=tuple(non_voters))
    last = entries[-1].log_id if entries else LogId(0, 0)
    core = RaftCore(node_id, config, random.Random(seed))
    core.start(
        InitialState(last, last_applied, HardState(term, voted_for, membership)),
        entries,
    )
    core.take_commands()
    if not just_restarted:
        core.quiet_until = 0
    return core


def of_type(commands: Iterable[Command], kind: type[C]) -> list[C]:
    """The commands of one type, in order."""
    return [c for c in commands if isinstance(c, kind)]


def append_requests(commands: Iterable[Command], target: NodeId | None = None) -> list[Send]:
    """The ``Send`` commands carrying AppendEntries (to ``target`` if given)."""
    return [
        c
        for c in of_type(commands, Send)
        if isinstance(c.request, AppendEntriesRequest)
        and (target is None or c.request.target == target)
    ]


def vote_requests(commands: Iterable[Command]) -> list[Send]:
    """The ``Send`` commands carrying RequestVote."""
    return [c for c in of_type(commands, Send) if isinstance(c.request, VoteRequest)]


def responds(commands: Iterable[Command], token: int | None = None) -> list[Respond]:
    """The ``Respond`` commands (for ``token`` if given)."""
    return [c for c in of_type(commands, Respond) if token is None or c.token == token]


def log_terms(core: RaftCore) -> list[Term]:
    """The terms of the core's in-memory log, index 1 first."""
    return [core.log.term_at(i) for i in range(1, core.log.last_index + 1)]  # type: ignore[misc]


def tick_until(
    core: RaftCore, predicate: Callable[[], bool], step: int = 1, limit: int = 10_000
) -> int:
    """Tick ``step`` ms at a time until ``predicate()`` holds; return the ms that passed."""
    elapsed = 0
    while not predicate():
        if elapsed >= limit:
            raise AssertionError(f"condition not reached within {limit} ms")
        core.tick(step)
        elapsed += step
    return elapsed


def elect(core: RaftCore, granting: Iterable[NodeId] | None = None) -> list[Command]:
    """Time the follower out and grant it votes until it leads; return the leader's commands.

    ``granting`` defaults to every other voter. The returned commands are those produced
    from the election timeout on (SaveHardState, VoteRequests, the §8 WriteLog, probes).
    """
    term_before = core.current_term
    tick_until(core, lambda: core.current_term > term_before, step=10)
    commands = core.take_commands()
    requests = {s.request.target: s.request for s in vote_requests(commands)}
    voters = sorted(requests) if granting is None else list(granting)
    for peer in voters:
        if core.role is Role.LEADER:
            break
        core.vote_result(requests[peer], VoteResponse(core.current_term, True))
        commands += core.take_commands()
    if core.role is Role.CANDIDATE:  # a lone voter: it leads once its term is durable
        commands += lead_when_durable(core, commands)
    assert core.role is Role.LEADER, f"node {core.id} did not win: {core.role}"
    return commands


def lead_when_durable(core: RaftCore, commands: list[Command]) -> list[Command]:
    """The driver's part once the writes before each ``LeadWhenDurable`` in ``commands``
    are durable: call the core back; return the commands that made."""
    for lead in of_type(commands, LeadWhenDurable):
        core.hard_state_durable(lead.term)
    return core.take_commands()


def payload(data: object, mode: ResponseMode = ResponseMode.COMMITTED) -> ClientPayload:
    """A client write of ``data``."""
    return ClientPayload.new(data, mode)


def ack(request: AppendEntriesRequest, term: Term | None = None) -> AppendEntriesResponse:
    """A successful answer to ``request``."""
    return AppendEntriesResponse(request.term if term is None else term, True)
