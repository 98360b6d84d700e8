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

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from pykka_raft.testing.history import Op
from pykka_raft.testing.linearizability_explain import _explain
from pykka_raft.testing.linearizability_model import (
    LinearizabilityResult,
    _Interner,
    _KeyModel,
    _OutOfBudget,
    _prune_unknowns,
)
from pykka_raft.testing.linearizability_search import _search

__all__ = ["SEARCH_BUDGET", "LinearizabilityResult", "check_kv"]

SEARCH_BUDGET = 1_000_000
"""How many times :func:`check_kv` may place an op on one key before it gives up
(``undecided``). Histories with unique written values need a few thousand; the worst
case of the module docstring (1,000 ops on 1 key, 3 values, 5% unknown, one impossible
read) spends it in 60 to 100 s on CPython 3.11 instead of running for hours."""


def check_kv(
    ops: Iterable[Op],
    canonical: Callable[[Any], Hashable] | None = None,
    budget: int = SEARCH_BUDGET,
) -> LinearizabilityResult:
    """Check that a key-value history is linearizable.

    Args:
        ops: The history, in any order (typically ``HistoryRecorder.ops()``).
        canonical: Compare values through this hashable form instead of ``==``: two values
            are the same iff their forms are equal. Values holding a NaN, or whose types
            matter (``1`` against ``1.0``, a tuple against a list), need one; the values
            mode of the chaos runner passes :func:`pykka_raft.testing.values.canonical`.
            A compare-and-set then swaps only if its expected value has the current
            value's form, where ``KeyValueStateMachine`` compares as ``==`` does (with
            NaN equal to NaN): ``1`` expected against ``1.0`` swaps there but not in the
            check, so expect values of the types that were written.
        budget: Give up on a key (``undecided``) after placing an op this many times.

    Returns:
        ``ok=True`` if some order of the ok ops and a subset of the unknown ops, each
        placed inside its real-time window, replays through a key-value store starting
        empty with every ok op getting exactly its recorded result. Otherwise the first
        failing key, the ops to look at, and an explanation; or ``undecided`` for the
        first key whose search ran out of ``budget`` (a verdict nobody should take as a
        pass: give writes unique values, or check a shorter history).
    """
    history = list(ops)
    by_key: dict[str, list[Op]] = {}
    for op in sorted(history, key=lambda o: o.invoke):
        by_key.setdefault(op.key, []).append(op)
    for key, key_ops in by_key.items():
        failure = _check_key(key, key_ops, canonical, budget)
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


def _check_key(
    key: str,
    key_ops: list[Op],
    canonical: Callable[[Any], Hashable] | None,
    budget: int,
) -> LinearizabilityResult | None:
    """Search one key's sub-history; ``None`` if linearizable, else the failure."""
    interner = _Interner(canonical)
    ops = _prune_unknowns([o for o in key_ops if o.outcome != "fail"], interner)
    n_ok = sum(1 for o in ops if o.outcome == "ok")
    if n_ok == 0:
        return None
    model = _KeyModel(ops, interner)
    try:
        stuck = _search(ops, model, n_ok, budget)
    except _OutOfBudget:
        why = (
            f"undecided: the search placed ops {budget} times on key {key!r} ({len(ops)} ops, "
            f"{len(ops) - n_ok} unknown) without finding an order or ruling every one out"
        )
        return LinearizabilityResult(False, key, (), why, undecided=True)
    if stuck is None:
        return None
    return _explain(key, key_ops, ops, model, interner, stuck)
