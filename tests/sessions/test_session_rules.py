"""The session rules, one entry at a time, on every machine that has sessions: the
generic wrapper, the in-memory key-value machine and the durable one (on an SQLite
connection of its own)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pykka_raft import (
    ApplicationError,
    CasResult,
    CompareAndSet,
    DecodeError,
    Entry,
    EntryNormal,
    Put,
)
from pykka_raft.codec import decode, encode, from_primitive, to_primitive
from pykka_raft.sessions import (
    DEFAULT_MAX_SESSIONS,
    MAX_SESSION_NUMBER,
    CachedResponse,
    CloseSession,
    RegisterClient,
    Rejected,
    Session,
    SessionCommand,
    SessionExpired,
    SessionStateMachine,
    StaleSequence,
)
from pykka_raft.statemachine import InvalidCommand, KeyValueStateMachine
from pykka_raft.storage.sqlite_kv import SqliteKeyValueStateMachine

TIMEOUT = 100.0


class Machine:
    """One machine fed entries at consecutive indexes; reads its key-value state."""

    def __init__(self, machine: Any, state: Callable[[], dict[Any, Any]]) -> None:
        self.machine = machine
        self.state = state
        self.index = 0

    @property
    def sessions(self) -> Any:
        return self.machine.sessions

    def apply(self, data: Any) -> Any:
        self.index += 1
        return self.machine.apply(Entry(1, self.index, EntryNormal(data)))

    def refused(self, data: Any) -> BaseException:
        """Apply ``data``, which must be refused; return the refusal (``exc.error``)."""
        with pytest.raises(ApplicationError) as caught:
            self.apply(data)
        return caught.value.error

    def register(self, time: float | None = None) -> int:
        client_id: int = self.apply(RegisterClient(time))
        return client_id


def wrapper(max_sessions: int = DEFAULT_MAX_SESSIONS) -> Machine:
    inner = KeyValueStateMachine()
    machine = SessionStateMachine(inner, timeout=TIMEOUT, max_sessions=max_sessions)
    return Machine(machine, lambda: inner.data)


def in_memory(max_sessions: int = DEFAULT_MAX_SESSIONS) -> Machine:
    machine = KeyValueStateMachine(session_timeout=TIMEOUT, max_sessions=max_sessions)
    return Machine(machine, lambda: machine.data)


def durable(max_sessions: int = DEFAULT_MAX_SESSIONS) -> Machine:
    db = sqlite3.connect(":memory:", isolation_level=None)
    machine = SqliteKeyValueStateMachine(session_timeout=TIMEOUT, max_sessions=max_sessions)
    machine.attach(db)
    return Machine(machine, machine.dump)


MACHINES = pytest.mark.parametrize(
    "make", [wrapper, in_memory, durable], ids=["wrapper", "kv", "sqlite-kv"]
)


@pytest.fixture(params=[wrapper, in_memory, durable], ids=["wrapper", "kv", "sqlite-kv"])
def m(request: pytest.FixtureRequest) -> Iterator[Machine]:
    yield request.param()


def table(m: Machine) -> tuple[float, dict[int, Session]]:
    return m.sessions.clock, m.sessions.dump()


# --- registration and the client id ------------------------------------------------------


def test_registering_answers_the_entry_s_index_as_the_client_id(m: Machine) -> None:
    m.apply(Put("unrelated", 1))  # index 1
    assert m.register(time=10.0) == 2
    assert m.register(time=11.0) == 3
    assert table(m) == (11.0, {2: Session(0, None, 10.0), 3: Session(0, None, 11.0)})


# --- applied once --------------------------------------------------------------------------


def test_a_new_sequence_is_applied_and_its_response_kept(m: Machine) -> None:
    client = m.register(time=1.0)
    assert m.apply(SessionCommand(client, 1, Put("k", "a"), 2.0)) is None
    assert m.apply(SessionCommand(client, 2, Put("k", "b"), 3.0)) == "a"
    assert m.state() == {"k": "b"}
    assert m.sessions.get(client) == Session(2, "a", 3.0)


def test_a_resend_is_answered_from_the_cache_and_not_applied_again(m: Machine) -> None:
    client = m.register(time=1.0)
    cas = SessionCommand(client, 1, CompareAndSet("n", None, 1), 2.0)
    assert m.apply(cas) == CasResult(True, None)
    # Applied again, the same CAS would not swap (n is 1 now): the cached answer says it did.
    assert m.apply(cas) == CasResult(True, None)
    assert m.apply(SessionCommand(client, 1, CompareAndSet("n", None, 1), 5.0)) == CasResult(
        True, None
    )
    assert m.state() == {"n": 1}
    assert m.sessions.get(client) == Session(1, CasResult(True, None), 5.0)  # still active


@pytest.mark.parametrize(
    "stored",
    [Rejected("ValueError", "a value a client stored"), CachedResponse("a value too")],
    ids=["rejected", "cached-response"],
)
def test_a_response_that_reads_as_a_refusal_is_resent_as_it_was(m: Machine, stored: Any) -> None:
    """A stored value may be the table's own marker: the write that gives it back is
    applied, and its resend must get it back too, not a refusal of an applied write."""
    m.apply(Put("k", stored))
    client = m.register(time=1.0)
    write = SessionCommand(client, 1, Put("k", "new"), 2.0)
    assert m.apply(write) == stored
    assert m.apply(write) == stored  # the resend: answered from the cache, not refused
    assert m.state()["k"] == "new"
    # The wrapped cache entry survives a snapshot of the table as it is.
    assert decode(encode(m.sessions.capture(), Any), Any) == m.sessions.capture()


def test_sequences_may_skip_numbers(m: Machine) -> None:
    client = m.register()
    m.apply(SessionCommand(client, 1, Put("k", 1)))
    assert m.apply(SessionCommand(client, 7, Put("k", 7))) == 1
    assert m.sessions.get(client).sequence == 7


def test_an_older_sequence_is_refused_and_changes_nothing(m: Machine) -> None:
    client = m.register(time=1.0)
    m.apply(SessionCommand(client, 1, Put("k", 1), 2.0))
    m.apply(SessionCommand(client, 2, Put("k", 2), 3.0))
    before = table(m), m.state()
    error = m.refused(SessionCommand(client, 1, Put("k", 1), 50.0))
    assert isinstance(error, StaleSequence)
    assert isinstance(error, SessionExpired)  # catching SessionExpired covers it
    assert (error.client_id, error.sequence, error.latest) == (client, 1, 2)
    assert "older than the last one" in str(error)
    assert (table(m), m.state()) == before  # not even the clock moved


def test_an_unknown_client_is_refused_and_changes_nothing(m: Machine) -> None:
    m.register(time=1.0)
    before = table(m)
    error = m.refused(SessionCommand(99, 1, Put("k", 1), 5.0))
    assert type(error) is SessionExpired
    assert (error.client_id, error.sequence) == (99, 1)
    assert table(m) == before
    assert m.state() == {}


def test_plain_commands_still_work_beside_sessions(m: Machine) -> None:
    client = m.register()
    assert m.apply(Put("k", 1)) is None
    assert m.apply(SessionCommand(client, 1, Put("k", 2))) == 1
    assert m.apply(Put("k", 3)) == 2


# --- the bound on the table ----------------------------------------------------------------


@MACHINES
def test_a_registration_beyond_max_sessions_ends_the_least_recently_active(
    make: Callable[[int], Machine],
) -> None:
    m = make(3)
    first, second, third = m.register(1.0), m.register(2.0), m.register(3.0)
    assert m.apply(SessionCommand(first, 1, Put("k", 1), 4.0)) is None  # first is busy
    fourth = m.register(5.0)  # a fourth session: second, idle longest, ends
    assert sorted(m.sessions.dump()) == [first, third, fourth] and len(m.sessions) == 3
    assert type(m.refused(SessionCommand(second, 1, Put("k", 2), 6.0))) is SessionExpired
    assert m.apply(SessionCommand(first, 2, Put("k", 3), 6.0)) == 1  # the others go on
    assert m.state() == {"k": 3}


@MACHINES
def test_of_equally_idle_sessions_the_bound_ends_the_smallest_id(
    make: Callable[[int], Machine],
) -> None:
    """Every node, whatever its storage, ends the same session."""
    m = make(3)
    first, second, third = m.register(1.0), m.register(1.0), m.register(1.0)
    m.apply(SessionCommand(first, 1, Put("k", 1), 1.0))  # same time: first is now last in line
    m.register(1.0)
    assert sorted(m.sessions.dump())[:2] == [second, third]


@MACHINES
def test_the_bound_ends_the_same_session_after_a_snapshot_restore(
    make: Callable[[int], Machine],
) -> None:
    """A node restored from another node's snapshot (another storage, maybe) goes on
    ending the same sessions: the order of equally idle rows does not travel."""
    source = durable(3)
    first, second, third = source.register(1.0), source.register(1.0), source.register(1.0)
    source.apply(SessionCommand(first, 1, Put("k", 1), 1.0))
    restored = make(3)
    restored.sessions.load(source.sessions.capture())
    restored.index = source.index
    assert restored.register(1.0) == source.register(1.0) == 5
    assert sorted(restored.sessions.dump()) == sorted(source.sessions.dump()) == [2, 3, 5]
    assert [second, third] == [2, 3] and first == 1


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_max_sessions_must_be_a_positive_int(bad: Any) -> None:
    for make in (wrapper, in_memory, durable):
        with pytest.raises(ValueError, match="max_sessions"):
            make(bad)


# --- the log's clock and expiry ------------------------------------------------------------


def test_a_session_expires_when_entries_move_the_clock_past_its_timeout(m: Machine) -> None:
    idle = m.register(time=1000.0)
    busy = m.register(time=1000.0)
    m.apply(SessionCommand(busy, 1, Put("k", 1), 1000.0 + TIMEOUT))  # exactly the limit
    assert m.sessions.get(idle) is not None  # last active 1000 == clock - timeout: alive
    m.apply(SessionCommand(busy, 2, Put("k", 2), 1000.0 + TIMEOUT + 0.5))
    assert m.sessions.get(idle) is None  # removed by the entry that moved the clock
    error = m.refused(SessionCommand(idle, 1, Put("k", "late"), 1000.0 + TIMEOUT + 0.5))
    assert type(error) is SessionExpired
    assert m.state() == {"k": 2}


def test_a_session_past_its_timeout_is_refused_by_the_entry_that_moves_the_clock(
    m: Machine,
) -> None:
    client = m.register(time=0.0)
    before = table(m)
    # Nothing else ran meanwhile: this very entry's time expires the session.
    error = m.refused(SessionCommand(client, 1, Put("k", 1), TIMEOUT + 1))
    assert type(error) is SessionExpired
    assert table(m) == before  # refused: the clock did not move either


def test_the_clock_never_moves_back_when_a_leader_s_clock_is_slow(m: Machine) -> None:
    client = m.register(time=500.0)
    m.apply(SessionCommand(client, 1, Put("k", 1), 400.0))  # a new leader, 100 s behind
    assert m.sessions.clock == 500.0
    assert m.sessions.get(client).last_active == 500.0
    m.apply(SessionCommand(client, 2, Put("k", 2), None))  # unstamped: the clock stays
    assert m.sessions.clock == 500.0


def test_a_resend_keeps_its_session_alive(m: Machine) -> None:
    client = m.register(time=0.0)
    other = m.register(time=0.0)
    write = SessionCommand(client, 1, Put("k", 1), 0.0)
    m.apply(write)
    for t in (60.0, 120.0, 180.0):
        assert m.apply(SessionCommand(client, 1, Put("k", 1), t)) is None
    assert m.sessions.get(client) is not None
    assert m.sessions.get(other) is None  # idle since 0


def test_closing_a_session_removes_its_row(m: Machine) -> None:
    client = m.register(time=1.0)
    m.apply(SessionCommand(client, 1, Put("k", 1), 2.0))
    assert m.apply(CloseSession(client, 3.0)) is None
    assert m.sessions.dump() == {}
    assert m.sessions.clock == 3.0
    assert type(m.refused(SessionCommand(client, 1, Put("k", 1)))) is SessionExpired
    assert type(m.refused(CloseSession(client))) is SessionExpired


# --- the leader's check --------------------------------------------------------------------


def test_validate_looks_inside_session_commands(m: Machine) -> None:
    def validate(data: Any) -> None:
        m.machine.validate(Entry(1, 1, EntryNormal(data)))

    validate(RegisterClient())
    validate(CloseSession(3))
    validate(SessionCommand(3, 1, Put("k", 1)))
    with pytest.raises(InvalidCommand, match="got str"):
        validate(SessionCommand(3, 1, "not a command"))
    with pytest.raises(InvalidCommand, match="got int"):
        validate(42)


# --- the entries themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionCommand(0, 1, Put("k", 1)),
        lambda: SessionCommand(1, 0, Put("k", 1)),
        lambda: SessionCommand(True, 1, Put("k", 1)),
        lambda: SessionCommand(2**63, 1, Put("k", 1)),  # more than SQLite's INTEGER holds
        lambda: SessionCommand(1, 2**64, Put("k", 1)),
        lambda: CloseSession(2**63),
        lambda: SessionCommand(1, 1, Put("k", 1), math.nan),
        lambda: SessionCommand(1, 1, Put("k", 1), -1.0),
        lambda: RegisterClient(math.inf),
        lambda: RegisterClient("12"),
        lambda: CloseSession(-3),
    ],
)
def test_bad_fields_are_refused_when_an_entry_is_built(build: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()


def test_a_session_number_beyond_the_limit_does_not_decode() -> None:
    """A peer or a client cannot get one into the log through the codec either."""
    limit = to_primitive(SessionCommand(MAX_SESSION_NUMBER, 1, Put("k", 1)), Any)
    assert from_primitive(limit, Any).client_id == 2**63 - 1
    beyond = {**limit, "client_id": 2**63}
    with pytest.raises(DecodeError, match="must be an int from 1 to 2\\*\\*63 - 1"):
        from_primitive(beyond, Any)


def test_a_session_command_cannot_carry_another_session_entry() -> None:
    with pytest.raises(TypeError, match="cannot carry a RegisterClient"):
        SessionCommand(1, 1, RegisterClient())


@pytest.mark.parametrize(
    "entry",
    [RegisterClient(), RegisterClient(2.5), SessionCommand(4, 9, Put("k", (1, b"x")), 7.0)],
)
def test_session_entries_cross_the_codec_unchanged(entry: Any) -> None:
    assert decode(encode(entry, Any), Any) == entry
    assert from_primitive(to_primitive(entry, Any), Any) == entry


def test_the_leader_s_time_replaces_whatever_the_entry_held() -> None:
    assert RegisterClient().with_leader_time(5.0) == RegisterClient(5.0)
    command = SessionCommand(1, 2, Put("k", 1), 3.0)
    assert command.with_leader_time(9.0) == SessionCommand(1, 2, Put("k", 1), 9.0)
    assert CloseSession(4).with_leader_time(1.0) == CloseSession(4, 1.0)
