"""Commands the core asks its shell to carry out.

Storage commands (``SaveHardState``, ``WriteLog``, ``DeleteLogsFrom``, ``Apply``) must be
executed in the order given, by one FIFO storage. ``Send`` and ``Respond`` with
``after_durable=True`` must wait until every storage command issued before them has
completed: that is how "term, vote and log are durable before any reply that depends on
them" (Figure 2) is kept.
"""

from __future__ import annotations

from typing import Any, Union

import attrs

from pykka_raft.messages import Entry, HardState, RpcRequest
from pykka_raft.types import LogIndex


@attrs.frozen
class SaveHardState:
    """Persist term, vote and initial membership."""

    hard_state: HardState


@attrs.frozen
class WriteLog:
    """Write entries at their indexes.

    ``leader=True``: the leader's own new entries (``AppendEntryToLog``); the storage may
    reject a normal entry with an application error, storing a blank entry in its place.
    Otherwise entries replicated from a leader (``ReplicateToLog``), which must not fail.
    The shell reports completion with :meth:`RaftCore.log_written`.
    """

    entries: tuple[Entry, ...]
    leader: bool


@attrs.frozen
class DeleteLogsFrom:
    """Delete every log entry at ``index`` and after (a conflicting suffix, §5.3)."""

    index: LogIndex


@attrs.frozen
class Apply:
    """Apply committed entries to the state machine, in order.

    The shell reports completion with :meth:`RaftCore.applied`.
    """

    entries: tuple[Entry, ...]


@attrs.frozen
class Send:
    """Send an RPC to ``request.target``; report the outcome to the core."""

    request: RpcRequest
    after_durable: bool


@attrs.frozen
class Respond:
    """Answer the caller that holds ``token`` with ``value`` or ``error``."""

    token: int
    value: Any = None
    error: BaseException | None = None
    after_durable: bool = False


Command = Union[SaveHardState, WriteLog, DeleteLogsFrom, Apply, Send, Respond]
STORAGE_COMMANDS = (SaveHardState, WriteLog, DeleteLogsFrom, Apply)
