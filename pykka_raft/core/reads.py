"""Linearizable reads without the log (dissertation §6.4): where a read's answer is decided.

A :class:`~pykka_raft.messages.ClientRead` becomes a read at an index: once the node's
state machine has been sent every entry through that index, a ``Query`` command (FIFO with
the applies) runs the query, and :meth:`Reads.answered` answers the caller. A driver whose
ports answer readers themselves (the Raft actor: on the storage's thread, see
:class:`~pykka_raft.read_answers.ReadAnswers`) builds the same answers with :func:`zip_answers`
and :func:`read_answer`, and the core hears nothing back.

Where the index comes from, by policy:

* ``READ_INDEX`` on the leader: its commit index, once it has committed an entry of its own
  term (so its commit index is the cluster's), confirmed by a heartbeat *round* that a
  majority of every voter set acknowledged after the read arrived: no other leader can
  have committed anything newer then. Every AppendEntries carries the round it was sent
  in; one round serves every read that was waiting when it started.
* ``LEASE`` on the leader: its commit index at once, while its lease holds: the lease runs
  from the send time of the latest round a majority acknowledged, for
  ``election_timeout_min`` shortened by the clock-drift margin. Voters that heard from a
  leader refuse to elect another for ``election_timeout_min`` (leader stickiness), so no
  newer leader exists within the lease. Without stickiness, or out of lease, it falls
  back to ``READ_INDEX``.
* on a follower (``READ_INDEX`` or ``LEASE``): the leader's read index, asked with a
  ``ReadIndexRequest`` (the leader confirms it the same way).
* ``STALE``: this node's state as it is, on any node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import attrs

from pykka_raft.core.commands import Query
from pykka_raft.core.leader import LeaderState
from pykka_raft.core.quorum import joint_quorum_index
from pykka_raft.core.state import NodeState, Role
from pykka_raft.errors import ApplicationError, ForwardToLeader
from pykka_raft.messages import (
    ClientReadResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadPolicy,
)
from pykka_raft.types import LogIndex, NodeId

T = TypeVar("T")


@attrs.define
class Read:
    """A read waiting for its index (``local``: a ClientRead of this node; otherwise the
    token of a follower's ReadIndexRequest, answered with the index)."""

    token: int
    query: Any = None
    local: bool = True
    round: int = 0  # the round that must be acknowledged (leader)
    index: LogIndex = 0
    since: int = 0  # when its index was known and it began to wait for the apply


def lease_ms(node: NodeState) -> float:
    """How long a lease lasts after the round a majority acknowledged was sent.

    A voter refuses to elect another leader for ``election_timeout_min`` after it heard
    from this one, measured on its own clock in ticks, so the refusal may end up to one
    ``tick_interval`` early: at least ``min - tick`` of the voter's clock. If the clocks'
    rates are within ``1 ± d`` of real time (``Config.max_clock_drift``), that is at least
    ``(min - tick) / (1 + d)`` of real time, which is at least
    ``(min - tick) * (1 - d) / (1 + d)`` on the leader's clock: the lease.
    """
    config = node.config
    drift = config.max_clock_drift
    return (config.election_timeout_min - config.tick_interval) * (1 - drift) / (1 + drift)


def read_answer(
    index: LogIndex, answer: Any
) -> tuple[ClientReadResponse | None, ApplicationError | None]:
    """A reader's answer from the state machine's answer to its query: the response, or
    the refusal (an exception as the answer is a query the state machine refused)."""
    if isinstance(answer, ApplicationError):
        return None, answer  # the state machine's own refusal
    if isinstance(answer, BaseException):
        return None, ApplicationError(answer, "query")
    return ClientReadResponse(index, answer), None


def zip_answers(
    readers: Sequence[T], answers: Any, error: BaseException | None
) -> Iterator[tuple[T, Any]]:
    """Each of ``readers`` with its answer among ``answers``: ``error`` for all of them if
    the storage failed the whole query, and an error for those a storage that broke the
    contract (too few answers, or not a sequence) left without one."""
    for position, reader in enumerate(readers):
        if error is not None:
            yield reader, error
            continue
        try:
            answer = answers[position]
        except Exception as exc:  # not a sequence, too short, or broken: the reader's error
            answer = exc
        yield reader, answer


class Reads:
    """The reads this node holds, from arrival to answer."""

    def __init__(self, node: NodeState) -> None:
        self.node = node
        # Leader: reads waiting for a round (or for the term's first commit), by round.
        self.unconfirmed: dict[int, list[Read]] = {}
        self.ready: list[Read] = []  # waiting until their index is sent to the state machine
        self._batch: list[Read] = []  # queries of this step, sent as one Query
        self._to_ask: list[Read] = []  # follower: reads of this step, asked together
        # Follower: reads whose index was asked of the leader, with the time of asking.
        self.asked: list[tuple[ReadIndexRequest, list[Read], int]] = []

    # --- arrival ------------------------------------------------------------------------

    def read(
        self,
        token: int,
        query: Any,
        policy: ReadPolicy,
        leader: LeaderState | None,
        flush: bool = True,
    ) -> None:
        """A ClientRead arrived (``flush=False``: more follow in this step; the caller
        calls :meth:`flush`)."""
        node = self.node
        read = Read(token, query)
        if policy is ReadPolicy.STALE:
            read.index = node.apply_requested
            self._query(read)
        elif leader is not None:
            self._on_leader(read, policy, leader)
        elif node.leader_id is None:
            node.respond(token, error=ForwardToLeader(None, None))
        else:
            self._to_ask.append(read)  # one ReadIndexRequest for this step's reads
        if flush:
            self.flush()

    def read_index_asked(
        self, request: ReadIndexRequest, token: int, leader: LeaderState | None
    ) -> None:
        """A follower asks this node, as leader, for a read index."""
        node = self.node
        if leader is None or request.term != node.current_term:
            node.respond(token, ReadIndexResponse(node.current_term, None))
            return
        self._on_leader(Read(token, local=False), ReadPolicy.READ_INDEX, leader)

    def _on_leader(self, read: Read, policy: ReadPolicy, leader: LeaderState) -> None:
        node = self.node
        if policy is ReadPolicy.LEASE and self._committed_in_term() and self.in_lease(leader):
            read.index = node.commit_index
            self._indexed(read)
            return
        read.round = leader.round + 1  # a round that starts after the read arrived
        self.unconfirmed.setdefault(read.round, []).append(read)

    def _ask_leader(self, reads: list[Read]) -> None:
        node = self.node
        assert node.leader_id is not None
        request = ReadIndexRequest(node.leader_id, node.current_term, node.id)
        self.asked.append((request, reads, node.now))
        node.send(request)

    def expire(self) -> None:
        """A read index asked of the leader with no answer within ``rpc_timeout`` (the
        request or its answer was lost), or one this node (not leading) has not applied
        through within ``election_timeout_max`` (it no longer learns the commit index: cut
        off, or removed): the reads fail, so their callers retry elsewhere."""
        node = self.node
        while self.asked and node.now - self.asked[0][2] >= node.config.rpc_timeout:
            request, _, _ = self.asked[0]
            self.leader_answered(request, None)
        if self.ready and node.role is not Role.LEADER:
            late = node.now - node.config.election_timeout_max
            for read in [r for r in self.ready if r.since <= late]:
                self.ready.remove(read)
                why = f"this node did not catch up to read index {read.index} in time (cut off?)"
                node.respond(read.token, error=ForwardToLeader(None, node.leader_id, why))

    # --- the leader's rounds ------------------------------------------------------------

    def _committed_in_term(self) -> bool:
        node = self.node
        return node.log.term_at(node.commit_index) == node.current_term

    def in_lease(self, leader: LeaderState) -> bool:
        """The leader may read locally now (``LEASE``)."""
        end = self.lease_end(leader)
        return end is not None and self.node.clock < end

    def lease_end(self, leader: LeaderState) -> float | None:
        """When the lease ends on the node's clock (``None``: no lease at all)."""
        node = self.node
        if not node.config.leader_stickiness or leader.lease_given_up:
            return None
        sent = leader.round_sent_at.get(self.acknowledged_round(leader))
        return None if sent is None else sent + lease_ms(node)

    def lease_read_index(self, leader: LeaderState | None) -> tuple[float, LogIndex] | None:
        """``(lease end, read index)`` while this node leads (``leader``) and a ``LEASE``
        read may be served at its commit index without a round (the actor serves such
        reads on the caller's thread, ``actor/lease.py``); ``None`` otherwise."""
        if leader is None or not self._committed_in_term():
            return None
        end = self.lease_end(leader)
        return None if end is None else (end, self.node.commit_index)

    def acknowledged_round(self, leader: LeaderState) -> int:
        """The latest round a majority of every voter set acknowledged (us included)."""
        node = self.node

        def acked(voter: NodeId) -> int:
            if voter == node.id:
                return leader.round
            pr = leader.progress.get(voter)
            return pr.acked_round if pr is not None else 0

        return joint_quorum_index(node.membership.voter_sets(), acked)

    def confirm(self, leader: LeaderState) -> None:
        """Rounds may have been acknowledged, or the term's entry committed: move the reads
        whose round a majority acknowledged on to their index."""
        if not self.unconfirmed or not self._committed_in_term():
            return
        done = self.acknowledged_round(leader)
        for round_ in [r for r in self.unconfirmed if r <= done]:
            for read in self.unconfirmed.pop(round_):
                read.index = self.node.commit_index
                self._indexed(read)
        self.flush()

    def round_wanted(self, leader: LeaderState) -> bool:
        """Reads wait for a round that has not started, and no round started for reads is
        still unacknowledged (one round at a time serves every read waiting meanwhile)."""
        return (leader.round + 1) in self.unconfirmed and (
            leader.read_round <= self.acknowledged_round(leader)
        )

    # --- indexes to answers -------------------------------------------------------------

    def _indexed(self, read: Read) -> None:
        if not read.local:
            self.node.respond(read.token, ReadIndexResponse(self.node.current_term, read.index))
        elif read.index <= self.node.apply_requested:
            self._query(read)
        else:
            read.since = self.node.now
            self.ready.append(read)

    def applying(self) -> None:
        """More entries were sent to the state machine: reads at or below them can run."""
        if not self.ready:
            return
        through = self.node.apply_requested
        waiting = []
        for read in self.ready:
            if read.index <= through:
                self._query(read)
            else:
                waiting.append(read)
        self.ready = waiting
        self.flush()

    def _query(self, read: Read) -> None:
        self._batch.append(read)

    def flush(self) -> None:
        """Send this step's queries to the storage as one command, and its follower reads'
        question to the leader as one request."""
        if self._to_ask:
            reads, self._to_ask = self._to_ask, []
            self._ask_leader(reads)
        if self._batch:
            # The storage runs the queries after every Apply issued so far (it is FIFO): the
            # state they read is the one through apply_requested, at or after each read's
            # index (apply_requested moves only together with the Apply it sends).
            batch, self._batch = self._batch, []
            pairs = tuple((r.token, r.query) for r in batch)
            self.node.emit(Query(pairs, self.node.apply_requested))

    def answered(self, query: Query, answers: Any, error: BaseException | None) -> None:
        """The state machine answered ``query``'s queries; an answer that is an exception
        is a query it refused: the reader's ApplicationError (``error``: the storage refused
        them all)."""
        for (token, _), answer in zip_answers(query.reads, answers, error):
            value, refusal = read_answer(query.index, answer)
            self.node.respond(token, value, refusal)

    def leader_answered(
        self, request: ReadIndexRequest, response: ReadIndexResponse | None
    ) -> None:
        """The leader gave (or refused) a read index for the reads asked with ``request``."""
        position = next((i for i, a in enumerate(self.asked) if a[0] is request), None)
        if position is None:
            return  # answered already (a duplicate, or expired)
        reads = self.asked.pop(position)[1]
        for read in reads:
            if response is None or response.index is None:
                self.node.respond(read.token, error=ForwardToLeader(None, self.node.leader_id))
            else:
                read.index = response.index
                self._indexed(read)
        self.flush()

    def leadership_lost(self) -> None:
        """Reads waiting for a round cannot be confirmed by this node any more: retry."""
        waiting, self.unconfirmed = self.unconfirmed, {}
        for read in (read for reads in waiting.values() for read in reads):
            if read.local:
                self.node.respond(read.token, error=ForwardToLeader(None, self.node.leader_id))
            else:
                self.node.respond(read.token, ReadIndexResponse(self.node.current_term, None))
