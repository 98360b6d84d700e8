"""``RaftRef``: the ref ``Raft.start`` returns, and the fast path for client writes.

``ask`` on a Raft node is answered when the node *decides* (a client write at commit or
apply), not when the message was handled, and the node's thread is never held while a
caller waits. Client writes skip the actor's inbox: they go into a queue beside it with
one wake-up message per burst, so a burst costs the node one actor message and its
entries reach the log as one batch. A ``LEASE`` read that the leader's published lease
covers is sent to its storage from the caller's thread (``actor/lease.py``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import Any

import attrs
import pykka

from pykka_raft._pykka import is_stop_request, left_behind, put_with_reply_to
from pykka_raft.actor.lease import LeaseBoard
from pykka_raft.calls import Call, Reply, deliver_error
from pykka_raft.errors import Busy, ShuttingDown
from pykka_raft.messages import ClientPayload, ClientRead

_FAST = (ClientPayload, ClientRead)
"""Client messages that take the batched path beside the inbox."""

logger = logging.getLogger("pykka_raft.node")


def not_accepted(detail: str = "the Raft node has stopped") -> ShuttingDown:
    """The error for a call a stopped node never took: definitely not carried out."""
    return ShuttingDown(f"{detail} and did not accept the call")


class FutureReply:
    """Answers a Pykka future; a second answer is ignored."""

    __slots__ = ("future",)

    def __init__(self, future: pykka.Future[Any]) -> None:
        self.future = future

    def set(self, value: Any = None) -> None:
        try:
            self.future.set(value)
        except Exception:  # already answered
            logger.debug("duplicate reply ignored")

    def set_exception(self, error: BaseException) -> None:
        try:
            self.future.set_exception((type(error), error, error.__traceback__))
        except Exception:  # already answered
            logger.debug("duplicate reply ignored")


class _NotAcceptedIfDropped:
    """The envelope's ``reply_to`` of a call: Pykka calls ``set`` once the node handled the
    call (the node answers through the call's own reply, later), or ``set_exception`` if
    the node stopped before handling it: then it was never accepted."""

    __slots__ = ("reply",)

    def __init__(self, reply: Reply) -> None:
        self.reply = reply

    def set(self, value: Any = None) -> None:
        pass

    def set_exception(self, exc_info: Any = None) -> None:
        deliver_error(self.reply, not_accepted())


class ClientQueue:
    """Client writes and reads waiting for the node, outside the actor's inbox: at most
    ``limit``; more are refused ``Busy`` at once, on the caller's thread (counted in
    ``refused``), so that callers that do not wait cannot grow it without bound."""

    __slots__ = ("items", "limit", "refused", "wake_pending")

    def __init__(self, limit: int) -> None:
        self.items: collections.deque[tuple[ClientPayload | ClientRead, Reply]] = (
            collections.deque()
        )
        self.limit = limit
        self.refused = 0
        self.wake_pending = False

    def refuse_all(self) -> None:
        """The node stopped: nobody else will answer the writes still queued."""
        while self.items:
            try:
                _, reply = self.items.popleft()
            except IndexError:  # taken by a concurrent refusal
                return
            deliver_error(reply, not_accepted())


@attrs.frozen
class WakeForClients:
    """Tells the node that client writes wait in its :class:`ClientQueue`."""


class RaftRef(pykka.ActorRef[Any]):
    """The ref ``Raft.start`` returns.

    ``ask(message)`` returns the node's answer when the node decides it (a client write
    answers at commit or apply) or raises the typed error. A call the node never accepted
    (it had stopped) raises :class:`~pykka_raft.errors.ShuttingDown`: definitely not
    carried out. Client writes (``ask(ClientPayload)`` or ``tell(Call(ClientPayload,
    reply))``) take a fast path that batches them.
    """

    clients: ClientQueue | None = None
    lease: LeaseBoard | None = None

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send ``message`` and wait for (or, with ``block=False``, return a future of) the
        answer."""
        if is_stop_request(message):
            return super().ask(message, block=block, timeout=timeout)  # ref.stop()
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        reply = FutureReply(future)
        if isinstance(message, _FAST) and self.clients is not None:
            self._enqueue(message, reply)
        else:
            self._tell_call(Call(message, reply))
        if block:
            return future.get(timeout=timeout)
        return future

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting for an answer. A :class:`Call` told to a node
        that stopped is answered ``ShuttingDown`` (not accepted) through its reply."""
        if isinstance(message, Call):
            if isinstance(message.message, _FAST) and self.clients is not None:
                self._enqueue(message.message, message.reply)
            else:
                self._tell_call(message)
            return
        if not self.is_alive():
            raise not_accepted()
        super().tell(message)

    def _tell_call(self, call: Call) -> None:
        try:
            put_with_reply_to(self, call, _NotAcceptedIfDropped(call.reply))
        except pykka.ActorDeadError:
            deliver_error(call.reply, not_accepted())
            return
        for _ in left_behind(self):  # stopped meanwhile: calls answered, the rest dropped
            pass

    def _enqueue(self, payload: ClientPayload | ClientRead, reply: Reply) -> None:
        lease = self.lease
        if type(payload) is ClientRead and lease is not None and lease.serve(payload, reply):
            return  # a LEASE read served on this thread (actor/lease.py)
        clients = self.clients
        assert clients is not None
        if len(clients.items) >= clients.limit:
            write = payload if type(payload) is ClientPayload else None
            why = f"{clients.limit} calls wait for the node already (Config.max_pending_writes)"
            clients.refused += 1
            deliver_error(reply, Busy(write, clients.limit, why))
            return
        clients.items.append((payload, reply))
        if not clients.wake_pending:
            clients.wake_pending = True
            with contextlib.suppress(pykka.ActorDeadError):
                super().tell(WakeForClients())
        if not self.is_alive():
            clients.refuse_all()  # the node stopped: nobody else will answer them
