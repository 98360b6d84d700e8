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

The code is split by concept, everything re-exported here (import from
``pykka_raft.codec``):

- :mod:`~pykka_raft.codec.form`: the primitive form's tags and limits;
- :mod:`~pykka_raft.codec.registry`: :func:`register_app_type`;
- :mod:`~pykka_raft.codec.refusals` and :mod:`~pykka_raft.codec.values`: the value walk
  both ways, refusing with the path inside the value;
- :mod:`~pykka_raft.codec.check`: the leader's check (:func:`check_app_value`);
- :mod:`~pykka_raft.codec.convert`: the converter, :func:`to_primitive`,
  :func:`from_primitive`;
- :mod:`~pykka_raft.codec.encoding`: :func:`encode` and :func:`decode` (bytes).
"""

from __future__ import annotations

from pykka_raft.codec.check import check_app_value, encoded_size
from pykka_raft.codec.convert import converter, entry_to_primitive, from_primitive, to_primitive
from pykka_raft.codec.encoding import decode, encode
from pykka_raft.codec.form import MAX_DEPTH, WRAPPING_LEVELS
from pykka_raft.codec.registry import register_app_type

__all__ = [
    "MAX_DEPTH",
    "WRAPPING_LEVELS",
    "check_app_value",
    "converter",
    "decode",
    "encode",
    "encoded_size",
    "entry_to_primitive",
    "from_primitive",
    "register_app_type",
    "to_primitive",
]
