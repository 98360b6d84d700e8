"""The testing package's value tools: the generator of the values mode, the strict equality
and its explanation, the checker's canonical comparison, and the monitors over dumps."""

from __future__ import annotations

import math
import random
from typing import Any

from pykka_raft.codec import check_app_value, decode, encode
from pykka_raft.messages import Entry, EntryNormal, HardState
from pykka_raft.statemachine import CasResult, Put
from pykka_raft.storage import StorageDump
from pykka_raft.testing.chaos_options import ChaosOptions
from pykka_raft.testing.chaos_workload import Workload
from pykka_raft.testing.history import HistoryRecorder, Op
from pykka_raft.testing.linearizability import check_kv
from pykka_raft.testing.monitors import check_dumps, log_matching, state_machines_agree
from pykka_raft.testing.plugs import AppliedHistory
from pykka_raft.testing.values import ChaosValue, canonical, difference, random_value, same


def _walk(value: Any, seen: set[str]) -> None:
    kind = type(value).__name__
    if type(value) is float and math.isnan(value):
        kind = "nan"
    elif type(value) is int and abs(value) >= 2**64:
        kind = "big int"
    seen.add(kind)
    if type(value) in (list, tuple):
        for item in value:
            _walk(item, seen)
    elif type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                seen.add("non-str key")
            _walk(key, seen)
            _walk(item, seen)
    elif type(value) is ChaosValue:
        _walk(value.payload, seen)


def test_random_values_cover_the_accepted_types_and_survive_the_codec() -> None:
    rng = random.Random(5)
    seen: set[str] = set()
    for _ in range(400):
        value = random_value(rng)
        _walk(value, seen)
        check_app_value(value)  # accepted: the leader would append it
        back = decode(encode(value, Any), Any)
        assert same(back, value), (value, back)
    wanted = {"NoneType", "bool", "int", "big int", "float", "nan", "str", "bytes"}
    wanted |= {"tuple", "list", "dict", "non-str key", "ChaosValue"}
    assert wanted <= seen, wanted - seen


def test_same_and_difference_tell_types_apart() -> None:
    assert same({"a": (1, math.nan)}, {"a": (1, math.nan)})
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert same({"a": 1, "b": 2}, {"b": 2, "a": 1}, dict_order=False)
    assert not same({1: "x"}, {True: "x"}, dict_order=False)
    assert not same({1.5: 1}, {1.5: 1.0}, dict_order=False)
    # Item by item, one to one: both NaN keys of the first must not match the second's one.
    nans = {float("nan"): 1, float("nan"): 1}
    assert not same(nans, {float("nan"): 1, "k": 2}, dict_order=False)
    assert difference(nans, {float("nan"): 1, "k": 2}) is not None
    assert same(nans, {float("nan"): 1, float("nan"): 1}, dict_order=False)
    assert difference({"k": ChaosValue("t", (1, [2]))}, {"k": ChaosValue("t", (1, (2,)))}) == (
        "['k'].payload[1]: [2] (list) vs (2,) (tuple)"
    )
    assert difference({"k": 1}, {"k": 1}) is None
    assert difference({"k": 1}, {"j": 1}) == "['k']: only in the first"


def _op(kind: str, value: Any, result: Any, t: float, key: str = "k") -> Op:
    return Op(client=1, kind=kind, key=key, value=value, invoke=t, ret=t + 0.5, outcome="ok",
              result=result)  # fmt: skip


def test_the_checker_compares_values_through_their_canonical_form() -> None:
    """A NaN read back is a different object: ``==`` calls the history wrong, the
    canonical form does not; and a list read back where a tuple was written is wrong."""
    written = ChaosValue("c1-1", (1.0, math.nan))
    read = decode(encode(written, Any), Any)
    history = [_op("put", written, None, 0.0), _op("get", None, read, 1.0)]
    assert not check_kv(history).ok
    assert check_kv(history, canonical).ok
    changed = ChaosValue("c1-1", [1.0, math.nan])
    assert not check_kv([history[0], _op("get", None, changed, 1.0)], canonical).ok


def _dump(applied: int, state: Any, log: tuple[Entry, ...] = ()) -> StorageDump:
    return StorageDump(HardState(1, 1), log, applied, state)


def test_state_machines_are_compared_between_nodes_at_the_same_index() -> None:
    dumps = {1: _dump(5, {"k": (1,)}), 2: _dump(5, {"k": [1]}), 3: _dump(4, {"k": "old"})}
    problems = state_machines_agree(dumps)
    assert len(problems) == 1 and "nodes 1 and 2 applied through index 5" in problems[0]
    assert "['k']: (1,) (tuple) vs [1] (list)" in problems[0]
    nans = {1: _dump(5, {"k": float("nan")}), 2: _dump(5, {"k": float("nan")})}
    assert state_machines_agree(nans) == []  # two NaN objects, equal all the same


def test_the_dump_monitors_use_an_applied_history_when_there_is_one() -> None:
    put = Put("k", ChaosValue("t", math.nan))
    history_a = AppliedHistory({"k": put.value}, ((1, put),))
    history_b = AppliedHistory({"k": put.value}, ((1, Put("k", 1)),))
    problems = check_dumps([], {1: _dump(1, history_a), 2: _dump(1, history_b)}, {})
    assert any("applied different entries" in p for p in problems)
    nan_entry = Entry(1, 1, EntryNormal(put))
    copy = Entry(1, 1, EntryNormal(decode(encode(put, Any), Any)))
    assert log_matching({1: [nan_entry], 2: [copy]}) == []  # equal entries, NaN and all


def test_a_stale_read_must_return_a_value_written_before_it() -> None:
    """STALE reads promise no recency, but a value nobody wrote, or wrote only later, is
    still wrong: an answered compare-and-set that did not swap wrote nothing."""
    clock = [0.0]
    workload = Workload(None, 1, ChaosOptions(clients=0))  # type: ignore[arg-type]
    workload.recorder = HistoryRecorder(clock=lambda: clock[0])

    def record(kind: str, value: Any, result: Any, at: float) -> None:
        clock[0] = at
        handle = workload.recorder.invoke(1, kind, "k", value)
        workload.recorder.complete(handle, "ok", result)

    record("cas", "c1-7", CasResult(False, None), 1.0)  # answered: did not swap
    record("put", "c0-2", None, 1.0)
    record("put", "c0-9", "c0-2", 5.0)  # written after the read below was answered
    workload.stale = [("k", "c0-2", 2.0), ("k", "c1-7", 2.0), ("k", "c0-9", 3.0), ("k", None, 3.0)]
    problems = workload.read_problems()
    assert len(problems) == 2, problems
    assert "'c1-7'" in problems[0] and "'c0-9'" in problems[1]
