"""What the storage conformance suite is made of: the state machines and entries it uses,
a handle on a storage under test (:class:`Store`), and the harness that starts storages
(:class:`ConformanceHarness`, the base of
:class:`~pykka_raft.testing.conformance.StorageConformance`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

import pykka_raft  # noqa: F401  (registers the key-value command types with the codec)
from pykka_raft.calls import Call, FutureReply
from pykka_raft.errors import ApplicationError
from pykka_raft.messages import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    InitialState,
    MembershipConfig,
    SnapshotMeta,
)
from pykka_raft.statemachine import KeyValueStateMachine, Put
from pykka_raft.storage.contract import (
    DumpStorage,
    GetInitialState,
    GetLogEntries,
    ReadSnapshotChunk,
    StorageDump,
    WriteSnapshotChunk,
)
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine

REJECT = "reject"
"""A ``Put`` whose key starts with this is refused at apply time by the rejecting machines."""


def _refuse(entry: Entry) -> bool:
    data = getattr(entry.payload, "data", None)
    return isinstance(data, Put) and isinstance(data.key, str) and data.key.startswith(REJECT)


class RejectingKeyValueStateMachine(KeyValueStateMachine):
    """A :class:`KeyValueStateMachine` that refuses, while applying, every ``Put`` whose
    key starts with ``"reject"``: it raises :class:`~pykka_raft.errors.ApplicationError`
    before changing anything, as the contract asks."""

    def __init__(self) -> None:
        super().__init__(keep_history=False)

    def apply(self, entry: Entry) -> Any:
        """Refuse the ``reject...`` puts; apply the rest as usual."""
        if _refuse(entry):
            raise ApplicationError(ValueError(f"refused {entry.payload}"))
        return super().apply(entry)


class RejectingSqliteKeyValueStateMachine(SqliteKeyValueStateMachine):
    """The durable key-value machine with the same refusals, raised *after* it wrote the
    value: the store must roll that write back."""

    def apply(self, entry: Entry) -> Any:
        """Apply, then refuse the ``reject...`` puts (leaving their write to undo)."""
        response = super().apply(entry)
        if _refuse(entry):
            raise ApplicationError(ValueError(f"refused {entry.payload}"))
        return response


def key_value_machine(rejecting: bool = False) -> KeyValueStateMachine:
    """The in-memory state machine the suite expects: rejecting or not."""
    if rejecting:
        return RejectingKeyValueStateMachine()
    return KeyValueStateMachine(keep_history=False)


# --- entries ----------------------------------------------------------------------------


def normal(term: int, index: int, command: Any) -> Entry:
    """A client entry."""
    return Entry(term, index, EntryNormal(command))


def blank(term: int, index: int) -> Entry:
    """A leader's blank entry."""
    return Entry(term, index, EntryBlank())


def config(term: int, index: int, membership: MembershipConfig) -> Entry:
    """A configuration entry."""
    return Entry(term, index, EntryConfigChange(membership))


def puts(term: int, first: int, last: int, prefix: str = "k") -> tuple[Entry, ...]:
    """``Put(f"{prefix}{i % 5}", i)`` at indexes ``first..last``."""
    return tuple(normal(term, i, Put(f"{prefix}{i % 5}", i)) for i in range(first, last + 1))


TYPED_VALUES: tuple[Any, ...] = (
    1,
    1.0,
    True,
    -0.0,
    float("nan"),
    2**70,
    "1",
    b"1",
    (1, [2.0]),
    [1, (2,)],
    {"b": 1, "a": (None, False)},
    {1: "int", "1": "str", 1.5: "float", (1, 2): "tuple", b"k": "bytes"},
)
"""Values that ``==`` cannot tell apart from others (``1 == 1.0 == True``, ``-0.0 == 0.0``,
``(1,) != [1]`` aside), or that a storage may change on the way (dict keys, big ints):
each must come back the same, with its types (``docs/codec.md``)."""


def typed_puts(term: int, first: int) -> tuple[Entry, ...]:
    """``Put(f"t{i}", value)`` of each of :data:`TYPED_VALUES`, from index ``first``."""
    return tuple(
        normal(term, first + i, Put(f"t{i}", value)) for i, value in enumerate(TYPED_VALUES)
    )


def model_state(entries: tuple[Entry, ...] | list[Entry]) -> dict[Any, Any]:
    """The key-value data after applying ``entries`` (refusals skipped)."""
    machine = KeyValueStateMachine(keep_history=False)
    for entry in entries:
        if not _refuse(entry):
            machine.apply(entry)
    return machine.data


