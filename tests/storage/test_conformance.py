"""The storage conformance suite against every storage that ships with pykka_raft."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pykka_raft import SqliteStore
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine
from pykka_raft.testing.conformance import (
    MemStoreConformance,
    RejectingSqliteKeyValueStateMachine,
    StorageConformance,
    key_value_machine,
)


class SetsTheDigest(StorageConformance):
    """The shipped storages give every snapshot its digest (the suite accepts ``None``)."""

    def test_every_snapshot_has_the_digest_of_its_bytes(self) -> None:
        store = self.store()
        meta = self._compacted(store)
        assert meta.digest == hashlib.sha256(store.snapshot_bytes(meta)).hexdigest()


class TestMemStore(MemStoreConformance, SetsTheDigest):
    """MemStore: restarts on the same MemStoreData."""


class TestSqliteStoreDurableMachine(SetsTheDigest):
    """SqliteStore with its durable key-value machine (the default), fsync durability."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        machine = (
            RejectingSqliteKeyValueStateMachine() if rejecting else SqliteKeyValueStateMachine()
        )
        # The rejecting variant is recorded under its own class name: keep one per place.
        return SqliteStore.start(place, 1, machine)


class TestSqliteStoreMemoryMachine(StorageConformance):
    """SqliteStore with an in-memory KeyValueStateMachine rebuilt at start, os durability."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        return SqliteStore.start(place, 1, key_value_machine(rejecting), durability="os")


class TestSqliteStoreWithoutGroupCommit(StorageConformance):
    """SqliteStore committing every call on its own."""

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        machine = (
            RejectingSqliteKeyValueStateMachine() if rejecting else SqliteKeyValueStateMachine()
        )
        return SqliteStore.start(place, 7, machine, group_commit=False)
