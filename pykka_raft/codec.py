"""One cattrs converter for every message, and the registry of application data types.

``to_primitive`` turns any message into dicts, lists and scalars (ready for JSON or
msgpack) and ``from_primitive`` turns them back, raising :class:`DecodeError` on malformed
input. Unions are tagged with a ``"type"`` key. Application values inside
``EntryNormal.data`` and ``ClientPayloadResponse.data`` are tagged with their registered
class name (see :func:`register_app_type`).
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.strategies import configure_tagged_union

from pykka_raft.errors import DecodeError
from pykka_raft.messages import EntryPayload, RpcRequest, RpcResponse

T = TypeVar("T")

_TYPE = "__type__"
_TUPLE = "__tuple__"
_DICT = "__dict__"
_RESERVED = (_TYPE, _TUPLE, _DICT)
_APP_TYPES: dict[str, type] = {}

converter = cattrs.Converter()
"""The converter: use it, or the functions below, for every message."""


def register_app_type(cls: type) -> type:
    """Register an attrs class that may appear as application data (usable as a decorator).

    Its class name is its tag on the wire; names must be unique.
    """
    if not attrs.has(cls):
        raise TypeError(f"{cls.__name__} is not an attrs class")
    known = _APP_TYPES.get(cls.__name__)
    if known is not None and known is not cls:
        raise ValueError(f"another application type is already named {cls.__name__}")
    _APP_TYPES[cls.__name__] = cls
    return cls


def _unstructure_value(value: Any) -> Any:
    cls = type(value)
    if _APP_TYPES.get(cls.__name__) is cls:
        fields = {f.name: _unstructure_value(getattr(value, f.name)) for f in attrs.fields(cls)}
        return {_TYPE: cls.__name__, **fields}
    if isinstance(value, tuple):
        return {_TUPLE: [_unstructure_value(v) for v in value]}
    if isinstance(value, list):
        return [_unstructure_value(v) for v in value]
    if isinstance(value, dict):
        plain = {k: _unstructure_value(v) for k, v in value.items()}
        # A user dict that uses one of our markers as a key is escaped, not misread.
        return {_DICT: plain} if any(k in value for k in _RESERVED) else plain
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    raise TypeError(
        f"cannot serialize application value of type {cls.__name__}: register it with "
        "pykka_raft.codec.register_app_type"
    )


def _structure_value(value: Any, _: Any = None) -> Any:
    if isinstance(value, dict):
        if _TYPE in value:
            name = value[_TYPE]
            cls = _APP_TYPES.get(name)
            if cls is None:
                raise DecodeError(f"unknown application type {name!r}: register it first")
            fields = {k: _structure_value(v) for k, v in value.items() if k != _TYPE}
            return cls(**fields)
        if _TUPLE in value:
            return tuple(_structure_value(v) for v in value[_TUPLE])
        if _DICT in value:
            return {k: _structure_value(v) for k, v in value[_DICT].items()}
        return {k: _structure_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_structure_value(v) for v in value]
    return value


def _strict(kind: type) -> Any:
    def structure(value: Any, _: Any) -> Any:
        # cattrs would call int(x) / bool(x): "false" must not become True, 1.7 not 1.
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


for _kind in (int, bool, str, bytes):
    converter.register_structure_hook(_kind, _strict(_kind))
converter.register_unstructure_hook_func(lambda t: t is Any, _unstructure_value)
converter.register_structure_hook_func(lambda t: t is Any, _structure_value)
configure_tagged_union(EntryPayload, converter, tag_name="type")
configure_tagged_union(RpcRequest, converter, tag_name="type")
configure_tagged_union(RpcResponse, converter, tag_name="type")


def to_primitive(message: Any, as_type: Any = None) -> Any:
    """Unstructure ``message`` (as ``as_type`` if given, e.g. a union) into primitives."""
    return converter.unstructure(message, unstructure_as=as_type or type(message))


def from_primitive(data: Any, cls: type[T] | Any) -> T:
    """Structure primitives into ``cls``; malformed input raises :class:`DecodeError`."""
    try:
        result: T = converter.structure(data, cls)
    except DecodeError:
        raise
    except Exception as exc:  # cattrs raises many kinds of errors
        name = getattr(cls, "__name__", str(cls))
        raise DecodeError(f"cannot decode {name}: {'; '.join(_causes(exc))}") from exc
    return result


def _causes(exc: BaseException) -> list[str]:
    """Readable causes of a cattrs error, keeping our own DecodeError messages."""
    if isinstance(exc, cattrs.BaseValidationError):
        ours = [str(e) for e in _leaves(exc) if isinstance(e, DecodeError)]
        return ours + cattrs.transform_error(exc)
    return [repr(exc)]


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, cattrs.BaseValidationError):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


_BYTES = "__bytes__"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _json_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES in obj:
        return base64.b64decode(obj[_BYTES])
    return obj


def encode(message: Any, as_type: Any = None) -> bytes:
    """``message`` as bytes, for storages and snapshots (stdlib only; see ``decode``)."""
    return json.dumps(to_primitive(message, as_type), default=_json_default).encode()


def decode(data: bytes, cls: type[T] | Any) -> T:
    """The message ``encode`` turned into ``data``; malformed input raises DecodeError."""
    try:
        primitive = json.loads(data, object_hook=_json_object)
    except ValueError as exc:
        raise DecodeError(f"cannot decode {getattr(cls, '__name__', cls)}: {exc}") from exc
    result: T = from_primitive(primitive, cls)
    return result


def check_app_value(value: Any, max_bytes: int | None = None) -> None:
    """Raise unless the codec can carry ``value`` as application data (within
    ``max_bytes`` encoded bytes): what a leader checks before it appends a client write."""
    size = len(encode(value, Any))
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"the value takes {size} bytes encoded, over the limit of {max_bytes}")
