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

    Unknown ops are what makes such searches blow up (each one may or may not be placed,
    anywhere after its invoke), so the search only looks for a valid order that uses as
    few of them as possible, which exists whenever any valid order does. In such an order:

    * No unknown op leaves the state unchanged, none is immediately overwritten by an
      unconditional unknown write, and each is immediately followed by an op that needs the
      state it leaves (an ok op requiring it, or an unknown cas expecting it), which is
      already a candidate at that point. Otherwise it could be dropped.
    * Unknown ops with the same effect (two timed-out deletes, two puts of one value) are
      interchangeable except that each goes after its own invoke, so the earliest-invoked
      ones can be used first, in invoke order. Without this, k lost deletes cost 2**k.
    * Unknown gets, and unknown writes of a value that no ok op returned and no unknown cas
      expects, are dropped up front: after such a write no ok op can run until another
      unconditional write overwrites it. Timed-out writes that never happened are common in
      fault tests.
    * The cache also subsumes: unknown ops never hold anything up, so having placed more of
      them only removes options. A configuration is skipped when one with the same ok ops,
      the same state and a subset of its unknown ops was searched.

    Ok ops are tried before unknown ones, and values are compared with ``==`` (as the state
    machine does) but interned once into small integers, so states hash cheaply and values
    need not be hashable.

Performance:
    Measured on CPython 3.11 in a 2-core container, timing ``check_kv`` with
    ``time.perf_counter`` on histories from ``random_history`` in
    ``tests/unit/test_linearizability.py`` (ops really executed on a
    ``KeyValueStateMachine`` at a random instant of their window; 5 clients, windows of
    0.05 to 3 s, 5% unknown outcomes of which half took effect, possibly up to three windows
    late, 2% failures; every write a unique value unless said otherwise), seeds 0 to 9:

    * 3000 ops on 5 keys: 0.01 to 0.03 s (median 0.02 s); with a stale read injected:
      under 0.015 s. 30000 ops: 0.25 to 0.4 s.
    * 3000 ops on 1 key: 0.02 to 0.05 s; with 20% unknown outcomes and a read of a value
      never written near the end (so every order of the first 90% must be ruled out):
      0.3 to 0.5 s.
    * Writes drawn from only 3 values: 0.03 to 0.07 s when linearizable. The worst case
      found is a non-linearizable history of 3000 ops on 1 key with 3 values: 0.05 to
      0.08 s without unknown ops, about 2 s with 1% unknown, minutes with 5% (lost writes of
      repeated values can fire at any later time, so they fit almost anywhere).

    The problem is NP-complete in general. Give every write a unique value (as Jepsen
    does): then an unknown write that never happened is dropped up front, and one that did
    is pinned down by whoever observed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

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
_PENDING_SHOWN = 6


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
    """Drop unknown ops that cannot matter (see the module docstring), to a fixpoint.

    Ok cas ops do not count as observing their expected value: one that did not swap
    observed its previous value, which is what they must match.
    """
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


