"""The wire format of :mod:`pykka_raft.network.tcp`: two ZeroMQ frames per message.

Every message is a ZeroMQ multipart message of exactly two frames (a ROUTER socket
adds the peer's routing id in front, which the network strips):

1. the **header**, 10 bytes: version (1 byte, ``1``), kind (1 byte: ``1`` request, ``2``
   response, ``3`` error) and the request id (8 bytes, unsigned, big-endian);
2. the **body**, msgpack: a request is ``to_primitive(request, RpcRequest)``, a response
   ``to_primitive(response, RpcResponse)`` (the codec's tagged unions, so the message
   kind is the ``"type"`` key), and an error is a map ``{"kind": str, "message": str}``.

Decoding checks, in order: the frame count and header layout (``malformed_frame``), the
version (``bad_version``), the kind (``unknown_kind``), the body size
(``oversized``), msgpack itself (``malformed_msgpack``, with extension types refused),
the message type (``unknown_type``) and every field (``decode_error``, with the
codec's :class:`~pykka_raft.errors.DecodeError` naming the field path). Each failure
raises :class:`FrameError` carrying one of these kinds, which the network counts in its
metrics. Nothing here touches a socket or a node: the functions are pure, so the fuzz
tests can drive them directly too.
"""

from __future__ import annotations

import collections
import struct
from typing import Any

import attrs
import msgpack  # type: ignore[import-untyped]

from pykka_raft.codec import entry_to_primitive, from_primitive, to_primitive
from pykka_raft.errors import DecodeError, RaftError, RequestTooLarge
from pykka_raft.messages import (
    RESPONSE_FOR,
    AppendEntriesRequest,
    Entry,
    RpcRequest,
    RpcResponse,
)

VERSION = 1
REQUEST = 1
RESPONSE = 2
ERROR = 3
KINDS = (REQUEST, RESPONSE, ERROR)

HEADER = struct.Struct(">BBQ")
"""version, kind, request id."""

MAX_REQUEST_ID = (1 << 64) - 1

# Kinds of refused input, as counted in NetworkMetrics.errors (docs/network.md).
MALFORMED_FRAME = "malformed_frame"
BAD_VERSION = "bad_version"
UNKNOWN_KIND = "unknown_kind"
OVERSIZED = "oversized"
MALFORMED_MSGPACK = "malformed_msgpack"
UNKNOWN_TYPE = "unknown_type"
DECODE_ERROR = "decode_error"

REQUEST_TYPES: dict[str, type] = {cls.__name__: cls for cls in RESPONSE_FOR}
RESPONSE_TYPES: dict[str, type] = {cls.__name__: cls for cls in RESPONSE_FOR.values()}


class FrameError(RaftError):
    """A frame was refused; ``kind`` says why (one of the kinds above)."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


def _refuse_ext(code: int, data: bytes) -> Any:
    # Extension types would put objects that are not primitives into application data.
    raise ValueError(f"msgpack extension type {code} is not allowed")


def pack(value: Any) -> bytes:
    """msgpack of a primitive structure (bytes stay bytes)."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(body: Any, max_bytes: int) -> Any:
    """The primitive structure in ``body``; refuses oversized and malformed input.

    Declared lengths beyond the body's size fail without allocating (msgpack bounds them
    by the buffer size); extension types are refused, and msgpack timestamps decode to
    plain floats, so the result holds only None, bools, ints, floats, str, bytes, lists
    and dicts.
    """
    size = len(body)
    if size > max_bytes:
        raise FrameError(OVERSIZED, f"body of {size} bytes exceeds the cap of {max_bytes}")
    try:
        return msgpack.unpackb(
            body, raw=False, strict_map_key=False, ext_hook=_refuse_ext, timestamp=1
        )
    except Exception as exc:  # msgpack raises several ValueError subclasses
        raise FrameError(MALFORMED_MSGPACK, f"{type(exc).__name__}: {exc}") from exc


def encode_header(kind: int, request_id: int) -> bytes:
    """The 10-byte header."""
    return HEADER.pack(VERSION, kind, request_id)


def decode_header(frame: Any) -> tuple[int, int]:
    """``(kind, request id)`` from a header frame; raises :class:`FrameError`."""
    if len(frame) != HEADER.size:
        raise FrameError(MALFORMED_FRAME, f"header of {len(frame)} bytes, not {HEADER.size}")
    version, kind, request_id = HEADER.unpack(frame)
    if version != VERSION:
        raise FrameError(BAD_VERSION, f"version {version}, this node speaks {VERSION}")
    if kind not in KINDS:
        raise FrameError(UNKNOWN_KIND, f"kind {kind}")
    return kind, request_id


class EntryCache:
    """The msgpack bytes of recently sent entries, so that an entry sent to several
    followers (or sent again) is encoded once. Holds the entries it caches, so an
    entry's ``id`` cannot be reused while it is cached: at most ``size`` entries and
    ``max_bytes`` of encoded bytes (the entries' own memory is of that order), so that
    large values cannot keep much more than the log alive. Not thread-safe: one per I/O
    thread."""

    def __init__(self, size: int = 8192, max_bytes: int = 16 << 20) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        # An OrderedDict drops its oldest item in constant time; a dict's next(iter(...))
        # walks over the slots of every item dropped before, microseconds per entry here.
        self._items: collections.OrderedDict[int, tuple[Entry, bytes]] = collections.OrderedDict()
        # One packer reused: msgpack.packb builds (and allocates a buffer for) one per call.
        self._pack = msgpack.Packer(use_bin_type=True).pack

    def packed(self, entry: Entry) -> bytes:
        """``pack(to_primitive(entry, Entry))``, from the cache when it was done before."""
        hit = self._items.get(id(entry))
        if hit is not None and hit[0] is entry:
            return hit[1]
        data: bytes = self._pack(entry_to_primitive(entry))
        items = self._items
        if len(data) > self._max_bytes:
            return data  # never cached
        while items and (len(items) >= self._size or self._bytes + len(data) > self._max_bytes):
            self._bytes -= len(items.popitem(last=False)[1][1])  # the oldest
        if id(entry) in items:  # an entry of the same id, no longer alive: replaced
            self._bytes -= len(items.pop(id(entry))[1])
        items[id(entry)] = (entry, data)
        self._bytes += len(data)
        return data


