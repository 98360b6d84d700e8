"""Refusals of application values and the path inside the value that they name."""

from __future__ import annotations

import json
import reprlib
from typing import Any, NoReturn

import attrs

from pykka_raft.codec.form import _ACCEPTED, MAX_DEPTH
from pykka_raft.codec.registry import _APP_CLASSES


class _Refused(Exception):
    """A value (or primitive) is refused; each container on the way adds its segment.

    ``child`` is the object whose position the next container up must find (by
    identity), so the fast paths need no bookkeeping until something fails.
    """

    def __init__(self, child: Any, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.child = child
        self.segments: list[str] = []

    def at(self, segment: str, parent: Any) -> _Refused:
        self.segments.append(segment)
        self.child = parent
        return self

    def path(self, root: str) -> str:
        return root + "".join(reversed(self.segments))


def _key_segment(key: Any) -> str:
    return f"[{json.dumps(key)}]" if type(key) is str else f"[{key!r}]"


def _index_segment(items: Any, child: Any) -> str:
    for i, item in enumerate(items):
        if item is child:
            return f"[{i}]"
    return "[?]"  # pragma: no cover  (the child came from these items)


def _value_segment(mapping: Any, child: Any) -> str:
    for key, item in mapping.items():
        if item is child:
            return _key_segment(key)
    return "[?]"  # pragma: no cover


def _bad_key(key: Any, exc: _Refused, mapping: Any) -> _Refused:
    """The refusal of a dict key: the path is the dict's, the key is named in the reason."""
    refused = _Refused(mapping, f"the dict key {reprlib.repr(key)}: {exc.reason}")
    return refused.at("", mapping)


def _not_accepted(value: Any) -> NoReturn:
    cls = type(value)
    if attrs.has(cls):
        name = f"{cls.__module__}.{cls.__qualname__}"
        base = next((b for b in cls.__mro__[1:] if b in _APP_CLASSES), None)
        hint = (
            f"a subclass of the registered {base.__qualname__} is not accepted by itself"
            if base is not None
            else "it is not registered"
        )
        raise _Refused(
            value,
            f"attrs class {name}: {hint}; register it with "
            f"pykka_raft.register_app_type({cls.__qualname__}) to use it",
        )
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    raise _Refused(value, f"type {name} is not accepted; {_ACCEPTED}")


def _too_deep(value: Any) -> NoReturn:
    raise _Refused(value, f"nested deeper than {MAX_DEPTH} levels (or contains itself)")


def _bad_str(value: Any) -> NoReturn:
    raise _Refused(value, "str holds a lone surrogate, which is not valid UTF-8")
