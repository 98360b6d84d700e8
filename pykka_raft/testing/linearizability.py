"""A linearizability checker for histories of the key-value state machine.

:func:`check_kv` decides whether a recorded history (see
:mod:`pykka_raft.testing.history`) could have come from a single copy of
:class:`~pykka_raft.statemachine.KeyValueStateMachine` applying every op atomically at some
instant between its invoke and its return. That is the guarantee Raft promises clients; a
"no" is a concrete anomaly (a stale read, a lost update, a failed write that took effect).

Algorithm:
    Wing & Gong's search with Lowe's just-in-time linearization and memoization, as in
    Porcupine and Knossos:

    * The KV model is P-compositional: every op touches one key, so a history is
      linearizable iff each key's sub-history is. Keys are checked one by one, which
      shrinks both the search and the bitsets.
    * Per key, call and return events sit in a doubly linked list sorted by time (a call
      sorts before a return at the same instant: equal timestamps prove no order, so such
      ops count as concurrent). The ops that may go next are the calls before the first
      return. A depth-first search linearizes one of them (unlinking its events), and
      backtracks when none fits. Visited (linearized-set bitset, state) pairs are cached:
      the same set of ops in the same state leaves the same remaining problem, so it is
      never searched twice. This is what makes thousands of ops tractable.
    * "fail" ops are dropped. "unknown" ops have no return event (return time +infinity):
      the search may linearize them anywhere after their invoke, and succeeds once every
      ok op is placed, leaving the rest out (an unknown op need not take effect).
    * Ok ops are tried before unknown ones, so unknown writes are only placed when the
      observed results need them.
    * Unknown gets are dropped (no effect, nothing to explain). An unknown write whose value
      is never observed (no ok op returned it and no cas expects it) is dropped too: after
      it, no ok op could run until another unconditional write overwrote it, so removing it
      from any valid order leaves a valid order. Timed-out writes that never happened are
      common in fault tests, and each one left in doubles the search space around it.
    * Values are compared with ``==`` (as the state machine does), but interned once into
      small integers first, so states hash cheaply and values need not be hashable.

Performance:
    ``3000`` ops by ``5`` clients on ``5`` keys, with 5% unknown outcomes (half of them took
    effect, late or not) and 2% failures, unique written values: about 0.02 s in total
    (0.015 to 0.025 s over seeds 0 to 9); 30000 such ops: about 0.25 s. With writes drawn from
    only 3 values on 1 key (many equivalent orders to rule out), 3000 ops: about 0.1 s when
    linearizable, about 3 s for a large history with one stale read injected (the search
    has to exhaust every order first). Measured on CPython 3.11 (one core of the
    development container) by timing ``check_kv`` with ``time.perf_counter`` on the
    histories of ``random_history`` in ``tests/unit/test_linearizability.py``. The problem
    is NP-complete in general: many concurrent clients on one key with few distinct values
    and many unknown writes can still blow up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from pykka_raft.statemachine import CasResult
from pykka_raft.testing.history import Op, render

__all__ = ["LinearizabilityResult", "check_kv"]

_ANY = -1  # req: no requirement on the state
_IMPOSSIBLE = -2  # req: no state can explain the recorded result
_SAME = -1  # new: the op leaves the state unchanged
_NONE_ID = 0  # the interned id of None, the value of a missing key
_CONTEXT_OPS = 3  # linearized ops shown before the point where the search got stuck
_WRITERS_SHOWN = 3


@attrs.frozen
class LinearizabilityResult:
    """The verdict of :func:`check_kv`.

    Attributes:
        ok: Whether the whole history is linearizable.
        key: The first key (in order of first invoke) whose sub-history is not.
        ops: For a failure, the part of that key's history worth reading: the ops around
            the point where the search got furthest, plus the writes of the value the
            stuck op needed. Empty when ``ok``.
        explanation: A human-readable account: for a failure, which op could not be placed,
            the value of the key at that point, and a timeline of ``ops``.
    """

    ok: bool
    key: str | None
    ops: tuple[Op, ...]
    explanation: str


class _Interner:
    """Maps values to small ints such that ``a == b`` iff they get the same id.

    Hashable values go through a dict; unhashable ones (lists, dicts) are compared with
    ``==`` against every value seen, which is fine for the handful tests use.
    """

    def __init__(self) -> None:
        self.values: list[Any] = [None]
        self._hashable: dict[Any, int] = {None: _NONE_ID}
        self._unhashable: list[int] = []

    def id(self, value: Any) -> int:
        try:
            found = self._hashable.get(value)
        except TypeError:
            for i in range(len(self.values)):
                if self.values[i] == value:
                    return i
            self._unhashable.append(len(self.values))
            self.values.append(value)
            return len(self.values) - 1
        if found is not None:
            return found
        for i in self._unhashable:
            if self.values[i] == value:
                return i
        self._hashable[value] = len(self.values)
        self.values.append(value)
        return len(self.values) - 1


@attrs.frozen
class _Stuck:
    """Where the search on one key got furthest, for the explanation."""

    linearized: tuple[int, ...]  # op indices, in linearization order
    state: int


def check_kv(ops: Iterable[Op]) -> LinearizabilityResult:
    """Check that a key-value history is linearizable.

    Args:
        ops: The history, in any order (typically ``HistoryRecorder.ops()``).

    Returns:
        ``ok=True`` if some order of the ok ops and a subset of the unknown ops, each
        placed inside its real-time window, replays through a key-value store starting
        empty with every ok op getting exactly its recorded result. Otherwise the first
        failing key, the ops to look at, and an explanation.
    """
    history = list(ops)
    by_key: dict[str, list[Op]] = {}
    for op in sorted(history, key=lambda o: o.invoke):
        by_key.setdefault(op.key, []).append(op)
    for key, key_ops in by_key.items():
        failure = _check_key(key, key_ops)
        if failure is not None:
            return failure
    counts = {o: sum(1 for op in history if op.outcome == o) for o in ("ok", "unknown", "fail")}
    return LinearizabilityResult(
        ok=True,
        key=None,
        ops=(),
        explanation=(
            f"linearizable: {len(history)} ops on {len(by_key)} keys ({counts['ok']} ok, "
            f"{counts['unknown']} unknown, {counts['fail']} failed)"
        ),
    )


class _KeyModel:
    """One key's ops compiled into integer transition tables.

    For op ``i``: ``req[i]`` is the state it needs (``_ANY``, or ``_IMPOSSIBLE`` for a result
    no state explains); ``cond[i]`` is, for an unknown cas, the state in which it swaps
    (else -1); ``new[i]`` is the state it leaves (``_SAME`` for unchanged).
    """

    def __init__(self, ops: Sequence[Op], interner: _Interner) -> None:
        self.ops = ops
        self.req: list[int] = []
        self.cond: list[int] = []
        self.new: list[int] = []
        self.impossible: dict[int, str] = {}
        for i, op in enumerate(ops):
            self._compile(i, op, interner)

    def _compile(self, i: int, op: Op, interner: _Interner) -> None:
        ok = op.outcome == "ok"
        req, cond, new = _ANY, -1, _SAME
        if op.kind == "get":
            req = interner.id(op.result) if ok else _ANY
        elif op.kind == "put":
            req = interner.id(op.result) if ok else _ANY
            new = interner.id(op.value)
        elif op.kind == "delete":
            req = interner.id(op.result) if ok else _ANY
            new = _NONE_ID
        else:
            expected = interner.id(op.expected)
            if ok:
                res: CasResult = op.result
                req = interner.id(res.previous)
                if (req == expected) != bool(res.swapped):
                    self.impossible[i] = (
                        f"its result says swapped={res.swapped!r} with previous value "
                        f"{res.previous!r}, but the expected value was {op.expected!r}"
                    )
                    req = _IMPOSSIBLE
                new = interner.id(op.value) if res.swapped else _SAME
            else:
                cond = expected
                new = interner.id(op.value)
        self.req.append(req)
        self.cond.append(cond)
        self.new.append(new)

    def step(self, i: int, state: int) -> int:
        """The state after op ``i`` from ``state``, or -1 if it cannot go there."""
        req = self.req[i]
        if req != _ANY and req != state:
            return -1
        cond = self.cond[i]
        if cond >= 0:
            return self.new[i] if state == cond else state
        new = self.new[i]
        return state if new == _SAME else new


def _prune_unknowns(ops: list[Op], interner: _Interner) -> list[Op]:
    """Drop unknown ops that cannot matter (see the module docstring), to a fixpoint."""
    ops = [o for o in ops if not (o.outcome == "unknown" and o.kind == "get")]
    while True:
        observed: set[int] = set()
        for o in ops:
            if o.kind == "cas" and o.outcome == "unknown":
                observed.add(interner.id(o.expected))
            if o.outcome == "ok":
                observed.add(interner.id(o.result.previous if o.kind == "cas" else o.result))
        kept = [
            o
            for o in ops
            if o.outcome != "unknown"
            or interner.id(None if o.kind == "delete" else o.value) in observed
        ]
        if len(kept) == len(ops):
            return kept
        ops = kept


def _check_key(key: str, key_ops: list[Op]) -> LinearizabilityResult | None:
    """Search one key's sub-history; ``None`` if linearizable, else the failure."""
    interner = _Interner()
    ops = _prune_unknowns([o for o in key_ops if o.outcome != "fail"], interner)
    n_ok = sum(1 for o in ops if o.outcome == "ok")
    if n_ok == 0:
        return None
    model = _KeyModel(ops, interner)
    stuck = _search(ops, model, n_ok)
    if stuck is None:
        return None
    return _explain(key, key_ops, ops, model, interner, stuck)


