"""The Raft actor: a thin shell that turns messages into core events and commands into tells.

All protocol decisions live in :class:`~pykka_raft.core.RaftCore`. This actor owns the
I/O: it ``tell``-s the storage and the network, receives their answers as
:class:`~pykka_raft.calls.Completed` messages, holds callers' replies until the core
answers them, and releases replies that depend on durable state only after every storage
write issued before them completed. It never blocks on another actor.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import threading
import time
from typing import Any

import attrs
import pykka
from pykka._envelope import Envelope

from pykka_raft.admin import InitWithConfig, ProposeConfigChange, TriggerSnapshot
from pykka_raft.calls import DEAD_ACTOR_ERRORS, ActorReply, Call, Completed, Reply
from pykka_raft.config import Config
from pykka_raft.core import RaftCore, Role
from pykka_raft.core import commands as cmd
from pykka_raft.errors import (
    InternalError,
    RpcError,
    ShuttingDown,
    SnapshotsUnsupported,
    StorageError,
    UnknownMessage,
)
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    GetMetrics,
    InitialState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.network.contract import MembershipChanged
from pykka_raft.storage import contract as st
from pykka_raft.types import LogId, NodeId

logger = logging.getLogger(__name__)

DEFERRED_REPLY = object()  # on_receive result meaning "the answer comes later"
CLIENT_BATCH = 1000  # client writes taken per wake-up


class _RaftFuture(pykka.ThreadingFuture[Any]):
    """The future behind ``RaftRef.ask``: answered by the node when it decides, not when
    the message was handled; an actor that stopped first answers ``ShuttingDown``."""

    def set(self, value: Any = None) -> None:
        if value is DEFERRED_REPLY:
            return
        super().set(value)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is not None and isinstance(exc_info[1], pykka.ActorDeadError):
            error = ShuttingDown("the Raft node stopped before it handled the call")
            exc_info = (ShuttingDown, error, None)
        super().set_exception(exc_info)


class _PykkaReply:
    """Answers a :class:`_RaftFuture`; a second answer is ignored."""

    __slots__ = ("future",)

    def __init__(self, future: _RaftFuture) -> None:
        self.future = future

    def set(self, value: Any = None) -> None:
        try:
            self.future.set(value)
        except Exception:  # already answered
            logger.debug("duplicate reply ignored")

    def set_exception(self, error: BaseException) -> None:
        try:
            self.future.set_exception((type(error), error, error.__traceback__))
        except Exception:  # already answered
            logger.debug("duplicate reply ignored")


class _ClientQueue:
    """Client writes waiting for the node, outside the actor's inbox.

    Writes are appended here and one wake-up message is queued for the whole lot, so a
    burst costs the node one actor message instead of one per write, and its entries go
    to the log as one batch.
    """

    __slots__ = ("items", "wake_pending")

    def __init__(self) -> None:
        self.items: collections.deque[tuple[ClientPayload, Reply]] = collections.deque()
        self.wake_pending = False


@attrs.frozen
class _WakeForClients:
    """Tells the node that client writes wait in its :class:`_ClientQueue`."""


class RaftRef(pykka.ActorRef[Any]):
    """The ref ``Raft.start`` returns.

    ``ask(message)`` returns the node's answer when the node decides it (a client write
    answers at commit or apply) or raises the typed error; the node's thread is never held
    while waiting. Calls to a stopped node raise :class:`~pykka_raft.errors.ShuttingDown`.
    Client writes (``ask(ClientPayload)`` or ``tell(Call(ClientPayload, reply))``) take a
    fast path that batches them.
    """

    clients: _ClientQueue | None = None

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = None) -> Any:
        """Send ``message`` and wait for (or, with ``block=False``, return a future of) the
        answer."""
        if isinstance(message, pykka.messages._ActorStop):
            return super().ask(message, block=block, timeout=timeout)  # ref.stop()
        future = _RaftFuture()
        if isinstance(message, ClientPayload) and self.clients is not None:
            self._enqueue(message, _PykkaReply(future))
        elif self.is_alive():
            self.actor_inbox.put(Envelope(Call(message, _PykkaReply(future)), reply_to=future))
        else:
            future.set_exception((ShuttingDown, ShuttingDown("the Raft node has stopped"), None))
        if block:
            return future.get(timeout=timeout)
        return future

    def tell(self, message: Any) -> None:
        """Send ``message`` without waiting for an answer."""
        if (
            isinstance(message, Call)
            and isinstance(message.message, ClientPayload)
            and self.clients is not None
        ):
            self._enqueue(message.message, message.reply)
            return
        if not self.is_alive():
            raise ShuttingDown("the Raft node has stopped")
        super().tell(message)

    def _enqueue(self, payload: ClientPayload, reply: Reply) -> None:
        clients = self.clients
        assert clients is not None
        clients.items.append((payload, reply))
        if not clients.wake_pending:
            clients.wake_pending = True
            with contextlib.suppress(pykka.ActorDeadError):
                super().tell(_WakeForClients())
        if not self.is_alive():
            _refuse_clients(clients)  # the node stopped: nobody else will answer them


@attrs.frozen
class _Tick:
    """The ticker's heartbeat to the actor."""


