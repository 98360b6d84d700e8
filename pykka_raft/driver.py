"""``NodeDriver``: runs one protocol core against ports, with no threads, clocks or actors.

The core (:class:`~pykka_raft.core.RaftCore`) decides; the driver carries its decisions
out and feeds back what happened, in one place shared by every way of running a node:
the Raft actor (ports that ``tell`` the storage and network actors and answer Pykka
futures), the seeded simulation and the scripted scenarios (ports that model storage and
network in virtual time). It owns:

* **tokens and replies**: each call gets a token; the core answers tokens, the driver
  hands each answer to the caller's handle through :meth:`Ports.reply`, at most once
  (ports with :attr:`Ports.answers_reads` answer a ``Query``'s readers themselves);
* **storage sequence numbers and the durable barrier**: storage commands go out in order,
  numbered; an answer that depends on durable state (``after_durable``: votes, append
  acknowledgements, a candidate's vote requests) is held until every storage *write*
  issued before it completed. The storage is FIFO, so "completed through sequence n" is
  one number;
* **completions turned into core events** (``storage_done``, ``rpc_done``) and time
  (``advance``), including the storage deadline: a storage command outstanding for longer
  than ``Config.storage_timeout`` stops the node (:class:`~pykka_raft.errors.StorageError`),
  so a stuck or dead storage cannot freeze a leader that still sends heartbeats;
* **stopping**: the core answers its client writes (never appended: not committed;
  pending: outcome unknown), the driver answers every other caller.

A :class:`~pykka_raft.errors.StorageError` or :class:`~pykka_raft.errors.SafetyViolation`
raised by a driver method is fatal: the owner calls :meth:`stop` with it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable
from typing import Any

from pykka_raft.admin import (
    InitWithConfig,
    ProposeConfigChange,
    TransferLeadership,
    TriggerElection,
    TriggerSnapshot,
)
from pykka_raft.core import commands as cmd
from pykka_raft.core.node import RaftCore
from pykka_raft.core.state import Role
from pykka_raft.errors import (
    RequestTooLarge,
    ShuttingDown,
    SnapshotsUnsupported,
    StorageError,
    UnknownMessage,
)
from pykka_raft.logs import NODE
from pykka_raft.messages import (
    RESPONSE_FOR,
    AppendEntriesRequest,
    ClientPayload,
    ClientRead,
    GetMetrics,
    InstallSnapshotRequest,
    ReadIndexRequest,
    RpcRequest,
    TimeoutNowRequest,
    VoteRequest,
)
from pykka_raft.read_answers import ReadAnswers
from pykka_raft.types import LogId

logger = logging.getLogger(NODE)

_AFTER_START = (
    InitWithConfig,
    GetMetrics,
    TriggerSnapshot,
    TriggerElection,
    TransferLeadership,
    ClientRead,
)
"""Calls that wait until the node has started, rather than fail while it starts."""


class Ports:
    """Where a driver's I/O goes. Subclass, implement ``storage``, ``send`` and ``reply``
    (and ``query``, with :attr:`answers_reads`); none may block.

    Answers come back through the driver: :meth:`NodeDriver.storage_done` for storage
    commands (in issue order, but ``CreateSnapshot``), :meth:`NodeDriver.rpc_done` for RPCs.
    """

    answers_reads = False
    """``Query`` commands go to :meth:`query` with their readers, not to :meth:`storage`."""

    def storage(self, seq: int, command: cmd.Command) -> None:
        """Carry out storage command number ``seq``."""
        raise NotImplementedError

    def send(self, request: RpcRequest) -> None:
        """Send an RPC to ``request.target``."""
        raise NotImplementedError

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        """Answer the caller behind ``handle``."""
        raise NotImplementedError

    def query(self, seq: int, command: cmd.Query, readers: ReadAnswers) -> None:
        """Carry out ``Query`` number ``seq`` with ``readers`` as its reply (it answers the
        readers), then complete ``seq`` (e.g. set ``readers.done`` to a reply that does)."""
        raise NotImplementedError

    def observe(self, commands: list[cmd.Command]) -> None:
        """See every batch of commands before it is carried out (for checkers)."""


class NodeDriver:
    """Runs ``core`` against ``ports``; see the module docstring."""

    def __init__(self, core: RaftCore, ports: Ports, *, pauses: bool = True) -> None:
        """``pauses``: whether a long gap between two :meth:`advance` calls may be a pause
        of the node (a real process: it counts as at most three tick intervals), or time
        it spent listening (virtual time, advanced only when meant to: it all counts)."""
        self.core = core
        self.ports = ports
        self.pauses = pauses
        self.stopped = False
        self._handles: dict[int, Any] = {}
        self._next_token = 0
        self._issued = 0  # sequence number of the last storage command sent
        self._last_write = 0  # ... of the last one a durable answer must wait for
        self._done = 0  # ... of the last one completed (the storage is FIFO)
        self._deferred: collections.deque[tuple[int, cmd.Command]] = collections.deque()
        # Storage commands not yet completed: (command, issued at ms).
        self._outstanding: dict[int, tuple[cmd.Command, int]] = {}
        self._reading: dict[int, ReadAnswers] = {}  # Query seq -> readers the ports answer
        self._after_start: list[tuple[Any, Any]] = []
        self._now = 0
        self._last_tick: int | None = None
        self.before_commands: Callable[[], None] | None = None
        """Called before each batch of commands is carried out, after the core decided it
        (the Raft actor's lease view must change before any of the batch happens)."""

    # --- events -------------------------------------------------------------------------

    def boot(self, now_ms: int = 0) -> None:
        """Start the node: read the persisted state from the storage."""
        self._now = self._last_tick = now_ms
        self.core.boot()
        self._run()

    def call(self, message: Any, handle: Any) -> None:
        """A request from a caller (a peer's RPC, a client, an admin); answered later."""
        if self.stopped:
            self._refuse(handle)
            return
        core = self.core
        if core.role is Role.INITIALIZING and isinstance(message, _AFTER_START):
            # Answered once the node has read its state: a caller may send them right
            # after starting the node, without polling its metrics first.
            self._after_start.append((message, handle))
            return
        token = self._token(handle)
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
        elif isinstance(message, TimeoutNowRequest):
            core.receive_timeout_now(message, token)
        elif isinstance(message, ClientRead):
            core.client_read(message, token)
        elif isinstance(message, ReadIndexRequest):
            core.receive_read_index(message, token)
        elif isinstance(message, TransferLeadership):
            core.transfer_leadership(message.target, token)
        elif isinstance(message, TriggerElection):
            core.trigger_election(token)
        elif isinstance(message, GetMetrics):
            core.respond(token, core.metrics())
        else:
            core.respond(token, error=UnknownMessage("Raft", message))
        self._run()

    def client_reads(self, reads: Iterable[tuple[ClientRead, Any]]) -> None:
        """Several client reads at once (one heartbeat round and one query batch); they
        wait for the start like a single ``ClientRead``."""
        self._batch(list(reads), self.core.client_reads, wait_for_start=True)

    def client_writes(self, writes: Iterable[tuple[ClientPayload, Any]]) -> None:
        """Several client writes at once (one storage append for all of them)."""
        self._batch(list(writes), self.core.client_writes, wait_for_start=False)

    def _batch(
        self,
        items: list[tuple[Any, Any]],
        method: Callable[[list[tuple[Any, int]]], None],
        wait_for_start: bool,
    ) -> None:
        if self.stopped:
            for _, handle in items:
                self._refuse(handle)
        elif wait_for_start and self.core.role is Role.INITIALIZING:
            self._after_start.extend(items)
        else:
            # What _token does, in line: one token per item.
            first, handles = self._next_token, self._handles
            self._next_token = first + len(items)
            tokened = []
            for token, (message, handle) in enumerate(items, first):
                handles[token] = handle
                tokened.append((message, token))
            method(tokened)
            self._run()

    def advance(self, now_ms: int) -> None:
        """Time is ``now_ms``: feed the core the time passed, and check the storage deadline.

        A node that was paused (a long handler, a garbage-collection pause) counts at most
        three tick intervals for the pause: it was not listening, so it must not conclude
        that it heard nothing and start an election before reading its inbox (unless the
        driver was made with ``pauses=False``).
        """
        if self.stopped:
            return
        self._now = now_ms
        self.core.clock = now_ms
        self._check_storage_deadline()
        interval = self.core.config.tick_interval
        last = self._last_tick if self._last_tick is not None else now_ms
        elapsed = now_ms - last
        if elapsed < interval:
            return
        self._last_tick = now_ms
        self.core.tick(min(elapsed, 3 * interval) if self.pauses else elapsed)
        self._run()

    def storage_done(self, seq: int, value: Any = None, error: BaseException | None = None) -> None:
        """Storage command ``seq`` completed with ``value`` (or failed with ``error``)."""
        if self.stopped:
            return
        entry = self._outstanding.pop(seq, None)
        if entry is None:
            logger.warning("node %s: storage answered command #%s twice", self.core.id, seq)
            return
        command, core = entry[0], self.core
        if isinstance(command, cmd.Query):
            # Reads' queries: a refused query is its reader's error, never the node's.
            self._done = max(self._done, seq)
            if self._reading.pop(seq, None) is None:  # else the ports answered the readers
                core.queries_answered(command, value, error)
            self._release_durable()
            self._run()
            return
        if error is not None:
            if isinstance(error, SnapshotsUnsupported) and isinstance(command, cmd.CreateSnapshot):
                # Only the node's own compaction may be skipped: a chunk or an install the
                # storage could not keep must never be acknowledged (fatal, below).
                logger.warning("node %s: %s", core.id, error)
                core.snapshot_unsupported(error)
                self._run()
                return
            raise StorageError(f"storage failed {type(command).__name__}: {error!r}") from error
        self._done = max(self._done, seq)
        if isinstance(command, cmd.WriteLog):
            last = command.entries[-1]
            rejected = value if command.leader else None
            core.log_written(LogId(last.term, last.index), rejected, command.leader)
        elif isinstance(command, cmd.Apply):
            core.applied(command.entries, tuple(value))
        elif isinstance(command, cmd.CreateSnapshot):
            core.snapshot_created(value)
        elif isinstance(command, cmd.ReadSnapshotChunk):
            core.snapshot_chunk_read(command.peer, command.snapshot_id, command.offset, value)
        elif isinstance(command, cmd.LoadInitialState):
            core.initial_state_loaded(value)
        elif isinstance(command, cmd.LoadLog):
            core.log_loaded(value)
            self._run()
            waiting = self._after_start  # the node has left INITIALIZING: none waits again
            for i, (message, handle) in enumerate(waiting):
                self._after_start = waiting[i + 1 :]  # if a call fails, stop answers these
                self.call(message, handle)
        self._release_durable()
        self._run()

    def _release_durable(self) -> None:
        while self._deferred and self._deferred[0][0] <= self._done:
            self._release(self._deferred.popleft()[1])

    def rpc_done(self, request: RpcRequest, value: Any, error: BaseException | None) -> None:
        """An RPC this node sent was answered (or failed: ``error``, or a wrong answer)."""
        if self.stopped:
            return
        core = self.core
        if error is not None:
            logger.debug("node %s: %s failed: %r", core.id, type(request).__name__, error)
            value = None
        answer: Any = value if isinstance(value, RESPONSE_FOR.get(type(request), ())) else None
        if isinstance(request, AppendEntriesRequest):
            if isinstance(error, RequestTooLarge):
                core.append_entries_result(request, None, fits=error.fits)
            else:
                core.append_entries_result(request, answer)
        elif isinstance(request, VoteRequest):
            core.vote_result(request, answer)
        elif isinstance(request, InstallSnapshotRequest):
            core.install_snapshot_result(request, answer)
        elif isinstance(request, TimeoutNowRequest):
            core.timeout_now_result(request, answer)
        elif isinstance(request, ReadIndexRequest):
            core.read_index_result(request, answer)
        self._run()

    def stop(self, error: BaseException) -> None:
        """Stop: every caller gets an answer. Client writes are answered by the core
        (never appended: not committed; pending: unknown, naming ``error``); every other
        call gets ``error``."""
        if self.stopped:
            return
        self.stopped = True
        self._deferred.clear()
        self.core.stop(error)
        for command in self.core.take_commands():
            if isinstance(command, cmd.Respond):
                self._release(command)
        for readers in self._reading.values():
            readers.refuse(error)  # whichever answers first, the storage or this, answers
        handles, self._handles = self._handles, {}
        waiting, self._after_start = self._after_start, []
        for handle in [*handles.values(), *(handle for _, handle in waiting)]:
            self.ports.reply(handle, None, error)

    def abandon(self) -> None:
        """The node crashed: stop at once, answering nobody (callers time out, as with a
        machine that lost power) and carrying out nothing more."""
        self.stopped = True
        self._deferred.clear()
        self._handles.clear()
        self.core.take_commands()

    # --- helpers ------------------------------------------------------------------------

    @property
    def outstanding_storage(self) -> int:
        """How many storage commands have not completed."""
        return len(self._outstanding)

    def _token(self, handle: Any) -> int:
        token = self._next_token
        self._next_token += 1
        self._handles[token] = handle
        return token

    def _refuse(self, handle: Any) -> None:
        error = ShuttingDown("the Raft node has stopped and did not accept the call")
        self.ports.reply(handle, None, error)

    def _check_storage_deadline(self) -> None:
        timeout = self.core.config.storage_timeout
        for seq, (command, issued_at) in self._outstanding.items():
            if isinstance(command, cmd.CreateSnapshot):
                continue  # built in the background; it may take long, and holds nothing up
            if self._now - issued_at > timeout:
                raise StorageError(
                    f"the storage did not complete {type(command).__name__} (#{seq}) within "
                    f"Config.storage_timeout ({timeout} ms): it is stuck or has stopped"
                )
            return  # FIFO: the oldest command decides

    def _run(self) -> None:
        """Carry out the core's commands: storage in order, answers when durable."""
        commands = self.core.take_commands()
        if not commands:
            return
        respond, handles, reply = cmd.Respond, self._handles, self.ports.reply
        self.ports.observe(commands)
        if self.before_commands is not None:
            self.before_commands()
        for command in commands:
            if type(command) is respond and not command.after_durable:
                # The common command (one per client write), released in line: what
                # _release does with it, without its dispatch on the command's type.
                handle = handles.pop(command.token, None)
                if handle is not None:
                    reply(handle, command.value, command.error)
            elif isinstance(command, cmd.STORAGE_COMMANDS):
                self._issued += 1
                if not isinstance(command, cmd.NOT_WRITES):  # e.g. applying: nothing durable
                    self._last_write = self._issued
                self._outstanding[self._issued] = (command, self._now)
                if type(command) is cmd.Query and self.ports.answers_reads:
                    readers = [handles.pop(token, None) for token, _ in command.reads]
                    self._reading[self._issued] = ReadAnswers(readers, command.index, reply)
                    self.ports.query(self._issued, command, self._reading[self._issued])
                else:
                    self.ports.storage(self._issued, command)
            elif getattr(command, "after_durable", False) and (
                self._done < self._last_write or self._deferred
            ):
                self._deferred.append((self._last_write, command))
            else:
                self._release(command)
        if self.core.commands:  # a LeadWhenDurable released in line made more
            self._run()

    def _release(self, command: cmd.Command) -> None:
        if isinstance(command, cmd.Send):
            self.ports.send(command.request)
        elif isinstance(command, cmd.LeadWhenDurable):
            self.core.hard_state_durable(command.term)
        elif isinstance(command, cmd.Respond):
            handle = self._handles.pop(command.token, None)
            if handle is not None:
                self.ports.reply(handle, command.value, command.error)
