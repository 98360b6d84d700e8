"""The key-value linearizability checker, on hand-built and generated histories.

Hand-built histories pin the semantics (unknown and failed outcomes, cas, delete, the
classic anomalies). Generated ones come from really executing each op on a
``KeyValueStateMachine`` at a random instant inside its window, so they are linearizable by
construction; injecting one anomaly into them must be caught. Two oracles cross-check the
verdict both ways on histories with corrupted results: brute force over every order on
small histories, and a plain memoized search (none of the checker's reductions for unknown
ops) on longer ones.
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.statemachine import (
    CasResult,
    CompareAndSet,
    Delete,
    Get,
    KeyValueStateMachine,
    KvCommand,
    Put,
)
from pykka_raft.testing.history import HistoryRecorder, Op, render
from pykka_raft.testing.linearizability import LinearizabilityResult, check_kv

# --- shorthands for hand-built histories ------------------------------------------------
# Times are plain numbers; ``ret=None`` means the outcome is unknown.


def put(c: int, key: str, value: Any, inv: float, ret: float | None, prev: Any = None) -> Op:
    return Op(
        client=c,
        kind="put",
        key=key,
        value=value,
        invoke=inv,
        ret=ret,
        outcome="ok" if ret is not None else "unknown",
        result=prev,
    )


def get(c: int, key: str, inv: float, ret: float, value: Any) -> Op:
    return Op(client=c, kind="get", key=key, invoke=inv, ret=ret, outcome="ok", result=value)


def delete(c: int, key: str, inv: float, ret: float | None, removed: Any = None) -> Op:
    return Op(
        client=c,
        kind="delete",
        key=key,
        invoke=inv,
        ret=ret,
        outcome="ok" if ret is not None else "unknown",
        result=removed,
    )


def cas(
    c: int,
    key: str,
    expected: Any,
    new: Any,
    inv: float,
    ret: float | None,
    swapped: bool = False,
    previous: Any = None,
) -> Op:
    ok = ret is not None
    return Op(
        client=c,
        kind="cas",
        key=key,
        value=new,
        expected=expected,
        invoke=inv,
        ret=ret,
        outcome="ok" if ok else "unknown",
        result=CasResult(swapped, previous) if ok else None,
    )


def failed(op: Op) -> Op:
    return attrs.evolve(op, outcome="fail", result=None)


def assert_linearizable(ops: Iterable[Op]) -> None:
    result = check_kv(ops)
    assert result.ok, result.explanation


def assert_not_linearizable(ops: Iterable[Op], key: str = "x") -> LinearizabilityResult:
    result = check_kv(ops)
    assert not result.ok, "expected an anomaly:\n" + render(ops)
    assert result.key == key
    assert result.ops, "a failure must show some ops"
    assert all(o.key == key for o in result.ops)
    return result


# --- basics ------------------------------------------------------------------------------


def test_empty_and_sequential_histories_are_linearizable() -> None:
    assert_linearizable([])
    assert_linearizable(
        [
            get(1, "x", 0, 1, None),
            put(1, "x", 1, 2, 3, prev=None),
            get(2, "x", 4, 5, 1),
            put(2, "x", 2, 6, 7, prev=1),
            get(1, "x", 8, 9, 2),
        ]
    )


def test_success_explanation_counts_ops() -> None:
    result = check_kv([put(1, "x", 1, 0, 1), put(2, "y", 1, 0, None), failed(get(3, "x", 0, 1, 5))])
    assert result == LinearizabilityResult(
        ok=True,
        key=None,
        ops=(),
        explanation="linearizable: 3 ops on 2 keys (1 ok, 1 unknown, 1 failed)",
    )


def test_overlapping_put_and_get_linearize_in_the_only_order_that_fits() -> None:
    # The get lies inside the put's window: it may see either value, but only an order
    # that explains what it saw counts, and with a later read the order is forced.
    assert_linearizable([put(1, "x", 1, 0, 10), get(2, "x", 1, 2, 1)])
    assert_linearizable([put(1, "x", 1, 0, 10), get(2, "x", 1, 2, None)])
    assert_linearizable([put(1, "x", 1, 0, 10), get(2, "x", 1, 2, 1), get(3, "x", 3, 4, 1)])
    # Once a read saw the new value, a later read may not see the old one.
    assert_not_linearizable([put(1, "x", 1, 0, 10), get(2, "x", 1, 2, 1), get(3, "x", 3, 4, None)])


def test_overlapping_puts_are_ordered_by_their_previous_values() -> None:
    # The second put (invoked later) returned 2, so it went first.
    assert_linearizable([put(1, "x", 1, 0, 10, prev=2), put(2, "x", 2, 1, 3, prev=None)])
    assert_not_linearizable([put(1, "x", 1, 0, 10, prev=2), put(2, "x", 2, 1, 3, prev=1)])


def test_equal_timestamps_count_as_concurrent() -> None:
    # A put returning at the very instant a get is invoked may still go after it.
    assert_linearizable([put(1, "x", 1, 0, 5), get(2, "x", 5, 6, None)])
    assert_not_linearizable([put(1, "x", 1, 0, 5), get(2, "x", 5.001, 6, None)])


def test_stale_read_is_caught_and_explained() -> None:
    ops = [
        put(1, "x", "a", 0, 1),
        put(1, "x", "b", 2, 3, prev="a"),
        get(2, "x", 4, 5, "a"),  # put b completed before this read started
    ]
    result = assert_not_linearizable(ops)
    assert "c2 get(x) -> 'a'" in result.explanation
    assert "held 'b'" in result.explanation
    assert "'a' was written by: c1 put(x, 'a') -> None" in result.explanation
    assert set(map(id, result.ops)) == set(map(id, ops))


def test_read_of_a_value_never_written_is_caught() -> None:
    result = assert_not_linearizable([put(1, "x", 1, 0, 1), get(2, "x", 0, 3, 7)])
    assert "No op that may have taken effect ever wrote 7" in result.explanation


def test_missing_keys_read_as_none() -> None:
    assert_linearizable([get(1, "x", 0, 1, None), delete(1, "x", 2, 3, None)])
    assert_not_linearizable([get(1, "x", 0, 1, 0)])


# --- unknown and failed outcomes ---------------------------------------------------------


def test_unknown_put_that_later_shows_up_in_a_read_is_fine() -> None:
    # It may take effect long after the client gave up on it.
    assert_linearizable(
        [
            put(1, "x", 1, 0, None),
            get(2, "x", 5, 6, None),
            get(2, "x", 100, 101, 1),
            get(3, "x", 102, 103, 1),
        ]
    )


def test_unknown_put_that_never_shows_up_is_fine() -> None:
    assert_linearizable(
        [put(1, "x", 1, 0, None), get(2, "x", 5, 6, None), get(2, "x", 100, 101, None)]
    )


def test_unknown_put_takes_effect_at_most_once_and_not_before_its_invoke() -> None:
    # Seen, then overwritten: it cannot come back.
    assert_not_linearizable(
        [
            put(1, "x", 1, 0, None),
            get(2, "x", 1, 2, 1),
            put(2, "x", 2, 3, 4, prev=1),
            get(2, "x", 5, 6, 1),
        ]
    )
    # A read that returned before the put was invoked cannot see it.
    assert_not_linearizable([get(2, "x", 0, 1, 1), put(1, "x", 1, 2, None)])


def test_unknown_put_seen_by_an_overwrite_and_a_read_later() -> None:
    # The unknown put went between the acknowledged ones: the first saw None, the second 'u'.
    assert_linearizable(
        [
            put(1, "x", "u", 0, None),
            put(2, "x", "a", 1, 2, prev=None),
            put(3, "x", "b", 3, 4, prev="u"),
        ]
    )


def test_failed_put_whose_value_shows_up_is_caught() -> None:
    ops = [failed(put(1, "x", 1, 0, 1)), get(2, "x", 2, 3, 1)]
    result = assert_not_linearizable(ops)
    assert "Only ops recorded as failed" in result.explanation
    assert ops[0] in result.ops
    # The same op recorded as unknown is fine.
    assert_linearizable([put(1, "x", 1, 0, None), get(2, "x", 2, 3, 1)])


def test_unknown_and_failed_gets_constrain_nothing() -> None:
    odd = Op(client=1, kind="get", key="x", invoke=0, ret=None, outcome="unknown", result=9)
    assert_linearizable([odd, failed(get(2, "x", 0, 1, 9)), get(3, "x", 2, 3, None)])


def test_unknown_delete_and_cas() -> None:
    assert_linearizable([put(1, "x", 1, 0, 1), delete(2, "x", 2, None), get(3, "x", 10, 11, None)])
    assert_linearizable([put(1, "x", 1, 0, 1), cas(2, "x", 1, 2, 2, None), get(3, "x", 10, 11, 2)])
    # An unknown cas only swaps if the value matched when it took effect.
    assert_not_linearizable(
        [put(1, "x", 1, 0, 1), cas(2, "x", 5, 2, 2, None), get(3, "x", 10, 11, 2)]
    )


def test_chain_of_unknown_ops_explains_a_result() -> None:
    # Only "put 0, then the cas swaps 0 for 2" explains the delete's result: an unknown op
    # may be needed only to enable another unknown op.
    assert_linearizable(
        [
            put(2, "x", 0, 0, None),
            cas(1, "x", 0, 2, 2, None),
            delete(1, "x", 3, 4, removed=2),
        ]
    )
    # Without the put, the cas never swaps.
    assert_not_linearizable([cas(1, "x", 0, 2, 2, None), delete(1, "x", 3, 4, removed=2)])


def test_unknown_write_needed_late_is_not_ruled_out_by_using_it_early() -> None:
    # The search may first try the unknown put early and fail; the same point reached
    # without it still has to be searched (it has more options left, not fewer).
    assert_linearizable(
        [
            put(2, "x", 0, 1, 6, prev=None),
            delete(1, "x", 1, 4, removed=None),
            delete(1, "x", 4, None),
            delete(0, "x", 8, 10, removed=0),
            put(0, "x", 0, 10, None),
            put(2, "x", 1, 24, 28, prev=0),
        ]
    )


# --- compare-and-set and delete ----------------------------------------------------------


def test_cas_success_and_failure() -> None:
    assert_linearizable(
        [
            put(1, "x", 0, 0, 1),
            cas(1, "x", 0, 1, 2, 3, swapped=True, previous=0),
            cas(2, "x", 0, 2, 4, 5, swapped=False, previous=1),
            get(2, "x", 6, 7, 1),
            cas(3, "x", None, 5, 8, 9, swapped=False, previous=1),
        ]
    )
    # A cas on a missing key expecting None swaps.
    assert_linearizable([cas(1, "y", None, 1, 0, 1, swapped=True), get(1, "y", 2, 3, 1)])


def test_cas_failure_that_should_have_swapped_is_caught() -> None:
    assert_not_linearizable([put(1, "x", 0, 0, 1), cas(1, "x", 0, 1, 2, 3, previous=0)])


def test_impossible_cas_result_is_explained() -> None:
    result = assert_not_linearizable([cas(1, "x", 0, 1, 0, 1, swapped=True, previous=None)])
    assert "no state explains it" in result.explanation


def test_lost_update_two_cas_with_the_same_expected_both_succeed() -> None:
    ops = [
        put(1, "x", 0, 0, 1),
        cas(1, "x", 0, 1, 2, 5, swapped=True, previous=0),
        cas(2, "x", 0, 2, 3, 6, swapped=True, previous=0),
    ]
    result = assert_not_linearizable(ops)
    assert "needs x to hold 0" in result.explanation
    # Either one alone, or the other failing, is fine.
    assert_linearizable(
        [
            *ops[:2],
            cas(2, "x", 0, 2, 3, 6, swapped=False, previous=1),
            get(3, "x", 7, 8, 1),
        ]
    )


def test_delete_semantics() -> None:
    assert_linearizable(
        [
            put(1, "x", "a", 0, 1),
            delete(1, "x", 2, 3, removed="a"),
            get(2, "x", 4, 5, None),
            delete(2, "x", 6, 7, removed=None),
            put(1, "x", "b", 8, 9, prev=None),
        ]
    )
    # A delete returns what it removed, and afterwards the key is gone.
    assert_not_linearizable([put(1, "x", "a", 0, 1), delete(1, "x", 2, 3, removed=None)])
    assert_not_linearizable(
        [put(1, "x", "a", 0, 1), delete(1, "x", 2, 3, removed="a"), get(2, "x", 4, 5, "a")]
    )


def test_values_compare_with_equality_and_may_be_unhashable() -> None:
    assert_linearizable(
        [
            put(1, "x", [1, 2], 0, 1),
            get(2, "x", 2, 3, [1, 2]),
            cas(1, "x", [1, 2], {"a": 1}, 4, 5, swapped=True, previous=[1, 2]),
            put(2, "x", 1.0, 6, 7, prev={"a": 1}),
            get(3, "x", 8, 9, 1),
        ]
    )
    assert_not_linearizable([put(1, "x", [1], 0, 1), get(2, "x", 2, 3, [2])])


# --- classics ----------------------------------------------------------------------------


def test_read_sees_a_write_that_started_after_the_read_returned() -> None:
    assert_not_linearizable([get(1, "x", 0, 1, 1), put(2, "x", 1, 2, 3)])


def test_two_readers_observe_concurrent_writes_in_opposite_orders() -> None:
    # Neither write is acknowledged, so only the reads order them, and they disagree.
    ops = [
        put(1, "x", 1, 0, None),
        put(2, "x", 2, 0, None),
        get(3, "x", 10, 20, 1),
        get(3, "x", 30, 40, 2),
        get(4, "x", 10, 20, 2),
        get(4, "x", 30, 40, 1),
    ]
    assert_not_linearizable(ops)
    # If the reads overlap, any of them may come first.
    overlapping = [attrs.evolve(o, invoke=10.0, ret=40.0) if o.kind == "get" else o for o in ops]
    assert_linearizable(overlapping)


def test_keys_are_checked_independently() -> None:
    # Cross-key, these reads look out of order; per key they are fine.
    fine = [
        put(1, "x", 1, 0, 1),
        get(2, "y", 2, 3, None),
        put(1, "y", 1, 4, 5),
        get(2, "x", 6, 7, 1),
    ]
    assert_linearizable(fine)
    broken_y = [*fine, get(3, "y", 8, 9, None)]
    result = assert_not_linearizable(broken_y, key="y")
    assert "key 'y' is not linearizable" in result.explanation


# --- recorder and rendering --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_recorder_stamps_times_and_turns_uncompleted_ops_into_unknown() -> None:
    rec = HistoryRecorder(clock=FakeClock())
    a = rec.invoke(1, "put", "x", 5)
    b = rec.invoke(2, "cas", "x", 6, expected=5)
    c = rec.invoke(3, "get", "x")
    rec.complete(a, "ok", None)
    rec.complete(b, "unknown")
    assert len(rec) == 3
    assert rec.ops() == (
        Op(client=1, kind="put", key="x", value=5, invoke=1, ret=4, outcome="ok"),
        Op(
            client=2,
            kind="cas",
            key="x",
            value=6,
            expected=5,
            invoke=2,
            ret=None,
            outcome="unknown",
        ),
        Op(client=3, kind="get", key="x", invoke=3, ret=None, outcome="unknown"),
    )
    rec.complete(c, "fail", result=RuntimeError("no leader"))
    assert rec.ops()[2].outcome == "fail"
    assert rec.ops()[2].ret == 5


def test_recorder_rejects_misuse() -> None:
    rec = HistoryRecorder(clock=FakeClock())
    h = rec.invoke(1, "cas", "x", 1, expected=0)
    with pytest.raises(ValueError, match="CasResult"):
        rec.complete(h, "ok", result=True)
    rec.complete(h, "ok", result=CasResult(True, 0))
    with pytest.raises(ValueError, match="twice"):
        rec.complete(h, "ok", result=CasResult(True, 0))
    with pytest.raises(ValueError, match="unknown op handle"):
        rec.complete(rec.invoke(1, "get", "x") + 1, "ok")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        rec.invoke(1, "append", "x")
    with pytest.raises(ValueError, match="outcome"):
        rec.complete(h, "maybe")


def test_op_validation() -> None:
    with pytest.raises(ValueError, match="ret=None"):
        Op(client=1, kind="get", key="x", invoke=0, ret=1, outcome="unknown")
    with pytest.raises(ValueError, match="needs a return time"):
        Op(client=1, kind="get", key="x", invoke=0, ret=None, outcome="ok")
    with pytest.raises(ValueError, match="before it is invoked"):
        Op(client=1, kind="get", key="x", invoke=2, ret=1, outcome="ok")


def test_recorder_from_many_threads_on_a_locked_dict_is_linearizable() -> None:
    """Real threads, a real (locked) store, the real clock: the recorded history of a
    correct store must check out, whatever the interleaving."""
    sm = KeyValueStateMachine(keep_history=False)
    lock = threading.Lock()
    rec = HistoryRecorder()
    index = itertools.count(1)

    def client(c: int) -> None:
        rng = random.Random(c)
        for n in range(200):
            key = rng.choice("ab")
            kind = rng.choice(["get", "put", "delete", "cas"])
            value = (c, n)
            expected = rng.choice([None, (c, n - 1)])  # swaps if our last write survived
            command = make_command(kind, key, value, expected)
            h = rec.invoke(c, kind, key, value if kind in ("put", "cas") else None, expected)
            with lock:
                result = sm.apply(Entry(1, next(index), EntryNormal(command)))
            rec.complete(h, "ok", result)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rec) == 800
    assert_linearizable(rec.ops())


def test_render_is_one_line_per_op_sorted_by_invoke() -> None:
    ops = [
        get(2, "x", 0.003, 0.004, 1),
        put(1, "x", 1, 0.0, 0.002),
        put(3, "x", 2, 0.001, None),
        failed(delete(4, "x", 0.0015, 0.0025)),
    ]
    lines = render(ops).splitlines()
    assert len(lines) == 4
    assert "c1" in lines[0] and "put(x, 1) -> None" in lines[0] and "+0.000ms" in lines[0]
    assert "c3" in lines[1] and "unknown" in lines[1] and lines[1].endswith("~>")
    assert "delete(x) failed" in lines[2] and "-" in lines[2].split("|")[1]
    assert "c2" in lines[3] and "+4.000ms" in lines[3]
    assert render([]) == "(no ops)"


# --- generated histories -----------------------------------------------------------------


@attrs.frozen
class Spec:
    """One op to simulate. Times are per client: ``gap`` after its previous op returned.

    ``fate`` is "ok", "fail" (never applied), "applied" or "lost" (unknown outcome, applied
    or not). ``at`` in [0, 1] places the effect inside the window; an unknown op that was
    applied may take effect up to three windows after its invoke.
    """

    client: int
    kind: str
    key: str
    value: Any
    expected: Any
    gap: float
    duration: float
    at: float
    fate: str


def make_command(kind: str, key: str, value: Any, expected: Any) -> KvCommand:
    if kind == "get":
        return Get(key)
    if kind == "put":
        return Put(key, value)
    if kind == "delete":
        return Delete(key)
    return CompareAndSet(key, expected, value)


def simulate(specs: Sequence[Spec]) -> list[Op]:
    """Run the specs on a real ``KeyValueStateMachine``, each at an instant of its window."""
    clocks: dict[int, float] = {}
    timed: list[tuple[float, float, float, Spec]] = []
    for spec in specs:
        invoke = clocks.get(spec.client, 0.0) + spec.gap
        ret = invoke + spec.duration
        clocks[spec.client] = ret  # an unknown op's client also moves on (a timeout)
        stretch = 3 if spec.fate == "applied" else 1
        timed.append((invoke, ret, invoke + spec.at * spec.duration * stretch, spec))
    sm = KeyValueStateMachine(keep_history=False)
    results: dict[int, Any] = {}
    effects = sorted(
        (at, n) for n, (_, _, at, s) in enumerate(timed) if s.fate in ("ok", "applied")
    )
    for index, (_, n) in enumerate(effects, start=1):
        s = timed[n][3]
        entry = Entry(1, index, EntryNormal(make_command(s.kind, s.key, s.value, s.expected)))
        results[n] = sm.apply(entry)
    ops = []
    for n, (invoke, ret, _, s) in enumerate(timed):
        known = s.fate in ("ok", "fail")
        ops.append(
            Op(
                client=s.client,
                kind=s.kind,
                key=s.key,
                value=s.value if s.kind in ("put", "cas") else None,
                expected=s.expected if s.kind == "cas" else None,
                invoke=invoke,
                ret=ret if known else None,
                outcome=s.fate if known else "unknown",
                result=results.get(n) if s.fate == "ok" else None,
            )
        )
    return ops


def random_history(
    seed: int,
    n_ops: int = 3000,
    clients: int = 5,
    keys: int = 5,
    unknown: float = 0.05,
    fail: float = 0.02,
    values: int | None = None,
) -> list[Op]:
    """A linearizable history of ``n_ops`` random ops.

    With ``values=None`` every write has a unique value (as Jepsen-style tests use);
    otherwise writes draw from ``values`` distinct values, which leaves the checker many
    equivalent orders to consider.
    """
    rng = random.Random(seed)
    specs = []
    for n in range(n_ops):
        key = f"k{rng.randrange(keys)}"
        kind = rng.choices(["get", "put", "delete", "cas"], weights=[4, 4, 1, 2])[0]
        value = n if values is None else rng.randrange(values)
        # Expect either a recently written value or a missing key, so some cas swap.
        expected = rng.choice([None, n - rng.randrange(1, 20)] if values is None else [None, value])
        r = rng.random()
        fate = "ok"
        if r < unknown:
            fate = rng.choice(["applied", "lost"])
        elif r < unknown + fail:
            fate = "fail"
        specs.append(
            Spec(
                client=rng.randrange(clients),
                kind=kind,
                key=key,
                value=value,
                expected=expected,
                gap=rng.expovariate(2.0),
                duration=rng.uniform(0.05, 3.0),
                at=rng.random(),
                fate=fate,
            )
        )
    return simulate(specs)


@pytest.mark.parametrize("seed", range(3))
def test_large_random_history_is_linearizable(seed: int) -> None:
    ops = random_history(seed)
    assert len(ops) == 3000
    assert sum(o.outcome == "unknown" for o in ops) > 100
    assert_linearizable(ops)


def test_large_history_with_few_distinct_values_is_linearizable() -> None:
    assert_linearizable(random_history(7, n_ops=1000, keys=2, values=3))


def test_large_history_with_one_stale_read_injected_is_caught() -> None:
    ops = random_history(11)
    # A read that started after a put returned, yet returns what that put overwrote.
    # Values are unique, so the overwritten value cannot come back by another write.
    index, stale = next(
        (n, attrs.evolve(later, result=p.result))
        for n, later in enumerate(ops)
        if later.kind == "get" and later.outcome == "ok"
        for p in ops[max(0, n - 30) : n]
        if p.kind == "put"
        and p.outcome == "ok"
        and p.key == later.key
        and p.result is not None
        and p.ret is not None
        and p.ret < later.invoke
        and later.result != p.result
    )
    assert_linearizable(ops)
    ops[index] = stale
    result = assert_not_linearizable(ops, key=stale.key)
    assert any(o is stale for o in result.ops)
    assert len(result.ops) < 40, result.explanation


def test_a_search_that_runs_out_of_budget_is_undecided_not_passed() -> None:
    """A history that needs some search: with a budget too small for it, the verdict is
    ``undecided`` (and not ok) for its key; with the default budget it is decided."""
    ops = random_history(7, n_ops=1000, keys=2, values=3)
    assert_linearizable(ops)
    result = check_kv(ops, budget=50)
    assert not result.ok and result.undecided and result.key in ("k0", "k1")
    assert "undecided: the search placed ops 50 times" in result.explanation
    assert not check_kv(ops).undecided


SPECS = st.builds(
    Spec,
    client=st.integers(0, 3),
    kind=st.sampled_from(["get", "put", "delete", "cas"]),
    key=st.sampled_from(["x", "y"]),
    value=st.integers(0, 2),
    expected=st.one_of(st.none(), st.integers(0, 2)),
    gap=st.integers(0, 3).map(float),  # integers make ties between events common
    duration=st.integers(0, 6).map(float),
    at=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
    fate=st.sampled_from(["ok", "ok", "ok", "ok", "fail", "applied", "lost"]),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(SPECS, max_size=40))
def test_executing_each_op_inside_its_window_is_linearizable(specs: list[Spec]) -> None:
    assert_linearizable(simulate(specs))


# --- cross-check against brute force -----------------------------------------------------


def brute_force(ops: Sequence[Op]) -> bool:
    """Try every real-time-respecting order of the ok ops plus any subset of the unknown
    ones, on a real ``KeyValueStateMachine``."""
    live = [o for o in ops if o.outcome != "fail"]
    oks = [o for o in live if o.outcome == "ok"]
    unknowns = [o for o in live if o.outcome == "unknown"]

    def precedes(a: Op, b: Op) -> bool:
        return a.ret is not None and a.ret < b.invoke

    def search(left: list[Op], state: dict[str, Any]) -> bool:
        if not left:
            return True
        for n, o in enumerate(left):
            if any(precedes(other, o) for other in left if other is not o):
                continue
            sm = KeyValueStateMachine(keep_history=False)
            sm.data = dict(state)
            command = make_command(o.kind, o.key, o.value, o.expected)
            result = sm.apply(Entry(1, 1, EntryNormal(command)))
            if o.outcome == "ok" and result != o.result:
                continue
            if search(left[:n] + left[n + 1 :], sm.data):
                return True
        return False

    return any(
        search(oks + [u for u, keep in zip(unknowns, mask, strict=True) if keep], {})
        for mask in itertools.product([False, True], repeat=len(unknowns))
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(SPECS, max_size=7), st.data())
def test_verdict_matches_brute_force(specs: list[Spec], data: st.DataObject) -> None:
    ops = simulate(specs)
    # Corrupt some ok results so that both verdicts occur.
    for n, o in enumerate(ops):
        if o.outcome == "ok" and data.draw(st.booleans()):
            wrong = data.draw(st.one_of(st.none(), st.integers(0, 2)))
            ops[n] = attrs.evolve(
                o, result=CasResult(o.result.swapped, wrong) if o.kind == "cas" else wrong
            )
    expected = brute_force(ops)
    result = check_kv(ops)
    assert result.ok == expected, render(ops) + "\n" + result.explanation


def reference_check(ops: Sequence[Op]) -> bool:
    """A plain memoized search over (remaining ops, value) for one key, with none of the
    checker's reductions, to cross-check them on histories too long for brute force."""
    live = [o for o in ops if o.outcome != "fail"]

    def apply(o: Op, value: Any) -> tuple[bool, Any]:
        sm = KeyValueStateMachine(keep_history=False)
        sm.data = {} if value is None else {o.key: value}
        result = sm.apply(
            Entry(1, 1, EntryNormal(make_command(o.kind, o.key, o.value, o.expected)))
        )
        return o.outcome != "ok" or result == o.result, sm.data.get(o.key)

    @functools.cache
    def search(remaining: frozenset[int], value: Any) -> bool:
        rets = [live[i].ret for i in remaining]
        finite = [r for r in rets if r is not None]
        if not finite:  # only unknown ops left: leave them out
            return True
        first_return = min(finite)
        for i in remaining:
            if live[i].invoke <= first_return:
                fits, after = apply(live[i], value)
                if fits and search(remaining - {i}, after):
                    return True
        return False

    return search(frozenset(range(len(live))), None)


@settings(max_examples=100, deadline=None)
@given(st.lists(SPECS.map(lambda s: attrs.evolve(s, key="x")), min_size=10, max_size=25), st.data())
def test_verdict_matches_a_plain_memoized_search(specs: list[Spec], data: st.DataObject) -> None:
    ops = simulate(specs)
    for _ in range(data.draw(st.integers(0, 2))):
        n = data.draw(st.integers(0, len(ops) - 1))
        if ops[n].outcome == "ok":
            wrong = data.draw(st.one_of(st.none(), st.integers(0, 2)))
            swapped = data.draw(st.booleans())
            result = CasResult(swapped, wrong) if ops[n].kind == "cas" else wrong
            ops[n] = attrs.evolve(ops[n], result=result)
    result = check_kv(ops)
    assert result.ok == reference_check(ops), render(ops) + "\n" + result.explanation
