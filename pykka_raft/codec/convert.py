"""The one cattrs converter, set up for every message: strict scalars, application values
through the value walk, and unions tagged with a ``"type"`` key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import cattrs
from cattrs.strategies import configure_tagged_union
from cattrs.v import format_exception

from pykka_raft.codec.values import _decode_value, _encode_value, _from_prim
from pykka_raft.errors import DecodeError, RaftError
from pykka_raft.messages import (
    Entry,
    EntryNormal,
    EntryPayload,
    RpcRequest,
    RpcResponse,
    check_rpc,
)

T = TypeVar("T")

converter = cattrs.Converter()
"""The converter: use it, or the functions below, for every message."""


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


def _fast_entry_hooks(
    general_unstructure: Callable[[Any], Any], general_structure: Callable[[Any, Any], Any]
) -> tuple[Callable[[Any], Any], Callable[[Any, Any], Entry]]:
    """Direct hooks for an :class:`Entry` holding :class:`EntryNormal`, the one kind on
    every hot path (log rows, AppendEntries): each gives exactly what the generated hook
    gives, and hands everything else, and every failure, to it."""

    def unstructure(entry: Entry) -> Any:
        payload = entry.payload
        if type(payload) is EntryNormal and type(entry) is Entry:
            # Key order as the generated hook writes it: the fields, then the union's tag.
            return {
                "term": entry.term,
                "index": entry.index,
                "payload": {"data": _encode_value(payload.data, "data"), "type": "EntryNormal"},
            }
        return general_unstructure(entry)

    def structure(prim: Any, cls: Any) -> Entry:
        # Only the exact shape the encoder writes (the generated hook ignores extra keys
        # and checks each field's type the same way) takes the direct path; a missing key
        # or any other failure on the way hands the input to the generated hook, which
        # raises the error callers expect.
        if type(prim) is dict and len(prim) == 3:
            try:
                term = prim["term"]
                index = prim["index"]
                payload = prim["payload"]
                if (
                    type(term) is int
                    and type(index) is int
                    and type(payload) is dict
                    and len(payload) == 2
                    and payload["type"] == "EntryNormal"
                ):
                    data = _from_prim(payload["data"], 0)  # a refusal: see below
                    return Entry(term, index, EntryNormal(data))
            except Exception:  # the generated hook below gives the error
                pass
        entry: Entry = general_structure(prim, cls)
        return entry

    return unstructure, structure


def _configure(conv: cattrs.Converter, fast_entries: bool = True) -> Callable[[Any], Any]:
    """Set up ``conv`` for every message; returns its hook that unstructures an Entry.

    ``fast_entries=False`` leaves out the direct Entry hooks: the tests compare the two.
    """
    for kind in (int, bool, str, bytes):
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_unstructure_hook_func(lambda t: t is Any, lambda v: _encode_value(v, "value"))
    conv.register_structure_hook_func(lambda t: t is Any, lambda p, _: _decode_value(p, "value"))
    # A direct hook for EntryNormal, which also names the root of a refused value "data".
    conv.register_unstructure_hook(EntryNormal, lambda e: {"data": _encode_value(e.data, "data")})
    conv.register_structure_hook(EntryNormal, _structure_entry_normal)
    configure_tagged_union(EntryPayload, conv, tag_name="type")
    if fast_entries:
        # Before the RPC unions: their generated hooks look up the Entry hook once.
        unstructure, structure = _fast_entry_hooks(
            conv.get_unstructure_hook(Entry), conv.get_structure_hook(Entry)
        )
        # For Entry itself, not its subclasses (which keep the hooks cattrs makes them).
        conv.register_unstructure_hook_func(lambda t: t is Entry, unstructure)
        conv.register_structure_hook_func(lambda t: t is Entry, structure)
    for union in (RpcRequest, RpcResponse):
        configure_tagged_union(union, conv, tag_name="type")
        conv.register_structure_hook(union, _checked(conv.get_structure_hook(union)))
    return conv.get_unstructure_hook(Entry)


def _checked(structure: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``structure``, then :func:`~pykka_raft.messages.check_rpc`: a decoded RPC holds only
    what a node could have sent."""

    def checked(prim: Any, cls: Any) -> Any:
        message = structure(prim, cls)
        check_rpc(message)
        return message

    return checked


entry_to_primitive: Callable[[Entry], Any] = _configure(converter)
"""``to_primitive(entry, Entry)`` without cattrs' dispatch: the hot paths call it directly.

Raises :class:`~pykka_raft.errors.EncodeError` if the entry's data holds something the
codec refuses."""


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
