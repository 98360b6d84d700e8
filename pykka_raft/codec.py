"""One cattrs converter for every message, and the one rule for application data.

``to_primitive`` turns any message into dicts, lists and scalars and ``from_primitive``
turns them back, raising :class:`~pykka_raft.errors.DecodeError` on malformed input.
Unions are tagged with a ``"type"`` key.

Application values (``EntryNormal.data``, ``ClientPayloadResponse.data`` and any field
typed ``Any``) follow one rule, described in ``docs/codec.md``: a value made of the
accepted types (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``tuple``,
``list``, ``dict`` and attrs classes registered with :func:`register_app_type`, exact types
only) comes back from the primitive form equal and with the same types; anything else is
refused with :class:`~pykka_raft.errors.EncodeError` naming the path inside the value.
The primitive form holds only ``None``, ``bool``, ``int`` within 64 bits, ``float``,
``str`` (valid UTF-8), ``bytes``, lists and dicts with ``str`` keys, so msgpack carries it
as it is and :func:`encode` carries it as JSON (bytes tagged). A leader checks each client
payload with :func:`check_app_value` before it appends it, so a value that the codec would
refuse never reaches a log.
"""

from __future__ import annotations

import base64
import json
import re
import reprlib
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import attrs
import cattrs
from cattrs.strategies import configure_tagged_union
from cattrs.v import format_exception

from pykka_raft.errors import DecodeError, EncodeError, EntryTooLarge, RaftError
from pykka_raft.messages import EntryNormal, EntryPayload, RpcRequest, RpcResponse

T = TypeVar("T")

_TYPE = "__type__"
_TUPLE = "__tuple__"
_DICT = "__dict__"
_INT = "__int__"
_BYTES = "__bytes__"
_MARKERS = frozenset((_TYPE, _TUPLE, _DICT, _INT, _BYTES))
"""Keys the primitive form uses as tags; a user dict holding one is written as pairs."""

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
"""msgpack carries ints in [-2**63, 2**64 - 1]; others are tagged as hex strings."""

MAX_DEPTH = 100
"""The deepest nesting of containers (and registered classes) an application value may have.

Bounds the recursion of every encoder and decoder on the way (the JSON and msgpack
decoders included), and refuses self-containing values.
"""

_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX = re.compile("-?[0-9a-f]+")
_ACCEPTED = (
    "accepted are None, bool, int, float, str, bytes, tuple, list, dict and attrs classes "
    "registered with pykka_raft.register_app_type (exact types, not subclasses)"
)

converter = cattrs.Converter()
"""The converter: use it, or the functions below, for every message."""


# --- the registry of application classes -------------------------------------------------


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


# --- refusals and their paths ------------------------------------------------------------


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
        try:
            out[key] = _to_prim(getattr(value, attribute), depth)
        except _Refused as exc:
            raise exc.at(f".{key}", value) from None
    return out


def _encode_value(value: Any, root: str) -> Any:
    try:
        return _to_prim(value, 0)
    except _Refused as exc:
        raise EncodeError(exc.path(root), exc.reason) from None


# --- the leader's check: accepted types and size -----------------------------------------


def _str_size(n: int) -> int:
    """msgpack bytes of a str whose UTF-8 form has ``n`` bytes."""
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)


def _bin_size(n: int) -> int:
    return n + (2 if n < 256 else 3 if n < 65536 else 5)


def _container_size(count: int) -> int:
    """msgpack bytes of an array or map header."""
    return 1 if count < 16 else 3 if count < 65536 else 5


def _int_size(value: int) -> int:
    if value >= 0:
        return (
            1
            if value < 128
            else 2
            if value < 256
            else 3
            if value < 65536
            else (5 if value < 4294967296 else 9)
        )
    return (
        1
        if value >= -32
        else 2
        if value >= -128
        else 3
        if value >= -32768
        else (5 if value >= -2147483648 else 9)
    )


_TAGGED_INT = _container_size(1) + _str_size(len(_INT))
_TAGGED_TUPLE = _container_size(1) + _str_size(len(_TUPLE))
_TAGGED_DICT = _container_size(1) + _str_size(len(_DICT))


def _text_size(value: str) -> int:
    if value.isascii():
        return _str_size(len(value))
    try:
        return _str_size(len(value.encode("utf-8")))
    except UnicodeEncodeError:
        _bad_str(value)


def _size(value: Any, depth: int) -> int:
    """The msgpack size of ``_to_prim(value)``, refusing exactly what ``_to_prim`` refuses."""
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
        try:
            total = _container_size(len(value)) + sum([_size(item, depth) for item in value])
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
    total = info.overhead
    for attribute, key in zip(info.attributes, info.keys, strict=True):
        try:
            total += _size(getattr(value, attribute), depth)
        except _Refused as exc:
            raise exc.at(f".{key}", value) from None
    return total


def encoded_size(value: Any, root: str = "data") -> int:
    """The size in bytes of ``value``'s primitive form packed by msgpack.

    Computed without encoding (only non-ASCII strings are encoded to count their UTF-8
    bytes). Raises :class:`~pykka_raft.errors.EncodeError`, naming the path below
    ``root``, for exactly the values :func:`to_primitive` refuses.
    """
    try:
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
    size = encoded_size(value, root)
    if max_bytes is not None and size > max_bytes:
        raise EntryTooLarge(size, max_bytes)
    return size


