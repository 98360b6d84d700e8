"""Field checks shared by the messages: node ids, node sets, addresses, attrs validators.

Public messages validate their fields when built (and so when decoded): a wrong type is a
``TypeError`` and a wrong value a ``ValueError``, each naming the field, and nothing is
ever converted silently (``"2"`` never becomes ``2``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pykka_raft.types import NodeId

MAX_NODE_ID = 2**63 - 1
"""The largest node id: a signed 64-bit integer, which every codec and store carries as it
is. A larger one is refused when a message is built: a configuration entry naming it could
not be sent to any peer, and a leader would stall on it."""


def check_node_id(value: Any, field: str) -> NodeId:
    """``value`` if it is a node id (an ``int`` from 0 to :data:`MAX_NODE_ID`, not a
    ``bool``); else raise.

    Raises:
        TypeError: ``value`` is not an ``int`` (a ``str``, ``float`` or ``bool`` is never
            converted), naming ``field``.
        ValueError: ``value`` is negative or over :data:`MAX_NODE_ID`, naming ``field``.
    """
    if type(value) is not int:
        raise TypeError(
            f"{field} must be a node id (a non-negative int), got {type(value).__name__} {value!r}"
        )
    if value < 0:
        raise ValueError(f"{field} must be a node id (a non-negative int), got {value}")
    if value > MAX_NODE_ID:
        raise ValueError(f"{field} must be a node id of at most 2**63 - 1, got {value}")
    return value


def check_node_ids(ids: Any, field: str) -> list[NodeId]:
    """The node ids of a collection (a tuple, list, set, ...), each checked.

    Raises:
        TypeError: ``ids`` is not a collection (a bare ``int``, a ``str``, a mapping), or
            one of its items is not an ``int``; the message names ``field``.
        ValueError: a node id is negative.
    """
    if isinstance(ids, (str, bytes, bytearray, Mapping)) or not isinstance(ids, Iterable):
        raise TypeError(
            f"{field} must be a collection of node ids, got {type(ids).__name__} {ids!r}"
        )
    return [check_node_id(node_id, f"{field} item") for node_id in ids]


def _node_set(ids: Any, field: str) -> tuple[NodeId, ...]:
    return tuple(sorted(set(check_node_ids(ids, field))))


def _opt_node_set(ids: Any, field: str) -> tuple[NodeId, ...] | None:
    return None if ids is None else _node_set(ids, field)


def check_address(address: Any, field: str) -> str:
    """``address`` if it is a ``"host:port"`` string (port 1 to 65535); else raise."""
    if type(address) is not str:
        raise TypeError(
            f"{field} must be a 'host:port' str, got {type(address).__name__} {address!r}"
        )
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not port.isascii():
        raise ValueError(f"{field} must be 'host:port', got {address!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"{field} has port {port}, outside 1 to 65535: {address!r}")
    return address


def _address_pairs(addresses: Any, field: str) -> tuple[tuple[NodeId, str], ...]:
    """Checked ``(node id, "host:port")`` pairs, sorted by id, from a mapping or pairs."""
    if isinstance(addresses, Mapping):
        items: Iterable[Any] = addresses.items()
    elif isinstance(addresses, (str, bytes, bytearray)) or not isinstance(addresses, Iterable):
        raise TypeError(
            f"{field} must map node ids to 'host:port' (a mapping or (id, address) "
            f"pairs), got {type(addresses).__name__} {addresses!r}"
        )
    else:
        items = addresses
    book: dict[NodeId, str] = {}
    for item in items:
        if isinstance(item, (str, bytes)) or not isinstance(item, (tuple, list)):
            raise TypeError(f"{field} must hold (node id, address) pairs, got {item!r}")
        if len(item) != 2:
            raise ValueError(f"{field} must hold (node id, address) pairs, got {item!r}")
        node_id = check_node_id(item[0], f"{field} node id")
        address = check_address(item[1], f"{field}[{node_id}]")
        if book.setdefault(node_id, address) != address:
            raise ValueError(
                f"{field} gives node {node_id} two addresses: {book[node_id]!r}, {address!r}"
            )
    return tuple(sorted(book.items()))


def _instance_of(kind: type, hint: str = "") -> Callable[[Any, Any, Any], None]:
    """An attrs validator that raises TypeError naming ``Class.field`` (no conversion)."""

    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, kind):
            raise TypeError(
                f"{type(instance).__name__}.{attribute.name} must be a {kind.__name__}, "
                f"got {type(value).__name__} {value!r}{hint}"
            )

    return validate


def _non_negative_int(instance: Any, attribute: Any, value: Any) -> None:
    where = f"{type(instance).__name__}.{attribute.name}"
    if type(value) is not int:
        raise TypeError(f"{where} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{where} must be 0 or more, got {value}")


def _node_id(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator: ``value`` is a node id (see :func:`check_node_id`)."""
    check_node_id(value, f"{type(instance).__name__}.{attribute.name}")


def _optional_node_id(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_node_id(value, f"{type(instance).__name__}.{attribute.name}")
