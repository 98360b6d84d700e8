"""Recorded histories of client operations on the key-value state machine.

A history is what clients *observed*: when each call started, when (and whether) it
returned, and what it returned. It is the input of
:func:`pykka_raft.testing.linearizability.check_kv`, which decides whether some atomic
order of the operations, consistent with real time, explains every observed result.

Three outcomes matter, because they constrain the checker differently:

* ``"ok"``: the call returned a result from the state machine; the op took effect exactly
  once, somewhere between its invoke and return times, and must explain its result.
* ``"fail"``: the op definitely did not take effect (for example ``ForwardToLeader`` before
  anything was appended). The checker drops it.
* ``"unknown"``: the call timed out or the answer was lost. The op may have taken effect at
  any time after its invoke (even long after the client gave up), or never. Recording a
  lost call as ``"fail"`` would make the checker report false anomalies, so when in doubt
  record ``"unknown"``.

A read that bypasses the log (a :class:`~pykka_raft.messages.ClientRead`, recorded as a
``"get"`` with ``via`` saying how it was served) changes nothing, so one that errs or times
out is recorded as ``"fail"``: whether or not it ran, no other op depends on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NewType

import attrs

from pykka_raft.statemachine import CasResult

KINDS = ("get", "put", "delete", "cas")
"""The operation kinds, one per :data:`~pykka_raft.statemachine.KvCommand`."""

OUTCOMES = ("ok", "fail", "unknown")
"""The possible outcomes of an operation, see the module docstring."""

OpHandle = NewType("OpHandle", int)
"""What :meth:`HistoryRecorder.invoke` returns, to pass back to ``complete``."""


def _check_kind(_instance: object, _attribute: object, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"Op.kind must be one of {KINDS}, got {kind!r}")


def _check_outcome(_instance: object, _attribute: object, outcome: str) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"Op.outcome must be one of {OUTCOMES}, got {outcome!r}")


@attrs.frozen(kw_only=True)
class Op:
    """One client operation on one key, as the client observed it.

    Fields are keyword-only because several have defaults and their order is easy to mix
    up: ``Op(client=1, kind="put", key="x", value=5, invoke=0.1, ret=0.2, outcome="ok",
    result=None)``.

    Attributes:
        client: Who issued it. Only used for display; the checker does not assume that a
            client's ops are sequential.
        kind: ``"get"``, ``"put"``, ``"delete"`` or ``"cas"``.
        key: The key it touches. Ops on different keys are checked independently.
        value: The value written by a put, or the new value of a cas.
        expected: The value a cas compares against.
        invoke: When the call started, in ``time.monotonic()`` seconds (any clock shared by
            all clients works).
        ret: When the call returned; ``None`` exactly when ``outcome`` is ``"unknown"``.
        outcome: ``"ok"``, ``"fail"`` or ``"unknown"`` (see the module docstring).
        result: For ok ops, the state machine's response: the previous value for a put,
            the value for a get, the removed value for a delete, a
            :class:`~pykka_raft.statemachine.CasResult` for a cas. Missing keys read as
            ``None``. Ignored for other outcomes (an error may be stored for display).
        via: How the op was served, for display only (the checker ignores it): for
            example ``"lease@2"`` for a get sent to node 2 as a ``LEASE``
            :class:`~pykka_raft.messages.ClientRead`. ``None`` for ops through the log.
    """

    client: int
    kind: str = attrs.field(validator=_check_kind)
    key: str
    value: Any = None
    expected: Any = None
    invoke: float
    ret: float | None
    outcome: str = attrs.field(validator=_check_outcome)
    result: Any = None
    via: str | None = None

    def __attrs_post_init__(self) -> None:
        # Catch recording mistakes here, where the stack trace points at the recorder, not
        # later as a puzzling "not linearizable".
        if self.outcome == "unknown":
            if self.ret is not None:
                raise ValueError("an op with outcome 'unknown' must have ret=None")
        else:
            if self.ret is None:
                raise ValueError(f"an op with outcome {self.outcome!r} needs a return time")
            if self.ret < self.invoke:
                raise ValueError(f"op returns ({self.ret}) before it is invoked ({self.invoke})")
        if self.kind == "cas" and self.outcome == "ok" and not isinstance(self.result, CasResult):
            raise ValueError(f"an ok cas must have a CasResult result, got {self.result!r}")

    @property
    def writes(self) -> bool:
        """Whether this op may change the value of its key (put, delete, cas)."""
        return self.kind != "get"

    def describe(self) -> str:
        """A short one-line description without times or client, e.g.
        ``put(x, 5) -> None`` or ``cas(x, 1 => 2) unknown``."""
        if self.kind == "get":
            call = f"get({self.key})" if self.via is None else f"get({self.key}) [{self.via}]"
        elif self.kind == "put":
            call = f"put({self.key}, {_short(self.value)})"
        elif self.kind == "delete":
            call = f"delete({self.key})"
        else:
            call = f"cas({self.key}, {_short(self.expected)} => {_short(self.value)})"
        if self.outcome == "fail":
            return f"{call} failed"
        if self.outcome == "unknown":
            return f"{call} unknown"
        if isinstance(self.result, CasResult):
            verdict = "swapped" if self.result.swapped else "not swapped"
            return f"{call} -> {verdict}, was {_short(self.result.previous)}"
        return f"{call} -> {_short(self.result)}"


def _short(value: Any, limit: int = 32) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@attrs.frozen
class _Pending:
    client: int
    kind: str
    key: str
    value: Any
    expected: Any
    invoke: float
    via: str | None


class HistoryRecorder:
    """Collects a history from many client threads.

    Call :meth:`invoke` right before sending a request and :meth:`complete` right after its
    answer (or failure) arrives, so that the recorded window contains the moment the op
    took effect. Ops never completed (the client thread died or gave up without saying)
    come out of :meth:`ops` as ``"unknown"``, which is the only safe reading.

    Args:
        clock: The time source; ``time.monotonic`` unless a test wants a fake clock. It is
            read under the recorder's lock, so invoke times follow handle order.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._done: dict[int, Op] = {}

    def now(self) -> float:
        """The time on the recorder's clock (to stamp observations made beside it)."""
        return self._clock()

    def invoke(
        self,
        client: int,
        kind: str,
        key: str,
        value: Any = None,
        expected: Any = None,
        via: str | None = None,
    ) -> OpHandle:
        """Record the start of an op now; return a handle for :meth:`complete` (``via``:
        how it is served, shown in explanations, see :class:`Op`)."""
        _check_kind(None, None, kind)
        with self._lock:
            pending = _Pending(client, kind, key, value, expected, self._clock(), via)
            self._pending.append(pending)
            return OpHandle(len(self._pending) - 1)

    def complete(self, handle: OpHandle, outcome: str, result: Any = None) -> None:
        """Record the end of an op now.

        Args:
            handle: What :meth:`invoke` returned.
            outcome: ``"ok"``, ``"fail"`` or ``"unknown"``. For ``"unknown"`` no return time
                is kept: the op may take effect after this moment too.
            result: The state machine's response for ``"ok"`` (see :class:`Op`).

        Raises:
            ValueError: The handle is unknown or already completed, or the op is malformed
                (for example an ok cas without a ``CasResult``).
        """
        _check_outcome(None, None, outcome)
        with self._lock:
            if not 0 <= handle < len(self._pending):
                raise ValueError(f"unknown op handle {handle!r}")
            if handle in self._done:
                raise ValueError(f"op handle {handle!r} completed twice")
            p = self._pending[handle]
            ret = None if outcome == "unknown" else self._clock()
            self._done[handle] = Op(
                client=p.client,
                kind=p.kind,
                key=p.key,
                value=p.value,
                expected=p.expected,
                invoke=p.invoke,
                ret=ret,
                outcome=outcome,
                result=result,
                via=p.via,
            )

    def ops(self) -> tuple[Op, ...]:
        """Every op invoked so far, in invoke order; uncompleted ones as ``"unknown"``."""
        with self._lock:
            done, pending = dict(self._done), list(self._pending)
        ops = []
        for handle, p in enumerate(pending):
            op = done.get(handle)
            if op is None:
                op = Op(
                    client=p.client,
                    kind=p.kind,
                    key=p.key,
                    value=p.value,
                    expected=p.expected,
                    invoke=p.invoke,
                    ret=None,
                    outcome="unknown",
                    via=p.via,
                )
            ops.append(op)
        return tuple(ops)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


