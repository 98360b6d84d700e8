"""The value walk: application values to the primitive form and back.

Exact types only: each accepted type has one form, so what comes back is equal and of the
same types; anything else is refused with the path inside the value (``docs/codec.md``).
"""

from __future__ import annotations

import reprlib
from typing import Any

from pykka_raft.codec.form import (
    _DICT,
    _HEX,
    _INT,
    _INT_MAX,
    _INT_MIN,
    _MARKERS,
    _SURROGATE,
    _TUPLE,
    _TYPE,
    MAX_DEPTH,
)
from pykka_raft.codec.refusals import (
    _bad_key,
    _bad_str,
    _index_segment,
    _key_segment,
    _not_accepted,
    _Refused,
    _too_deep,
    _value_segment,
)
from pykka_raft.codec.registry import _APP_CLASSES, _APP_TYPES
from pykka_raft.errors import DecodeError, EncodeError

# --- application values to primitives ----------------------------------------------------


def _plain_keys(mapping: dict[Any, Any]) -> bool:
    """True if a dict can be written as a JSON object: str keys, none of them a tag."""
    for key in mapping:
        if type(key) is not str or (not key.isascii() and _SURROGATE.search(key)):
            return False
    return _MARKERS.isdisjoint(mapping)


def _to_prim(value: Any, depth: int) -> Any:
    cls = type(value)
    if cls is str:
        if value.isascii() or not _SURROGATE.search(value):
            return value
        _bad_str(value)
    if cls is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        return {_INT: format(value, "x")}
    if cls is float or cls is bool or value is None or cls is bytes:
        return value
    if depth >= MAX_DEPTH:
        if cls in (list, tuple, dict) or cls in _APP_CLASSES:
            _too_deep(value)
        _not_accepted(value)
    depth += 1
    if cls is list:
        try:
            return [_to_prim(item, depth) for item in value]
        except _Refused as exc:
            raise exc.at(_index_segment(value, exc.child), value) from None
    if cls is tuple:
        try:
            return {_TUPLE: [_to_prim(item, depth) for item in value]}
        except _Refused as exc:
            raise exc.at(_index_segment(value, exc.child), value) from None
    if cls is dict:
        if _plain_keys(value):
            try:
                return {key: _to_prim(item, depth) for key, item in value.items()}
            except _Refused as exc:
                raise exc.at(_value_segment(value, exc.child), value) from None
        pairs = []
        for key, item in value.items():
            try:
                encoded_key = _to_prim(key, depth)
            except _Refused as exc:
                raise _bad_key(key, exc, value) from None
            try:
                pairs.append([encoded_key, _to_prim(item, depth)])
            except _Refused as exc:
                raise exc.at(_key_segment(key), value) from None
        return {_DICT: pairs}
    info = _APP_CLASSES.get(cls)
    if info is None:
        _not_accepted(value)
    out = {_TYPE: info.name}
    for attribute, key in zip(info.attributes, info.keys, strict=True):
        item = getattr(value, attribute)
        kind = type(item)
        # The scalars that _to_prim returns as they are, without the call (fields of
        # registered classes are mostly these: a command's key, a small value).
        if (
            (kind is str and item.isascii())
            or kind is bytes
            or kind is float
            or kind is bool
            or item is None
            or (kind is int and _INT_MIN <= item <= _INT_MAX)
        ):
            out[key] = item
            continue
        try:
            out[key] = _to_prim(item, depth)
        except _Refused as exc:
            raise exc.at(f".{key}", value) from None
    return out


def _encode_value(value: Any, root: str, depth: int = 0) -> Any:
    """``value`` in the primitive form; ``depth`` is where it starts (negative: levels of
    a wrapping record that do not count)."""
    try:
        return _to_prim(value, depth)
    except _Refused as exc:
        raise EncodeError(exc.path(root), exc.reason) from None


# --- primitives to application values ----------------------------------------------------


_SCALAR_TYPES = frozenset((str, int, float, bool, bytes, type(None)))