def _map_header(size: int) -> bytes:
    if size < 16:
        return bytes((0x80 | size,))
    return (
        (b"\xde" + size.to_bytes(2, "big")) if size < 1 << 16 else b"\xdf" + size.to_bytes(4, "big")
    )


def _array_header(size: int) -> bytes:
    if size < 16:
        return bytes((0x90 | size,))
    return (
        (b"\xdc" + size.to_bytes(2, "big")) if size < 1 << 16 else b"\xdd" + size.to_bytes(4, "big")
    )


def encode_request(
    request_id: int,
    request: RpcRequest,
    cache: EntryCache | None = None,
    max_bytes: int | None = None,
) -> list[bytes]:
    """The two frames of a request.

    With a ``cache``, the entries of an AppendEntries are taken from (and added to) it:
    the bytes are the same as without one (msgpack of the codec's primitive form). With
    ``max_bytes`` too, encoding stops as soon as the body would be larger.

    Raises:
        RequestTooLarge: the body is over ``max_bytes`` (checked with a ``cache`` only:
            the caller checks a request without entries itself); ``fits`` counts the
            entries that fit.
    """
    header = encode_header(REQUEST, request_id)
    if cache is None:
        return [header, pack(to_primitive(request, RpcRequest))]
    pack_ = cache._pack  # the cache's thread's packer, for the rest of the request too
    if not isinstance(request, AppendEntriesRequest) or not request.entries:
        return [header, pack_(to_primitive(request, RpcRequest))]
    primitive = to_primitive(attrs.evolve(request, entries=()), RpcRequest)
    chunks = [_map_header(len(primitive))]
    after = 0  # where the entries go: after their array's header
    for key, value in primitive.items():
        chunks.append(pack_(key))
        if key == "entries":
            chunks.append(_array_header(len(request.entries)))
            after = len(chunks)
        else:
            chunks.append(pack_(value))
    if max_bytes is None:
        entries = [cache.packed(entry) for entry in request.entries]
    else:
        entries = _entries_within(request.entries, cache, sum(map(len, chunks)), max_bytes)
    chunks[after:after] = entries
    return [header, b"".join(chunks)]


def _entries_within(
    entries: tuple[Entry, ...], cache: EntryCache, size: int, max_bytes: int
) -> list[bytes]:
    """The encoded ``entries`` of a body whose other parts take ``size`` bytes, or
    :class:`RequestTooLarge` as soon as the body would pass ``max_bytes``."""
    out: list[bytes] = []
    for entry in entries:
        data = cache.packed(entry)
        size += len(data)
        if size > max_bytes:
            raise RequestTooLarge(size, max_bytes, len(out))
        out.append(data)
    return out


def encode_response(request_id: int, response: Any) -> list[bytes]:
    """The two frames of a response (``TypeError``/``ValueError`` if it is not one)."""
    if type(response).__name__ not in RESPONSE_TYPES:
        raise TypeError(f"{type(response).__name__} is not an RPC response")
    return [encode_header(RESPONSE, request_id), pack(to_primitive(response, RpcResponse))]


def encode_error(request_id: int, error: BaseException) -> list[bytes]:
    """The two frames of an error answer: its class name and message."""
    body = {"kind": type(error).__name__, "message": str(error)[:1000]}
    return [encode_header(ERROR, request_id), pack(body)]


def _typed(primitive: Any, known: dict[str, type], union: Any, what: str) -> Any:
    if not isinstance(primitive, dict):
        raise FrameError(UNKNOWN_TYPE, f"{what} body is a {type(primitive).__name__}, not a map")
    name = primitive.get("type")
    if not isinstance(name, str) or name not in known:
        shown = name[:80] if isinstance(name, str) else type(name).__name__
        raise FrameError(UNKNOWN_TYPE, f"unknown {what} type {shown!r}")
    try:
        return from_primitive(primitive, union)
    except DecodeError as exc:
        raise FrameError(DECODE_ERROR, str(exc)[:500]) from exc
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        raise FrameError(DECODE_ERROR, f"{type(exc).__name__}: {exc}"[:500]) from exc


def decode_request(body: Any, max_bytes: int) -> RpcRequest:
    """The request in a body frame; raises :class:`FrameError`."""
    request: RpcRequest = _typed(unpack(body, max_bytes), REQUEST_TYPES, RpcRequest, "request")
    return request


def decode_response(body: Any, max_bytes: int) -> RpcResponse:
    """The response in a body frame; raises :class:`FrameError`."""
    response: RpcResponse = _typed(unpack(body, max_bytes), RESPONSE_TYPES, RpcResponse, "response")
    return response


def decode_error(body: Any, max_bytes: int) -> tuple[str, str]:
    """``(kind, message)`` of an error body; raises :class:`FrameError`."""
    primitive = unpack(body, max_bytes)
    if (
        not isinstance(primitive, dict)
        or set(primitive) != {"kind", "message"}
        or not isinstance(primitive["kind"], str)
        or not isinstance(primitive["message"], str)
    ):
        raise FrameError(DECODE_ERROR, "an error body must be {'kind': str, 'message': str}")
    return primitive["kind"][:100], primitive["message"][:1000]
