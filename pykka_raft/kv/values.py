"""What :class:`~pykka_raft.kv.Client` sends, checked before anything is sent: values that
JSON carries exactly (what is written is what is read back), keys, and the client's own
arguments.

Python's ``json`` writes some values it cannot read back as they were: a dict key ``1``
becomes ``"1"`` (and two keys ``1`` and ``"1"`` collide, one value lost), a tuple becomes a
list, ``NaN`` and infinities become tokens JSON does not have (a node refuses them); and it
raises a plain ``TypeError`` for the rest (sets, bytes, other objects). The client refuses
all of these with :class:`~pykka_raft.kv.errors.BadRequest` (code ``bad_value``, ``path``
naming where in the value the culprit is) before it sends anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from pykka_raft.kv.auth import is_token
from pykka_raft.kv.errors import BadRequest, KvConfigError
from pykka_raft.kv.transport import base_url

BAD_VALUE = "bad_value"
"""The code of the :class:`BadRequest` raised for a value JSON cannot carry exactly."""


def check_body(body: Any) -> None:
    """Check every value of a request body (a dict of fields: ``value``, ``new``,
    ``expected``, ...), naming a culprit by its field (``value[1]``, ``new['a']``).

    Raises:
        BadRequest: ``bad_value``; nothing was sent.
    """
    if isinstance(body, dict):
        for name, value in body.items():
            if not isinstance(name, str):
                raise _bad("body", f"the field {name!r} is not a string")
            check_value(value, name)
    elif body is not None:
        check_value(body, "body")


def check_value(value: Any, where: str = "value") -> None:
    """Check that JSON carries ``value`` exactly: ``None``, ``bool``, ``int``, finite
    ``float``, ``str``, and lists and dicts (with ``str`` keys) of those.

    Args:
        value: the value.
        where: its name in the messages (``value``).

    Raises:
        BadRequest: ``bad_value``, with ``path``: where in ``value`` the culprit is
            (``value['a'][2]``).
    """
    try:
        _check(value, where)
    except RecursionError:
        raise _bad(where, "it is nested too deeply (or holds itself)") from None


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _bad(where, f"{value} is not a JSON number (JSON has no NaN or infinity)")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _bad(
                    where,
                    f"the key {key!r} ({type(key).__name__}) is not a string: JSON object "
                    f"keys are strings, it would be read back as {str(key)!r}",
                )
            _check(item, f"{where}[{key!r}]")
        return
    if isinstance(value, tuple):
        raise _bad(where, "a tuple would be read back as a list (JSON has no tuples): give a list")
    hint = " (decode it to a str)" if isinstance(value, (bytes, bytearray)) else ""
    if isinstance(value, (set, frozenset)):
        hint = " (give a list)"
    raise _bad(where, f"a value of type {type(value).__name__} is not JSON{hint}")


def _bad(where: str, why: str) -> BadRequest:
    return BadRequest(BAD_VALUE, f"{where}: {why}; nothing was sent", details={"path": where})


def key_path(key: str) -> str:
    """The API path of ``key`` (``/v1/kv/<key>``, percent-encoded)."""
    if not isinstance(key, str) or not key:
        raise ValueError("a key is a non-empty string")
    return "/v1/kv/" + quote(key, safe="")


def node_body(node_id: int, http_address: str, raft_address: str | None) -> dict[str, Any]:
    """The body that adds a node (``/v1/admin/voters``, ``/v1/admin/learners``)."""
    body: dict[str, Any] = {"id": node_id, "http_address": http_address}
    if raft_address is not None:
        body["raft_address"] = raft_address
    return body


def check_settings(
    urls: str | Sequence[str],
    timeout: float,
    deadline: float,
    max_redirects: int,
    token: str | None,
) -> list[str]:
    """Check a client's arguments; the base URLs of ``urls``.

    Raises:
        KvConfigError: an argument is invalid; the message names it.
    """
    for name, seconds in (("timeout", timeout), ("deadline", deadline)):
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise KvConfigError(f"Client {name}: a positive number of seconds, not {seconds!r}")
    if isinstance(max_redirects, bool) or not isinstance(max_redirects, int) or max_redirects < 0:
        raise KvConfigError(f"Client max_redirects: a whole number >= 0, not {max_redirects!r}")
    if token is not None and not (isinstance(token, str) and is_token(token)):
        raise KvConfigError(
            "Client token: visible ASCII characters, no space (the token file's line)"
        )
    given = [urls] if isinstance(urls, str) else list(urls)
    if not given:
        raise KvConfigError("Client urls: at least one node URL")
    found = []
    for url in given:
        if not isinstance(url, str):
            raise KvConfigError(f"Client urls: {url!r} is not a URL string")
        try:
            found.append(base_url(url))
        except ValueError as exc:
            raise KvConfigError(f"Client urls: {exc}") from None
    return found
