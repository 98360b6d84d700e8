"""The primitive form of application values: its tags, its limits, and the msgpack size
of its pieces (what the leader's size check adds up)."""

from __future__ import annotations

import re

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

WRAPPING_LEVELS = 8
"""Levels of a record that wraps application values which do not count against
:data:`MAX_DEPTH` when it is encoded with ``encode(record, Any, wrapped=True)``: a
snapshot's dictionary of values, a session table's cached responses. A value as deep as a
client may write stays decodable inside them."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_HEX = re.compile("-?[0-9a-f]+")
_ACCEPTED = (
    "accepted are None, bool, int, float, str, bytes, tuple, list, dict and attrs classes "
    "registered with pykka_raft.register_app_type (exact types, not subclasses)"
)


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
