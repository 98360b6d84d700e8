"""The service's error codes and the typed exceptions the client raises for them.

One table (:data:`CODES`) maps each stable error code to its HTTP status and to the
exception class the client raises, so the server and the client cannot drift apart. Every
error body is ``{"error": {"code": ..., "message": ..., <details>}}``; the details (for
example ``leader_id`` and ``leader_url`` of a ``not_leader`` answer) become attributes of
the exception.
"""

from __future__ import annotations

from typing import Any

from pykka_raft import RaftError

# CLI exit codes (docs/kv-service.md, "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1
"""An unexpected failure: a 500 from a node, or an answer the client could not read."""
EXIT_USAGE = 2
"""Wrong command-line usage or a bad configuration (click's own code for usage errors)."""
EXIT_UNREACHABLE = 3
"""No node could be reached (connection refused, timed out before an answer, bad URL)."""
EXIT_REFUSED = 4
"""A node refused the request (a 4xx answer): nothing was changed."""
EXIT_UNKNOWN_OUTCOME = 5
"""The request may or may not have taken effect (a 504, or the connection broke after a
write was sent). Read the value back before retrying."""
EXIT_UNAVAILABLE = 6
"""Nodes answered, but none could serve the request before the deadline: no leader, the
leader's address unknown, busy, starting or shutting down (503). Nothing was changed."""
EXIT_NODE_STOPPED = 7
"""``serve``: the Raft node stopped on its own after a fatal failure (its storage failed,
...); the process exits so that a supervisor restarts it."""
EXIT_UNAUTHORIZED = 8
"""A node answered 401: it requires a token and the one sent (if any) is not one it
accepts (``--token-file``). Nothing was done. Not 4, so that a script that takes 4 for "no
such key" does not take a missing token for one."""
EXIT_NOT_A_NODE = 9
"""A URL answered, but not as a node of the service does (another server on that port, a
web page, an HTTP error without the service's JSON error format). Nothing was done. Not 4,
so that a script that takes 4 for "no such key" does not take a wrong URL for one."""


class KvError(RaftError):
    """An error answer of the key-value service (or, client-side, no answer at all).

    Attributes:
        code: the stable error code (``docs/kv-service.md`` lists them).
        status: the HTTP status it came with (0 when no node answered).
        message: the human-readable explanation.
        details: the other fields of the error object.
    """

    exit_code = EXIT_ERROR

    def __init__(
        self, code: str, message: str, status: int = 0, details: dict[str, Any] | None = None
    ) -> None:
        self.code = code
        self.status = status
        self.message = message
        self.details = dict(details or {})
        super().__init__(f"{code}: {message}" if code else message)

    def __getattr__(self, name: str) -> Any:
        # Details read like attributes (exc.leader_id); missing ones are None.
        if name.startswith("_") or name in {"code", "status", "message", "details"}:
            raise AttributeError(name)
        return self.__dict__.get("details", {}).get(name)


class KvConfigError(RaftError, ValueError):
    """A node configuration (flags or file), or an argument of ``Client``, is invalid; the
    message names the field."""


class Unauthorized(KvError):
    """401 ``unauthorized``: the node requires ``Authorization: Bearer <token>`` and the
    request had none, a malformed one or a token it does not accept; nothing was done."""

    exit_code = EXIT_UNAUTHORIZED


class BadRequest(KvError):
    """400: malformed JSON, wrong types, a bad key or an unsupported parameter."""

    exit_code = EXIT_REFUSED


class KeyNotFound(KvError):
    """404 ``key_not_found``: the key does not exist."""

    exit_code = EXIT_REFUSED


class NotFound(KvError):
    """404 ``not_found``: no such route."""

    exit_code = EXIT_REFUSED


class MethodNotAllowed(KvError):
    """405: the route exists but not with this method."""

    exit_code = EXIT_REFUSED


class CasFailed(KvError):
    """409 ``cas_failed``: the key did not hold the expected value; nothing was written.

    ``current`` is the value it holds (``exists`` says whether it exists at all).
    """

    exit_code = EXIT_REFUSED


class Conflict(KvError):
    """409: the request conflicts with the cluster's state (a membership change that is a
    no-op, inoperable or overlapping another one, a node that is not pristine, a move of a
    node that is not a member, a leadership transfer that did not complete...)."""

    exit_code = EXIT_REFUSED


class BodyTooLarge(KvError):
    """413: the request body is over the node's limit."""

    exit_code = EXIT_REFUSED


class Unavailable(KvError):
    """503: the node cannot serve this now; nothing was done. ``leader_id`` and
    ``leader_url`` name the leader when it is known."""

    exit_code = EXIT_UNAVAILABLE


