"""The I/O-free Raft protocol core.

Nothing in this package imports pykka, threading, sockets or clocks: each input is an
event (a method call on :class:`RaftCore`) and each step appends commands to
:attr:`RaftCore.commands`, which the driver executes. The same core is driven by the Raft
actor, the seeded simulation and the scripted scenarios, and one event at a time by unit
tests. ``node.py`` is the façade; each concern has a module of its own (see its docstring).
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
from pykka_raft.core.node import RaftCore
from pykka_raft.core.quorum import has_quorum, quorum_index
from pykka_raft.core.state import Role

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
