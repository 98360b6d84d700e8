"""The leader's check of an application value: the accepted types and the encoded size,
in one walk that refuses exactly what the value walk refuses."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from pykka_raft.codec.form import (
    _INT_MAX,
    _INT_MIN,
    _TAGGED_DICT,
    _TAGGED_INT,
    _TAGGED_TUPLE,
    MAX_DEPTH,
    _bin_size,
    _container_size,
    _int_size,
    _str_size,
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
from pykka_raft.codec.registry import _APP_CLASSES, _AppType
from pykka_raft.codec.values import _plain_keys
from pykka_raft.errors import EncodeError, EntryTooLarge


def _text_size(value: str) -> int:
    if value.isascii():
        return _str_size(len(value))
    try:
        return _str_size(len(value.encode("utf-8")))
    except UnicodeEncodeError:
        _bad_str(value)


def _size(value: Any, depth: int) -> int:
    """The msgpack size of ``_to_prim(value)``, refusing exactly what ``_to_prim`` refuses.

    The loops over the items of a container and the fields of a registered class size
    ASCII strings and ``None``/``bool`` in line, the common leaves of a client write, and
    call ``_size`` for everything else (which decides any refusal, as it always did).
    """
    cls = type(value)
    if cls is str:
        return _text_size(value)
    if cls is int:
        if _INT_MIN <= value <= _INT_MAX:
            return _int_size(value)
        return _TAGGED_INT + _str_size(len(format(value, "x")))
    if cls is float:
        return 9
    if cls is bool or value is None:
        return 1
    if cls is bytes:
        return _bin_size(len(value))
    if depth >= MAX_DEPTH:
        if cls in (list, tuple, dict) or cls in _APP_CLASSES:
            _too_deep(value)
        _not_accepted(value)
    depth += 1
    if cls is list or cls is tuple:
        n = len(value)
        total = 1 if n < 16 else 3 if n < 65536 else 5  # _container_size
        try:
            for item in value:
                kind = type(item)
                if kind is str and item.isascii():
                    n = len(item)
                    total += n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
                elif item is None or kind is bool:
                    total += 1
                else:
                    total += _size(item, depth)
        except _Refused as exc:
            raise exc.at(_index_segment(value, exc.child), value) from None
        return total + _TAGGED_TUPLE if cls is tuple else total
    if cls is dict:
        if _plain_keys(value):
            try:
                return _container_size(len(value)) + sum(
                    [_text_size(key) + _size(item, depth) for key, item in value.items()]
                )
            except _Refused as exc:
                raise exc.at(_value_segment(value, exc.child), value) from None
        total = _TAGGED_DICT + _container_size(len(value))
        for key, item in value.items():
            try:
                total += 1 + _size(key, depth)  # 1: the header of the [key, value] pair
            except _Refused as exc:
                raise _bad_key(key, exc, value) from None
            try:
                total += _size(item, depth)
            except _Refused as exc:
                raise exc.at(_key_segment(key), value) from None
        return total
    info = _APP_CLASSES.get(cls)
    if info is None:
        _not_accepted(value)
    return _fields_size(value, info, depth)


_FIELDS: dict[type, tuple[_AppType, Callable[[Any], tuple[Any, ...]]]] = {}
"""Per registered class: its registry entry and a getter of all its fields at once."""


def _fields_getter(info: _AppType) -> Callable[[Any], tuple[Any, ...]]:
    names = info.attributes
    getter: Callable[[Any], tuple[Any, ...]]
    if len(names) >= 2:
        getter = operator.attrgetter(*names)
    elif names:
        one = operator.attrgetter(names[0])
        getter = lambda value: (one(value),)  # noqa: E731
    else:
        getter = lambda value: ()  # noqa: E731
    _FIELDS[info.cls] = (info, getter)
    return getter


def _fields_size(value: Any, info: _AppType, depth: int) -> int:
    """The size of a registered class's instance whose fields are at ``depth``."""
    cached = _FIELDS.get(info.cls)
    try:
        if cached is not None and cached[0] is info:
            values = cached[1](value)
        else:
            values = _fields_getter(info)(value)
    except AttributeError:  # a field deleted from the instance: read them one by one
        values = None
    total = info.overhead
    if values is None:
        for attribute, key in zip(info.attributes, info.keys, strict=True):
            try:
                total += _size(getattr(value, attribute), depth)
            except _Refused as exc:
                raise exc.at(f".{key}", value) from None
        return total
    # No zip(strict=True) here: its keyword alone costs more than sizing two strings.
    for item in values:
        kind = type(item)
        if kind is str and item.isascii():
            n = len(item)
            total += n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)
        elif item is None or kind is bool:
            total += 1
        else:
            try:
                total += _size(item, depth)
            except _Refused as exc:
                # The first field holding this object: sizing is deterministic, so an
                # earlier field holding the same object would have been refused first.
                key = next(k for k, v in zip(info.keys, values, strict=True) if v is item)
                raise exc.at(f".{key}", value) from None
    return total


def encoded_size(value: Any, root: str = "data") -> int:
    """The size in bytes of ``value``'s primitive form packed by msgpack.

    Computed without encoding (only non-ASCII strings are encoded to count their UTF-8
    bytes). Raises :class:`~pykka_raft.errors.EncodeError`, naming the path below
    ``root``, for exactly the values :func:`to_primitive` refuses.
    """
    try:
        info = _APP_CLASSES.get(type(value))
        if info is not None:  # the common case: a registered class, at depth 0
            return _fields_size(value, info, 1)
        return _size(value, 0)
    except _Refused as exc:
        raise EncodeError(exc.path(root), exc.reason) from None


def check_app_value(value: Any, max_bytes: int | None = None, root: str = "data") -> int:
    """Check an application value the way a leader does before appending it.

    Pure and cheap: one walk over the value that accepts exactly what the codec accepts
    and adds up its msgpack size. Returns that size.

    Raises:
        EncodeError: the value holds something the codec refuses (the message names the
            path below ``root``, e.g. ``data.value[3]["k"]``).
        EntryTooLarge: the size exceeds ``max_bytes`` (``Config.max_entry_bytes``).
    """
    try:
        info = _APP_CLASSES.get(type(value))
        size = _size(value, 0) if info is None else _fields_size(value, info, 1)
    except _Refused as exc:
        raise EncodeError(exc.path(root), exc.reason) from None
    if max_bytes is not None and size > max_bytes:
        raise EntryTooLarge(size, max_bytes)
    return size