class _Ticker:
    """A thread that tells the actor a tick every ``interval``, never more than one queued."""

    def __init__(self, ref: Any, interval_ms: int) -> None:
        self._ref = ref
        self._interval = interval_ms / 1000
        self._stop = threading.Event()
        self.pending = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raft-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.pending.is_set():
                continue
            self.pending.set()
            try:
                self._ref.tell(_Tick())
            except Exception:  # the actor is gone
                return


class Raft(pykka.ThreadingActor):
    """One Raft node. Start it with :meth:`Raft.start`; talk to it with messages.

    Messages it handles (through ``ask`` on the returned ref):

    * ``AppendEntriesRequest``, ``VoteRequest``, ``InstallSnapshotRequest`` — peer RPCs,
      usually delivered by the network actor;
    * :class:`~pykka_raft.messages.ClientPayload` — a client write (leader only);
    * :class:`~pykka_raft.admin.InitWithConfig` — form a cluster from pristine nodes;
    * :class:`~pykka_raft.admin.ProposeConfigChange` — change the membership (leader only);
    * :class:`~pykka_raft.admin.TriggerSnapshot` — compact the log now;
    * :class:`~pykka_raft.messages.GetMetrics` — the current metrics.
    """

    def __init__(
        self,
        node_id: NodeId,
        config: Config,
        network: Any,
        storage: Any,
        metrics: Any | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self._actor_ref = RaftRef(self)
        self._clients = self._actor_ref.clients = _ClientQueue()
        self.node_id = node_id
        self.config = config
        self.network = network
        self.storage = storage
        self.metrics_subscriber = metrics
        self.core = RaftCore(node_id, config, rng)
        self._replies: dict[int, Reply] = {}
        self._next_token = 0
        self._storage_issued = 0  # sequence number of the last storage command sent
        self._last_write = 0  # ... of the last one a durable reply must wait for
        self._storage_done = 0  # ... of the last one completed (the storage is FIFO)
        self._deferred: collections.deque[tuple[int, cmd.Command]] = collections.deque()
        self._published: RaftMetrics | None = None
        self._metrics_dirty = False
        self._since_metrics = 0
        self._last_tick = time.monotonic()
        self._ticker: _Ticker | None = None
        self._stopped = False
        self._metrics_waiters: list[int] = []
        self._metrics_key: tuple[Any, ...] = ()
        self._told_membership: MembershipConfig | None = None

    @classmethod
    def start(
        cls,
        node_id: NodeId,
        config: Config,
        network: Any,
        storage: Any,
        metrics: Any | None = None,
        rng: random.Random | None = None,
    ) -> RaftRef:
        """Start a node (mirrors actix-raft's ``Raft::new(...)`` then ``start()``).

        Args:
            node_id: this node's id.
            config: a validated :class:`~pykka_raft.config.Config`.
            network: the ref of a :class:`~pykka_raft.network.RaftNetwork` actor.
            storage: the ref of a :class:`~pykka_raft.storage.RaftStorage` actor.
            metrics: an actor ref (anything with ``tell``) that receives
                :class:`~pykka_raft.metrics.RaftMetrics`, or ``None``.
            rng: the randomness for election timeouts (seed it to replay a run).

        Returns:
            The node's :class:`RaftRef`.
        """
        ref = super().start(node_id, config, network, storage, metrics, rng)
        assert isinstance(ref, RaftRef)
        return ref

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        """Ask the storage for the initial state; start the ticker."""
        self._ticker = _Ticker(self.actor_ref, self.config.tick_interval)
        try:
            self._call_storage(st.GetInitialState(), ("initial",))
        except Exception as exc:  # e.g. the storage actor is already gone
            self._fatal(exc if isinstance(exc, StorageError) else InternalError(repr(exc)))

    def on_stop(self) -> None:
        """Answer every waiting caller with ``ShuttingDown`` and publish final metrics."""
        self._shutdown(ShuttingDown())

    def on_failure(self, *exc_info: Any) -> None:
        """An unexpected exception: fail every caller, as on stop."""
        self._shutdown(InternalError(f"the Raft node failed: {exc_info[1]!r}"))

    def _shutdown(self, error: BaseException) -> None:
        if self._stopped:
            # _fatal shut down already; writes enqueued since (the actor was still alive,
            # so their clients did not refuse them) must not be left unanswered.
            _refuse_clients(self._clients)
            return
        self._stopped = True
        if self._ticker is not None:
            self._ticker.stop()
        replies, self._replies = self._replies, {}
        for reply in replies.values():
            reply.set_exception(error)
        _refuse_clients(self._clients)
        self._deferred.clear()
        if self.core.role is not Role.INITIALIZING:
            self._publish(attrs.evolve(self.core.metrics(), state=State.SHUTDOWN))

    def _fatal(self, error: BaseException) -> None:
        logger.error("Raft node %s stops: %s", self.node_id, error)
        self._shutdown(error)
        self.actor_ref.tell(pykka.messages._ActorStop())

    # --- messages -----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Translate one message into core events, then carry out the commands."""
        if self._stopped:
            if isinstance(message, Call):
                message.reply.set_exception(ShuttingDown())
            elif isinstance(message, _WakeForClients):
                _refuse_clients(self._clients)
            return DEFERRED_REPLY
        try:
            # Time is read on every message, not only on ticks: a tick queued behind a
            # backlog of client writes must not delay heartbeats or the quorum check.
            self._advance_time()
            if isinstance(message, Call):
                self._handle_call(message.message, message.reply)
            elif isinstance(message, Completed):
                self._handle_completed(message)
            elif isinstance(message, _WakeForClients):
                self._serve_clients()
            elif isinstance(message, _Tick):
                if self._ticker is not None:
                    self._ticker.pending.clear()
            else:
                self._handle_call(message, None)
            self._execute(self.core.take_commands())
            self._maybe_publish()
            self._maybe_tell_membership()
        except Exception as exc:  # one fatal path for every bug or failure
            logger.exception("Raft node %s failed", self.node_id)
            self._fatal(exc if isinstance(exc, StorageError) else InternalError(repr(exc)))
        return DEFERRED_REPLY

    def _serve_clients(self) -> None:
        """Take the waiting client writes (a bounded batch, so RPCs are not starved)."""
        clients = self._clients
        clients.wake_pending = False
        items = clients.items
        writes = []
        for _ in range(min(len(items), CLIENT_BATCH)):
            payload, reply = items.popleft()
            token = self._next_token
            self._next_token += 1
            self._replies[token] = reply
            writes.append((payload, token))
        if items and not clients.wake_pending:
            clients.wake_pending = True
            self.actor_ref.tell(_WakeForClients())  # the rest, after what queued meanwhile
        self.core.client_writes(writes)

    def _handle_call(self, message: Any, reply: Reply | None) -> None:
        token = self._next_token
        self._next_token += 1
        if reply is not None:
            self._replies[token] = reply
        core = self.core
        if isinstance(message, ClientPayload):
            core.client_write(message, token)
        elif isinstance(message, AppendEntriesRequest):
            core.receive_append_entries(message, token)
        elif isinstance(message, VoteRequest):
            core.receive_vote(message, token)
        elif isinstance(message, InstallSnapshotRequest):
            core.receive_install_snapshot(message, token)
        elif isinstance(message, InitWithConfig):
            core.init_with_config(message.members, token, message.addresses)
        elif isinstance(message, ProposeConfigChange):
            core.propose_config_change(message, token)
        elif isinstance(message, TriggerSnapshot):
            core.trigger_snapshot(token)
        elif isinstance(message, GetMetrics):
            if core.role is Role.INITIALIZING:
                self._metrics_waiters.append(token)  # answered once the node has started
            else:
                self._answer(cmd.Respond(token, core.metrics()))
        else:
            self._answer(cmd.Respond(token, error=UnknownMessage("Raft", message)))

    def _advance_time(self) -> None:
        """Feed the core the time passed, at most one tick's worth at a time.

        A node that was paused (a long handler, a garbage-collection pause) counts at most
        three tick intervals for the pause: it was not listening, so it must not conclude
        that it heard nothing and start an election before reading its inbox.
        """
        now = time.monotonic()
        interval = self.config.tick_interval
        elapsed = int((now - self._last_tick) * 1000)
        if elapsed < interval:
            return
        self._last_tick = now
        elapsed = min(elapsed, 3 * interval)
        self.core.tick(elapsed)
        self._since_metrics += elapsed
        if self._since_metrics >= self.config.metrics_rate:
            self._since_metrics = 0
            self._published = None  # periodic push, changed or not
        if self._metrics_dirty:
            self._metrics_dirty = False
            self._published = None

    def _handle_completed(self, message: Completed) -> None:
        kind = message.tag[0]
        if kind == "rpc":
            self._rpc_completed(message.tag[1], message.value, message.error)
            return
        if message.error is not None:
            if (
                isinstance(message.error, SnapshotsUnsupported)
                and kind == "storage"
                and isinstance(message.tag[2], cmd.CreateSnapshot)
            ):
                # Only the node's own compaction may be skipped: a chunk or an install the
                # storage could not keep must never be acknowledged (it falls through to
                # the fatal StorageError below).
                logger.warning("Raft node %s: %s", self.node_id, message.error)
                self.core.snapshot_unsupported(message.error)
                return
            raise StorageError(f"storage failed: {message.error!r}") from message.error
        if kind == "storage":
            self._storage_completed(message.tag[1], message.tag[2], message.value)
        elif kind == "initial":
            initial: InitialState = message.value
            start = initial.snapshot.last_included.index + 1 if initial.snapshot else 1
            stop = initial.last_log_id.index + 1
            self._call_storage(st.GetLogEntries(start, stop), ("entries", initial))
        elif kind == "entries":
            self.core.start(message.tag[1], message.value)
            self._published = None
            for token in self._metrics_waiters:
                self._answer(cmd.Respond(token, self.core.metrics()))
            self._metrics_waiters = []

    def _rpc_completed(self, request: Any, value: Any, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, RpcError):
            logger.debug("RPC %s failed: %r", type(request).__name__, error)
        if isinstance(request, AppendEntriesRequest):
            ok = value if isinstance(value, AppendEntriesResponse) and error is None else None
            self.core.append_entries_result(request, ok)
        elif isinstance(request, VoteRequest):
            vote = value if isinstance(value, VoteResponse) and error is None else None
            self.core.vote_result(request, vote)
        elif isinstance(request, InstallSnapshotRequest):
            ack = value if isinstance(value, InstallSnapshotResponse) and error is None else None
            self.core.install_snapshot_result(request, ack)

    def _storage_completed(self, seq: int, command: cmd.Command, value: Any) -> None:
        self._storage_done = max(self._storage_done, seq)
        if isinstance(command, cmd.WriteLog):
            last = command.entries[-1]
            rejected = value if command.leader else None
            self.core.log_written(LogId(last.term, last.index), rejected, command.leader)
        elif isinstance(command, cmd.Apply):
            self.core.applied(command.entries, tuple(value))
        elif isinstance(command, cmd.CreateSnapshot):
            self.core.snapshot_created(value)
        elif isinstance(command, cmd.ReadSnapshotChunk):
            self.core.snapshot_chunk_read(command.peer, command.snapshot_id, command.offset, value)
        while self._deferred and self._deferred[0][0] <= self._storage_done:
            self._answer(self._deferred.popleft()[1])

    # --- commands -----------------------------------------------------------------------

    def _execute(self, commands: list[cmd.Command]) -> None:
        for command in commands:
            if isinstance(command, cmd.STORAGE_COMMANDS):
                self._storage_issued += 1
                if not isinstance(command, cmd.NOT_WRITES):  # e.g. applying: nothing durable
                    self._last_write = self._storage_issued
                self._call_storage(
                    _storage_message(command), ("storage", self._storage_issued, command)
                )
            elif getattr(command, "after_durable", False) and (
                self._storage_done < self._last_write or self._deferred
            ):
                self._deferred.append((self._last_write, command))
            else:
                self._answer(command)

    def _answer(self, command: cmd.Command) -> None:
        if isinstance(command, cmd.Send):
            request = command.request
            try:
                self.network.tell(Call(request, ActorReply(self.actor_ref, ("rpc", request))))
            except DEAD_ACTOR_ERRORS as exc:
                raise InternalError("the network actor has stopped") from exc
        elif isinstance(command, cmd.Respond):
            reply = self._replies.pop(command.token, None)
            if reply is None:
                return
            try:
                if command.error is not None:
                    reply.set_exception(command.error)
                else:
                    reply.set(command.value)
            except Exception:  # a broken or already-answered reply must not stop the node
                logger.warning("Raft node %s: a reply failed", self.node_id, exc_info=True)

    def _call_storage(self, message: Any, tag: tuple[Any, ...]) -> None:
        try:
            self.storage.tell(Call(message, ActorReply(self.actor_ref, tag)))
        except DEAD_ACTOR_ERRORS as exc:
            raise StorageError("the storage actor has stopped") from exc

    def _maybe_tell_membership(self) -> None:
        """Tell the network the membership whenever it changes (and once at start), so a
        network between processes learns the addresses it carries."""
        core = self.core
        if core.role is Role.INITIALIZING:
            return
        membership = core.membership
        if membership is self._told_membership or membership == self._told_membership:
            return
        self._told_membership = membership
        try:
            self.network.tell(MembershipChanged(self.node_id, membership))
        except DEAD_ACTOR_ERRORS as exc:
            raise InternalError("the network actor has stopped") from exc

    # --- metrics ------------------------------------------------------------------------

    def _maybe_publish(self) -> None:
        core = self.core
        if core.role is Role.INITIALIZING:
            return
        # Cheap change detection first: building metrics on every message would cost more
        # than the protocol work of a client write.
        key = (
            core.role,
            core.current_term,
            core.leader_id,
            core.log.last_index,
            core.commit_index,
            core.last_applied,
            core.log.offset,
            id(core.membership),
        )
        if key == self._metrics_key and self._published is not None:
            return
        self._metrics_key = key
        metrics = core.metrics()
        last = self._published
        if last is None or (
            metrics.state,
            metrics.current_term,
            metrics.current_leader,
            metrics.membership_config,
        ) != (last.state, last.current_term, last.current_leader, last.membership_config):
            self._publish(metrics)
        elif metrics != last:
            self._metrics_dirty = True

    def _publish(self, metrics: RaftMetrics) -> None:
        self._published = metrics
        if self.metrics_subscriber is not None:
            try:
                self.metrics_subscriber.tell(metrics)
            except DEAD_ACTOR_ERRORS:
                self.metrics_subscriber = None


def _refuse_clients(clients: _ClientQueue) -> None:
    while clients.items:
        try:
            _, reply = clients.items.popleft()
        except IndexError:  # taken by a concurrent refusal
            return
        reply.set_exception(ShuttingDown("the Raft node has stopped"))


def _storage_message(command: cmd.Command) -> Any:
    if isinstance(command, cmd.WriteLog):
        if command.leader:
            return st.AppendEntryToLog(command.entries)
        return st.ReplicateToLog(command.entries)
    if isinstance(command, cmd.SaveHardState):
        return st.SaveHardState(command.hard_state)
    if isinstance(command, cmd.DeleteLogsFrom):
        return st.DeleteLogsFrom(command.index)
    if isinstance(command, cmd.Apply):
        return st.ApplyToStateMachine(command.entries)
    if isinstance(command, cmd.CreateSnapshot):
        return st.CreateSnapshot(command.last_included, command.membership)
    if isinstance(command, cmd.ReadSnapshotChunk):
        return st.ReadSnapshotChunk(command.snapshot_id, command.offset, command.size)
    if isinstance(command, cmd.WriteSnapshotChunk):
        return st.WriteSnapshotChunk(command.meta, command.offset, command.data)
    if isinstance(command, cmd.InstallSnapshot):
        return st.InstallSnapshot(command.meta)
    raise TypeError(f"not a storage command: {command!r}")
