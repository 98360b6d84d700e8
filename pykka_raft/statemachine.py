"""The state machine protocol, and a key-value state machine used by the demo and tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, Union

import attrs

from pykka_raft.codec import decode, encode, register_app_type
from pykka_raft.errors import DecodeError
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TIMEOUT,
    SESSION_TYPES,
    SessionCommand,
    SessionTable,
)


class StateMachine(Protocol):
    """What a storage applies committed entries to.

    ``apply`` is called exactly once per entry, in log order, on every node; it must be
    deterministic (same entries, same state, same responses on every node). ``validate``
    runs on the leader before an entry is appended and may raise to refuse it.

    Entries reach ``apply`` as the codec carries them (``docs/codec.md``): on a node that
    received them through a network or a snapshot they are equal copies, not the objects
    the client sent. A deterministic ``apply`` therefore must not depend on object
    identity (for example ``x is y``, or ``==`` on containers holding a NaN, which Python
    decides by identity first).

    ``apply`` may reject a command deterministically by raising
    :class:`~pykka_raft.errors.ApplicationError` **before changing any state** (no side
    effects): every replica then records the same outcome, the caller gets that error and
    the cluster goes on. Any other exception from ``apply`` is a failure of that node (the
    storage contract makes it fatal).

    ``snapshot`` and ``restore`` support log compaction (``docs/snapshots.md``); a state
    machine without them needs ``Config.snapshot_policy = SnapshotPolicy.disabled()``.

    An optional ``query(query) -> answer`` serves ``ClientRead`` (``docs/reads.md``): it
    answers a read-only query from the current state without changing it, on the
    storage's thread between two ``apply`` calls. Without it, reads go through the log.
    """

    def apply(self, entry: Entry) -> Any:
        """Apply one committed entry; return the response for its client.

        Raise :class:`~pykka_raft.errors.ApplicationError` to reject it without side
        effects (the same on every node); any other exception stops the node.
        """

    def validate(self, entry: Entry) -> None:
        """Raise to refuse a client entry before it is appended (leader only)."""

    def snapshot(self) -> Callable[[], bytes]:
        """Capture the current state; return a function that serializes the capture.

        Called on the storage thread, between two ``apply`` calls: capture a consistent
        state quickly (e.g. a shallow copy). The returned function runs on a background
        thread while ``apply`` goes on, so it must not read the live state.
        """

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the one serialized in ``data``."""


# --- the key-value state machine --------------------------------------------------------


def _str_key(instance: Any, attribute: Any, value: Any) -> None:
    if type(value) is not str:
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a str, "
            f"got {type(value).__name__} {value!r}"
        )


@register_app_type
@attrs.frozen
class Put:
    """Set ``key`` to ``value``. Responds with the previous value (or ``None``).

    ``value`` is any application value (``docs/codec.md``).
    """

    key: str = attrs.field(validator=_str_key)
    value: Any


@register_app_type
@attrs.frozen
class Get:
    """Read ``key`` through the log. Responds with its value (or ``None``)."""

    key: str = attrs.field(validator=_str_key)


@register_app_type
@attrs.frozen
class Delete:
    """Remove ``key``. Responds with the removed value (or ``None``)."""

    key: str = attrs.field(validator=_str_key)


@register_app_type
@attrs.frozen
class CompareAndSet:
    """Set ``key`` to ``new`` only if it currently holds ``expected``.

    Responds with :class:`CasResult`: whether it swapped, and the value before. The values
    are compared with ``==``, except that a NaN equals a NaN at any depth (see
    :func:`same_value`): Python compares containers by identity first, so ``[nan] ==
    [nan]`` holds for one list object and not for an equal copy, and replicas hold copies.
    """

    key: str = attrs.field(validator=_str_key)
    expected: Any
    new: Any


@register_app_type
@attrs.frozen
class CasResult:
    """The response to :class:`CompareAndSet`."""

    swapped: bool
    previous: Any


KvCommand = Union[Put, Get, Delete, CompareAndSet]
KV_COMMANDS = (Put, Get, Delete, CompareAndSet, CasResult)


class InvalidCommand(ValueError):
    """A client entry is not a command this state machine understands."""


def check_kv_entry(data: Any) -> None:
    """Refuse data that is neither a key-value command nor a session entry of one.

    Raises:
        InvalidCommand: naming what was found instead.
    """
    command = data.command if isinstance(data, SessionCommand) else data
    if isinstance(command, KV_COMMANDS[:4]) or (
        command is data and isinstance(data, SESSION_TYPES)
    ):
        return
    inside = " inside a SessionCommand" if command is not data else ""
    raise InvalidCommand(
        f"expected Put, Get, Delete or CompareAndSet{inside}, got {type(command).__name__}"
    )


