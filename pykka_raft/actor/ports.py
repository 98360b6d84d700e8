"""The Raft actor's ports: the driver's storage commands, RPCs and answers as messages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pykka_raft.calls import DEAD_ACTOR_ERRORS, ActorReply, Call
from pykka_raft.core import commands as cmd
from pykka_raft.driver import Ports
from pykka_raft.errors import InternalError, SnapshotsUnsupported, StorageError
from pykka_raft.logs import NODE
from pykka_raft.messages import RpcRequest
from pykka_raft.read_answers import ReadAnswers, settle
from pykka_raft.storage import contract as st

if TYPE_CHECKING:
    from pykka_raft.actor.raft import Raft

logger = logging.getLogger(NODE)


class ActorPorts(Ports):
    """The driver's I/O as actor messages. Reads' callers are answered on the storage's
    thread, straight from its answers to their queries: the node's thread only hears that
    the query completed, once per batch.

    ``storage_failure`` is the first error a storage command other than a query failed
    with (``SnapshotsUnsupported`` from ``CreateSnapshot`` aside: the node skips that
    compaction, as the driver does; from any other command it is a failure), set on the
    thread that answered it, before the node hears. Queries run after the commands issued
    before them (FIFO), so a query whose readers would read a state that missed a failed
    apply sees it set, and its readers get ``StorageError`` (:class:`ReadAnswers`) while
    the node stops.
    """

    answers_reads = True

    def __init__(self, raft: Raft) -> None:
        self.raft = raft
        self.storage_failure: BaseException | None = None

    def storage(self, seq: int, command: cmd.Command) -> None:
        skippable = isinstance(command, cmd.CreateSnapshot)
        reply = _StorageReply(ActorReply(self.raft.actor_ref, seq), self, skippable)
        self._tell_storage(storage_message(command), reply)

    def query(self, seq: int, command: cmd.Query, readers: ReadAnswers) -> None:
        readers.done = ActorReply(self.raft.actor_ref, seq)
        readers.guard = self
        self._tell_storage(storage_message(command), readers)

    def _tell_storage(self, message: Any, reply: Any) -> None:
        try:
            self.raft.storage.tell(Call(message, reply))
        except DEAD_ACTOR_ERRORS as exc:
            raise StorageError("the storage actor has stopped") from exc

    def send(self, request: RpcRequest) -> None:
        raft = self.raft
        membership, told = raft.core.membership, raft._told_membership
        if membership is not told:  # a new member's address must reach the network first
            if membership == told:
                raft._told_membership = membership
            else:
                raft._membership_changed(membership)
        try:
            raft.network.tell(Call(request, ActorReply(raft.actor_ref, request)))
        except DEAD_ACTOR_ERRORS as exc:
            raise InternalError("the network actor has stopped") from exc

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        try:
            settle(handle, value, error)
        except Exception:  # a broken or already-answered reply must not stop the node
            logger.warning("node %s: a reply failed", self.raft.node_id, exc_info=True)


class _StorageReply:
    """A storage command's reply that notes a failure on the ports before telling it
    (``skippable``: a ``CreateSnapshot``, whose ``SnapshotsUnsupported`` is no failure)."""

    __slots__ = ("inner", "ports", "skippable")

    def __init__(self, inner: ActorReply, ports: ActorPorts, skippable: bool) -> None:
        self.inner, self.ports, self.skippable = inner, ports, skippable

    def set(self, value: Any = None) -> None:
        self.inner.set(value)

    def set_exception(self, error: BaseException) -> None:
        skipped = self.skippable and isinstance(error, SnapshotsUnsupported)
        if not skipped and self.ports.storage_failure is None:
            self.ports.storage_failure = error
        self.inner.set_exception(error)


def storage_message(command: cmd.Command) -> Any:
    """The storage contract message that carries out a core storage command."""
    if isinstance(command, cmd.WriteLog):
        if command.leader:
            return st.AppendEntryToLog(command.entries)
        return st.ReplicateToLog(command.entries)
    if isinstance(command, cmd.Apply):
        return st.ApplyToStateMachine(command.entries)
    if isinstance(command, cmd.SaveHardState):
        return st.SaveHardState(command.hard_state)
    if isinstance(command, cmd.DeleteLogsFrom):
        return st.DeleteLogsFrom(command.index)
    if isinstance(command, cmd.CreateSnapshot):
        return st.CreateSnapshot(command.last_included, command.membership)
    if isinstance(command, cmd.ReadSnapshotChunk):
        return st.ReadSnapshotChunk(command.snapshot_id, command.offset, command.size)
    if isinstance(command, cmd.WriteSnapshotChunk):
        return st.WriteSnapshotChunk(command.meta, command.offset, command.data)
    if isinstance(command, cmd.InstallSnapshot):
        return st.InstallSnapshot(command.meta, command.keep_log)
    if isinstance(command, cmd.Query):
        return st.QueryStateMachine(tuple(query for _, query in command.reads))
    if isinstance(command, cmd.LoadInitialState):
        return st.GetInitialState()
    if isinstance(command, cmd.LoadLog):
        return st.GetLogEntries(command.start, command.stop)
    raise TypeError(f"not a storage command: {command!r}")
