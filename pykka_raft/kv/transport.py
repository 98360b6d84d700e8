"""One request of the service's HTTP client: sending it, reading the answer, and the error
an answer means. :class:`~pykka_raft.kv.client.Client` adds the leader, redirects, retries
and sessions on top."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import attrs

from pykka_raft.kv.errors import KvError, NotAKvNode, error_for

SERVER = "pykka-raft-kv"
"""The ``Server`` header of every answer of a node (waitress's ``ident``), its HTTP server's
own plain-text refusals (400, 413, 431, 501) included."""

_GATEWAY = (502, 503, 504)
"""Statuses a proxy in front of a node answers for it (the node down, or slow): taken as
the node's, whatever their body."""


@attrs.frozen
class Response:
    """One HTTP answer: status, headers (lower-case names), the parsed JSON body (``None``
    when it is empty or not JSON), and ``text``, the start of a body that is not JSON."""

    status: int
    headers: dict[str, str]
    body: Any
    text: str | None = None


def base_url(url: str) -> str:
    """``scheme://host:port`` of a node's URL (``host:port`` alone means http)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def send(
    base: str,
    method: str,
    path: str,
    body: bytes | None,
    timeout: float,
    token: str | None = None,
) -> tuple[Response, bool]:
    """Send one request (with ``Authorization: Bearer <token>`` when ``token`` is given).
    Returns the answer, or raises ``OSError`` with ``.sent`` telling whether the request
    may have reached the node."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    sent = False
    try:
        conn.connect()
        headers = {"Accept": "application/json", "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        sent = True
        conn.request(method, path, body=body, headers=headers)
        raw = conn.getresponse()
        data = raw.read()
        hdrs = {k.lower(): v for k, v in raw.getheaders()}
    except (OSError, http.client.HTTPException) as exc:
        err = exc if isinstance(exc, OSError) else OSError(str(exc))
        err.sent = sent  # type: ignore[attr-defined]
        raise err from exc
    finally:
        conn.close()
    parsed: Any = None
    text = None
    if data:
        try:
            parsed = json.loads(data.decode("utf-8"))
        except ValueError:
            text = data.decode("utf-8", "replace")[:500]
    return Response(raw.status, hdrs, parsed, text), sent


def fetch_json(url: str, timeout: float, token: str | None = None) -> Any:
    """GET a JSON document from a full URL (sending ``token`` as a bearer token when
    given); raises ``OSError`` or :class:`KvError`."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    base = f"{parts.scheme}://{parts.netloc}"
    response, _ = send(base, "GET", path, None, timeout, token)
    if response.status != 200 or response.text is not None:
        raise error_of(response, base)
    return response.body


def error_of(response: Response, url: str = "the node") -> KvError:
    """The error an answer of ``url`` means: the exception of its error code, or
    :class:`NotAKvNode` for an answer that is not the service's (see :func:`is_answer`)."""
    if not is_answer(response):
        kind = response.headers.get("content-type", "").split(";")[0].strip() or "no type"
        return NotAKvNode(
            "not_a_node",
            f"{url} answered {response.status} with {kind}, not the key-value API: is this a "
            "pykka-raft-kv node?",
            response.status,
            {"url": url},
        )
    body: dict[str, Any] = response.body if isinstance(response.body, dict) else {}
    found = body.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(error.get("code") or "")
    text = " ".join((response.text or "").split())[:200]
    message = str(error.get("message") or text or f"HTTP {response.status}")
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    if response.status == 307 and not code:
        code = "not_leader"
    return error_for(response.status, code, message, details)


def value_of(answer: Any, url: str | None) -> Any:
    """The ``value`` of a read's answer from ``url``; :class:`NotAKvNode` if it has none."""
    if not isinstance(answer, dict) or "value" not in answer:
        raise NotAKvNode(
            "not_a_node",
            f"{url} answered a read without a value, not the key-value API: is this a "
            "pykka-raft-kv node?",
            200,
            {"url": url},
        )
    return answer["value"]


def is_answer(response: Response) -> bool:
    """True when ``response`` is one the service gives: a success with a JSON body (or
    none), an error in its format (``{"error": {"code": str, "message": str}}``), any
    answer of a node's HTTP server (its ``Server`` header), or a gateway error (502, 503,
    504) from a proxy in front of a node. Anything else comes from another server."""
    if 200 <= response.status < 300:
        return response.text is None
    body = response.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and all(isinstance(error.get(k), str) for k in ("code", "message")):
        return True
    return response.headers.get("server") == SERVER or response.status in _GATEWAY


def compact(body: Any) -> bytes:
    """A request body as the service stores values: no spaces, UTF-8 as it is (so a value
    read back fits in a body as small as the one it was written with)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, the node answers 400 for it
        return json.dumps(body, separators=(",", ":")).encode("ascii")
