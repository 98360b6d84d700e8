"""Messages as bytes for storages and snapshots: the primitive form as JSON, bytes tagged."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, TypeVar

from pykka_raft.codec.convert import entry_to_primitive, from_primitive, to_primitive
from pykka_raft.codec.form import _BYTES, WRAPPING_LEVELS
from pykka_raft.codec.values import _decode_value, _encode_value
from pykka_raft.errors import DecodeError
from pykka_raft.messages import Entry

T = TypeVar("T")


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


def _json_constant(name: str) -> float:
    # A new float for each NaN: the json module's own hook returns one shared NaN object,
    # so a dict with two NaN keys (two objects, never equal) would come back with one key
    # "appearing twice". "Infinity" and "-Infinity" are parsed the same way.
    return float(name)


_JSON_ENCODER = json.JSONEncoder(default=_json_default, separators=(",", ":"), check_circular=False)
"""What ``json.dumps(..., default=_json_default, separators=(",", ":"))`` builds on each
call, built once (an encoder keeps no state between calls: the stdlib shares its own).
Without the check for cycles, which writes the same text: a primitive form is a tree that
``to_primitive`` has just built, no deeper than the value walk allows."""

_DECODERS = threading.local()
"""What ``json.loads(..., object_hook=..., parse_constant=...)`` builds on each call, built
once per thread: a decoder's scanner keeps a memo between the calls into the hooks, so two
threads do not share one."""


def _json_decoder() -> json.JSONDecoder:
    try:
        decoder: json.JSONDecoder = _DECODERS.decoder
    except AttributeError:
        decoder = _DECODERS.decoder = json.JSONDecoder(
            object_hook=_json_object, parse_constant=_json_constant
        )
    return decoder


def encode(message: Any, as_type: Any = None, *, wrapped: bool = False) -> bytes:
    """``message`` as bytes, for storages and snapshots (stdlib JSON; see :func:`decode`).

    The primitive form as JSON, with ``bytes`` written as ``{"__bytes__": base64}`` and
    non-finite floats as Python's JSON writes them (``NaN``, ``Infinity``), so every
    accepted application value comes back equal, with the same types.

    ``wrapped=True`` encodes ``message`` as an application value (``as_type`` ``Any``)
    whose outer :data:`~pykka_raft.codec.form.WRAPPING_LEVELS` levels do not count against
    ``MAX_DEPTH``: a record of a state machine's own that holds client values, such as a
    snapshot's ``{"data": {key: value}}``. Decode it with ``decode(data, Any, wrapped=True)``.

    Raises:
        EncodeError: an application value inside holds something the codec refuses.
    """
    if wrapped:
        primitive = _encode_value(message, "value", -WRAPPING_LEVELS)
    elif as_type is None and type(message) is Entry:  # a log row: skip cattrs' dispatch
        primitive = entry_to_primitive(message)
    else:
        primitive = to_primitive(message, as_type)
    return _JSON_ENCODER.encode(primitive).encode()


def decode(data: bytes, cls: type[T] | Any, *, wrapped: bool = False) -> T:
    """The message ``encode`` turned into ``data``; malformed input raises DecodeError.
    ``wrapped``: as given to :func:`encode` (then ``cls`` is ``Any``)."""
    try:
        if type(data) is bytes:
            # json.loads's own steps for bytes, with this thread's decoder.
            primitive = _json_decoder().decode(
                data.decode(json.detect_encoding(data), "surrogatepass")
            )
        else:
            primitive = json.loads(data, object_hook=_json_object, parse_constant=_json_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"cannot decode {getattr(cls, '__name__', cls)}: {exc}") from exc
    if wrapped:
        value: T = _decode_value(primitive, "value", -WRAPPING_LEVELS)
        return value
    result: T = from_primitive(primitive, cls)
    return result
