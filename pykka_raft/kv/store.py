"""The service's state machine: JSON values as canonical text, and the node directory.

Values are stored as canonical JSON text (sorted keys, no spaces), not as Python objects.
That makes every JSON value storable, ``null`` included (an absent key is ``None``, a
stored ``null`` is the text ``"null"``), and makes compare-and-set compare JSON values
exactly (``1`` and ``true`` differ, ``{"a":1,"b":2}`` equals ``{"b":2,"a":1}``). It also
keeps what crosses the network and goes into snapshots plain strings.

Keys under :data:`NODE_PREFIX` hold the node directory: where each node's HTTP API and
Raft endpoint are, written through the log so every node learns them (a new node's
addresses when it is added, a leader's own addresses when it is elected). The key
:data:`SETTINGS_KEY` holds the cluster's session settings, written the same way by each
new leader whose own differ, so that every node expires and ends the same sessions even
when their configurations disagree. The HTTP API refuses writes to those keys.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

from pykka_raft import (
    CompareAndSet,
    Delete,
    Entry,
    EntryNormal,
    KeyValueStateMachine,
    Put,
    SessionCommand,
)
from pykka_raft.sessions import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TIMEOUT, SessionTable

NODE_PREFIX = ".kv/node/"
"""Reserved key prefix: ``.kv/node/<id>`` holds ``{"http": ..., "raft": ...}``."""

SETTINGS_KEY = ".kv/settings"
"""Reserved key: the cluster's session settings, ``{"max_sessions": n, "session_timeout":
s}``; while the log has none, every node applies the library's defaults."""

RESERVED_PREFIX = ".kv/"
"""Keys starting with this are the service's own; the API refuses writes to them."""


def encode_value(value: Any) -> str:
    """The canonical JSON text of a JSON value (raises ``ValueError`` for NaN/Infinity)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def parse_json(text: str) -> Any:
    """A JSON text as a value, refusing what Python's json takes and JSON has not: ``NaN``,
    ``Infinity`` and numbers too large for a float (``1e400``), and nesting deeper than
    Python can parse, with a ``ValueError`` that says so."""
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError("the JSON text is nested too deeply") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large for a float")
    return number


def decode_value(text: Any) -> Any:
    """The JSON value of a stored text (a non-text stored by someone else is returned as
    it is)."""
    return json.loads(text) if isinstance(text, str) else text


def node_key(node_id: int) -> str:
    """The directory key of ``node_id``."""
    return f"{NODE_PREFIX}{node_id}"


def settings_record(session_timeout: float, max_sessions: int) -> str:
    """The text of a :data:`SETTINGS_KEY` record."""
    return encode_value({"max_sessions": max_sessions, "session_timeout": float(session_timeout)})


def _settings_of(text: Any) -> tuple[float, int] | None:
    """The settings a :data:`SETTINGS_KEY` record holds, if it is a valid one."""
    try:
        record = decode_value(text)
        timeout, most = record["session_timeout"], record["max_sessions"]
        SessionTable(timeout, max_sessions=most)  # the table's own checks
    except (ValueError, TypeError, KeyError, ArithmeticError):  # 10**400: OverflowError
        return None
    return float(timeout), most


class KvStateMachine(KeyValueStateMachine):
    """The key-value state machine, readable from other threads for the node directory.

    Client sessions are built in (``KeyValueStateMachine``'s): a write sent in a session
    (``SessionCommand``) is applied at most once, and the session table goes into the
    snapshots with the data (``docs/clients.md``).

    ``session_timeout`` and ``max_sessions`` apply until the state holds a
    :data:`SETTINGS_KEY` record; from the entry that writes one, its values do (a record
    that is not valid settings is ignored). The ones given here must be the same on every
    node (the service gives none: the library's defaults), so that nodes configured
    differently apply every entry alike, those before the first record too.

    The storage's thread applies entries; HTTP threads read the directory (and, later,
    stale reads). A lock makes each apply, restore and read atomic. Nothing here reads a
    clock or the node's identity, so every node computes the same state.
    """

    def __init__(
        self,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        super().__init__(False, session_timeout, max_sessions)
        self._configured = (self.sessions.timeout, self.sessions.max_sessions)
        self._lock = threading.Lock()
        self._nodes: dict[int, Any] = {}

    def apply(self, entry: Entry) -> Any:
        """Apply one entry, keeping the directory view current."""
        with self._lock:
            response = super().apply(entry)
            payload = entry.payload
            data = payload.data if isinstance(payload, EntryNormal) else None
            if isinstance(data, SessionCommand):
                data = data.command
            if isinstance(data, (Put, Delete, CompareAndSet)):
                key = data.key
                if key.startswith(NODE_PREFIX):
                    self._reindex(key)
                elif key == SETTINGS_KEY:
                    self._use_settings()
            return response

    def snapshot(self) -> Callable[[], bytes]:
        """Capture the state under the lock (the base class copies the dictionary)."""
        with self._lock:
            return super().snapshot()

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's and rebuild the directory view."""
        with self._lock:
            super().restore(data)
            self._nodes = {}
            for key in list(self.data):
                if key.startswith(NODE_PREFIX):
                    self._reindex(key)
            self._use_settings()

    def _use_settings(self) -> None:
        """Apply the session settings of the :data:`SETTINGS_KEY` record (the configured
        ones without a valid record)."""
        timeout, most = _settings_of(self.data.get(SETTINGS_KEY)) or self._configured
        self.sessions.timeout, self.sessions.max_sessions = timeout, most

    def session_settings(self) -> tuple[float, int]:
        """``(session_timeout, max_sessions)`` as this node applies them now."""
        with self._lock:
            return self.sessions.timeout, self.sessions.max_sessions

    def _reindex(self, key: str) -> None:
        suffix = key[len(NODE_PREFIX) :]
        if not (suffix.isascii() and suffix.isdigit()):
            return
        text = self.data.get(key)
        if text is None:
            self._nodes.pop(int(suffix), None)
            return
        try:
            self._nodes[int(suffix)] = decode_value(text)
        except ValueError:
            self._nodes.pop(int(suffix), None)

    def local_get(self, key: str) -> Any:
        """The value this node has applied for ``key`` (canonical text or ``None``); it may
        be behind the leader's."""
        with self._lock:
            return self.data.get(key)

    def export(self) -> dict[str, Any]:
        """Every key outside :data:`RESERVED_PREFIX` with its JSON value, copied at once
        (a backup: the node directory is left out, it describes this cluster only)."""
        with self._lock:
            items = [(k, v) for k, v in self.data.items() if not k.startswith(RESERVED_PREFIX)]
        return {key: decode_value(text) for key, text in sorted(items)}

    def node_records(self) -> dict[int, dict[str, Any]]:
        """The directory as this node has applied it: node id -> ``{"http", "raft"}``."""
        with self._lock:
            return {n: dict(r) for n, r in self._nodes.items() if isinstance(r, dict)}
