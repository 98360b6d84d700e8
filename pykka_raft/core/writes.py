"""Pending client writes: the one place where a client write is answered.

A client write is a ``ClientPayload`` with a token. Once the node takes it (``accept``) it
is answered exactly once, here, in one of these ways:

* refused at once, definitely not committed: ``ForwardToLeader`` (not the leader),
  ``Busy`` (backpressure), ``ApplicationError`` (the codec or the storage refused it);
* waiting at a log index (:class:`Pending`) until that index commits. The committed
  entry decides (§5.3, §5.4): if it has the write's term it *is* the write, answered at
  commit (``ResponseMode.COMMITTED``) or once applied (``APPLIED``, with the state
  machine's response or its ``ApplicationError``); any other entry means the write was
  lost (``ForwardToLeader``). Truncation alone decides nothing: another node may hold the
  entry and a later leader may commit it;
* when the node can no longer learn the outcome: ``OutcomeUnknown`` (it was removed from
  the cluster, it stopped, or a snapshot replaced a log that did not hold the committed
  entry); a write known committed is never answered so: it gets its result or, if a
  snapshot folded its entry away before it was applied here or the node stopped while it
  was applied, ``ResultUnavailable`` (committed; applied or refused is not known here).

Every answer goes through :meth:`ClientWrites._answer`, which asserts that the write was
accepted and not answered before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from pykka_raft.core.commands import Respond
from pykka_raft.core.log import RaftLog
from pykka_raft.core.state import NodeState
from pykka_raft.errors import (
    ApplicationError,
    ClientError,
    ForwardToLeader,
    OutcomeUnknown,
    ResultUnavailable,
    SafetyViolation,
)
from pykka_raft.messages import ClientPayload, ClientPayloadResponse, Entry, ResponseMode
from pykka_raft.types import LogId, LogIndex, Term

_APPLIED = ResponseMode.APPLIED


@attrs.define
class Pending:
    """A client write with a log index, waiting for its index to commit."""

    term: Term
    token: int
    payload: ClientPayload

    @property
    def wants_applied(self) -> bool:
        """Answered after apply (with the state machine's response), not at commit."""
        return self.payload.response_mode is ResponseMode.APPLIED


class ClientWrites:
    """The client writes this node accepted and has not answered yet."""

    def __init__(self, node: NodeState) -> None:
        self.node = node
        # Several writes may wait on one index: a deposed leader's undecided write, and a
        # newer one this node appended there after it led again.
        self.pending: dict[LogIndex, list[Pending]] = {}
        self.swept_term: Term = 0  # writes of older terms decided up to this term
        self._open: set[int] = set()  # tokens accepted and not answered yet

    def __len__(self) -> int:
        """How many indexes have writes waiting (a cheap measure for backpressure)."""
        return len(self.pending)

    # --- answering ----------------------------------------------------------------------

    def accept(self, token: int) -> None:
        """The node takes responsibility for answering ``token``."""
        self._open.add(token)

    def refuse(self, token: int, error: BaseException) -> None:
        """Answer a write that was never given a log index: definitely not committed."""
        self._answer(token, error=error)

    def _answer(self, token: int, value: object = None, error: BaseException | None = None) -> None:
        try:
            self._open.remove(token)
        except KeyError:
            raise SafetyViolation(
                f"client write {token} answered twice (or never accepted)"
            ) from None
        self.node.commands.append(Respond(token, value, error))

    def _committed(self, pending: Pending, index: LogIndex) -> None:
        self._answer(pending.token, ClientPayloadResponse(index, ResponseMode.COMMITTED))

    def _lost(self, pending: Pending) -> None:
        self._answer(pending.token, error=ForwardToLeader(pending.payload, self.node.leader_id))

    # --- waiting at an index ------------------------------------------------------------

    def wait_at(self, index: LogIndex, term: Term, token: int, payload: ClientPayload) -> None:
        """The write ``token`` is the entry at ``index`` of ``term`` in this node's log."""
        waiting = self.pending.get(index)
        if waiting is None:
            self.pending[index] = [Pending(term, token, payload)]
        else:
            waiting.append(Pending(term, token, payload))

    def _take(self, index: LogIndex, which: Callable[[Pending], bool]) -> list[Pending]:
        """Remove and return the writes waiting on ``index`` that ``which`` selects."""
        waiting = self.pending.get(index, [])
        taken = [p for p in waiting if which(p)]
        if taken:
            rest = [p for p in waiting if not which(p)]
            if rest:
                self.pending[index] = rest
            else:
                del self.pending[index]
        return taken

    def refused_by_storage(self, index: LogIndex, term: Term, error: BaseException) -> None:
        """The storage refused the entry at ``index`` of ``term`` (it stored a blank)."""
        for pending in self._take(index, lambda p: p.term == term):
            self.node.counters.writes_refused_application += 1
            self._answer(pending.token, error=ApplicationError(error))

    def committed(self, old: LogIndex, new: LogIndex, log: RaftLog) -> None:
        """Indexes ``old+1 .. new`` committed: each decides the writes waiting on it.

        The same entry (same term) succeeded; any other write there is lost. Writes that
        want the applied result wait for :meth:`applied`.
        """
        waiting_at = self.pending
        if not waiting_at:
            return
        get, term_at, applied_mode = waiting_at.get, log.term_at, _APPLIED
        for i in range(old + 1, new + 1):
            waiting = get(i)
            if waiting is None:
                continue
            term = term_at(i)  # each entry's own term: this decides, so nothing is assumed
            if len(waiting) == 1 and waiting[0].term == term:
                only = waiting[0]  # the common case: our own write
                if only.payload.response_mode is not applied_mode:  # not wants_applied
                    del waiting_at[i]
                    self._committed(only, i)
                continue

            def decided_now(p: Pending, term: Term | None = term) -> bool:
                return p.term != term or not p.wants_applied

            for pending in self._take(i, decided_now):
                if pending.term != term:
                    self._lost(pending)
                else:
                    self._committed(pending, i)

    def sweep_older_terms(self, index: LogIndex, committed_term: Term) -> None:
        """Entry ``index`` of ``committed_term`` is committed. Terms never decrease along a
        log and every later leader holds this entry (§5.4.3), so an older-term entry after
        it can never commit: the writes waiting there are lost."""
        if committed_term <= self.swept_term:
            return
        self.swept_term = committed_term
        for i in sorted(i for i in self.pending if i > index):
            for pending in self._take(i, lambda p: p.term < committed_term):
                self._lost(pending)

    def applied(self, entries: tuple[Entry, ...], responses: tuple[object, ...]) -> None:
        """The state machine applied ``entries``; answer the writes that wanted it.

        A response that is an :class:`~pykka_raft.errors.ApplicationError` means the state
        machine refused the command deterministically, without effect, on every node: the
        writer gets the error.
        """
        waiting_at = self.pending
        if not waiting_at:
            return
        get, pop, answer, applied_mode = waiting_at.get, waiting_at.pop, self._answer, _APPLIED
        for entry, response in zip(entries, responses, strict=True):
            index = entry.index
            waiting = get(index)
            if waiting is None:
                continue
            if len(waiting) == 1 and waiting[0].term == entry.term:
                pop(index)  # the common case: our own APPLIED write
                if isinstance(response, ApplicationError):
                    self._applied(waiting[0], index, response)
                else:  # what _applied does with a response, one call less per write
                    answer(waiting[0].token, ClientPayloadResponse(index, applied_mode, response))
                continue
            for pending in self._take(entry.index, lambda p: p.wants_applied):
                if pending.term == entry.term:
                    self._applied(pending, entry.index, response)
                else:
                    self._lost(pending)

    def _applied(self, pending: Pending, index: LogIndex, response: object) -> None:
        if isinstance(response, ApplicationError):
            self.node.counters.writes_refused_application += 1
            self._answer(pending.token, error=response)
        else:
            self._answer(
                pending.token, ClientPayloadResponse(index, ResponseMode.APPLIED, response)
            )

    def snapshot_installed(self, last: LogId, log: RaftLog, kept: bool) -> None:
        """A snapshot through ``last`` is about to replace the log up to it. ``log`` is the
        log before the install; ``kept`` says whether it held ``last`` (then its entries up
        to ``last`` are the committed ones).

        Writes at indexes the snapshot covers are decided where this node knows the
        committed entry: at or below its commit index (its own entry there is committed,
        whatever the snapshot holds), and up to ``last`` where the log matched. A write
        there with the entry's term *is* that entry, committed: a ``COMMITTED`` write is
        answered so; an ``APPLIED`` write whose entry was already sent to the state machine
        stays pending (the storage applies it before it installs the snapshot, so
        :meth:`applied` answers it with its real result); one whose entry was not sent
        never will be on this node, and gets ``ResultUnavailable``. A write of another term
        is lost. Above the commit index where the log did not match, the outcome is unknown
        here: ``OutcomeUnknown``.
        """
        node = self.node
        for index in sorted(i for i in self.pending if i <= last.index):
            if index > node.commit_index and not kept:
                for pending in self._take(index, lambda p: True):
                    detail = "this node's log was replaced by a snapshot before it knew"
                    self._answer(pending.token, error=OutcomeUnknown(detail))
                continue
            ours = log.term_at(index)
            if index <= node.apply_requested:
                # Its apply is queued ahead of the install: applied() answers those.
                decided = self._take(index, lambda p: not p.wants_applied)
            else:
                decided = self._take(index, lambda p: True)
            for pending in decided:
                if ours is None:  # compacted already: its own snapshot decided it
                    detail = "its entry was compacted before this node matched it"
                    self._answer(pending.token, error=OutcomeUnknown(detail))
                elif pending.term != ours:
                    self._lost(pending)
                elif pending.wants_applied:
                    self._answer(pending.token, error=ResultUnavailable(index))
                else:
                    self._committed(pending, index)

    def abandon(self, reason: str) -> None:
        """A node out of the cluster will never learn how its undecided writes ended (no
        leader tells it what commits): answer them as unknown rather than never.

        Writes at committed indexes are decided already; those still waiting are APPLIED
        writes whose apply is under way, answered by :meth:`applied`.
        """
        for index in sorted(i for i in self.pending if i > self.node.commit_index):
            for pending in self._take(index, lambda p: True):
                detail = f"{reason} before its entry at index {index} was decided"
                self._answer(pending.token, error=OutcomeUnknown(detail))

    def refuse_all(self, tokens: Iterable[tuple[int, ClientPayload]]) -> None:
        """Writes accepted but never given an index (a leader stepped down): not committed."""
        for token, payload in tokens:
            self.refuse(token, ForwardToLeader(payload, self.node.leader_id))

    def stop(self, cause: BaseException) -> None:
        """The node stops (because of ``cause``): a write still waiting has an unknown
        outcome, or, if it committed (its apply was under way), an unknown result."""
        for index in sorted(self.pending):
            for pending in self._take(index, lambda p: True):
                error: ClientError
                if index <= self.node.commit_index:  # only APPLIED writes wait there
                    why = f"the node stopped ({cause}) while it applied the entry"
                    error = ResultUnavailable(index, why)
                else:
                    detail = (
                        f"the node stopped ({cause}) while its entry at index {index} was undecided"
                    )
                    error = OutcomeUnknown(detail)
                error.__cause__ = cause
                self._answer(pending.token, error=error)