class UnknownOutcome(KvError):
    """504 ``outcome_unknown``: the write may or may not have been applied.

    Raised by the client too when the connection broke after a write was sent.
    """

    exit_code = EXIT_UNKNOWN_OUTCOME


class ReadTimeout(Unavailable):
    """504 ``read_timeout``: a read got no answer in time. A read changes nothing, so it
    can be sent again (the client does, within its deadline)."""


class SessionExpired(KvError):
    """409 ``session_expired``: the write's ``client_id`` has no session (it expired after
    the session timeout of log time without a write, was closed, or never existed). This
    request applied nothing; if it was a resend, an earlier copy may have been applied.
    Register a new session before writing again."""

    exit_code = EXIT_REFUSED


class StaleSequence(SessionExpired):
    """409 ``stale_sequence``: the ``sequence`` is older than the last one the session
    answered (``latest``); that answer is gone and this request applied nothing."""


class ServerError(KvError):
    """500 ``internal``: the node failed unexpectedly (it logged the traceback)."""

    exit_code = EXIT_ERROR


class NotAKvNode(KvError):
    """Client-side, ``not_a_node``: a URL answered, but not with the service's answers (an
    error without its JSON error format, a success that is not JSON): another server is
    there. ``url`` names it, ``status`` is its status. Never retried; nothing was done."""

    exit_code = EXIT_NOT_A_NODE


class ClusterUnreachable(KvError):
    """Client-side: none of the given nodes could be reached."""

    exit_code = EXIT_UNREACHABLE


class RestoreIncomplete(KvError):
    """Client-side: some keys of a restore were not written (``failed``: key -> the error of
    each, ``"code: message"``); every other key was. Its exit code is the first failure's
    (by key): 5 when a write's outcome is unknown (read back before retrying)."""

    def __init__(self, failed: dict[str, KvError], total: int) -> None:
        keys = sorted(failed)
        said = {key: _one_line(failed[key]) for key in keys}
        shown = ", ".join(f"{key!r} ({said[key]})" for key in keys[:5])
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        super().__init__(
            "restore_incomplete",
            f"{len(keys)} of {total} keys were not restored: {shown}{more}; every other key "
            "was written",
            details={"failed": said},
        )
        self.exit_code = failed[keys[0]].exit_code


def _one_line(error: KvError) -> str:
    """``code: message`` of an error on one line (the class name when it has no code)."""
    return f"{error.code or type(error).__name__}: {' '.join(error.message.split())}"


CODES: dict[str, tuple[int, type[KvError]]] = {
    "bad_json": (400, BadRequest),
    "bad_request": (400, BadRequest),
    "bad_key": (400, BadRequest),
    "reserved_key": (400, BadRequest),
    "bad_consistency": (400, BadRequest),
    "unauthorized": (401, Unauthorized),
    "key_not_found": (404, KeyNotFound),
    "not_found": (404, NotFound),
    "method_not_allowed": (405, MethodNotAllowed),
    "cas_failed": (409, CasFailed),
    "noop": (409, Conflict),
    "change_in_progress": (409, Conflict),
    "inoperable_config": (409, Conflict),
    "catch_up_timeout": (409, Conflict),
    "not_pristine": (409, Conflict),
    "not_a_learner": (409, Conflict),
    "not_a_member": (409, Conflict),
    "snapshots_unsupported": (409, Conflict),
    "transfer_failed": (409, Conflict),
    "session_expired": (409, SessionExpired),
    "stale_sequence": (409, StaleSequence),
    "sequence_reused": (409, Conflict),
    "body_too_large": (413, BodyTooLarge),
    "internal": (500, ServerError),
    "not_leader": (503, Unavailable),
    "no_leader": (503, Unavailable),
    "not_initialized": (503, Unavailable),
    "busy": (503, Unavailable),
    "starting": (503, Unavailable),
    "shutting_down": (503, Unavailable),
    "node_stopped": (503, Unavailable),
    "outcome_unknown": (504, UnknownOutcome),
    "read_timeout": (504, ReadTimeout),
}
"""Every error code: its HTTP status and the client's exception class. ``not_leader`` is
also sent with 307 (a redirect to the leader) when the leader's address is known."""

_BY_STATUS: dict[int, type[KvError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: BodyTooLarge,
    503: Unavailable,
    504: UnknownOutcome,
}


def error_for(status: int, code: str, message: str, details: dict[str, Any]) -> KvError:
    """The exception for an error answer; unknown codes fall back on the status."""
    cls = CODES[code][1] if code in CODES else _BY_STATUS.get(status, ServerError)
    return cls(code, message, status, details)
