"""The few things pykka_raft needs from Pykka that its public API does not offer.

Pykka answers an ``ask`` whose actor stopped before handling it (its envelope carries the
caller's future), but a ``tell`` is silently dropped. Our actors receive requests as
:class:`~pykka_raft.calls.Call` messages that carry their own reply, so:

* a ``RaftRef`` puts each call in an envelope whose ``reply_to`` answers the call's reply
  with "not accepted" if the actor stops before handling it (Pykka's own guarantee for
  ``ask``, extended to our calls);
* a stopping storage or network actor takes what is left in its inbox and answers every
  call in it;
* a message put just as the actor stopped, after its teardown emptied the inbox, would
  never be taken: the refs check again after putting and answer what was left behind;
* a ``RaftRef`` that answers ``ask`` itself must still let Pykka's stop request through,
  and ``start()`` must return that ref (Pykka keeps an actor's ref in a private
  attribute). These uses are isolated here, tested by
``tests/unit/test_pykka_compat.py`` (which fails loudly if a Pykka release changes them),
and the Pykka major version is pinned in ``setup.cfg``.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any, TypeVar

import pykka
from pykka import messages as _messages
from pykka._envelope import Envelope


def is_stop_request(message: Any) -> bool:
    """True for the message ``ActorRef.stop()`` sends (Pykka's private ``_ActorStop``)."""
    return isinstance(message, _messages._ActorStop)


def is_pykka_message(message: Any) -> bool:
    """True for Pykka's own messages (stop requests, proxy calls and attribute access),
    which Pykka handles before ``on_receive`` and which must reach it unchanged."""
    return type(message).__module__ == _messages.__name__


def drain_inbox(actor: pykka.Actor | pykka.ActorRef[Any]) -> Iterator[Any]:
    """Take every message still queued for a stopped actor (from its own ``on_stop``, or
    from :func:`left_behind`), yielding each one for the caller to answer what it carries.
    An envelope's ``reply_to`` (an ``ask``) is answered first, as Pykka's teardown
    answers it: ``ActorDeadError`` (``None`` for a stop request); a ``reply_to`` with a
    true ``answers_message`` answers the message itself, which is not yielded."""
    inbox = actor.actor_inbox
    while True:
        try:
            envelope = inbox.get_nowait()  # type: ignore[attr-defined]
        except queue.Empty:
            return
        if envelope.reply_to is not None and is_stop_request(envelope.message):
            envelope.reply_to.set(None)
        elif envelope.reply_to is not None:
            dead = pykka.ActorDeadError(f"{actor} stopped before handling the message")
            envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, dead, None))
            if getattr(envelope.reply_to, "answers_message", False):
                continue  # that answered the message too
        yield envelope.message


_WAKE = object()
"""Put back by :func:`left_behind` for Pykka's teardown: no reply, nothing to do."""


def left_behind(ref: pykka.ActorRef[Any]) -> Iterator[Any]:
    """Call after putting a message in ``ref``'s inbox, and consume it whole. If the
    actor stopped meanwhile, its teardown may have emptied the inbox before the message
    arrived, and nobody would ever take it: take what is left, as :func:`drain_inbox`
    does (each envelope goes to exactly one of the threads that drain). Nothing if the
    actor still runs.

    Pykka's teardown checks ``empty()`` and then waits in ``get()``: a drain that took the
    last message in between would leave the actor's thread waiting forever (and the
    process unable to exit), so a drain that took anything puts a no-op message back."""
    if ref.is_alive():
        return
    took = False
    for message in drain_inbox(ref):
        took = True
        if message is not _WAKE:
            yield message
    if took:
        ref.actor_inbox.put(Envelope(_WAKE))


R = TypeVar("R", bound=pykka.ActorRef[Any])


def use_ref_class(actor: pykka.Actor, ref_class: type[R]) -> R:
    """Make ``ref_class`` the ref that ``actor.actor_ref`` (and so ``start()``) returns;
    call it from the actor's ``__init__``."""
    ref = ref_class(actor)
    actor._actor_ref = ref
    return ref


def put_with_reply_to(ref: pykka.ActorRef[Any], message: Any, reply_to: Any) -> None:
    """Queue ``message`` for ``ref``'s actor with ``reply_to`` (an object with ``set`` and
    ``set_exception(exc_info=...)``, like a Pykka future): Pykka calls ``set`` with the
    handler's return value, or ``set_exception`` if the actor stopped before handling the
    message. Raises ``pykka.ActorDeadError`` if the actor is not running."""
    if not ref.is_alive():
        raise pykka.ActorDeadError(f"{ref} not found")
    ref.actor_inbox.put(Envelope(message, reply_to=reply_to))
