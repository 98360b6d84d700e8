"""Client sessions: exactly-once writes (Raft dissertation §6.3), in front of a state machine.

A write whose answer was lost leaves its client stuck: resending it may apply it twice,
not resending may lose it. With a session the client can resend safely:

* the client registers once (:class:`RegisterClient`, through the log) and gets a client
  id: the log index of that entry, the same on every node;
* each write carries ``(client_id, sequence)`` (:class:`SessionCommand`), the sequence
  growing by one per new write, and the same for every resend of one write;
* the session layer keeps, per client, the highest sequence it applied and that
  write's response. A write whose sequence was applied already is answered with the
  cached response and not applied again; an older one answers :class:`StaleSequence`;
  a client the table does not know answers :class:`SessionExpired`.

**Time comes from the log.** Sessions expire after ``timeout`` seconds without
activity, measured on a clock carried by the session entries themselves: the leader
stamps each one with its wall-clock time when it accepts it (the entry's
``with_leader_time`` hook, called by the Raft actor), and the state machine's clock is
the largest time it has applied, so it never runs backwards when a leader with a slower
clock takes over. Every node applies the same entries, so every node expires the same
sessions at the same entry: no node's own clock decides anything.

**Rejections are data of the session.** A command the wrapped machine refuses
(:class:`~pykka_raft.errors.ApplicationError`) is recorded as that sequence's answer,
so a resend of it is refused the same way (:class:`CommandRejected`) and never applied
later: the application's state is unchanged by a refusal, only the session table moves
(the one deliberate exception to "refuse before changing anything": it is the same on
every node; a store that rolls refused entries back, as ``SqliteStore`` does for a
database state machine whose ``apply`` raises, rolls the record back with them).
Refusals of the session layer itself (:class:`SessionExpired`, :class:`StaleSequence`)
change nothing at all.

The rules live in :class:`SessionTable`, which stores its rows through a small backend
(in memory here, in SQLite for
:class:`~pykka_raft.storage.sqlite_kv.SqliteKeyValueStateMachine`).
:class:`SessionStateMachine` wraps any :class:`~pykka_raft.statemachine.StateMachine`;
:class:`~pykka_raft.statemachine.KeyValueStateMachine` has a table built in.
See ``docs/clients.md``.

The layer is a package of one concept per module: :mod:`~pykka_raft.sessions.errors`,
the entries (:mod:`~pykka_raft.sessions.entries`), the table and its backends
(:mod:`~pykka_raft.sessions.table`) and the wrapper
(:mod:`~pykka_raft.sessions.wrapper`). Import the names from here.
"""

from __future__ import annotations

from pykka_raft.sessions.entries import (
    MAX_SESSION_NUMBER,
    CachedResponse,
    CloseSession,
    RegisterClient,
    Rejected,
    SessionCommand,
)

# SESSION_TYPES is for the state machines with sessions built in, not part of __all__.
from pykka_raft.sessions.entries import SESSION_TYPES as SESSION_TYPES
from pykka_raft.sessions.errors import (
    CommandRejected,
    SessionError,
    SessionExpired,
    StaleSequence,
)
from pykka_raft.sessions.table import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TIMEOUT,
    MemorySessions,
    Session,
    SessionBackend,
    SessionTable,
)
from pykka_raft.sessions.wrapper import SessionStateMachine

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_SESSION_TIMEOUT",
    "MAX_SESSION_NUMBER",
    "CachedResponse",
    "CloseSession",
    "CommandRejected",
    "MemorySessions",
    "RegisterClient",
    "Rejected",
    "Session",
    "SessionBackend",
    "SessionCommand",
    "SessionError",
    "SessionExpired",
    "SessionStateMachine",
    "SessionTable",
    "StaleSequence",
]