_Path: TypeAlias = "tuple[int, _Path] | None"


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
    req, cond = model.req, model.cond
    # Unknown ops with the same effect (say, two timed-out deletes) are interchangeable,
    # except that each can only go after its own invoke. So any linearization can be
    # rewritten to use the earliest-invoked ones, in invoke order; searching only those
    # avoids trying every subset of them (2**k times the work for k lost deletes).
    # ``twin_before[i]`` is the bit of the previous op of ``i``'s class, or 0.
    twin_before = [0] * n
    last_of_class: dict[tuple[int, int, int], int] = {}
    for i in sorted(range(n), key=lambda i: ops[i].invoke):
        if not is_ok[i]:
            effect = (model.req[i], model.cond[i], model.new[i])
            if effect in last_of_class:
                twin_before[i] = bit[last_of_class[effect]]
            last_of_class[effect] = i

    no_states: frozenset[int] = frozenset()

    def candidates() -> tuple[list[int], frozenset[int]]:
        """Every call before the first return, ok ops first; and the states they want.

        An unknown op is only worth placing right before an op that needs the state it
        leaves: an ok op requiring that state, or an unknown cas expecting it. Take a valid
        order with as few unknown ops as possible: what follows each unknown op can only be
        such an op (an ok op that needs another state would not fit; an unknown write or
        a cas that does not swap would make it, or itself, useless), and it is already a
        candidate here, as unknown ops never hold anything up. So unknown ops are only
        tried when they produce a wanted state.
        """
        first: list[int] = []
        later: list[int] = []
        node = nxt[0]
        while is_call[node]:
            i = node_op[node]
            (first if is_ok[i] else later).append(i)
            node = nxt[node]
        if not later:
            return first, no_states
        wanted = frozenset(req[i] for i in first) | frozenset(cond[i] for i in later)
        return first + later, wanted

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
    lin_ok = 0  # bitset of the ok ops linearized so far
    lin_unknown = 0  # bitset of the unknown ops linearized so far
    ok_left = n_ok
    # The cache: for each (ok ops placed, state), the sets of unknown ops placed with them
    # that were searched. Placing more unknown ops only removes options (they have no
    # return, so they never hold anything up), so a configuration is skipped when one with
    # the same ok ops and state and a subset of its unknown ops was seen. Without unknown
    # ops this is the plain (bitset, state) cache.
    seen: dict[tuple[int, int], list[int]] = {}
    stack: list[tuple[int, int, list[int], frozenset[int], int]] = []
    cands, wanted = candidates()
    pos = 0
    # The linearization so far as a cons list (op, rest), so that remembering the furthest
    # point costs O(1) instead of copying the stack.
    path: _Path = None
    best_ok_left = ok_left + 1
    best: tuple[_Path, int] = (None, state)
    while True:
        if ok_left < best_ok_left:
            best_ok_left = ok_left
            best = (path, state)
            if ok_left == 0:
                return None
        while pos < len(cands):
            i = cands[pos]
            pos += 1
            new_state = step(i, state)
            if new_state < 0:
                continue
            if is_ok[i]:
                next_ok, next_unknown = lin_ok | bit[i], lin_unknown
            elif (
                new_state == state
                or new_state not in wanted
                or twin_before[i] & ~lin_unknown
                or (cond[i] < 0 and stack and not is_ok[stack[-1][0]])
            ):
                # An unknown op that changes nothing may as well be left out, and so may an
                # unknown op whose state is overwritten right away by an unconditional
                # unknown write; see above for wanted states and twins.
                continue
            else:
                next_ok, next_unknown = lin_ok, lin_unknown | bit[i]
            masks = seen.setdefault((next_ok, new_state), [])
            if any(not (mask & ~next_unknown) for mask in masks):
                continue
            masks.append(next_unknown)
            stack.append((i, state, cands, wanted, pos))
            path = (i, path)
            lift(i)
            state = new_state
            lin_ok, lin_unknown = next_ok, next_unknown
            if is_ok[i]:
                ok_left -= 1
            cands, wanted = candidates()
            pos = 0
            break
        else:
            if not stack:
                linearized_ops: list[int] = []
                cell, best_state = best
                while cell is not None:
                    linearized_ops.append(cell[0])
                    cell = cell[1]
                return _Stuck(tuple(reversed(linearized_ops)), best_state)
            i, state, cands, wanted, pos = stack.pop()
            path = path[1] if path is not None else None
            unlift(i)
            if is_ok[i]:
                lin_ok &= ~bit[i]
                ok_left += 1
            else:
                lin_unknown &= ~bit[i]


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
    left_out = len(key_ops) - len(ops)
    lines = [
        f"key {key!r} is not linearizable ({n_ok} ok and {len(ops) - n_ok} unknown ops searched"
        + (f"; {left_out} failed or irrelevant unknown ops left out)." if left_out else ")."),
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
        # The writes closest before the stuck op are the ones that could have explained it.
        near = [o for o in live if o.invoke <= horizon][-_WRITERS_SHOWN:] or live[:_WRITERS_SHOWN]
        if near:
            names = "; ".join(f"c{o.client} {o.describe()}" for o in near)
            more = f" ({len(live)} such writes in all)" if len(live) > len(near) else ""
            lines.append(f"{needed!r} was written by: {names}{more}.")
        elif needed is not None:
            lines.append(f"No op that may have taken effect ever wrote {needed!r}.")
        if failed:
            names = "; ".join(f"c{o.client} {o.describe()}" for o in failed[:_WRITERS_SHOWN])
            lines.append(f"Only ops recorded as failed (so never applied) wrote it: {names}.")
        for o in near + failed[:_WRITERS_SHOWN]:
            shown[id(o)] = o
    pending_ok = [i for i in pending if ops[i].outcome == "ok"]
    pending_unknown = [i for i in pending if ops[i].outcome != "ok"]
    if pending_ok:
        reasons = []
        for i in pending_ok[:_PENDING_SHOWN]:
            if model.step(i, stuck.state) >= 0:  # cannot happen at the furthest point
                reasons.append(f"{label(i)} (fits)")
            elif i in model.impossible:
                reasons.append(f"{label(i)} (impossible result)")
            else:
                reasons.append(f"{label(i)} (needs {interner.values[model.req[i]]!r})")
        if len(pending_ok) > _PENDING_SHOWN:
            reasons.append(f"and {len(pending_ok) - _PENDING_SHOWN} more")
        lines.append("Other ok ops that could have gone next: " + "; ".join(reasons) + ".")
    if pending_unknown:
        names = "; ".join(label(i) for i in pending_unknown[:_WRITERS_SHOWN])
        more = f" ({len(pending_unknown)} in all)" if len(pending_unknown) > _WRITERS_SHOWN else ""
        lines.append(f"Unknown ops that could still have taken effect: {names}{more}.")

    # The window: from the earliest of the ok ops among the last placed and those that
    # could go next, up to the stuck op's return; plus the writer of the state and the
    # unknown ops among the last placed, which may be far back and do not stretch it.
    recent_ops = [ops[i] for i in stuck.linearized[-_CONTEXT_OPS:]]
    anchors = [o for o in recent_ops if o.outcome == "ok"]
    anchors += [ops[i] for i in [*pending_ok, blocked]]
    start = min(o.invoke for o in anchors)
    anchors += [o for o in recent_ops if o.outcome != "ok"]
    if writer is not None:
        anchors.append(ops[writer])
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
