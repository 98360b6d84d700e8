"""Tools to run and check pykka_raft clusters in one process: tests, demos, and checks of
your own storage and state machine (see ``docs/testing.md``).

- :class:`Cluster`, :class:`MetricsHub`, :func:`wait_until`: an in-process cluster harness.
- :mod:`~pykka_raft.testing.faultnet`: a fault-injecting network (:class:`FaultNetwork`).
- :mod:`~pykka_raft.testing.crash`: abrupt crashes that lose unacknowledged storage writes.
- :mod:`~pykka_raft.testing.history` and :mod:`~pykka_raft.testing.linearizability`: client
  histories and a linearizability checker for the key-value model.
- :mod:`~pykka_raft.testing.monitors`: Raft's safety invariants over a recorded run.
- :mod:`~pykka_raft.testing.plugs`: :class:`StoragePlug`, how the tools start, crash and
  restart any storage (:func:`memory_storage`, :func:`sqlite_storage`).
- :mod:`~pykka_raft.testing.values`: a strict, NaN-aware equality of application values
  (:func:`same`) and a generator of nested values.
- :mod:`~pykka_raft.testing.chaos`: seeded chaos runs combining all of the above.
"""

from pykka_raft.metrics import MetricsHub
from pykka_raft.testing.cluster import Cluster, wait_until
from pykka_raft.testing.crash import (
    CrashableMemStore,
    CrashableRaft,
    CrashableSqliteStore,
    PowerSwitch,
)
from pykka_raft.testing.faultnet import FaultNetwork
from pykka_raft.testing.history import HistoryRecorder, Op
from pykka_raft.testing.linearizability import LinearizabilityResult, check_kv
from pykka_raft.testing.plugs import (
    AppliedHistory,
    RecordingKeyValueStateMachine,
    StoragePlug,
    memory_storage,
    sqlite_storage,
)
from pykka_raft.testing.values import same

__all__ = [
    "AppliedHistory",
    "Cluster",
    "CrashableMemStore",
    "CrashableRaft",
    "CrashableSqliteStore",
    "FaultNetwork",
    "HistoryRecorder",
    "LinearizabilityResult",
    "MetricsHub",
    "Op",
    "PowerSwitch",
    "RecordingKeyValueStateMachine",
    "StoragePlug",
    "check_kv",
    "memory_storage",
    "same",
    "sqlite_storage",
    "wait_until",
]
