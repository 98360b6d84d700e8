"""Storage plugs: how the testing tools start, crash and restart a node's storage, whatever
the storage is.

A :class:`StoragePlug` is the whole protocol between a storage and the chaos runner (and
:class:`~pykka_raft.testing.Cluster`):

- ``start(node_id, place)`` starts the node's storage actor and returns its ref. ``place``
  is a directory of the node's own (the same one on every restart of that node, removed
  when the run ends): a durable storage keeps its data there, an in-memory one can use it
  as a key to the objects it keeps across restarts.
- ``crash(ref)``, optional, stops the storage abruptly: every write it has not acknowledged
  may be lost, every write it acknowledged must be there when ``start`` runs again on the
  same place. Without it, a crash of the node stops its storage cleanly (it finishes what
  it had queued), which still crashes the node but loses no storage write.
- ``hard_states(node_id, place)``, optional, returns every hard state the storage
  persisted, in order, for the check that a node never votes twice in a term. Without
  it the harness samples the hard state from :class:`~pykka_raft.storage.DumpStorage`.
- ``close()``, optional, frees what the plug keeps once a run is over.

Everything the checks read comes from :class:`~pykka_raft.storage.DumpStorage`, which every
``RaftStorage`` answers. A state machine whose ``dump()`` returns an
:class:`AppliedHistory` (as :class:`RecordingKeyValueStateMachine` does) also lets the
checks compare what each node applied index by index and find every acknowledged write in
it; without one, they compare the final states and read every key at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from pykka_raft.messages import HardState
from pykka_raft.statemachine import KeyValueStateMachine, StateMachine
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.storage.sqlite_kv import SqliteStateMachine
from pykka_raft.testing.crash import CrashableMemStore, CrashableSqliteStore, PowerSwitch
from pykka_raft.types import NodeId

__all__ = [
    "AppliedHistory",
    "RecordingKeyValueStateMachine",
    "StoragePlug",
    "memory_storage",
    "sqlite_storage",
]


@attrs.frozen
class StoragePlug:
    """How to start, crash and restart one kind of storage (see the module docstring).

    Attributes:
        start: ``(node_id, place) -> ref`` of a started storage actor.
        crash: ``(ref) -> None``: stop it at once, losing only unacknowledged writes.
        hard_states: ``(node_id, place) -> hard states``: every one it persisted, in order.
        close: free what the plug keeps, once the harness is done with its storages.
        name: what reports call this storage.
    """

    start: Callable[[NodeId, Path], Any]
    crash: Callable[[Any], None] | None = None
    hard_states: Callable[[NodeId, Path], Sequence[HardState]] | None = None
    close: Callable[[], None] | None = None
    name: str = "custom"


@attrs.frozen
class AppliedHistory:
    """A key-value state machine's data and every entry it applied, as ``(index, data)``
    pairs in order (what :meth:`RecordingKeyValueStateMachine.dump` returns)."""

    data: dict[str, Any]
    applied: tuple[tuple[int, Any], ...]


class RecordingKeyValueStateMachine(KeyValueStateMachine):
    """A :class:`~pykka_raft.statemachine.KeyValueStateMachine` that keeps its history and
    dumps it, so the chaos checks see what each node applied at each index (the history
    travels in its snapshots, so a node that installed one holds it too)."""

    def __init__(self) -> None:
        super().__init__(keep_history=True)

    def dump(self) -> AppliedHistory:
        """The data and the history (copies: the dump leaves the storage's thread)."""
        return AppliedHistory(dict(self.data), tuple(self.applied))


class _Switches:
    """The power switch of each started storage, by actor, for the crash hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_urn: dict[str, PowerSwitch] = {}

    def add(self, ref: Any, power: PowerSwitch) -> Any:
        with self._lock:
            self._by_urn[ref.actor_urn] = power
        return ref

    def crash(self, ref: Any) -> None:
        """Cut the storage's power (it drops what it has not handled), then stop it."""
        with self._lock:
            power = self._by_urn.pop(ref.actor_urn, None)
        if power is not None:
            power.cut()
        ref.stop()

    def clear(self) -> None:
        with self._lock:
            self._by_urn.clear()


def memory_storage(
    state_machine: Callable[[], StateMachine] = RecordingKeyValueStateMachine,
) -> StoragePlug:
    """:class:`~pykka_raft.testing.crash.CrashableMemStore` nodes: a crash loses every
    message the store had not handled; the store records every hard state it persisted.
    Each node's :class:`~pykka_raft.storage.memory.MemStoreData` is kept for its place."""
    lock = threading.Lock()
    kept: dict[Path, tuple[MemStoreData, list[HardState]]] = {}
    switches = _Switches()

    def held(place: Path) -> tuple[MemStoreData, list[HardState]]:
        with lock:
            if place not in kept:
                kept[place] = (MemStoreData(state_machine()), [])
            return kept[place]

    def start(node_id: NodeId, place: Path) -> Any:
        data, hard_states = held(place)
        power = PowerSwitch()
        return switches.add(
            CrashableMemStore.start(data=data, power=power, hard_states=hard_states), power
        )

    def hard_states(node_id: NodeId, place: Path) -> Sequence[HardState]:
        return tuple(held(place)[1])

    def close() -> None:
        with lock:
            kept.clear()
        switches.clear()

    return StoragePlug(start, switches.crash, hard_states, close, name="memory")


def sqlite_storage(
    state_machine: Callable[[], StateMachine | SqliteStateMachine] | None = None,
    **options: Any,
) -> StoragePlug:
    """:class:`~pykka_raft.storage.SqliteStore` nodes, one data directory per place.

    A crash (:class:`~pykka_raft.testing.crash.CrashableSqliteStore`) drops what the store
    had not handled and closes the database without committing the open transaction: in
    WAL mode with ``synchronous=FULL`` the store keeps exactly the committed transactions,
    which hold every write it acknowledged. ``state_machine`` makes each node's machine
    (default: the store's durable key-value machine); ``options`` go to ``SqliteStore``
    (``durability``, ``group_commit``, ``max_batch``).
    """
    switches = _Switches()

    def start(node_id: NodeId, place: Path) -> Any:
        power = PowerSwitch()
        machine = state_machine() if state_machine is not None else None
        ref = CrashableSqliteStore.start(place, node_id, machine, power=power, **options)
        return switches.add(ref, power)

    return StoragePlug(start, switches.crash, close=switches.clear, name="sqlite")
