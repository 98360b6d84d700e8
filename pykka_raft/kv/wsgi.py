"""The HTTP plumbing under the API: requests, error answers and checked body fields.

A handler reads a :class:`Request` and returns ``(status, body)``; to refuse, it raises
:class:`HttpError` with a stable code from :data:`pykka_raft.kv.errors.CODES`, which the
application turns into ``{"error": {"code", "message", ...}}``. The helpers here check
what a client sent and refuse it with ``400`` and a message naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, quote

from pykka_raft.kv.config import UNSPECIFIED_HOSTS, parse_address
from pykka_raft.kv.errors import CODES
from pykka_raft.kv.store import RESERVED_PREFIX, encode_value, parse_json
from pykka_raft.messages import MAX_NODE_ID

SESSION_FIELDS_BYTES = 128
"""What the ``client_id`` and ``sequence`` of a write in a session may add to a body (two
numbers of up to 19 digits, their names and separators, with room for spaces): a body may
be this much over ``HttpSettings.max_body_bytes``."""

MAX_KEY_BYTES = 1024


class HttpError(Exception):
    """An error answer: raised by handlers, turned into the JSON error body."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        **details: Any,
    ) -> None:
        self.code = code
        self.status = status if status is not None else CODES[code][0]
        self.message = message
        self.headers = list(headers)
        self.details = details
        super().__init__(message)


class RawBody:
    """A non-JSON answer (the page, the metrics)."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.content_type = content_type


class Request:
    """The parts of a WSGI request a handler reads."""

    def __init__(self, environ: dict[str, Any], params: dict[str, str], max_body: int) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        self.params = params
        self.max_body = max_body
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), True).items()}

    @property
    def path_and_query(self) -> str:
        """The request's path and query string, re-quoted, for a ``Location``."""
        path = quote(request_path(self.environ), safe="/:@!$&'()*+,;=-._~")
        qs = self.environ.get("QUERY_STRING", "")
        return f"{path}?{qs}" if qs else path

    def json(self) -> Any:
        """The body parsed as JSON; the size limit is checked before anything is read.

        Raises:
            HttpError: ``body_too_large`` (413), ``bad_json`` (400).
        """
        length_text = self.environ.get("CONTENT_LENGTH") or ""
        stream = self.environ["wsgi.input"]
        if length_text:
            if not (length_text.isascii() and length_text.isdigit()):
                raise HttpError("bad_request", "Content-Length is not a number")
            length = int(length_text)
            if length > self.max_body:
                raise _too_large(self.max_body)
            body = stream.read(length) if length else b""
        else:
            body = stream.read(self.max_body + 1)
            if len(body) > self.max_body:
                raise _too_large(self.max_body)
        if not body.strip():
            raise HttpError("bad_json", "the request needs a JSON body")
        try:
            return parse_json(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise HttpError("bad_json", f"the body is not UTF-8: {exc.reason}") from None
        except ValueError as exc:
            raise HttpError("bad_json", f"the body is not valid JSON: {exc}") from None

    def optional_json(self) -> Any:
        """The JSON body, or ``{}`` when the request has none."""
        length = self.environ.get("CONTENT_LENGTH") or ""
        if length in ("", "0"):
            return {}
        return self.json()


def _too_large(limit: int) -> HttpError:
    return HttpError(
        "body_too_large",
        f"the request body is over this node's limit of {limit} bytes",
        limit=limit,
    )


def request_path(environ: dict[str, Any]) -> str:
    """The request's path as text (WSGI hands it percent-decoded as latin-1; keys are
    UTF-8). A path that is not UTF-8 is ``400 bad_key``: read as latin-1 instead, ``%FF``
    and ``%C3%BF`` would name one key."""
    raw: str = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise HttpError(
            "bad_key", "the path is not UTF-8 once percent-decoded (keys are UTF-8 text)"
        ) from None


def json_object(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    """``body`` if it is a JSON object with ``required`` fields and no others than
    ``allowed``; else ``400 bad_request`` naming them."""
    if not isinstance(body, dict):
        raise HttpError("bad_request", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HttpError("bad_request", f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise HttpError("bad_request", f"missing field(s): {', '.join(missing)}")
    return body


def node_id_field(value: Any, field: str = "id") -> int:
    """A node id (a JSON integer from 1 to 2**63 - 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NODE_ID:
        raise HttpError(
            "bad_request", f"{field} must be an integer from 1 to 2**63 - 1, got {value!r}"
        )
    return value


def address_field(value: Any, field: str) -> str:
    """A ``host:port`` with a real port."""
    if not isinstance(value, str):
        raise HttpError("bad_request", f"{field} must be a string host:port")
    try:
        host, port = parse_address(value, field)
    except ValueError as exc:
        raise HttpError("bad_request", str(exc)) from None
    if port == 0:
        raise HttpError("bad_request", f"{field} needs a real port, not 0")
    if host in UNSPECIFIED_HOSTS:
        raise HttpError(
            "bad_request",
            f"{field} {value!r} is not an address other nodes and clients can reach; give "
            "the node's own address",
        )
    return value.strip()


def check_key(key: str, writing: bool) -> str:
    """A key the API takes: not empty, at most :data:`MAX_KEY_BYTES`, and not the
    service's own when writing."""
    if not key:
        raise HttpError("bad_key", "the key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise HttpError("bad_key", f"the key is over {MAX_KEY_BYTES} bytes")
    if writing and key.startswith(RESERVED_PREFIX):
        raise HttpError(
            "reserved_key",
            f"keys starting with {RESERVED_PREFIX!r} belong to the service (the node "
            "directory); they can be read but not written",
        )
    return key


def json_value(value: Any, field: str) -> str:
    """The canonical text of a JSON value from a body (NaN and Infinity refused)."""
    try:
        return encode_value(value)
    except ValueError as exc:
        raise HttpError("bad_request", f"{field}: {exc}") from None


def dump(body: Any) -> bytes:
    """A JSON answer body."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
