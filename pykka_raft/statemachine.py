"""The state machine protocol, and a key-value state machine used by the demo and tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, Union

import attrs

from pykka_raft.codec import from_primitive, to_primitive
from pykka_raft.messages import Entry, EntryNormal


class StateMachine(Protocol):
    """What a storage applies committed entries to.

    ``apply`` is called exactly once per entry, in log order, on every node; it must be
    deterministic (same entries, same state, same responses on every node). ``validate``
    runs on the leader before an entry is appended and may raise to refuse it.

    ``snapshot`` and ``restore`` support log compaction (``docs/snapshots.md``); a state
    machine without them needs ``Config.snapshot_policy = SnapshotPolicy.disabled()``.
    """

    def apply(self, entry: Entry) -> Any:
        """Apply one committed entry; return the response for its client."""

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


@attrs.frozen
class Put:
    """Set ``key`` to ``value``. Responds with the previous value (or ``None``)."""

    key: str
    value: Any


@attrs.frozen
class Get:
    """Read ``key`` through the log. Responds with its value (or ``None``)."""

    key: str


@attrs.frozen
class Delete:
    """Remove ``key``. Responds with the removed value (or ``None``)."""

    key: str


@attrs.frozen
class CompareAndSet:
    """Set ``key`` to ``new`` only if it currently holds ``expected``.

    Responds with :class:`CasResult`: whether it swapped, and the value before.
    """

    key: str
    expected: Any
    new: Any


@attrs.frozen
class CasResult:
    """The response to :class:`CompareAndSet`."""

    swapped: bool
    previous: Any


KvCommand = Union[Put, Get, Delete, CompareAndSet]
KV_COMMANDS = (Put, Get, Delete, CompareAndSet, CasResult)


class InvalidCommand(ValueError):
    """A client entry is not a command this state machine understands."""


class KeyValueStateMachine:
    """A dictionary driven by :data:`KvCommand` entries.

    With ``keep_history``, ``applied`` records every applied entry's index and data in
    order, so tests can check that state machines saw the same sequence.
    """

    def __init__(self, keep_history: bool = True) -> None:
        self.data: dict[str, Any] = {}
        self.keep_history = keep_history
        self.applied: list[tuple[int, Any]] = []

    def snapshot(self) -> Callable[[], bytes]:
        """Copy the dictionary (and the history) now; serialize the copy later as JSON."""
        doc = {
            "data": dict(self.data),
            "applied": list(self.applied) if self.keep_history else None,
        }

        def serialize() -> bytes:
            return json.dumps(to_primitive(doc, Any), separators=(",", ":")).encode()

        return serialize

    def restore(self, data: bytes) -> None:
        """Replace the dictionary (and the history) with a snapshot's."""
        doc: dict[str, Any] = from_primitive(json.loads(data), Any)
        self.data = dict(doc["data"])
        if self.keep_history:
            self.applied = [(index, command) for index, command in doc["applied"] or ()]

    def validate(self, entry: Entry) -> None:
        """Refuse client entries that are not key-value commands."""
        payload = entry.payload
        if isinstance(payload, EntryNormal) and not isinstance(payload.data, KV_COMMANDS[:4]):
            raise InvalidCommand(
                f"expected Put, Get, Delete or CompareAndSet, got {type(payload.data).__name__}"
            )

    def apply(self, entry: Entry) -> Any:
        """Apply one entry (blank and configuration entries respond ``None``)."""
        payload = entry.payload
        if self.keep_history:
            self.applied.append((entry.index, getattr(payload, "data", None)))
        if not isinstance(payload, EntryNormal):
            return None
        command = payload.data
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
            if previous == command.expected:
                self.data[command.key] = command.new
                return CasResult(True, previous)
            return CasResult(False, previous)
        return None  # refused on the leader; never committed as a normal entry