_BAR_WIDTH = 24


def render(ops: Iterable[Op], origin: float | None = None) -> str:
    """A compact timeline of ``ops``: one line per op, sorted by invoke time.

    Returns the text rather than printing it, so it can go into an assertion message or a
    log as well as to ``print``. Each line shows the invoke and return times relative to
    ``origin`` (default: the earliest invoke), the client, the op, and a bar placing the
    op's window on a common time axis, which is what makes overlaps visible at a glance::

            +0.000ms     +2.000ms  c1   put(x, 1) -> None  |===========             |
            +1.000ms            ?  c2   get(x) unknown     |     ~~~~~~~~~~~~~~~~~~~>
            +3.000ms     +4.000ms  c1   get(x) -> 1        |               ======   |
            +3.500ms     +4.500ms  c3   delete(x) failed   |                  ------|

    Bars use ``=`` for ok ops, ``-`` for failed ones, and ``~`` running off the right edge
    for unknown ones (they may take effect at any later time).
    """
    ordered = sorted(ops, key=lambda o: (o.invoke, o.client))
    if not ordered:
        return "(no ops)"
    start = ordered[0].invoke if origin is None else origin
    end = max(max(o.invoke, o.ret if o.ret is not None else o.invoke) for o in ordered)
    span = end - start
    scale, unit = (1.0, "s") if span >= 1.0 else ((1e3, "ms") if span >= 1e-3 else (1e6, "us"))

    def stamp(t: float) -> str:
        return f"{(t - start) * scale:+.3f}{unit}"

    def column(t: float) -> int:
        if span <= 0:
            return 0
        return min(_BAR_WIDTH - 1, max(0, int((t - start) / span * (_BAR_WIDTH - 1) + 0.5)))

    described = [o.describe() for o in ordered]
    width = max(len(d) for d in described)
    lines = []
    for o, text in zip(ordered, described, strict=True):
        first = column(o.invoke)
        if o.ret is None:
            bar = " " * first + "~" * (_BAR_WIDTH - first)
            tail = ">"
            ret_text = "?"
        else:
            fill = "=" if o.outcome == "ok" else "-"
            last = column(o.ret)
            bar = " " * first + fill * (last - first + 1) + " " * (_BAR_WIDTH - last - 1)
            tail = "|"
            ret_text = stamp(o.ret)
        lines.append(
            f"{stamp(o.invoke):>12} {ret_text:>12}  c{o.client:<3} {text:<{width}}  |{bar}{tail}"
        )
    return "\n".join(lines)
