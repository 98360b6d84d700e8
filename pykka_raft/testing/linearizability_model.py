"""The model :func:`~pykka_raft.testing.linearizability.check_kv` searches: one key's ops
compiled into integer transitions over interned values, and its verdict."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs

from pykka_raft.statemachine import CasResult
from pykka_raft.testing.history import Op

_ANY = -1  # req: no requirement on the state
_IMPOSSIBLE = -2  # req: no state can explain the recorded result
_SAME = -1  # new: the op leaves the state unchanged
_NONE_ID = 0  # the interned id of None, the value of a missing key


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
        undecided: The search on ``key`` ran out of its budget before it could tell
            (``ok`` is then ``False``: nothing was shown linearizable).
    """

    ok: bool
    key: str | None
    ops: tuple[Op, ...]
    explanation: str
    undecided: bool = False


class _Interner:
    """Maps values to small ints such that ``a == b`` iff they get the same id.

    Hashable values go through a dict; unhashable ones (lists, dicts) are compared with
    ``==`` against every value seen, which is fine for the handful tests use. With a
    ``canonical`` function, values are equal iff their canonical forms (hashable) are.
    """

    def __init__(self, canonical: Callable[[Any], Hashable] | None = None) -> None:
        self.values: list[Any] = [None]
        self._hashable: dict[Any, int] = {None: _NONE_ID}
        self._unhashable: list[int] = []
        self._canonical = canonical
        self._forms: dict[Hashable, int] = {}
        if canonical is not None:
            self._forms[canonical(None)] = _NONE_ID

    def id(self, value: Any) -> int:
        if self._canonical is not None:
            form = self._canonical(value)
            found_form = self._forms.get(form)
            if found_form is not None:
                return found_form
            self._forms[form] = len(self.values)
            self.values.append(value)
            return len(self.values) - 1
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


class _OutOfBudget(Exception):
    """The search placed ops ``budget`` times on one key without deciding."""


@attrs.frozen
class _Stuck:
    """Where the search on one key got furthest, for the explanation."""

    linearized: tuple[int, ...]  # op indices, in linearization order
    state: int


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
