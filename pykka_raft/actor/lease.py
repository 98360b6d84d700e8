"""``LEASE`` reads served on the caller's thread, without a trip through the node's.

A leader in lease answers ``ClientRead(query, LEASE)`` at its commit index with one
``QueryStateMachine`` to its storage, FIFO after every apply (``core/reads.py``). The
node's thread adds nothing to that but three facts it checks, so the node publishes them
in a :class:`LeaseView` on a board its ref shares, and the ref, on the caller's thread,
sends the query to the storage itself with a reply that answers the caller: two thread
hand-offs (caller to storage, storage to caller) instead of three. A read the view cannot
serve (no view, lease over, applies not yet sent) takes the node's path as before.

Why a read served from the view is as safe as one served by the node (``docs/reads.md``):

* **No other leader.** ``until`` is the core's own lease end (``Reads.lease_end``), on the
  same monotonic clock the caller reads when the read arrives. A node that gives its lease
  up (it sends ``TimeoutNow``) or stops leading publishes that before it carries out
  anything else of that step, so before the ``TimeoutNow`` leaves.
* **Every acknowledged write is covered.** The view is replaced at the start of each of
  the node's steps, before any answer of that step goes out (:meth:`LeasePublisher.before`):
  a caller that saw a write acknowledged finds a ``read_index`` at or past that write.
* **The state read is at least that recent.** ``sent_through`` is the last index whose
  ``Apply`` the node had already told its storage when it published; a read is served
  only when it reaches ``read_index``, and the storage runs the query after those applies.
  Inside a step the view keeps the previous ``sent_through``, so a commit that advanced in
  the step turns the fast path off until the step's applies are sent (:meth:`after`).

The view is published only by a node that has been sent a ``LEASE`` read, so a node whose
callers never ask for one pays nothing for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs

from pykka_raft.calls import DEAD_ACTOR_ERRORS, Call, Reply
from pykka_raft.messages import ClientRead, ReadPolicy
from pykka_raft.read_answers import ReadAnswers, settle
from pykka_raft.storage.messages import QueryStateMachine
from pykka_raft.types import LogIndex

if TYPE_CHECKING:
    from pykka_raft.core.node import RaftCore


@attrs.frozen
class LeaseView:
    """What a caller's thread needs to serve a ``LEASE`` read: the lease end on the
    monotonic clock in ms, the read index, the last index the storage was sent, and the
    storage to ask."""

    until: float
    read_index: LogIndex
    sent_through: LogIndex
    storage: Any = attrs.field(eq=False)


class LeaseBoard:
    """Shared by a node and its ref: the published view, whether a caller wants one, and
    the node's ports (``guard``: a storage failure they saw refuses the read, as on the
    node's path)."""

    __slots__ = ("guard", "view", "wanted")

    def __init__(self, guard: Any = None) -> None:
        self.view: LeaseView | None = None
        self.wanted = False
        self.guard = guard

    def serve(self, read: ClientRead, reply: Reply) -> bool:
        """Serve ``read`` from the view if it can (on the caller's thread); ``False``: the
        node must serve it."""
        if read.policy is not ReadPolicy.LEASE:
            return False
        view = self.view
        if view is None:
            self.wanted = True
            return False
        if view.sent_through < view.read_index or time.monotonic() * 1000 >= view.until:
            return False
        try:
            # The state read is at least as recent as sent_through.
            answers = ReadAnswers([reply], view.sent_through, settle)
            answers.guard = self.guard
            view.storage.tell(Call(QueryStateMachine((read.query,)), answers))
        except DEAD_ACTOR_ERRORS:
            return False  # the node finds out and answers
        return True


class LeasePublisher:
    """The node's side: keeps ``board.view`` current (see the module docstring)."""

    def __init__(self, board: LeaseBoard, core: RaftCore, storage: Any) -> None:
        self.board = board
        self.core = core
        self.storage = storage
        self.told_through: LogIndex = 0  # every Apply through it was sent to the storage

    def before(self) -> None:
        """A step is about to be carried out: publish what the core decided, with the
        applies sent so far."""
        if self.board.wanted:
            self._publish()

    def after(self) -> None:
        """A step was carried out: its applies were sent."""
        if self.board.wanted:
            self.told_through = self.core.apply_requested
            self._publish()

    def stop(self) -> None:
        """The node stops: no view."""
        self.board.view = None

    def _publish(self) -> None:
        lease = self.core.reads.lease_read_index(self.core.leader)
        if lease is None:
            self.board.view = None
            return
        until, read_index = lease
        view = self.board.view
        if (
            view is None
            or view.until != until
            or view.read_index != read_index
            or view.sent_through != self.told_through
        ):
            self.board.view = LeaseView(until, read_index, self.told_through, self.storage)
