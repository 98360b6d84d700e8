"""How actors of pykka_raft answer each other without blocking.

Pykka futures have no completion callbacks and an actor must never block on another
Raft actor, so every request that needs an answer travels as a :class:`Call`: the message
plus a :class:`Reply` to answer through. A reply is either a Pykka future (a caller that
``ask``-ed) or an :class:`ActorReply`, which ``tell``-s the answer back to an actor as a
:class:`Completed` message carrying a correlation tag.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
from typing import Any, Protocol

import attrs
import pykka

from pykka_raft._pykka import is_pykka_message, left_behind, put_with_reply_to
from pykka_raft.errors import ShuttingDown

logger = logging.getLogger(__name__)


DEAD_ACTOR_ERRORS = (pykka.ActorDeadError, ShuttingDown)
"""What telling a stopped actor raises (Pykka's error, or a Raft ref's ``ShuttingDown``)."""


class Reply(Protocol):
    """Where the answer to a :class:`Call` goes. Both methods must not block."""

    def set(self, value: Any = None) -> None:
        """Deliver the answer."""

    def set_exception(self, error: BaseException) -> None:
        """Deliver a failure."""


@attrs.frozen
class Call:
    """A message together with the reply its receiver must eventually answer through.

    A receiver may answer long after it handled the message (e.g. a Raft node answers a
    client write at commit), and must answer every call at most once.
    """

    message: Any
    reply: Reply


@attrs.frozen
class Completed:
    """The answer to a call made with :class:`ActorReply`, delivered as a message."""

    tag: Any
    value: Any = None
    error: BaseException | None = None


@attrs.frozen(eq=False)
class ActorReply:
    """A reply that tells the answer to ``ref`` as ``Completed(tag, ...)``."""

    ref: Any
    tag: Any

    def set(self, value: Any = None) -> None:
        """Tell the value back; a stopped receiver loses it silently (it is gone)."""
        self._tell(Completed(self.tag, value))

    def set_exception(self, error: BaseException) -> None:
        """Tell the error back."""
        self._tell(Completed(self.tag, None, error))

    def _tell(self, message: Completed) -> None:
        try:
            self.ref.tell(message)
        except DEAD_ACTOR_ERRORS:
            logger.debug("reply to a stopped actor dropped: %r", message.tag)


@attrs.frozen(eq=False)
class FutureReply:
    """A reply that completes a Pykka future (used by ``ask`` callers)."""

    future: pykka.Future[Any]

    def set(self, value: Any = None) -> None:
        """Complete the future with ``value`` (a second answer is ignored)."""
        with contextlib.suppress(queue.Full):
            self.future.set(value)

    def set_exception(self, error: BaseException) -> None:
        """Complete the future with ``error`` (a second answer is ignored)."""
        with contextlib.suppress(queue.Full):
            self.future.set_exception((type(error), error, error.__traceback__))


@attrs.frozen
class Asked:
    """A message sent with ``ask`` through an :class:`AskAwareRef` (the handler unwraps it).

    A Pykka actor cannot tell whether a message was asked or told, and an exception from a
    told message stops the actor. Wrapping asked messages lets a storage or network actor
    answer an unknown message sent with ``ask`` with an error, and log and drop one sent
    with ``tell``, staying alive.
    """

    message: Any


class _AnsweredIfDropped:
    """The envelope's ``reply_to`` of a told :class:`Call`: Pykka calls ``set`` once the
    actor handled the call (which answers through the call's own reply), and
    ``set_exception`` if the actor stopped or failed before handling it (its teardown
    answers every envelope that has a ``reply_to``, and drops the others): then the
    call's reply gets the actor class's ``stopped_error()``. If the handler itself raised
    (Pykka calls ``set_exception()`` without ``exc_info`` then), the reply gets that
    exception."""

    __slots__ = ("call", "stopped_error")

    answers_message = True
    """:func:`~pykka_raft._pykka.drain_inbox` leaves the message to this reply."""

    def __init__(self, call: Call, stopped_error: Any) -> None:
        self.call, self.stopped_error = call, stopped_error

    def set(self, value: Any = None) -> None:
        pass

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            raised = sys.exc_info()[1]
            if raised is not None:
                deliver_error(self.call.reply, raised)
                return
        answer_dropped(self.call, self.stopped_error())


class AskAwareRef(pykka.ActorRef[Any]):
    """A ref whose ``ask`` marks the message as asked (see :class:`Asked`), and that
    answers what it put in the inbox of an actor that stopped meanwhile (see
    :func:`~pykka_raft._pykka.left_behind`): an ask with ``ActorDeadError``, a
    :class:`Call` with the actor class's ``stopped_error()``. A told :class:`Call` goes
    in an envelope whose ``reply_to`` answers it so if the actor stops or fails before
    handling it: Pykka's teardown drops a told message that has none."""

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Ask the actor; the handler sees an :class:`Asked` wrapper."""
        if not is_pykka_message(message):  # stop requests and proxy calls go through as is
            message = Asked(message)
        future = super().ask(message, block=False)
        self.answer_left_behind()
        return future.get(timeout=timeout) if block else future

    def tell(self, message: Any) -> None:
        """Tell the actor ``message``."""
        stopped_error = getattr(self.actor_class, "stopped_error", None)
        if isinstance(message, Call) and stopped_error is not None:
            put_with_reply_to(self, message, _AnsweredIfDropped(message, stopped_error))
        else:
            super().tell(message)
        self.answer_left_behind()

    def answer_left_behind(self) -> None:
        """If the actor stopped meanwhile, answer what is left in its inbox: through the
        actor class's ``answer_stopped(message)`` if it has one (a message of its own
        may carry a reply too), else each :class:`Call` with its ``stopped_error()``."""
        cls = self.actor_class
        answer, stopped_error = (
            getattr(cls, "answer_stopped", None),
            getattr(cls, "stopped_error", None),
        )
        for message in left_behind(self):
            if answer is not None:
                answer(message)
            elif stopped_error is not None:
                answer_dropped(message, stopped_error())


def answer_dropped(message: Any, error: BaseException) -> None:
    """Answer ``error`` to a :class:`Call` (or an asked one) taken from the inbox of a
    stopped actor; other messages need no answer. A reply that stands for several
    callers and has ``refuse(error)`` (a query's readers,
    :class:`~pykka_raft.read_answers.ReadAnswers`) is refused: each caller gets ``error``
    itself, not the answer to a query the storage failed."""
    call, _ = unwrap(message)
    if isinstance(call, Call):
        refuse = getattr(call.reply, "refuse", None)
        if callable(refuse):
            try:
                refuse(error)
            except Exception:
                logger.warning("callers could not be refused through %r", call.reply, exc_info=True)
        else:
            deliver_error(call.reply, error)


def unwrap(message: Any) -> tuple[Any, bool]:
    """The message, and whether it was sent with ``ask`` through an :class:`AskAwareRef`."""
    if isinstance(message, Asked):
        return message.message, True
    return message, False


def answer(reply: Reply, handler: Any, message: Any) -> None:
    """Run ``handler(message)`` and answer ``reply`` with its result or its exception."""
    try:
        value = handler(message)
    except Exception as exc:  # every failure goes back to the caller
        deliver_error(reply, exc)
    else:
        deliver(reply, value)


def deliver(reply: Reply, value: Any = None) -> None:
    """``reply.set(value)``, guarded: a broken reply (one that raises, or is not a reply at
    all, as in ``Call(message, None)``) is logged and must not stop the actor answering."""
    try:
        reply.set(value)
    except Exception:
        logger.warning("an answer could not be delivered through %r", reply, exc_info=True)


def deliver_error(reply: Reply, error: BaseException) -> None:
    """``reply.set_exception(error)``, guarded like :func:`deliver`."""
    try:
        reply.set_exception(error)
    except Exception:
        logger.warning("an answer could not be delivered through %r", reply, exc_info=True)
