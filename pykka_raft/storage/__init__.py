"""Storage: the ``RaftStorage`` contract and the storages that ship with pykka_raft.

- :mod:`~pykka_raft.storage.contract`: the storage messages, the durability contract and
  the :class:`RaftStorage` base actor.
- :mod:`~pykka_raft.storage.memory`: :class:`MemStore`, the in-memory reference storage.
"""

from pykka_raft.storage.contract import (
    STORAGE_MESSAGES,
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    RaftStorage,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    WriteSnapshotChunk,
)
from pykka_raft.storage.memory import DumpStorage, MemStore, MemStoreData, StorageDump

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
    "MemStore",
    "MemStoreData",
    "RaftStorage",
    "ReadSnapshotChunk",
    "ReplicateToLog",
    "SaveHardState",
    "StorageDump",
    "WriteSnapshotChunk",
]