MEMBERS = MembershipConfig(members=(1, 2, 3), addresses={1: "10.0.0.1:7001", 2: "h2:7002"})
JOINT = MembershipConfig(
    members=(1, 2, 3),
    members_after_consensus=(2, 3, 4),
    non_voters=(1, 5),
    addresses={4: "[::1]:7004", 5: "node-5:7005"},
)


class Store:
    """A storage under test: its ref, and a restart on the same place."""

    def __init__(self, suite: ConformanceHarness, place: Path, rejecting: bool) -> None:
        self.suite, self.place, self.rejecting = suite, place, rejecting
        self.ref: Any = None
        self.start()

    def start(self) -> None:
        """Start a storage actor on the place."""
        self.ref = self.suite.start_storage(self.place, self.rejecting)
        self.suite._started.append(self)

    def stop(self) -> None:
        """Stop the actor and wait until it has stopped."""
        if self.ref is not None and self.ref.is_alive():
            self.ref.stop(timeout=self.suite.timeout)

    def restart(self) -> None:
        """Stop, then start again on the same data: a node restarting."""
        self.stop()
        self.start()

    def ask(self, message: Any) -> Any:
        """Ask a plain message and wait for the answer."""
        return self.ref.ask(message, timeout=self.suite.timeout)

    def call(self, message: Any) -> pykka.Future[Any]:
        """Send a message as a Raft node does (a :class:`Call`); return the future."""
        future: pykka.Future[Any] = pykka.ThreadingFuture()
        self.ref.tell(Call(message, FutureReply(future)))
        return future

    def initial(self) -> InitialState:
        """The answer to ``GetInitialState``."""
        state: InitialState = self.ask(GetInitialState())
        return state

    def log(self) -> tuple[Entry, ...]:
        """Every entry the log holds."""
        entries: tuple[Entry, ...] = self.ask(
            GetLogEntries(1, self.initial().last_log_id.index + 1)
        )
        return entries

    def dump(self) -> StorageDump:
        """The answer to ``DumpStorage``."""
        dump: StorageDump = self.ask(DumpStorage())
        return dump

    def snapshot_bytes(self, meta: SnapshotMeta, chunk: int = 7) -> bytes:
        """Read the whole snapshot ``meta`` in chunks of ``chunk`` bytes."""
        data = b""
        while len(data) < meta.size:
            part = self.ask(ReadSnapshotChunk(meta.snapshot_id, len(data), chunk))
            assert part, f"snapshot {meta.snapshot_id} ended at {len(data)} of {meta.size}"
            assert len(part) <= chunk
            data += part
        return data

    def receive(self, meta: SnapshotMeta, data: bytes, chunk: int = 5) -> None:
        """Store ``data`` in chunks, as a node receiving ``meta`` does."""
        for offset in range(0, max(len(data), 1), chunk):
            self.call(WriteSnapshotChunk(meta, offset, data[offset : offset + chunk])).get(
                timeout=self.suite.timeout
            )


class ConformanceHarness:
    """Starts the storages of a test and stops them after it (see
    :class:`~pykka_raft.testing.conformance.StorageConformance`).

    Attributes:
        timeout: seconds to wait for each answer.
        supports_snapshots: set to ``False`` for a storage without the snapshot messages
            (their tests are skipped).
    """

    timeout = 10.0
    supports_snapshots = True

    def start_storage(self, place: Path, rejecting: bool = False) -> Any:
        """Start your storage actor on ``place`` and return its ref.

        Args:
            place: a directory for this storage's data: a new, empty one for each storage
                of a test, and the same one again when the suite restarts that storage
                (it stops the previous actor first). A storage kept in memory can use it
                as a key to its data objects (see :class:`MemStoreConformance`).
            rejecting: give the storage a state machine that refuses at apply time
                (:class:`~pykka_raft.errors.ApplicationError`) every ``Put`` whose key
                starts with ``"reject"``: :func:`key_value_machine` makes one.
        """
        raise NotImplementedError("implement start_storage in your subclass")

    # --- harness ---------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _conformance_harness(self, tmp_path: Path) -> Iterator[None]:
        self._tmp = tmp_path
        self._started: list[Store] = []
        self._places = 0
        yield
        for store in reversed(self._started):
            store.stop()

    def store(self, rejecting: bool = False) -> Store:
        """A new storage on a new place."""
        self._places += 1
        place = self._tmp / f"store{self._places}"
        place.mkdir()
        return Store(self, place, rejecting)

    def _need_snapshots(self) -> None:
        if not self.supports_snapshots:
            pytest.skip("this storage does not support snapshots")
