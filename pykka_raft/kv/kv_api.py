"""The key-value endpoints: ``GET``/``PUT``/``DELETE /v1/kv/<key>`` and compare-and-set.

Values are JSON; they are stored as canonical JSON text (:mod:`pykka_raft.kv.store`).
Writes go through the leader's log and are answered once applied; reads go through
:meth:`~pykka_raft.kv.gateway.RaftGateway.read` (the ``consistency`` parameter).

A write may carry ``client_id`` and ``sequence`` (a client session, ``POST /v1/sessions``):
it is then sent as a :class:`~pykka_raft.sessions.SessionCommand`, applied at most once
however often it is resent, every resend answered with the first answer (Raft
dissertation §6.3).
"""

from __future__ import annotations

from typing import Any

from pykka_raft import (
    CasResult,
    CloseSession,
    CompareAndSet,
    Delete,
    Get,
    Put,
    RegisterClient,
    SessionCommand,
)
from pykka_raft.kv.gateway import RaftGateway
from pykka_raft.kv.store import decode_value
from pykka_raft.kv.wsgi import HttpError, Request, check_key, json_object, json_value
from pykka_raft.sessions import MAX_SESSION_NUMBER

SESSION_FIELDS = frozenset({"client_id", "sequence"})
"""The body fields that send a write in a client session."""


def in_session(body: dict[str, Any], command: Any) -> Any:
    """``command``, wrapped in a :class:`SessionCommand` if ``body`` names a session.

    Raises:
        HttpError: ``bad_request`` for one field without the other, or values that are
            not positive integers.
    """
    given = SESSION_FIELDS & set(body)
    if not given:
        return command
    if given != SESSION_FIELDS:
        raise HttpError("bad_request", "client_id and sequence go together (or neither)")
    for field in sorted(SESSION_FIELDS):
        value = body[field]
        if type(value) is not int or not 1 <= value <= MAX_SESSION_NUMBER:
            raise HttpError(
                "bad_request", f"{field} must be an integer from 1 to 2**63 - 1, got {value!r}"
            )
    return SessionCommand(body["client_id"], body["sequence"], command)


def _check_answer(body: dict[str, Any], data: Any, fits: bool, operation: str) -> Any:
    """``data``, the state machine's answer to a write, if it ``fits`` the operation.

    One that does not is the cached answer of another operation sent earlier with the
    same ``client_id`` and ``sequence`` (a client's mistake): 409 ``sequence_reused``.
    Without a session it would be a bug: 500 ``internal``.

    Raises:
        HttpError: the answer is not one of this operation.
    """
    if fits:
        return data
    if set(body) >= SESSION_FIELDS:
        raise HttpError(
            "sequence_reused",
            f"client {body['client_id']} used sequence {body['sequence']} for another "
            f"operation, whose answer it holds; this {operation} applied nothing: send it "
            "with the next sequence",
            client_id=body["client_id"],
            sequence=body["sequence"],
        )
    raise HttpError("internal", f"unexpected state machine answer {data!r}", status=500)


def _previous(body: dict[str, Any], data: Any, operation: str) -> Any:
    """A put's or a delete's answer: the text the key held (``None``: none)."""
    return _check_answer(body, data, data is None or isinstance(data, str), operation)


class KvApi:
    """The key-value handlers of one node."""

    def __init__(self, gateway: RaftGateway) -> None:
        self.gateway = gateway

    def kv(self, request: Request) -> tuple[int, Any]:
        """``GET``/``PUT``/``DELETE /v1/kv/<key>``."""
        key = check_key(request.params["key"], writing=request.method != "GET")
        if request.method == "GET":
            consistency = request.query.get("consistency", "linearizable")
            data, index = self.gateway.read(request, Get(key), consistency)
            if data is None:
                raise HttpError("key_not_found", f"no key {key!r}", key=key)
            return 200, {"key": key, "value": decode_value(data), "index": index}
        if request.method == "PUT":
            body = json_object(request.json(), {"value", *SESSION_FIELDS}, {"value"})
            text = json_value(body["value"], "value")
            response = self.gateway.submit(request, in_session(body, Put(key, text)))
            previous = _previous(body, response.data, "put")
            return 200, {
                "key": key,
                "index": response.index,
                "previous": decode_value(previous),
                "existed": previous is not None,
            }
        body = json_object(request.optional_json(), set(SESSION_FIELDS), set())
        response = self.gateway.submit(request, in_session(body, Delete(key)))
        previous = _previous(body, response.data, "delete")
        if previous is None:
            raise HttpError("key_not_found", f"no key {key!r}", key=key, index=response.index)
        return 200, {"key": key, "index": response.index, "previous": decode_value(previous)}

    def cas(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/kv/<key>/cas`` with ``{"expected": v, "new": v}``; leaving out
        ``expected`` means "only if the key does not exist"."""
        key = check_key(request.params["key"], writing=True)
        body = json_object(request.json(), {"expected", "new", *SESSION_FIELDS}, {"new"})
        expected = json_value(body["expected"], "expected") if "expected" in body else None
        new = json_value(body["new"], "new")
        command = in_session(body, CompareAndSet(key, expected, new))
        response = self.gateway.submit(request, command)
        result = response.data
        _check_answer(body, result, isinstance(result, CasResult), "compare-and-set")
        if not result.swapped:
            raise HttpError(
                "cas_failed",
                "the key does not hold the expected value; nothing was written",
                key=key,
                current=decode_value(result.previous),
                exists=result.previous is not None,
                index=response.index,
            )
        return 200, {
            "key": key,
            "index": response.index,
            "swapped": True,
            "previous": decode_value(result.previous),
            "existed": result.previous is not None,
        }

    def register(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/sessions``: open a client session (through the leader's log); its
        ``client_id`` is the index of the entry that registered it."""
        json_object(request.optional_json(), set(), set())
        response = self.gateway.submit(request, RegisterClient())
        return 200, {"client_id": response.data, "index": response.index}

    def close(self, request: Request) -> tuple[int, Any]:
        """``DELETE /v1/sessions/<client_id>``: close a session before it expires."""
        raw = request.params["client_id"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_SESSION_NUMBER:
            raise HttpError(
                "bad_request", f"a client id is an integer from 1 to 2**63 - 1, got {raw!r}"
            )
        response = self.gateway.submit(request, CloseSession(int(raw)))
        return 200, {"client_id": int(raw), "index": response.index}