def _from_prim(prim: Any, depth: int) -> Any:
    cls = type(prim)
    if cls in _SCALAR_TYPES:
        return prim
    if cls is dict:
        if _INT in prim and len(prim) == 1:  # an int past 64 bits: a leaf, as when encoded
            return _from_tagged(prim, depth)
        if depth >= MAX_DEPTH:
            _too_deep(prim)
        if _TYPE in prim:
            return _from_app_type(prim, depth + 1)
        if _MARKERS.isdisjoint(prim):
            return _from_plain(prim, depth + 1)
        return _from_tagged(prim, depth + 1)
    if cls is list:
        if depth >= MAX_DEPTH:
            _too_deep(prim)
        try:
            return [_from_prim(item, depth + 1) for item in prim]
        except _Refused as exc:
            raise exc.at(_index_segment(prim, exc.child), prim) from None
    raise _Refused(prim, f"{cls.__name__} is not part of the primitive form")


def _from_plain(prim: dict[Any, Any], depth: int) -> dict[str, Any]:
    for key in prim:
        if type(key) is not str:
            raise _Refused(prim, f"a plain dict has a key of type {type(key).__name__}")
    try:
        return {key: _from_prim(item, depth) for key, item in prim.items()}
    except _Refused as exc:
        raise exc.at(_value_segment(prim, exc.child), prim) from None


def _from_tagged(prim: dict[str, Any], depth: int) -> Any:
    if len(prim) != 1:
        raise _Refused(prim, f"a tagged value has extra keys: {sorted(map(str, prim))}")
    if _TUPLE in prim:
        items = prim[_TUPLE]
        if type(items) is not list:
            raise _Refused(prim, "a tagged tuple does not hold a list")
        try:
            return tuple([_from_prim(item, depth) for item in items])
        except _Refused as exc:
            raise exc.at(_index_segment(items, exc.child), prim) from None
    if _DICT in prim:
        return _from_pairs(prim, depth)
    if _INT in prim:
        text = prim[_INT]
        if type(text) is not str or not _HEX.fullmatch(text):
            raise _Refused(prim, f"a tagged int is not a hex string: {text!r}")
        return int(text, 16)
    raise _Refused(prim, "a bytes tag is left in the primitive form")


def _from_pairs(prim: dict[str, Any], depth: int) -> dict[Any, Any]:
    pairs = prim[_DICT]
    if type(pairs) is not list:
        raise _Refused(prim, "a tagged dict does not hold a list of pairs")
    out: dict[Any, Any] = {}
    for pair in pairs:
        if type(pair) is not list or len(pair) != 2:
            raise _Refused(
                prim, f"a tagged dict holds {reprlib.repr(pair)}, not a [key, value] pair"
            )
        try:
            key = _from_prim(pair[0], depth)
        except _Refused as exc:
            raise _bad_key(pair[0], exc, prim) from None
        try:
            value = _from_prim(pair[1], depth)
        except _Refused as exc:
            raise exc.at(_key_segment(key), prim) from None
        try:
            if key in out:
                raise _Refused(prim, f"the dict key {reprlib.repr(key)} appears twice")
            out[key] = value
        except TypeError as exc:
            raise _Refused(prim, f"a dict key is not hashable: {exc}") from None
    return out


def _from_app_type(prim: dict[str, Any], depth: int) -> Any:
    name = prim[_TYPE]
    info = _APP_TYPES.get(name) if type(name) is str else None
    if info is None:
        raise _Refused(prim, f"unknown application type {name!r}: register it first")
    fields: dict[str, Any] = {}
    for key, item in prim.items():
        if key == _TYPE:
            continue
        if type(item) in _SCALAR_TYPES:  # what _from_prim returns as it is
            fields[key] = item
            continue
        try:
            fields[key] = _from_prim(item, depth)
        except _Refused as exc:
            raise exc.at(f".{key}", prim) from None
    try:
        return info.cls(**fields)
    except Exception as exc:  # the class's own __init__, validators and converters
        raise _Refused(prim, f"{name}(...) refused its fields: {exc}") from None


def _decode_value(prim: Any, root: str, depth: int = 0) -> Any:
    try:
        return _from_prim(prim, depth)
    except _Refused as exc:
        raise DecodeError(f"{exc.path(root)}: {exc.reason}") from None
