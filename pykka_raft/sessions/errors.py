"""The errors of the session layer, apart so that the entries, the table and the wrapper
can all raise them, and a caller can catch them without loading the rest.

Each reaches the caller wrapped in :class:`~pykka_raft.errors.ApplicationError`: the
entry that carried the write changed nothing (:class:`SessionExpired`,
:class:`StaleSequence`) or repeated a refusal (:class:`CommandRejected`). See
``docs/clients.md``.
"""

from __future__ import annotations

from pykka_raft.errors import ClientError

__all__ = ["CommandRejected", "SessionError", "SessionExpired", "StaleSequence"]


class SessionError(ClientError):
    """Base of the errors of the session layer. They reach the caller wrapped in
    :class:`~pykka_raft.errors.ApplicationError` (``exc.error``): the entry that carried
    the write changed nothing."""


class SessionExpired(SessionError):
    """The session of ``client_id`` is not in the table: it expired (no activity for the
    session timeout, on the log's clock), was closed, or was never registered.

    This entry applied nothing. If the write was a resend, an earlier copy of it may have
    been applied before the session expired: its outcome is unknown. A first attempt is
    definitely not applied: register a new session and send it again.
    """

    def __init__(self, client_id: int, sequence: int | None, detail: str | None = None) -> None:
        self.client_id = client_id
        self.sequence = sequence
        super().__init__(
            detail
            or f"client {client_id} has no session (it expired, was closed, or was never "
            "registered); this entry applied nothing: register again before writing"
        )


class StaleSequence(SessionExpired):
    """``sequence`` is older than the last write this session answered (``latest``): the
    response to it is gone. This entry applied nothing; whether the original write was
    applied is unknown (a client that waits for one write at a time never sees this for
    the write it waits for)."""

    def __init__(self, client_id: int, sequence: int, latest: int) -> None:
        self.latest = latest
        super().__init__(
            client_id,
            sequence,
            f"client {client_id} sent sequence {sequence}, older than the last one its "
            f"session answered ({latest}): that response is gone and this entry applied "
            "nothing",
        )


class CommandRejected(SessionError):
    """A resend of a write the state machine had refused: it is refused again, the same
    way, without being applied. ``kind`` and ``message`` are the type name and text of
    the first refusal's error."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"the state machine refused this write: {kind}: {message}")
