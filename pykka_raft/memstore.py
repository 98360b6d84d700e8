"""``MemStore``: the in-memory reference implementation of the storage contract."""

from __future__ import annotations

import copy
from typing import Any

import attrs

from pykka_raft.messages import Entry, HardState, InitialState
from pykka_raft.statemachine import KeyValueStateMachine, StateMachine
from pykka_raft.storage import RaftStorage
from pykka_raft.types import LogId, LogIndex


@attrs.define
class MemStoreData:
    """Everything a :class:`MemStore` holds.

    Keep the object and start a new ``MemStore(data=...)`` on it to model a node that
    restarts with what its storage had acknowledged (every handled message is "durable").
    """

    state_machine: StateMachine = attrs.field(factory=KeyValueStateMachine)
    hard_state: HardState = attrs.field(factory=HardState)
    log: list[Entry] = attrs.field(factory=list)
    last_applied: LogIndex = 0


@attrs.frozen
class DumpStorage:
    """Ask a :class:`MemStore` for a copy of its contents. Replies :class:`StorageDump`."""


@attrs.frozen
class StorageDump:
    """A copy of a MemStore's contents, for assertions."""

    hard_state: HardState
    log: tuple[Entry, ...]
    last_applied: LogIndex
    state_machine: Any


class MemStore(RaftStorage):
    """A storage actor that keeps the hard state, the log and the state machine in memory.

    It keeps the durability contract within one process: a message's effect is complete
    when its answer is sent. It survives a restart of the Raft node (pass the same
    :class:`MemStoreData`), not of the process.
    """

    def __init__(
        self, state_machine: StateMachine | None = None, data: MemStoreData | None = None
    ) -> None:
        if data is None:
            data = MemStoreData(state_machine or KeyValueStateMachine())
        super().__init__(data.state_machine)
        self.data = data

    def get_initial_state(self) -> InitialState:
        """Report the last log id, the hard state and the last applied index."""
        log = self.data.log
        last = LogId(log[-1].term, log[-1].index) if log else LogId(0, 0)
        return InitialState(last, self.data.last_applied, self.data.hard_state)

    def save_hard_state(self, hard_state: HardState) -> None:
        """Replace the hard state."""
        self.data.hard_state = hard_state

    def get_log_entries(self, start: LogIndex, stop: LogIndex) -> tuple[Entry, ...]:
        """Entries in ``[start, stop)``."""
        return tuple(self.data.log[max(start, 1) - 1 : max(stop, 1) - 1])

    def write_log(self, entries: tuple[Entry, ...]) -> None:
        """Write each entry at its index (the log must stay contiguous)."""
        log = self.data.log
        for entry in entries:
            if entry.index <= len(log):
                log[entry.index - 1] = entry
            elif entry.index == len(log) + 1:
                log.append(entry)
            else:
                raise ValueError(f"entry {entry.index} would leave a gap after {len(log)}")

    def delete_logs_from(self, index: LogIndex) -> None:
        """Truncate the log before ``index``."""
        del self.data.log[max(index, 1) - 1 :]

    def set_last_applied(self, index: LogIndex) -> None:
        """Record the last applied index."""
        self.data.last_applied = index

    def handle_other(self, message: Any) -> Any:
        """Answer :class:`DumpStorage`."""
        if isinstance(message, DumpStorage):
            return StorageDump(
                self.data.hard_state,
                tuple(self.data.log),
                self.data.last_applied,
                copy.deepcopy(getattr(self.state_machine, "data", None)),
            )
        return super().handle_other(message)