# --- primitives to application values ----------------------------------------------------


_SCALAR_TYPES = frozenset((str, int, float, bool, bytes, type(None)))


def _from_prim(prim: Any, depth: int) -> Any:
    cls = type(prim)
    if cls in _SCALAR_TYPES:
        return prim
    if cls is dict:
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
        try:
            fields[key] = _from_prim(item, depth)
        except _Refused as exc:
            raise exc.at(f".{key}", prim) from None
    try:
        return info.cls(**fields)
    except Exception as exc:  # the class's own __init__, validators and converters
        raise _Refused(prim, f"{name}(...) refused its fields: {exc}") from None


def _decode_value(prim: Any, root: str) -> Any:
    try:
        return _from_prim(prim, 0)
    except _Refused as exc:
        raise DecodeError(f"{exc.path(root)}: {exc.reason}") from None


# --- the converter -----------------------------------------------------------------------


def _strict(kind: type) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        # cattrs would call int(x) / bool(x): "false" must not become True, 1.7 not 1.
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _structure_entry_normal(prim: Any, _: Any) -> EntryNormal:
    if type(prim) is not dict:
        raise DecodeError(f"expected a dict, got {type(prim).__name__}")
    if "data" not in prim:
        raise DecodeError("the field 'data' is missing")
    return EntryNormal(_decode_value(prim["data"], "data"))


for _kind in (int, bool, str, bytes):
    converter.register_structure_hook(_kind, _strict(_kind))
converter.register_unstructure_hook_func(lambda t: t is Any, lambda v: _encode_value(v, "value"))
converter.register_structure_hook_func(lambda t: t is Any, lambda p, _: _decode_value(p, "value"))
# EntryNormal is on every hot path (log writes, AppendEntries): a direct hook, which also
# names the root of a refused value "data".
converter.register_unstructure_hook(EntryNormal, lambda e: {"data": _encode_value(e.data, "data")})
converter.register_structure_hook(EntryNormal, _structure_entry_normal)
configure_tagged_union(EntryPayload, converter, tag_name="type")
configure_tagged_union(RpcRequest, converter, tag_name="type")
configure_tagged_union(RpcResponse, converter, tag_name="type")


def to_primitive(message: Any, as_type: Any = None) -> Any:
    """Unstructure ``message`` (as ``as_type`` if given, e.g. a union) into primitives.

    Raises:
        EncodeError: an application value inside holds something the codec refuses.
    """
    return converter.unstructure(message, unstructure_as=as_type or type(message))


def from_primitive(data: Any, cls: type[T] | Any) -> T:
    """Structure primitives into ``cls``; malformed input raises :class:`DecodeError`.

    The message names the class and, for application values, the path inside the value;
    a field refused by a message's own validation is named too.
    """
    try:
        result: T = converter.structure(data, cls)
    except Exception as exc:  # cattrs raises many kinds of errors
        name = getattr(cls, "__name__", str(cls))
        raise DecodeError(f"cannot decode {name}: {'; '.join(_causes(exc))}") from exc
    return result


def _causes(exc: BaseException) -> list[str]:
    """Readable causes of a cattrs error (with their paths), keeping our own messages."""
    if isinstance(exc, cattrs.BaseValidationError):
        return cattrs.transform_error(exc, format_exception=_format_leaf)
    return [str(exc) if isinstance(exc, (DecodeError, TypeError, ValueError)) else repr(exc)]


def _format_leaf(exc: BaseException, kind: type | None) -> str:
    """cattrs' description of a failed field, with the message of a ValueError kept
    (a message's own validation names the field and the rule it broke)."""
    text = format_exception(exc, kind)
    if type(exc) is ValueError or isinstance(exc, RaftError):
        text = f"{text} ({exc})"
    return text


# --- bytes: JSON with tagged bytes -------------------------------------------------------


def _json_default(value: Any) -> Any:
    if type(value) is bytes:
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _json_object(obj: dict[str, Any]) -> Any:
    if _BYTES in obj and len(obj) == 1:
        text = obj[_BYTES]
        if type(text) is not str:
            raise ValueError(f"a bytes tag holds {type(text).__name__}, not base64 text")
        return base64.b64decode(text, validate=True)
    return obj


def encode(message: Any, as_type: Any = None) -> bytes:
    """``message`` as bytes, for storages and snapshots (stdlib JSON; see :func:`decode`).

    The primitive form as JSON, with ``bytes`` written as ``{"__bytes__": base64}`` and
    non-finite floats as Python's JSON writes them (``NaN``, ``Infinity``), so every
    accepted application value comes back equal, with the same types.

    Raises:
        EncodeError: an application value inside holds something the codec refuses.
    """
    return json.dumps(
        to_primitive(message, as_type), default=_json_default, separators=(",", ":")
    ).encode()


def decode(data: bytes, cls: type[T] | Any) -> T:
    """The message ``encode`` turned into ``data``; malformed input raises DecodeError."""
    try:
        primitive = json.loads(data, object_hook=_json_object)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"cannot decode {getattr(cls, '__name__', cls)}: {exc}") from exc
    result: T = from_primitive(primitive, cls)
    return result
