"""The I/O-free Raft protocol core.

Nothing in this package imports pykka, threading, sockets or clocks: each input is an
event (a method call) and each step appends commands to :attr:`RaftCore.commands`, which
the Raft actor executes. The same core can be driven one event at a time by unit tests.
"""

from pykka_raft.core.commands import (
    Apply,
    Command,
    DeleteLogsFrom,
    Respond,
    SaveHardState,
    Send,
    WriteLog,
)
from pykka_raft.core.log import RaftLog
from pykka_raft.core.quorum import has_quorum, quorum_index
from pykka_raft.core.raft_core import RaftCore, Role

__all__ = [
    "Apply",
    "Command",
    "DeleteLogsFrom",
    "RaftCore",
    "RaftLog",
    "Respond",
    "Role",
    "SaveHardState",
    "Send",
    "WriteLog",
    "has_quorum",
    "quorum_index",
]
