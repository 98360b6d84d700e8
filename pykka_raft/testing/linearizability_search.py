"""The memoized depth-first search of
:func:`~pykka_raft.testing.linearizability.check_kv` (Wing & Gong with Lowe's just-in-time
linearization; the module docstring there explains the pruning)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from pykka_raft.testing.history import Op
from pykka_raft.testing.linearizability_model import _NONE_ID, _KeyModel, _OutOfBudget, _Stuck

_Path: TypeAlias = "tuple[int, _Path] | None"


def _search(ops: Sequence[Op], model: _KeyModel, n_ok: int, budget: int) -> _Stuck | None:
    """The memoized depth-first search over the event list; ``None`` on success. Raises
    ``_OutOfBudget`` after placing an op ``budget`` times."""
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
            budget -= 1
            if budget < 0:
                raise _OutOfBudget
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
