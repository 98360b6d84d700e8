"""Abrupt crashes for test clusters: a power switch shared by a node's actors.

When a node crashes, its power switch goes off. From that instant its Raft actor ignores
every message still queued or arriving (and sends nothing more), and its storage ignores
every message it had not yet handled: those writes were never acknowledged and are lost,
exactly as an unflushed write is lost when a machine dies. What the storage had handled
stays in its :class:`~pykka_raft.storage.memory.MemStoreData`, so a restart on the same data
resumes from what was durable. :class:`CrashableSqliteStore` does the same for
:class:`~pykka_raft.storage.SqliteStore`: what it had not committed is lost, what it
committed (everything it acknowledged) is there when it opens the directory again.
"""

from __future__ import annotations

import threading
from typing import Any

from pykka_raft.actor.raft import DEFERRED_REPLY, Raft
from pykka_raft.actor.ref import RaftRef
from pykka_raft.calls import Call
from pykka_raft.config import Config
from pykka_raft.core import commands as cmd
from pykka_raft.driver import Ports
from pykka_raft.errors import ShuttingDown
from pykka_raft.messages import HardState, RpcRequest
from pykka_raft.read_answers import ReadAnswers
from pykka_raft.statemachine import StateMachine
from pykka_raft.storage.memory import MemStore, MemStoreData
from pykka_raft.storage.sqlite import SqliteStore
from pykka_raft.storage.sqlite_commit import _Flush
from pykka_raft.storage.sqlite_snapshots import _SnapshotFileBuilt
from pykka_raft.types import NodeId


class PowerSwitch:
    """On while the node runs; :meth:`cut` models pulling the plug."""

    def __init__(self) -> None:
        self._on = threading.Event()
        self._on.set()

    @property
    def on(self) -> bool:
        """True until the plug is pulled."""
        return self._on.is_set()

    def cut(self) -> None:
        """Pull the plug: the node's actors stop acting at once."""
        self._on.clear()


class _PoweredPorts(Ports):
    """A node's ports that carry nothing out once the power is off."""

    def __init__(self, inner: Ports, power: PowerSwitch) -> None:
        self.inner, self.power = inner, power
        self.answers_reads = inner.answers_reads

    def storage(self, seq: int, command: cmd.Command) -> None:
        if self.power.on:
            self.inner.storage(seq, command)

    def query(self, seq: int, command: cmd.Query, readers: ReadAnswers) -> None:
        if self.power.on:
            self.inner.query(seq, command, readers)

    def send(self, request: RpcRequest) -> None:
        if self.power.on:
            self.inner.send(request)

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        if self.power.on:
            self.inner.reply(handle, value, error)

    def observe(self, commands: list[cmd.Command]) -> None:
        self.inner.observe(commands)


class CrashableRaft(Raft):
    """A Raft node that goes silent the moment its power switch is cut."""

    def __init__(self, *args: Any, power: PowerSwitch | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.power = power or PowerSwitch()
        self.driver.ports = _PoweredPorts(self.driver.ports, self.power)

    @classmethod
    def start_with_power(
        cls,
        power: PowerSwitch,
        node_id: NodeId,
        config: Config,
        network: Any,
        storage: Any,
        metrics: Any | None = None,
        rng: Any | None = None,
    ) -> RaftRef:
        """Start a node wired to ``power``."""
        return cls.start(node_id, config, network, storage, metrics, rng, power=power)

    def on_receive(self, message: Any) -> Any:
        """Handle a message only while powered."""
        if not self.power.on:
            return DEFERRED_REPLY  # no answer at all: the caller times out, as with a dead machine
        return super().on_receive(message)

    def _shutdown(self, error: BaseException) -> None:
        if self.power.on:
            super()._shutdown(error)
        else:  # a crash answers nobody and publishes nothing
            if self._ticker is not None:
                self._ticker.stop()
            self.driver.abandon()


class CrashableMemStore(MemStore):
    """A MemStore that loses every message it had not handled when the power goes off.

    It also records every hard state it persisted, so monitors can check that a node's
    term never decreases and its vote never changes within a term, across restarts.
    """

    def __init__(
        self,
        state_machine: StateMachine | None = None,
        data: MemStoreData | None = None,
        power: PowerSwitch | None = None,
        hard_states: list[HardState] | None = None,
    ) -> None:
        super().__init__(state_machine, data)
        self.power = power or PowerSwitch()
        self.hard_states = hard_states if hard_states is not None else []

    def receive(self, message: Any) -> Any:
        """Handle a message only while powered; otherwise it is lost."""
        if not self.power.on:
            if isinstance(message, Call):
                return None  # lost with the machine: nobody hears back
            raise ShuttingDown("the node crashed")
        return super().receive(message)

    def save_hard_state(self, hard_state: HardState) -> None:
        """Persist and record the hard state."""
        super().save_hard_state(hard_state)
        self.hard_states.append(hard_state)


class CrashableSqliteStore(SqliteStore):
    """A SqliteStore that crashes when the power goes off: it handles nothing more, and
    when it stops it closes the database without committing the open transaction.

    Every answer it sent followed the commit of its writes, and in WAL mode with
    ``synchronous=FULL`` a committed transaction survives a crash; the open one (writes of
    calls not answered yet) is rolled back, as a crash of the machine would lose it. A
    restart on the same directory resumes from exactly the committed transactions.
    """

    def __init__(self, *args: Any, power: PowerSwitch | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.power = power or PowerSwitch()

    def receive(self, message: Any) -> Any:
        """Handle a message only while powered; otherwise it is lost."""
        if not self.power.on:
            if isinstance(message, (Call, _Flush, _SnapshotFileBuilt)):
                return None  # lost with the machine: nobody hears back, nothing commits
            raise ShuttingDown("the node crashed")
        return super().receive(message)

    def on_stop(self) -> None:
        """A clean stop commits and answers what is pending; a crash does neither."""
        if self.power.on:
            super().on_stop()
            return
        self._deferred = []  # their writes are in the open transaction, rolled back here
        self._close()
