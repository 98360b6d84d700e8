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
  ``AppendEntryToLog`` stops the node (it cannot know what was persisted).
"""

from __future__ import annotations

import abc
from typing import Any

import attrs
import pykka

from pykka_raft.calls import Call, answer
from pykka_raft.errors import UnknownMessage
from pykka_raft.messages import Entry, EntryBlank, EntryNormal, HardState, InitialState
from pykka_raft.statemachine import StateMachine
from pykka_raft.types import LogIndex


@attrs.frozen
class GetInitialState:
    """Report the persisted state when a node starts. Replies :class:`InitialState`."""


@attrs.frozen
class SaveHardState:
    """Persist term, vote and initial membership durably. Replies ``None``."""

    hard_state: HardState


@attrs.frozen
class GetLogEntries:
    """Read the entries in the half-open range ``[start, stop)``. Replies a tuple."""

    start: LogIndex
    stop: LogIndex


@attrs.frozen
class AppendEntryToLog:
    """The leader's own new entries, each to be written at its index.

    The one place where the application may refuse an entry: a normal entry refused by
    :meth:`RaftStorage.validate_entry` is stored as a blank entry at the same index (so the
    log stays contiguous) and its error goes to the client as
    :class:`~pykka_raft.errors.ApplicationError`. Replies ``{index: error}`` of the
    refused entries (empty when all were accepted).
    """

    entries: tuple[Entry, ...]


@attrs.frozen
class ReplicateToLog:
    """Entries from the leader, each written at its index. Must not fail. Replies ``None``."""

    entries: tuple[Entry, ...]


@attrs.frozen
class DeleteLogsFrom:
    """Delete the entries at ``index`` and after (a conflicting suffix). Replies ``None``.

    actix-raft had no such message and only overwrote by index, so a stale suffix could
    survive (D6); Raft sends it before it writes the replacing entries.
    """

    index: LogIndex


@attrs.frozen
class ApplyToStateMachine:
    """Apply committed entries in order. Replies a tuple with one response per entry.

    Replaces actix-raft's ``ApplyEntryToStateMachine`` (leader, one entry) and
    ``ReplicateToStateMachine`` (followers, in bulk): every node applies through the same
    path, so state machines cannot diverge by role. Blank and configuration entries are
    passed too; the state machine answers ``None`` for them.
    """

    entries: tuple[Entry, ...]


STORAGE_MESSAGES = (
    GetInitialState,
    SaveHardState,
    GetLogEntries,
    AppendEntryToLog,
    ReplicateToLog,
    DeleteLogsFrom,
    ApplyToStateMachine,
)


class RaftStorage(pykka.ThreadingActor, abc.ABC):
    """Base class of storage actors: dispatches the storage messages to methods.

    Subclasses implement the abstract methods below with the durability contract of this
    module; :class:`~pykka_raft.memstore.MemStore` is the in-memory reference. Messages
    arrive either as a :class:`~pykka_raft.calls.Call` (from the Raft node, answered
    through its reply) or plainly through ``ask``.
    """

    def __init__(self, state_machine: StateMachine) -> None:
        super().__init__()
        self.state_machine = state_machine

    def on_receive(self, message: Any) -> Any:
        """Answer a call through its reply, or a plain ``ask`` directly."""
        if isinstance(message, Call):
            answer(message.reply, self.handle, message.message)
            return None
        return self.handle(message)

    def handle(self, message: Any) -> Any:
        """Dispatch one storage message to the method that implements it."""
        if isinstance(message, AppendEntryToLog):
            return self.append_entry_to_log(message.entries)
        if isinstance(message, ReplicateToLog):
            self.write_log(message.entries)
            return None
        if isinstance(message, ApplyToStateMachine):
            return self.apply_to_state_machine(message.entries)
        if isinstance(message, SaveHardState):
            self.save_hard_state(message.hard_state)
            return None
        if isinstance(message, DeleteLogsFrom):
            self.delete_logs_from(message.index)
            return None
        if isinstance(message, GetLogEntries):
            return self.get_log_entries(message.start, message.stop)
        if isinstance(message, GetInitialState):
            return self.get_initial_state()
        return self.handle_other(message)

    def handle_other(self, message: Any) -> Any:
        """Messages beyond the contract (e.g. test dumps); the default refuses them."""
        raise UnknownMessage(type(self).__name__, message)

    def append_entry_to_log(self, entries: tuple[Entry, ...]) -> dict[LogIndex, BaseException]:
        """Validate the leader's entries, blank the refused ones, and write them all."""
        refused: dict[LogIndex, BaseException] = {}
        written = []
        for entry in entries:
            if isinstance(entry.payload, EntryNormal):
                try:
                    self.validate_entry(entry)
                except Exception as exc:  # the application's refusal
                    refused[entry.index] = exc
                    entry = Entry(entry.term, entry.index, EntryBlank())
            written.append(entry)
        self.write_log(tuple(written))
        return refused

    def validate_entry(self, entry: Entry) -> None:
        """Raise to refuse a client's entry on the leader; accepts everything by default."""
        self.state_machine.validate(entry)

    def apply_to_state_machine(self, entries: tuple[Entry, ...]) -> tuple[Any, ...]:
        """Apply entries in order through the state machine and record ``last_applied``."""
        responses = tuple(self.state_machine.apply(entry) for entry in entries)
        if entries:
            self.set_last_applied(entries[-1].index)
        return responses

    @abc.abstractmethod
    def get_initial_state(self) -> InitialState:
        """The hard state, the last log id, and the last applied index."""

    @abc.abstractmethod
    def save_hard_state(self, hard_state: HardState) -> None:
        """Persist the hard state durably before returning."""

    @abc.abstractmethod
    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """The entries in ``[start, stop)`` that the log holds."""

    @abc.abstractmethod
    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index, durably before returning."""

    @abc.abstractmethod
    def delete_logs_from(self, index: LogIndex) -> None:
        """Delete every entry at ``index`` and after, durably before returning."""

    @abc.abstractmethod
    def set_last_applied(self, index: LogIndex) -> None:
        """Record that the state machine has applied everything through ``index``."""
