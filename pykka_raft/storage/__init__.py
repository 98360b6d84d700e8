"""Storage: the ``RaftStorage`` contract and the storages that ship with pykka_raft.

- :mod:`~pykka_raft.storage.contract`: the storage messages, the durability contract and
  the :class:`RaftStorage` base actor.
- :mod:`~pykka_raft.storage.memory`: :class:`MemStore`, the in-memory reference storage.
- :mod:`~pykka_raft.storage.sqlite`: :class:`SqliteStore`, the durable storage (one data
  directory per node), and :mod:`~pykka_raft.storage.sqlite_kv` with the state machines
  that live in its database (:class:`SqliteKeyValueStateMachine`).
- :mod:`~pykka_raft.storage.files`: durable file helpers (directory sync, atomic writes).
"""

from pykka_raft.storage.contract import (
    STORAGE_MESSAGES,
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    DumpStorage,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    InvalidRequest,
    QueryStateMachine,
    RaftStorage,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
    WriteSnapshotChunk,
)
from pykka_raft.storage.memory import MemStore, MemStoreData
from pykka_raft.storage.sqlite import SqliteStore
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine, SqliteStateMachine

__all__ = [
    "STORAGE_MESSAGES",
    "AppendEntryToLog",
    "ApplyToStateMachine",
    "CreateSnapshot",
    "DeleteLogsFrom",
    "DumpStorage",
    "GetInitialState",
    "GetLogEntries",
    "InstallSnapshot",
    "InvalidRequest",
    "MemStore",
    "MemStoreData",
    "QueryStateMachine",
    "RaftStorage",
    "ReadSnapshotChunk",
    "ReplicateToLog",
    "SaveHardState",
    "SqliteKeyValueStateMachine",
    "SqliteStateMachine",
    "SqliteStore",
    "StorageDump",
    "WriteSnapshotChunk",
]
