"""The ``RaftStorage`` contract: the messages a storage actor handles, and its guarantees.

A Raft node talks to its storage only through these messages, sent as
:class:`~pykka_raft.calls.Call` and answered through the call's reply; the node never
blocks on them. Applications and tests may also ``ask`` a storage actor directly.

**Durability contract.** To ensure correctness, the storage must:

* process messages in the order it receives them (a Pykka inbox is FIFO: handle each
  message completely before the next);
* answer ``SaveHardState``, ``AppendEntryToLog``, ``ReplicateToLog`` and
  ``DeleteLogsFrom`` only once the change would survive a crash of the process (and, for a
  durable store, of the machine). The node replies to votes and appends only after those
  answers, so answering early can elect two leaders or lose acknowledged writes;
* never lose an entry or a hard state it acknowledged, and never change an entry except
  through ``DeleteLogsFrom`` followed by new writes;
* apply entries to the state machine exactly once and in index order, and report
  ``last_applied`` truthfully in ``GetInitialState``;
* fail loudly: an exception from any message but an application rejection in
  ``AppendEntryToLog`` stops the node (it cannot know what was persisted). A state
  machine's :class:`~pykka_raft.errors.ApplicationError` at apply time is not a failure:
  :meth:`RaftStorage.apply_to_state_machine` returns it as that entry's response.

**Snapshots** (``docs/snapshots.md``). ``CreateSnapshot`` builds a snapshot of the state
machine and drops the log through it; :class:`RaftStorage` captures the state on the
storage thread and serializes it on a background thread, so writes go on meanwhile.
``ReadSnapshotChunk`` serves a leader's transfer; ``WriteSnapshotChunk`` keeps received
chunks apart from the current snapshot; ``InstallSnapshot`` makes them current at once
(state machine restored, log reset or its matching suffix kept). A storage without
snapshots leaves those methods unimplemented and runs with
``Config.snapshot_policy = SnapshotPolicy.disabled()``.

The messages are in :mod:`pykka_raft.storage.messages`, the base actor in
:mod:`pykka_raft.storage.base`; both are re-exported here.
"""

from __future__ import annotations

from pykka_raft.storage.base import RaftStorage, SnapshotBuilt
from pykka_raft.storage.messages import (
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
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    StorageDump,
    WriteSnapshotChunk,
)

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
    "QueryStateMachine",
    "RaftStorage",
    "ReadSnapshotChunk",
    "ReplicateToLog",
    "SaveHardState",
    "SnapshotBuilt",
    "StorageDump",
    "WriteSnapshotChunk",
]
