"""The session entries a client sends through the log (Raft dissertation §6.3).

:class:`RegisterClient`, :class:`SessionCommand` and :class:`CloseSession` are the
application data a session layer handles; :class:`Rejected` is what a session remembers
of a refused write (and :class:`CachedResponse` what it wraps a response in that would
read as one). They live apart from the table so that a client (``RaftClient``)
and the codec can use them without the rules. Each is registered with the codec, under
its class name, and checks its fields when built, so a malformed entry is refused before
it reaches the log. The leader stamps its clock into an entry through
``with_leader_time`` (called by the Raft actor); the table reads that time, never a
node's own clock.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from pykka_raft.codec import register_app_type

__all__ = [
    "MAX_SESSION_NUMBER",
    "SESSION_TYPES",
    "CachedResponse",
    "CloseSession",
    "RegisterClient",
    "Rejected",
    "SessionCommand",
]


def _leader_time(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be None or a finite number "
            f"of seconds >= 0, got {value!r}"
        )


MAX_SESSION_NUMBER = 2**63 - 1
"""The largest client id or sequence: a signed 64-bit integer, which every store keeps as
it is (SQLite's ``INTEGER``). Larger ones are refused before they reach the log: a
committed entry that a store could not apply would stop every node that applies it."""


def _positive_int(instance: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int or not 1 <= value <= MAX_SESSION_NUMBER:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be an int from 1 to 2**63 - 1, "
            f"got {value!r}"
        )


def _not_a_session_entry(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, SESSION_TYPES):
        raise TypeError(f"a SessionCommand cannot carry a {type(value).__name__}")


@register_app_type
@attrs.frozen
class RegisterClient:
    """Open a session. The response is the new client id: this entry's log index.

    ``time`` is filled in by the leader (leave it ``None``).
    """

    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> RegisterClient:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return RegisterClient(now)


@register_app_type
@attrs.frozen
class SessionCommand:
    """``command`` sent by ``client_id`` as its write number ``sequence``.

    Send a new write with the next sequence (one more than the last), and every resend
    of a write with the same sequence. The response is the wrapped state machine's
    response to ``command`` (cached: a resend gets the first answer). ``time`` is filled
    in by the leader (leave it ``None``).
    """

    client_id: int = attrs.field(validator=_positive_int)
    sequence: int = attrs.field(validator=_positive_int)
    command: Any = attrs.field(validator=_not_a_session_entry)
    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> SessionCommand:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return SessionCommand(self.client_id, self.sequence, self.command, now)


@register_app_type
@attrs.frozen
class CloseSession:
    """Remove the session of ``client_id`` (its table row) before it expires. Responds
    ``None``; a session already gone answers :class:`SessionExpired`."""

    client_id: int = attrs.field(validator=_positive_int)
    time: float | None = attrs.field(default=None, validator=_leader_time)

    def with_leader_time(self, now: float) -> CloseSession:
        """This entry stamped with the leader's clock (called by the Raft actor)."""
        return CloseSession(self.client_id, now)


@register_app_type
@attrs.frozen
class Rejected:
    """What a session remembers of a refused write: the error's type name and text.

    A write whose response is itself a ``Rejected`` (a value a client stored, given back
    by a later write) is cached as a :class:`CachedResponse`, so that its resend gets it
    back rather than a refusal.
    """

    kind: str
    message: str


@register_app_type
@attrs.frozen
class CachedResponse:
    """A cached response that would read as the session layer's own marker (a
    :class:`Rejected`, or a ``CachedResponse``): kept wrapped, and a resend gets
    ``response`` as the first copy did."""

    response: Any


SESSION_TYPES = (RegisterClient, SessionCommand, CloseSession)
"""The entries the session layer handles; everything else goes to the state machine."""