def _search(ops: Sequence[Op], model: _KeyModel, n_ok: int) -> _Stuck | None:
    """The memoized depth-first search over the event list; ``None`` on success."""
    n = len(ops)
    # Events: (time, 0 for call / 1 for return, op). Node 0 is the head, node size+1 the
    # tail; the tail counts as a return so candidate scans stop there.
    events = [(o.invoke, 0, i) for i, o in enumerate(ops)]
    events += [(o.ret, 1, i) for i, o in enumerate(ops) if o.ret is not None]
    events.sort()
    size = len(events)
    tail = size + 1
    nxt = [*range(1, size + 2), tail]
    prv = [0, *range(size + 1)]
    is_call = [False] * (size + 2)
    call_node = [0] * n
    ret_node = [-1] * n
    node_op = [-1] * (size + 2)
    for node, (_, kind, i) in enumerate(events, start=1):
        node_op[node] = i
        if kind == 0:
            is_call[node] = True
            call_node[i] = node
        else:
            ret_node[i] = node
    is_ok = [o.outcome == "ok" for o in ops]
    bit = [1 << i for i in range(n)]
    step = model.step

    def candidates() -> list[int]:
        # Every call before the first return: ok ops first, so that unknown writes are
        # only placed when the observed results ask for them.
        first: list[int] = []
        later: list[int] = []
        node = nxt[0]
        while is_call[node]:
            i = node_op[node]
            (first if is_ok[i] else later).append(i)
            node = nxt[node]
        return first + later

    def lift(i: int) -> None:
        for node in (call_node[i], ret_node[i]):
            if node >= 0:
                before, after = prv[node], nxt[node]
                nxt[before] = after
                prv[after] = before

    def unlift(i: int) -> None:
        for node in (ret_node[i], call_node[i]):
            if node >= 0:
                nxt[prv[node]] = node
                prv[nxt[node]] = node

    state = _NONE_ID
    linearized = 0
    ok_left = n_ok
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, int, list[int], int]] = []
    cands = candidates()
    pos = 0
    best_ok_left = ok_left + 1
    best: _Stuck | None = None
    while True:
        if ok_left < best_ok_left:
            best_ok_left = ok_left
            best = _Stuck(tuple(frame[0] for frame in stack), state)
            if ok_left == 0:
                return None
        while pos < len(cands):
            i = cands[pos]
            pos += 1
            new_state = step(i, state)
            if new_state < 0 or (new_state == state and not is_ok[i]):
                # An unknown op that changes nothing may as well be left out.
                continue
            entry = (linearized | bit[i], new_state)
            if entry in seen:
                continue
            seen.add(entry)
            stack.append((i, state, cands, pos))
            lift(i)
            state = new_state
            linearized |= bit[i]
            if is_ok[i]:
                ok_left -= 1
            cands = candidates()
            pos = 0
            break
        else:
            if not stack:
                assert best is not None
                return best
            i, state, cands, pos = stack.pop()
            unlift(i)
            linearized &= ~bit[i]
            if is_ok[i]:
                ok_left += 1


