"""What a write through :class:`~pykka_raft.client.RaftClient` comes to: its
:class:`Outcome`, the :class:`WriteResult` that carries it, and the client's counts.

These are the client's answer to its caller, kept apart from the retry loop that
produces them so that code reading results (the counter runs, tests, an application)
needs only this small module's types. See ``docs/clients.md``.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from pykka_raft.errors import ClientError
from pykka_raft.types import LogIndex

__all__ = ["ClientStats", "DeadlineExceeded", "Outcome", "WriteResult"]


class Outcome(enum.Enum):
    """What became of a write."""

    APPLIED = "applied"
    """Applied exactly once; ``WriteResult.response`` is the state machine's answer."""
    NOT_APPLIED = "not applied"
    """Definitely not applied, now or later."""
    UNKNOWN = "unknown"
    """The deadline passed while an attempt's fate was open: it may be applied (once), or
    never. Or a copy committed but its result could not be had again (``error`` is then
    ``ResultUnavailable``): the state machine applied it, or refused it, on every node
    alike. Read the state back to know."""


class DeadlineExceeded(ClientError):
    """The caller's deadline passed before any node took the write (no leader was found,
    or every attempt was refused): it was definitely not applied. ``__cause__`` is the
    last refusal."""


@attrs.frozen
class WriteResult:
    """The result of :meth:`RaftClient.write`.

    Attributes:
        outcome: applied, not applied, or unknown.
        response: the state machine's response (applied only).
        index: the log index of the entry that applied it (or answered from the cache).
        error: why it was not applied (``ApplicationError``: the state machine or the
            leader refused it; ``DeadlineExceeded``), or why the outcome is unknown
            (``OutcomeUnknown``, its ``__cause__`` the last unknown answer; or
            ``ResultUnavailable``: it committed, its result is gone).
        client_id: the session the write was sent in (``None`` without sessions).
        sequence: its sequence in that session.
        attempts: how many times it was sent.
    """

    outcome: Outcome
    response: Any = None
    index: LogIndex | None = None
    error: BaseException | None = None
    client_id: int | None = None
    sequence: int | None = None
    attempts: int = 0

    @property
    def applied(self) -> bool:
        """True if the write was applied (exactly once)."""
        return self.outcome is Outcome.APPLIED

    def unwrap(self) -> Any:
        """The response if applied; otherwise raise :attr:`error`."""
        if self.outcome is Outcome.APPLIED:
            return self.response
        assert self.error is not None
        raise self.error


@attrs.define
class ClientStats:
    """What a client did, counted since it was made (read under no lock: approximate
    while calls run)."""

    writes: int = 0
    attempts: int = 0
    """Payloads sent: writes, resends and registrations."""
    resends: int = 0
    """Attempts that repeated a sequence after an unknown outcome."""
    registrations: int = 0
    expired: int = 0
    """Sessions found expired (and replaced)."""
