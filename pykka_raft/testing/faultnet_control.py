"""The control messages of :class:`~pykka_raft.testing.faultnet.FaultNetwork` (rules,
cuts, partitions, holds, replays) and what it reports (its trace and held messages)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import attrs

from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.testing.faultnet_rules import Direction, LinkRule
from pykka_raft.types import NodeId

# --- control messages -------------------------------------------------------------------


@attrs.frozen
class SetSeed:
    """Reseed the random source of every later fault decision with ``seed``."""

    seed: int


@attrs.frozen
class SetDefaultRule:
    """Use ``rule`` on every link without an override, for the rule's direction.

    A rule for ``Direction.REQUESTS`` leaves the default for responses as it was, and so
    on. ``SetDefaultRule(LinkRule())`` turns the default faults off.
    """

    rule: LinkRule


@attrs.frozen
class SetLinkRule:
    """Use ``rule`` on the directed link ``src -> dst``, for the rule's direction.

    The override replaces the default on that link (it is not merged with it) until
    :class:`ClearLinkRule` or :class:`Heal`.
    """

    src: NodeId
    dst: NodeId
    rule: LinkRule


@attrs.frozen
class ClearLinkRule:
    """Remove the override of link ``src -> dst`` for ``direction``: the default applies."""

    src: NodeId
    dst: NodeId
    direction: Direction = Direction.BOTH


@attrs.frozen
class Cut:
    """Cut the link ``src -> dst`` one way: ``src``'s requests to ``dst`` are answered
    ``Unreachable`` and ``src``'s responses to ``dst`` are lost; ``dst -> src`` still
    works (so ``dst``'s requests reach ``src``, but their answers never come back)."""

    src: NodeId
    dst: NodeId


@attrs.frozen
class Uncut:
    """Undo :class:`Cut` for the link ``src -> dst``."""

    src: NodeId
    dst: NodeId


def _groups(groups: Iterable[Iterable[NodeId]]) -> tuple[tuple[NodeId, ...], ...]:
    return tuple(tuple(sorted(set(group))) for group in groups)


def _disjoint(
    _instance: Any,
    _attribute: attrs.Attribute[tuple[tuple[NodeId, ...], ...]],
    value: tuple[tuple[NodeId, ...], ...],
) -> None:
    seen: set[NodeId] = set()
    for group in value:
        if seen & set(group):
            raise ValueError(f"partition groups must be disjoint: {value!r}")
        seen.update(group)


@attrs.frozen
class Partition:
    """Split the network into ``groups``: only links inside one group work.

    A message between two groups, or to or from a node in no group, crosses a cut. A new
    partition replaces the previous one; :class:`Heal` removes it. Cuts, isolation and
    blocking rules still apply inside a group.
    """

    groups: tuple[tuple[NodeId, ...], ...] = attrs.field(converter=_groups, validator=_disjoint)


@attrs.frozen
class Heal:
    """Make the network whole: remove every cut, the partition, every rule (defaults and
    overrides) and, with ``restore_isolated``, every :class:`~pykka_raft.network.router.Isolate`.

    Held messages are released in arrival order; answers their number. The seed, trace and
    replay buffer stay. (Restoring isolated nodes bypasses any bookkeeping a harness keeps
    of them; pass ``restore_isolated=False`` to keep them isolated.)
    """

    restore_isolated: bool = True


@attrs.frozen
class Release:
    """Deliver the messages held on matching links (``None`` matches any node).

    They are delivered in arrival order, or in a seeded random order with ``shuffle``. The
    rules stay as they are, so a link whose rule still holds keeps queuing new messages.
    Answers the number of messages released.
    """

    src: NodeId | None = None
    dst: NodeId | None = None
    shuffle: bool = False


@attrs.frozen
class ReplayOld:
    """Deliver again up to ``count`` randomly chosen messages delivered at least
    ``min_age_ms`` milliseconds ago.

    Candidates are the delivered requests and, with ``responses``, the delivered responses
    (kept in a bounded buffer). A replayed request goes to the current route of its target,
    whose answer travels back to the original caller like any response; a replayed response
    answers its caller again. A replay that would cross a cut is refused (``"cut"``).
    Answers the number of messages replayed.
    """

    count: int = 1
    min_age_ms: float = 0.0
    responses: bool = False


@attrs.frozen
class GetTrace:
    """Answer the trace: a tuple of :class:`TraceEvent`, oldest first (bounded; the
    oldest events are forgotten first). With ``clear``, empty it afterwards."""

    clear: bool = False


@attrs.frozen
class GetHeld:
    """Answer the held messages, as a tuple of :class:`HeldMessage` in arrival order."""


class TraceEvent(NamedTuple):
    """One fault decision or delivery.

    ``event`` is one of ``"deliver"``, ``"drop"``, ``"delay"``, ``"duplicate"``,
    ``"hold"``, ``"release"``, ``"replay"``, ``"cut"`` and ``"unknown"``. ``src`` and
    ``dst`` are the link the message travels on: for a response, ``src`` is the node that
    answers. ``summary`` is short: the message type, term and indexes (see
    :func:`summarize`); a ``"delay"`` event appends the delay, e.g. ``" +12.5ms"``.
    """

    time: float
    event: str
    src: NodeId
    dst: NodeId
    summary: str


class HeldMessage(NamedTuple):
    """A message waiting on a holding link."""

    src: NodeId
    dst: NodeId
    kind: str
    summary: str


def summarize(message: Any) -> str:
    """A short description of a message: its type, term and indexes, never its entries."""
    if isinstance(message, AppendEntriesRequest):
        return (
            f"AppendEntriesRequest term={message.term} prev={message.prev_log_index}"
            f"/t{message.prev_log_term} entries={len(message.entries)}"
            f" commit={message.leader_commit}"
        )
    if isinstance(message, VoteRequest):
        return (
            f"VoteRequest term={message.term} last={message.last_log_index}"
            f"/t{message.last_log_term}"
        )
    if isinstance(message, InstallSnapshotRequest):
        return (
            f"InstallSnapshotRequest term={message.term} last={message.meta.last_included.index}"
            f"/t{message.meta.last_included.term} offset={message.offset} done={message.done}"
        )
    if isinstance(message, AppendEntriesResponse):
        text = f"AppendEntriesResponse term={message.term} success={message.success}"
        if message.conflict_opt is not None:
            conflict = message.conflict_opt
            text += f" conflict={conflict.index}/t{conflict.term}"
        return text
    if isinstance(message, VoteResponse):
        return f"VoteResponse term={message.term} granted={message.vote_granted}"
    if isinstance(message, InstallSnapshotResponse):
        return f"InstallSnapshotResponse term={message.term}"
    if isinstance(message, BaseException):
        return f"error {type(message).__name__}"
    return type(message).__name__
