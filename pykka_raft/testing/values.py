"""Application values for tests: a strict equality and a seeded generator of nested values.

The codec promises (``docs/codec.md``) that an accepted value reaches every node equal and
with the same types. Python's ``==`` cannot check that promise: ``1 == 1.0 == True``,
``(1,) != [1]`` is the only type it tells apart, and NaN is unequal to itself unless the
very same object is compared. :func:`same` is the equality the promise needs, and
:func:`random_value` draws values that exercise every accepted type, for the chaos mode
that writes them (``ChaosOptions(values=True)``).
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from pykka_raft.codec import encode, register_app_type

__all__ = ["ChaosValue", "canonical", "difference", "random_value", "same"]

_MISSING = object()


def same(a: Any, b: Any, dict_order: bool = True) -> bool:
    """``a`` and ``b`` are equal with equal types at every depth.

    NaN equals NaN, ``-0.0`` differs from ``0.0``, ``1`` from ``1.0`` and ``True``, a tuple
    from a list, and attrs instances are compared field by field. With ``dict_order``
    (the default) two dicts must also list their items in the same order, which the codec
    keeps; without it, dicts are compared as mappings (each item of one has an item of
    the other with a :func:`same` key and value, one to one).
    """
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y, dict_order) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        if len(a) != len(b):
            return False
        if dict_order:
            return all(
                same(ka, kb, dict_order) and same(va, vb, dict_order)
                for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
            )
        # Each item of a matches an item of b that no other item of a matched (two NaN
        # keys of a must not both match b's one).
        items = list(b.items())
        at = {key: i for i, (key, _) in enumerate(items)}  # found by hash and ==
        used: set[int] = set()
        for ka, va in a.items():
            i = at.get(ka, -1)
            if i >= 0 and i not in used and same((ka, va), items[i], False):
                used.add(i)
                continue
            # NaN keys, or an equal key of another type (1 and True): look at every item.
            found = next(
                (
                    j
                    for j, (kb, vb) in enumerate(items)
                    if j not in used and same(ka, kb, False) and same(va, vb, False)
                ),
                -1,
            )
            if found < 0:
                return False
            used.add(found)
        return True
    if attrs.has(type(a)):
        return all(
            same(getattr(a, f.name), getattr(b, f.name), dict_order) for f in attrs.fields(type(a))
        )
    return bool(a == b)


def difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where ``a`` and ``b`` first differ for :func:`same` (dict order aside), as a path
    and the two values there, e.g. ``.data['k'].payload[1]: (1,) vs [1]``; ``None`` if
    they do not differ."""
    if same(a, b, dict_order=False):
        return None
    here = path or "the value"
    if type(a) is not type(b):
        return f"{here}: {_short(a)} ({type(a).__name__}) vs {_short(b)} ({type(b).__name__})"
    if type(a) in (list, tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = difference(x, y, f"{path}[{i}]")
            if found is not None:
                return found
    if type(a) is dict:
        for key, value in a.items():
            match = next((k for k in b if same(k, key, False)), _MISSING)
            if match is _MISSING:
                return f"{path}[{_short(key)}]: only in the first"
            found = difference(value, b[match], f"{path}[{_short(key)}]")
            if found is not None:
                return found
        return f"{here}: the second has more keys"
    if attrs.has(type(a)):
        for field in attrs.fields(type(a)):
            found = difference(
                getattr(a, field.name), getattr(b, field.name), f"{path}.{field.name}"
            )
            if found is not None:
                return found
    return f"{here}: {_short(a)} vs {_short(b)}"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def canonical(value: Any) -> bytes:
    """A hashable form of an accepted value, equal for exactly the :func:`same` values
    (dict order included): the codec's ``encode`` form, which tags types and writes NaN
    as itself. The linearizability checker compares values through it in the values
    mode, where ``==`` would call two copies of a NaN different."""
    return encode(value, Any)


@register_app_type
@attrs.frozen
class ChaosValue:
    """A registered application class: what the values mode writes (a unique ``tag``, so
    that every write is told apart, and a random ``payload``), and a nested value itself.
    """

    tag: str
    payload: Any = None


_INTS = (0, 1, -1, 255, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1)
_BIG = (10**30, -(10**30), 2**100 + 1)
_FLOATS = (0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, math.nan, math.inf, -math.inf)
_TEXTS = ("", "a", "é", "日本", "🙂", "__tuple__", "__type__", "x" * 40)
_BYTES = (b"", b"\x00", b"\xff\xfe", b"bytes", bytes(range(16)))


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(_INTS) if rng.random() < 0.5 else rng.randrange(-1000, 1000)
    if kind == 3:
        return rng.choice(_BIG)
    if kind == 4:
        return rng.choice(_FLOATS) if rng.random() < 0.6 else rng.uniform(-1e6, 1e6)
    if kind == 5:
        return rng.choice(_TEXTS)
    if kind == 6:
        return rng.choice(_BYTES)
    return f"s{rng.randrange(100)}"


def _key(rng: random.Random) -> Any:
    """A dict key: any hashable accepted value (ints, big ints, floats, bytes, tuples...)."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.randrange(-50, 50)
    if kind == 1:
        return rng.choice(_BIG)
    if kind == 2:
        return rng.choice((1.5, -0.0, math.inf, -math.inf))
    if kind == 3:
        return rng.choice(_BYTES)
    if kind == 4:
        return (rng.randrange(5), rng.choice(_TEXTS))
    if kind == 5:
        return rng.choice((None, True, False))
    return rng.choice(_TEXTS)


def random_value(rng: random.Random, depth: int = 3) -> Any:
    """A random nested application value of the accepted types of ``docs/codec.md``.

    ``None``, bools, small, 64-bit edge and big ints, floats including NaN, the infinities
    and ``-0.0``, text with non-ASCII characters and codec tag names, bytes; tuples and
    lists (distinct), dicts with non-string keys, and :class:`ChaosValue` instances;
    nested at most ``depth`` containers deep, at most 4 items each.
    """
    if depth <= 0 or rng.random() < 0.4:
        return _scalar(rng)
    kind = rng.randrange(4)
    size = rng.randrange(5)
    if kind == 0:
        return tuple(random_value(rng, depth - 1) for _ in range(size))
    if kind == 1:
        return [random_value(rng, depth - 1) for _ in range(size)]
    if kind == 2:
        return {_key(rng): random_value(rng, depth - 1) for _ in range(size)}
    return ChaosValue(rng.choice(_TEXTS), random_value(rng, depth - 1))
