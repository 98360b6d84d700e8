"""The fault rules of :class:`~pykka_raft.testing.faultnet.FaultNetwork`: what a rule on a
directed link does to the requests or responses it applies to."""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

Kind = Literal["request", "response"]
"""What a message on a link is: a request, or a response to one."""

KINDS: tuple[Kind, Kind] = ("request", "response")


class Direction(enum.Enum):
    """Which messages on a link a :class:`LinkRule` applies to."""

    REQUESTS = "requests"
    """Only requests (``src`` asking ``dst``)."""
    RESPONSES = "responses"
    """Only responses (``src`` answering a request ``dst`` sent it)."""
    BOTH = "both"
    """Requests and responses alike."""

    def kinds(self) -> tuple[Kind, ...]:
        """The message kinds this direction covers."""
        if self is Direction.REQUESTS:
            return ("request",)
        if self is Direction.RESPONSES:
            return ("response",)
        return KINDS


def _probability(_instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], not {value!r}")


def _delay_range(
    _instance: Any, _attribute: attrs.Attribute[tuple[float, float]], value: tuple[float, float]
) -> None:
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"delay_ms must be (low, high) with 0 <= low <= high, not {value!r}")


@attrs.frozen
class LinkRule:
    """The faults of a link, for the messages of one direction.

    Attributes:
        drop: probability that a message is lost silently (the sender hears nothing).
        duplicate: probability that a message is delivered twice (each copy with its own
            delay). A duplicated request is answered twice; a duplicated response answers
            the caller twice. Raft ignores the second answer.
        delay_ms: ``(low, high)``: each message (copy) waits a uniform random time in this
            range, in milliseconds, on the timer thread. Different delays reorder messages.
        block: cut the link: a request is answered ``Unreachable``, a response is lost.
        hold: queue the messages instead of sending them, in arrival order, until a
            :class:`Release` (or :class:`Heal`) delivers them. Held messages get no other
            fault when released. ``block`` wins over ``hold``.
        direction: which messages of the link the rule applies to.
    """

    drop: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    delay_ms: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_delay_range)
    block: bool = False
    hold: bool = False
    direction: Direction = Direction.BOTH


NO_FAULTS = LinkRule()
"""The rule of a healthy link."""