def _explain(
    key: str,
    key_ops: list[Op],
    ops: list[Op],
    model: _KeyModel,
    interner: _Interner,
    stuck: _Stuck,
) -> LinearizabilityResult:
    """Turn the furthest point of a failed search into a result a human can act on.

    At that point no ok op that may go next fits the state (otherwise the search would have
    got further), so the op to blame is the one whose return comes first: every op invoked
    after that return has to wait for it.
    """
    placed = set(stuck.linearized)
    remaining = [i for i in range(len(ops)) if i not in placed]
    blocked = min(
        (i for i in remaining if ops[i].ret is not None),
        key=lambda i: (ops[i].ret, ops[i].invoke),
    )
    horizon = ops[blocked].ret
    assert horizon is not None
    pending = [i for i in remaining if ops[i].invoke <= horizon and i != blocked]
    state_value = interner.values[stuck.state]
    writer = _last_writer(stuck, model)

    def label(i: int) -> str:
        return f"c{ops[i].client} {ops[i].describe()}"

    n_ok = sum(1 for o in ops if o.outcome == "ok")
    n_placed_ok = sum(1 for i in stuck.linearized if ops[i].outcome == "ok")
    lines = [
        f"key {key!r} is not linearizable ({n_ok} ok and {len(ops) - n_ok} unknown ops "
        f"searched; {len(key_ops) - len(ops)} failed or irrelevant unknown ops left out).",
    ]
    where = (
        f"The search got furthest after placing {len(stuck.linearized)} ops "
        f"({n_placed_ok} of {n_ok} ok ones); {key} then held {state_value!r}"
    )
    lines.append(f"{where}, last set by {label(writer)}." if writer is not None else f"{where}.")
    if stuck.linearized:
        recent = "; ".join(label(i) for i in stuck.linearized[-_CONTEXT_OPS:])
        lines.append(f"Last ops placed, in order: {recent}.")

    shown: dict[int, Op] = {}  # by id(): values, hence ops, may be unhashable
    if blocked in model.impossible:
        lines.append(
            f"Stuck at {label(blocked)}: no state explains it: {model.impossible[blocked]}."
        )
    else:
        needed = interner.values[model.req[blocked]]
        lines.append(
            f"Stuck at {label(blocked)}: it must take effect before it returns and needs "
            f"{key} to hold {needed!r}, but {key} held {state_value!r} and no op that may go "
            f"before it leads to a state that fits."
        )
        writers = [o for o in key_ops if _writes_value(o, needed)]
        live = [o for o in writers if o.outcome != "fail"]
        failed = [o for o in writers if o.outcome == "fail"]
        if live:
            names = "; ".join(f"c{o.client} {o.describe()}" for o in live[:_WRITERS_SHOWN])
            more = f" and {len(live) - _WRITERS_SHOWN} more" if len(live) > _WRITERS_SHOWN else ""
            lines.append(f"{needed!r} was written by: {names}{more}.")
        elif needed is not None:
            lines.append(f"No op that may have taken effect ever wrote {needed!r}.")
        if failed:
            names = "; ".join(f"c{o.client} {o.describe()}" for o in failed[:_WRITERS_SHOWN])
            lines.append(f"Only ops recorded as failed (so never applied) wrote it: {names}.")
        for o in live[-_WRITERS_SHOWN:] + failed[:_WRITERS_SHOWN]:
            shown[id(o)] = o
    if pending:
        reasons = []
        for i in pending:
            if model.step(i, stuck.state) >= 0:
                reasons.append(f"{label(i)} (fits, but leads nowhere)")
            elif i in model.impossible:
                reasons.append(f"{label(i)} (impossible result)")
            else:
                reasons.append(f"{label(i)} (needs {interner.values[model.req[i]]!r})")
        lines.append("Other ops that could have gone next: " + "; ".join(reasons) + ".")

    # The window: from the earliest of the last ops placed, the writer of the state and the
    # ok ops that could go next, up to the stuck op's return. Unknown ops invoked long ago
    # stay pending forever, so they do not stretch it.
    anchors = [ops[i] for i in stuck.linearized[-_CONTEXT_OPS:]]
    anchors += [ops[i] for i in [*pending, blocked] if ops[i].outcome == "ok"]
    if writer is not None:
        anchors.append(ops[writer])
    start = min(o.invoke for o in anchors)
    for o in key_ops:
        if o.invoke <= horizon and (o.ret if o.ret is not None else o.invoke) >= start:
            shown[id(o)] = o
    for o in anchors:
        shown[id(o)] = o
    window = tuple(sorted(shown.values(), key=lambda o: (o.invoke, o.client)))
    lines.append(f"Ops of key {key!r} around that point (times relative to the first shown):")
    lines.append(render(window))
    return LinearizabilityResult(ok=False, key=key, ops=window, explanation="\n".join(lines))


def _last_writer(stuck: _Stuck, model: _KeyModel) -> int | None:
    """The last op of the partial linearization that set the state (``None``: initial)."""
    state = _NONE_ID
    writer = None
    for i in stuck.linearized:
        if model.new[i] != _SAME and (model.cond[i] < 0 or model.cond[i] == state):
            writer = i
        state = model.step(i, state)
    return writer


def _writes_value(op: Op, value: Any) -> bool:
    """Whether ``op`` would set its key to ``value`` if it took effect."""
    if op.kind == "delete":
        return value is None
    return op.kind in ("put", "cas") and bool(op.value == value)
