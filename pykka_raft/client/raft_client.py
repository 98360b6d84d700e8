"""``RaftClient``'s retry loop: sessions, attempts, leader hints and back-off.

Every write goes round one loop: take a session, send the write to the node believed to
lead, classify the answer (answered, refused, rejected, committed with its response gone,
unknown), and either return a :class:`~pykka_raft.client.outcomes.WriteResult` or try
again under the same sequence. It is kept apart from the result types because this is
the part with threads, timing and the cluster's refs in it.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs
import pykka

from pykka_raft.client.outcomes import ClientStats, DeadlineExceeded, Outcome, WriteResult
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    EntryTooLarge,
    ForwardToLeader,
    OutcomeUnknown,
    ResultUnavailable,
    ShuttingDown,
)
from pykka_raft.messages import ClientPayload, ClientPayloadResponse, ResponseMode
from pykka_raft.sessions import (
    CloseSession,
    RegisterClient,
    SessionCommand,
    SessionExpired,
)
from pykka_raft.types import NodeId

__all__ = ["RaftClient"]


class _Kind(enum.Enum):
    OK = 1  # answered
    REFUSED = 2  # this attempt definitely changed nothing; try again
    REJECTED = 3  # ApplicationError: the leader or the state machine refused it
    COMMITTED = 4  # ResultUnavailable: committed; applied or refused is gone there
    UNKNOWN = 5  # may have been applied


@attrs.frozen
class _Answer:
    kind: _Kind
    response: ClientPayloadResponse | None = None
    error: BaseException | None = None


class _Session:
    __slots__ = ("client_id", "sequence")

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.sequence = 0


def _check_seconds(value: Any, name: str) -> float:
    """``value`` if it is a number of seconds > 0; else ``TypeError`` or ``ValueError``."""
    if type(value) not in (int, float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} {value!r}")
    if not value > 0:  # also NaN
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


class RaftClient:
    """A client of the cluster whose Raft refs are ``nodes`` (node id -> ref).

    ``nodes`` is read at every attempt, so it may change while the client runs (a
    restarted node's new ref, a node added; ``Cluster.nodes`` of the testing package is
    such a mapping). The client is safe to share between threads; each call that runs
    at the same time as another uses a session of its own (registered when needed,
    reused afterwards), because a session has one write in flight at a time (§6.3).

    Args:
        nodes: the Raft refs of the cluster, by node id.
        timeout: the default deadline of a call, in seconds.
        attempt_timeout: how long one attempt waits for its answer before it counts as
            unknown and the write is resent (possibly to another node).
        backoff: the first and the largest pause, in seconds, between attempts while no
            leader is known or the leader is busy (doubling, with jitter); resends after
            an open outcome are kept at least as far apart, so a node that answers at once
            with an unknown outcome is not asked in a tight loop.
        sessions: send writes in sessions (the state machine must handle them). Without,
            a write is resent only after definite refusals.
        rng: randomness for the jitter of the pauses.
    """

    def __init__(
        self,
        nodes: Mapping[NodeId, Any],
        *,
        timeout: float = 10.0,
        attempt_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.02, 0.5),
        sessions: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        _check_seconds(timeout, "timeout")
        _check_seconds(attempt_timeout, "attempt_timeout")
        if isinstance(backoff, (list, tuple)):
            backoff = (backoff[0], backoff[1]) if len(backoff) == 2 else tuple(backoff)
        if (
            not isinstance(backoff, tuple)
            or len(backoff) != 2
            or any(type(b) not in (int, float) for b in backoff)
            or not 0 < backoff[0] <= backoff[1]
        ):
            raise ValueError(
                f"backoff must be (first, largest) with 0 < first <= largest: {backoff!r}"
            )
        self.nodes = nodes
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.backoff = backoff
        self.sessions = sessions
        self.stats = ClientStats()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._leader: NodeId | None = None
        self._next = 0  # round robin over the nodes while no leader is known
        self._idle: list[_Session] = []

    @property
    def leader(self) -> NodeId | None:
        """The node this client believes leads (``None``: unknown)."""
        return self._leader

    # --- writes ------------------------------------------------------------------------

    def write(self, command: Any, *, timeout: float | None = None) -> WriteResult:
        """Apply ``command`` exactly once, or say that it was not, or that it is unknown.

        Returns soon after ``timeout`` seconds at the latest (the client's default if
        ``None``). Never raises for a refusal or a failure of the cluster: the
        :class:`WriteResult` says what happened.
        """
        deadline = time.monotonic() + (
            self.timeout if timeout is None else _check_seconds(timeout, "timeout")
        )
        with self._lock:
            self.stats.writes += 1
        if not self.sessions:
            return self._write_plain(command, deadline)
        session = self._take_session(deadline)
        if isinstance(session, WriteResult):
            return session
        try:
            return self._write_in(session, command, deadline)
        finally:
            self._give_back(session)

    def _write_in(self, session: _Session, command: Any, deadline: float) -> WriteResult:
        session.sequence += 1
        maybe_applied = False
        committed: ResultUnavailable | None = None  # a copy committed: its result is gone
        attempts, refused, resent = 0, 0, 0
        last: BaseException | None = None
        while time.monotonic() < deadline:
            attempts += 1
            if maybe_applied:
                with self._lock:
                    self.stats.resends += 1
            data = SessionCommand(session.client_id, session.sequence, command)
            started = time.monotonic()
            answer = self._attempt(data, deadline)
            ids: dict[str, Any] = {"client_id": session.client_id, "sequence": session.sequence}
            if answer.kind is _Kind.OK:
                assert answer.response is not None
                response = answer.response
                return WriteResult(
                    Outcome.APPLIED, response.data, response.index, None, attempts=attempts, **ids
                )
            last = answer.error
            if answer.kind is _Kind.UNKNOWN:
                maybe_applied, refused = True, 0
                resent = self._pace(started, resent, deadline)
                continue
            if answer.kind is _Kind.COMMITTED:  # a resend gets the session's cached answer
                assert isinstance(answer.error, ResultUnavailable)
                maybe_applied, committed = True, answer.error
                refused = 0
                resent = self._pace(started, resent, deadline)
                continue
            if answer.kind is _Kind.REFUSED:
                refused = self._pause(answer, refused, deadline)
                continue
            error = answer.error.error if isinstance(answer.error, ApplicationError) else None
            if maybe_applied and isinstance(error, EntryTooLarge):  # that node's own limit:
                return self._open(committed, last, attempts, ids)  # nothing of earlier copies
            if not isinstance(error, SessionExpired):
                # The leader or the state machine refused it; every copy is refused alike.
                return WriteResult(Outcome.NOT_APPLIED, error=last, attempts=attempts, **ids)
            session.client_id = 0  # gone (or out of step): never given back
            if maybe_applied:  # an earlier copy may have been applied; its answer is gone
                return self._open(committed, last, attempts, ids)
            # No copy of this write was ever applied: a new session, the same write.
            with self._lock:
                self.stats.expired += 1
            fresh = self._register(deadline)
            if isinstance(fresh, WriteResult):
                return attrs.evolve(fresh, attempts=attempts)
            session.client_id, session.sequence = fresh, 1
        ids = {"client_id": session.client_id or None, "sequence": session.sequence}
        if maybe_applied:
            return self._open(committed, last, attempts, ids)
        return self._not_taken(last, attempts, ids)

    @staticmethod
    def _open(committed: Any, last: Any, attempts: int, ids: dict[str, Any]) -> WriteResult:
        """Unknown: ``committed`` (a ``ResultUnavailable``: applied or refused), or not."""
        unknown = committed or OutcomeUnknown(f"no attempt gave a definite answer ({last!r})")
        if unknown.__cause__ is None and last is not unknown:
            unknown.__cause__ = last
        return WriteResult(Outcome.UNKNOWN, error=unknown, attempts=attempts, **ids)

    @staticmethod
    def _not_taken(last: BaseException | None, attempts: int, ids: dict[str, Any]) -> WriteResult:
        error = DeadlineExceeded(
            f"the deadline passed before any node took the write (last answer: {last!r}); "
            "it was not applied"
        )
        error.__cause__ = last
        return WriteResult(Outcome.NOT_APPLIED, error=error, attempts=attempts, **ids)

    def _write_plain(self, command: Any, deadline: float) -> WriteResult:
        attempts, refused = 0, 0
        last: BaseException | None = None
        while time.monotonic() < deadline:
            attempts += 1
            answer = self._attempt(command, deadline)
            if answer.kind is _Kind.OK:
                assert answer.response is not None
                response = answer.response
                return WriteResult(
                    Outcome.APPLIED, response.data, response.index, attempts=attempts
                )
            last = answer.error
            if answer.kind is _Kind.REFUSED:
                refused = self._pause(answer, refused, deadline)
                continue
            if answer.kind is _Kind.REJECTED:
                return WriteResult(Outcome.NOT_APPLIED, error=last, attempts=attempts)
            # Unknown, or committed with its result gone: resending could apply it twice.
            committed = last if isinstance(last, ResultUnavailable) else None
            return self._open(committed, last, attempts, {})
        return self._not_taken(last, attempts, {})

    # --- sessions ----------------------------------------------------------------------

    def _take_session(self, deadline: float) -> _Session | WriteResult:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        client_id = self._register(deadline)
        return client_id if isinstance(client_id, WriteResult) else _Session(client_id)

    def _give_back(self, session: _Session) -> None:
        if session.client_id:
            with self._lock:
                self._idle.append(session)

    def _register(self, deadline: float) -> int | WriteResult:
        """A new session's client id, or the result of a write that could not be sent."""
        attempts, refused, resent = 0, 0, 0
        last: BaseException | None = None
        while time.monotonic() < deadline:
            attempts += 1
            started = time.monotonic()
            answer = self._attempt(RegisterClient(), deadline)
            if answer.kind is _Kind.OK:
                assert answer.response is not None
                with self._lock:
                    self.stats.registrations += 1
                client_id = answer.response.data
                if type(client_id) is not int or client_id < 1:
                    why = f"answered RegisterClient with {client_id!r}, not a client id"
                    raise TypeError(f"the state machine {why}: use sessions=False")
                return client_id
            last = answer.error
            if answer.kind is _Kind.REJECTED:
                return WriteResult(Outcome.NOT_APPLIED, error=last, attempts=0)
            if answer.kind is _Kind.REFUSED:
                refused = self._pause(answer, refused, deadline)
            else:  # unknown: at worst it leaves a session nobody uses, which expires
                resent = self._pace(started, resent, deadline)
        return self._not_taken(last, 0, {})

    def close(self, timeout: float = 2.0) -> None:
        """Close the sessions no call is using (best effort: a session not closed
        expires on its own). Calls made afterwards open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        deadline = time.monotonic() + timeout
        for session in idle:
            if time.monotonic() >= deadline:
                return
            self._attempt(CloseSession(session.client_id), deadline)

    # --- one attempt -------------------------------------------------------------------

    def _attempt(self, data: Any, deadline: float) -> _Answer:
        """Send ``data`` once to the node believed to lead and classify the answer."""
        with self._lock:
            self.stats.attempts += 1
        target, ref = self._target()
        if ref is None:
            return _Answer(_Kind.REFUSED, error=ForwardToLeader(None, None))
        wait = max(0.001, min(self.attempt_timeout, deadline - time.monotonic()))
        try:
            response = ref.ask(ClientPayload.new(data, ResponseMode.APPLIED), timeout=wait)
        except ForwardToLeader as exc:
            self._follow(target, exc.leader_id)
            return _Answer(_Kind.REFUSED, error=exc)
        except (Busy, ShuttingDown, pykka.ActorDeadError) as exc:
            if not isinstance(exc, Busy):
                self._follow(target, None, avoid=True)  # that node is gone
            return _Answer(_Kind.REFUSED, error=exc)
        except ApplicationError as exc:
            return _Answer(_Kind.REJECTED, error=exc)
        except ResultUnavailable as exc:
            return _Answer(_Kind.COMMITTED, error=exc)
        except pykka.Timeout:
            self._follow(target, None, avoid=True)  # partitioned or slow: ask around
            error = OutcomeUnknown(f"node {target} did not answer within {wait:.2f}s")
            return _Answer(_Kind.UNKNOWN, error=error)
        except Exception as exc:  # OutcomeUnknown, InternalError, StorageError, ...
            self._follow(target, None, avoid=True)
            return _Answer(_Kind.UNKNOWN, error=exc)
        with self._lock:
            self._leader = target
        return _Answer(_Kind.OK, response=response)

    def _target(self) -> tuple[NodeId | None, Any]:
        with self._lock:
            leader = self._leader
            if leader is not None:
                ref = self.nodes.get(leader)
                if ref is not None:
                    return leader, ref
                self._leader = None
            for _ in range(3):  # the mapping may change under us
                try:
                    ids = sorted(self.nodes)
                    break
                except RuntimeError:
                    continue
            else:
                return None, None
            if not ids:
                return None, None
            self._next += 1
            node_id = ids[self._next % len(ids)]
            return node_id, self.nodes.get(node_id)

    def _follow(self, target: NodeId | None, hint: NodeId | None, avoid: bool = False) -> None:
        with self._lock:
            if hint is not None and hint != target:
                self._leader = hint
            elif self._leader == target or avoid:
                self._leader = None

    def _pause(self, answer: _Answer, refused: int, deadline: float) -> int:
        """Wait before the next attempt after a refusal; return the refusals in a row.

        A hint naming a node of the mapping is followed at once, twice in a row; after
        that (hints that lead nowhere: a leader that just crashed, a stale one), and while
        no leader is known or the leader is busy, the pauses double up to the largest.
        """
        refused += 1
        error = answer.error
        if (
            isinstance(error, ForwardToLeader)
            and error.leader_id is not None
            and error.leader_id in self.nodes
            and refused <= 2
        ):
            return refused
        self._sleep(self._backoff_pause(refused), deadline)
        return refused

    def _pace(self, started: float, resent: int, deadline: float) -> int:
        """Before a resend after an open outcome (unknown, or applied with its response
        gone): keep attempts at least the back-off apart; return the resends so far.

        An attempt that waited out ``attempt_timeout`` has already waited (longer than
        any pause, with the defaults), so its resend goes at once, as it should (to
        another node: that one may be cut off). A node that answers at once, though
        (``InternalError``, ``StorageError``: a node whose disk fails; ``OutcomeUnknown``
        over and over), would otherwise be asked again as fast as it answers until the
        deadline; the pauses double up to the largest, and are not reset by the refusals
        in between (the other nodes' hints back to that node).
        """
        resent += 1
        pause = self._backoff_pause(resent) - (time.monotonic() - started)
        self._sleep(pause, deadline)
        return resent

    def _backoff_pause(self, count: int) -> float:
        """The ``count``-th pause in a row: doubling from the first, up to the largest,
        with jitter."""
        first, largest = self.backoff
        with self._lock:
            jitter = self._rng.uniform(0.5, 1.0)
        return min(largest, first * 2.0 ** min(count - 1, 30)) * jitter

    @staticmethod
    def _sleep(pause: float, deadline: float) -> None:
        time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
