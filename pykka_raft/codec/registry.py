"""The registry of attrs classes that may appear in application data."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

from pykka_raft.codec.form import _MARKERS, _TYPE, _container_size, _str_size

T = TypeVar("T")


@attrs.frozen
class _AppType:
    cls: type
    name: str
    attributes: tuple[str, ...]  # what to read from an instance
    keys: tuple[str, ...]  # the keys of the primitive form, which are the __init__ names
    overhead: int  # msgpack bytes of the tag, the keys and the map header


_APP_TYPES: dict[str, _AppType] = {}
_APP_CLASSES: dict[type, _AppType] = {}


def register_app_type(cls: type[T]) -> type[T]:
    """Register an attrs class that may appear in application data (usable as a decorator).

    Its class name is its tag in the primitive form, so names must be unique. Every field
    must be settable through ``__init__`` (decoding calls ``cls(**fields)``, so validators
    and converters run again and must accept what they produced). Only this exact class is
    accepted, not its subclasses. Registering the same class again does nothing.

    Raises:
        TypeError: ``cls`` is not an attrs class, or a field cannot be set through
            ``__init__``.
        ValueError: another class with the same name is registered, or a field is named
            like one of the codec's tags.
    """
    klass: Any = cls  # attrs.has() would narrow cls itself to type[AttrsInstance]
    if not isinstance(klass, type) or not attrs.has(klass):
        raise TypeError(f"{getattr(klass, '__name__', klass)!r} is not an attrs class")
    known = _APP_TYPES.get(klass.__name__)
    if known is not None:
        if known.cls is not klass:
            raise ValueError(f"another application type is already named {klass.__name__}")
        return cls
    fields = attrs.fields(klass)
    for field in fields:
        if not field.init:
            raise TypeError(
                f"{klass.__name__}.{field.name} has init=False: decoding could not set it"
            )
        if field.alias in _MARKERS:
            raise ValueError(f"{klass.__name__}.{field.name} is named like a codec tag")
    keys = tuple(field.alias for field in fields)
    overhead = (
        _container_size(len(keys) + 1)
        + _str_size(len(_TYPE))
        + _str_size(len(klass.__name__.encode()))
        + sum(_str_size(len(key.encode())) for key in keys)
    )
    info = _AppType(klass, klass.__name__, tuple(field.name for field in fields), keys, overhead)
    _APP_TYPES[info.name] = info
    _APP_CLASSES[klass] = info
    return cls
