"""Reads' callers answered where the state machine's answers arrive, not on the node's thread.

A Raft actor's reads end in one ``Query`` per batch: the storage runs the queries, FIFO
after every apply issued before them. Rather than send the answers back to the node's
thread to be turned into responses there, the readers go with the query as a
:class:`ReadAnswers`, the reply the storage answers: the storage's thread answers every
reader, and the node's thread only hears that the query completed. ``LEASE`` reads served
on the caller's thread (:mod:`pykka_raft.actor.lease`) use the same reply for their one
reader. The answers follow the core's rules (:func:`~pykka_raft.core.reads.read_answer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pykka_raft.core.reads import read_answer, zip_answers
from pykka_raft.errors import StorageError


def settle(reply: Any, value: Any, error: BaseException | None) -> None:
    """Answer ``reply`` (a :class:`~pykka_raft.calls.Reply`) with ``value``, or ``error``."""
    if error is not None:
        reply.set_exception(error)
    else:
        reply.set(value)


class ReadAnswers:
    """The callers of one ``Query``'s reads, answered once from the state machine's answers.

    It is the :class:`~pykka_raft.calls.Reply` the storage answers the query through (one
    answer per read; an exception among them is a query the state machine refused).
    :meth:`set` answers every reader through ``reply`` (the ports'
    :meth:`~pykka_raft.driver.Ports.reply`) by the rules ``RaftCore.queries_answered``
    follows, then tells ``done`` (if set) that the query completed. The storage is FIFO,
    so every write issued before the query is durable when it answers: no reader hears
    before what its answer depends on, and every apply issued before it has run, unless
    one failed: ``guard`` (if set) is an object whose ``storage_failure`` the ports set, on
    the storage's thread, when a storage command fails (a failure that stops the node), so
    the readers of a later query get a :class:`~pykka_raft.errors.StorageError` instead of
    an answer read from a state that missed it. :meth:`refuse` (a stopping node) answers
    each reader with an error instead; whichever comes first answers, the other does
    nothing.
    """

    __slots__ = ("_lock", "done", "guard", "index", "readers", "reply")

    def __init__(
        self,
        readers: list[Any],
        index: int,
        reply: Callable[[Any, Any, BaseException | None], None],
    ) -> None:
        self.readers: list[Any] | None = readers
        self.index = index
        self.reply = reply
        self.done: Any = None
        self.guard: Any = None
        self._lock = threading.Lock()

    def set(self, value: Any = None) -> None:
        """The state machine's answers, one per read."""
        self._answer(value, None)

    def set_exception(self, error: BaseException) -> None:
        """The storage failed the whole query: every reader's ApplicationError."""
        self._answer(None, error)

    def refuse(self, error: BaseException) -> None:
        """The node stops: every reader not answered yet gets ``error``."""
        for reader in self._claim() or ():
            if reader is not None:
                self.reply(reader, None, error)

    def _answer(self, answers: Any, error: BaseException | None) -> None:
        readers = self._claim() or []
        try:
            failure = getattr(self.guard, "storage_failure", None)
            if failure is not None:
                stopped = StorageError(
                    f"the storage failed a command issued before this read's query "
                    f"({failure!r}); the node stops"
                )
                for reader in readers:
                    if reader is not None:
                        self.reply(reader, None, stopped)
                return
            for reader, answer in zip_answers(readers, answers, error):
                if reader is not None:  # None: a token the node had answered already
                    value, refusal = read_answer(self.index, answer)
                    self.reply(reader, value, refusal)
        finally:
            if self.done is not None:
                self.done.set(None)

    def _claim(self) -> list[Any] | None:
        with self._lock:
            readers, self.readers = self.readers, None
        return readers