def same_value(a: Any, b: Any) -> bool:
    """``a == b``, except that NaN equals NaN at any depth, whatever the objects' identity.

    Python's ``==`` on lists, tuples, dicts and attrs classes treats an item as equal to
    itself before comparing, so the answer for values holding a NaN depends on whether
    they share objects. Replicas hold equal copies, so a compare-and-set needs an answer
    that does not: this one.
    """
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return bool(a == b)  # 1 == 1.0 == True, as in Python; a list never equals a tuple
    if ta is float:
        return a == b or (math.isnan(a) and math.isnan(b))
    if ta is list or ta is tuple:
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return len(a) == len(b) and all(_same_item(key, value, b) for key, value in a.items())
    if attrs.has(ta):
        return all(
            same_value(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(ta) if f.eq
        )
    return bool(a == b)


def _same_item(key: Any, value: Any, other: dict[Any, Any]) -> bool:
    if key in other:
        return same_value(value, other[key])
    # A key holding a NaN is found only by identity: look for an equal key by hand.
    return any(same_value(key, k) and same_value(value, v) for k, v in other.items())


class KeyValueStateMachine:
    """A dictionary driven by :data:`KvCommand` entries.

    With ``keep_history`` (off by default), ``applied`` records every applied entry's
    index and data in order, so tests can check that state machines saw the same
    sequence; it grows without bound and goes into every snapshot, so it is for tests
    (``pykka_raft.testing.Cluster`` turns it on).

    Client sessions are built in (``docs/clients.md``): a command wrapped in a
    :class:`~pykka_raft.sessions.SessionCommand` is applied at most once, resends are
    answered from :attr:`sessions`, and sessions idle for ``session_timeout`` seconds of
    log time expire; beyond ``max_sessions`` a registration ends the least recently
    active one. Both must be the same on every node.

    Snapshots hold the dictionary, the session table (and the history) in the codec's
    ``encode`` form, so a node restored from one holds equal values of the same types
    (``docs/codec.md``).
    """

    def __init__(
        self,
        keep_history: bool = False,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
    ) -> None:
        self.data: dict[str, Any] = {}
        self.keep_history = keep_history
        self.applied: list[tuple[int, Any]] = []
        self.sessions = SessionTable(session_timeout, max_sessions=max_sessions)

    def snapshot(self) -> Callable[[], bytes]:
        """Copy the dictionary, the sessions (and the history) now; encode the copy later."""
        doc: dict[str, Any] = {
            "data": dict(self.data),
            "applied": list(self.applied) if self.keep_history else None,
            "sessions": self.sessions.capture(),
        }
        return lambda: encode(doc, Any, wrapped=True)

    def restore(self, data: bytes) -> None:
        """Replace the dictionary, the sessions (and the history) with a snapshot's.

        Raises:
            DecodeError: ``data`` is not a snapshot of this state machine.
        """
        doc: Any = decode(data, Any, wrapped=True)
        if type(doc) is not dict or type(doc.get("data")) is not dict:
            raise DecodeError("not a KeyValueStateMachine snapshot: no 'data' dictionary")
        self.data = doc["data"]
        self.sessions.load(doc.get("sessions"))
        if self.keep_history:
            self.applied = [(index, command) for index, command in doc.get("applied") or ()]

    def validate(self, entry: Entry) -> None:
        """Refuse client entries that are not key-value commands (or sessions of them)."""
        payload = entry.payload
        if isinstance(payload, EntryNormal):
            check_kv_entry(payload.data)

    def query(self, query: Any) -> Any:
        """Answer a :class:`Get` (the value, or ``None``) without the log."""
        if not isinstance(query, Get):
            raise InvalidCommand(f"a read query must be a Get, got {type(query).__name__}")
        return self.data.get(query.key)

    def apply(self, entry: Entry) -> Any:
        """Apply one entry (blank and configuration entries respond ``None``)."""
        payload = entry.payload
        if self.keep_history:
            self.applied.append((entry.index, getattr(payload, "data", None)))
        if not isinstance(payload, EntryNormal):
            return None
        command = payload.data
        if isinstance(command, SESSION_TYPES):
            return self.sessions.apply(entry.index, command, self._run)
        return self._run(command)

    def _run(self, command: Any) -> Any:
        if isinstance(command, Put):
            previous = self.data.get(command.key)
            self.data[command.key] = command.value
            return previous
        if isinstance(command, Get):
            return self.data.get(command.key)
        if isinstance(command, Delete):
            return self.data.pop(command.key, None)
        if isinstance(command, CompareAndSet):
            previous = self.data.get(command.key)
            if same_value(previous, command.expected):
                self.data[command.key] = command.new
                return CasResult(True, previous)
            return CasResult(False, previous)
        return None  # refused on the leader; never committed as a normal entry
