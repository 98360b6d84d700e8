"""The explanation of a failed linearizability search: the op that could not be placed,
the state at that point, the writes that could have explained it, and a timeline."""

from __future__ import annotations

from typing import Any

from pykka_raft.testing.history import Op, render
from pykka_raft.testing.linearizability_model import (
    _NONE_ID,
    _SAME,
    LinearizabilityResult,
    _Interner,
    _KeyModel,
    _Stuck,
)

_CONTEXT_OPS = 3  # linearized ops shown before the point where the search got stuck
_WRITERS_SHOWN = 3
_PENDING_SHOWN = 6


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
