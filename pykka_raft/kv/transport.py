"""One request of the service's HTTP client: sending it, reading the answer, and the error
an answer means. :class:`~pykka_raft.kv.client.Client` adds the leader, redirects, retries
and sessions on top."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import attrs

from pykka_raft.kv.errors import KvError, error_for


@attrs.frozen
class Response:
    """One HTTP answer: status, headers (lower-case names) and the parsed JSON body."""

    status: int
    headers: dict[str, str]
    body: Any


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
    if data:
        try:
            parsed = json.loads(data.decode("utf-8"))
        except ValueError:
            parsed = {"error": {"code": "", "message": data.decode("utf-8", "replace")[:500]}}
    return Response(raw.status, hdrs, parsed), sent


def fetch_json(url: str, timeout: float, token: str | None = None) -> Any:
    """GET a JSON document from a full URL (sending ``token`` as a bearer token when
    given); raises ``OSError`` or :class:`KvError`."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    response, _ = send(f"{parts.scheme}://{parts.netloc}", "GET", path, None, timeout, token)
    if response.status != 200:
        raise error_of(response)
    return response.body


def error_of(response: Response) -> KvError:
    body: dict[str, Any] = response.body if isinstance(response.body, dict) else {}
    found = body.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or f"HTTP {response.status}")
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    if response.status == 307 and not code:
        code = "not_leader"
    return error_for(response.status, code, message, details)


def compact(body: Any) -> bytes:
    """A request body as the service stores values: no spaces, UTF-8 as it is (so a value
    read back fits in a body as small as the one it was written with)."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, the node answers 400 for it
        return json.dumps(body, separators=(",", ":")).encode("ascii")
