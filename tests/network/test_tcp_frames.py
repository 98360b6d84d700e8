"""The TCP network's wire format: round trips, and every kind of refused frame."""

from __future__ import annotations

import contextlib
from typing import Any

import cattrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcp_samples import RESPONSES, bad_frames, requests

from pykka_raft.codec import convert, to_primitive
from pykka_raft.codec.convert import _configure
from pykka_raft.errors import Unreachable
from pykka_raft.messages import Entry, EntryNormal, RpcRequest
from pykka_raft.network import frames
from pykka_raft.network.frames import FrameError

CAP = 1 << 20


@pytest.mark.parametrize("request_", requests(), ids=lambda r: type(r).__name__)
def test_every_request_round_trips(request_: Any) -> None:
    header, body = frames.encode_request(7, request_)
    assert frames.decode_header(header) == (frames.REQUEST, 7)
    assert frames.decode_request(body, CAP) == request_


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_every_response_round_trips(response: Any) -> None:
    header, body = frames.encode_response((1 << 64) - 1, response)
    assert frames.decode_header(header) == (frames.RESPONSE, (1 << 64) - 1)
    assert frames.decode_response(body, CAP) == response


def test_errors_travel_as_kind_and_message() -> None:
    header, body = frames.encode_error(3, Unreachable("node 2 is starting"))
    assert frames.decode_header(header) == (frames.ERROR, 3)
    assert frames.decode_error(body, CAP) == ("Unreachable", "node 2 is starting")


def test_the_entry_cache_gives_the_same_bytes_and_encodes_each_entry_once() -> None:
    cache = frames.EntryCache()
    for request in requests():
        assert frames.encode_request(1, request, cache) == frames.encode_request(1, request)
    first = requests()[0]
    packed = [cache.packed(e) for e in first.entries]
    assert [cache.packed(e) for e in first.entries] == packed
    assert all(cache.packed(e) is p for e, p in zip(first.entries, packed, strict=True))


def test_the_entry_cache_is_bounded() -> None:
    cache = frames.EntryCache(size=2)
    entries = requests()[0].entries
    for entry in entries:
        cache.packed(entry)
    assert len(cache._items) == 2


def test_the_entry_cache_is_bounded_in_bytes_too() -> None:
    """Large values: the cache keeps what fits in ``max_bytes`` (and no more than the log
    would), the oldest going first; an entry larger than that is never cached."""
    cache = frames.EntryCache(max_bytes=10_000)
    entries = [Entry(1, i, EntryNormal("x" * 3000)) for i in range(1, 9)]
    for entry in entries:
        cache.packed(entry)
    held = [entry for entry, _ in cache._items.values()]
    assert held == entries[-3:] and cache._bytes == sum(len(p) for _, p in cache._items.values())
    assert cache._bytes <= 10_000
    huge = Entry(1, 9, EntryNormal("y" * 20_000))
    assert cache.packed(huge) == cache.packed(huge) and huge not in [
        entry for entry, _ in cache._items.values()
    ]


def test_the_entry_cache_drops_its_oldest_entry_first() -> None:
    cache = frames.EntryCache(size=3)
    entries = [Entry(1, i, EntryNormal(i)) for i in range(1, 7)]
    packed = [cache.packed(entry) for entry in entries[:3]]
    assert cache.packed(entries[0]) is packed[0]  # a hit: not encoded again, not refreshed
    for entry in entries[3:]:
        cache.packed(entry)
    assert [entry for entry, _ in cache._items.values()] == entries[3:]
    assert cache.packed(entries[0]) == packed[0]  # encoded again, the same bytes
    assert [entry for entry, _ in cache._items.values()] == [*entries[4:], entries[0]]


def _kind(call: Any, *args: Any) -> str:
    with pytest.raises(FrameError) as refused:
        call(*args)
    return refused.value.kind


def test_bad_headers_are_refused_by_kind() -> None:
    assert _kind(frames.decode_header, b"\x01\x01") == frames.MALFORMED_FRAME
    assert _kind(frames.decode_header, b"\x02\x01" + bytes(8)) == frames.BAD_VERSION
    assert _kind(frames.decode_header, b"\x01\x09" + bytes(8)) == frames.UNKNOWN_KIND


def test_bad_bodies_are_refused_by_kind() -> None:
    good = frames.pack(to_primitive(requests()[2], RpcRequest))
    decode = frames.decode_request
    assert _kind(decode, good, len(good) - 1) == frames.OVERSIZED
    assert _kind(decode, b"\xc1", CAP) == frames.MALFORMED_MSGPACK
    assert _kind(decode, good[:-1], CAP) == frames.MALFORMED_MSGPACK
    assert _kind(decode, good + b"\x00", CAP) == frames.MALFORMED_MSGPACK
    assert _kind(decode, b"\xdd\xff\xff\xff\xff", CAP) == frames.MALFORMED_MSGPACK
    assert _kind(decode, b"\x91" * 5000 + b"\xc0", CAP) == frames.MALFORMED_MSGPACK
    ext = msgpack.packb(msgpack.ExtType(5, b"x"))
    assert _kind(decode, ext, CAP) == frames.MALFORMED_MSGPACK
    assert _kind(decode, frames.pack([1, 2]), CAP) == frames.UNKNOWN_TYPE
    assert _kind(decode, frames.pack({"type": "Shutdown"}), CAP) == frames.UNKNOWN_TYPE
    nested_type = b"\x81\xa4type" + b"\x91" * 1000 + b"\xc0"  # too deep for str()
    assert _kind(decode, nested_type, CAP) == frames.UNKNOWN_TYPE
    assert _kind(frames.decode_response, nested_type, CAP) == frames.UNKNOWN_TYPE
    response = frames.pack(to_primitive(RESPONSES[0]))
    assert _kind(decode, response, CAP) == frames.UNKNOWN_TYPE  # a response is no request


def test_a_field_of_the_wrong_type_is_named_in_the_refusal() -> None:
    primitive = to_primitive(requests()[0], RpcRequest)
    primitive["entries"][1]["term"] = "three"
    with pytest.raises(FrameError) as refused:
        frames.decode_request(frames.pack(primitive), CAP)
    assert refused.value.kind == frames.DECODE_ERROR
    assert "entries" in refused.value.detail and "term" in refused.value.detail


def test_a_timestamp_is_a_plain_float_never_an_object() -> None:
    primitive = to_primitive(requests()[0], RpcRequest)
    body = frames.pack(primitive).replace(b"\xa1v", msgpack.packb(msgpack.Timestamp(1, 0)), 1)
    decoded = frames.decode_request(body, CAP)
    assert decoded.entries[1].payload.data.value == 1.0


def test_error_bodies_must_be_kind_and_message() -> None:
    for body in ({"kind": "X"}, {"kind": 1, "message": "m"}, ["kind", "message"]):
        assert _kind(frames.decode_error, frames.pack(body), CAP) == frames.DECODE_ERROR


def test_responses_must_be_responses() -> None:
    body = frames.pack(to_primitive(requests()[2], RpcRequest))
    assert _kind(frames.decode_response, body, CAP) == frames.UNKNOWN_TYPE
    with pytest.raises(TypeError):
        frames.encode_response(1, requests()[2])


def test_the_fuzz_stream_only_ever_raises_frame_errors() -> None:
    """Every generated bad message is either refused with a FrameError or decodes to a
    request that the network then checks (target, source): nothing else escapes."""
    outcomes: dict[str, int] = {}
    stream = bad_frames(seed=11, target=2, source=1, max_bytes=4096)
    for _ in range(3000):
        parts = next(stream)
        try:
            if len(parts) != 2:
                raise FrameError(frames.MALFORMED_FRAME, "count")
            kind, _ = frames.decode_header(parts[0])
            if kind != frames.REQUEST:
                raise FrameError("unexpected_kind", "not a request")
            frames.decode_request(parts[1], 4096)
            key = "decoded"
        except FrameError as exc:
            key = exc.kind
        outcomes[key] = outcomes.get(key, 0) + 1
    for kind in (
        frames.MALFORMED_FRAME,
        frames.BAD_VERSION,
        frames.MALFORMED_MSGPACK,
        frames.UNKNOWN_TYPE,
        frames.DECODE_ERROR,
        frames.OVERSIZED,
        "unexpected_kind",
        "decoded",
    ):
        assert outcomes.get(kind, 0) > 0, (kind, outcomes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_frame_error(body: bytes) -> None:
    with contextlib.suppress(FrameError):
        frames.decode_request(body, CAP)


def _outcome(body: bytes) -> tuple[str, ...]:
    try:
        return ("decoded", repr(frames.decode_request(body, 4096)))
    except FrameError as exc:
        return (exc.kind, exc.detail)


def test_the_direct_entry_path_answers_the_fuzz_stream_as_the_general_one() -> None:
    """Decoding with cattrs' generated Entry hook (no direct path) gives the same request,
    or the same refusal with the same detail, for every generated bad message."""
    reference = cattrs.Converter()
    _configure(reference, fast_entries=False)
    stream = bad_frames(seed=5, target=2, source=1, max_bytes=4096)
    seen: set[str] = set()
    for _ in range(1500):
        parts = next(stream)
        if len(parts) != 2:
            continue
        fast = _outcome(parts[1])
        saved, convert.converter = convert.converter, reference
        try:
            assert _outcome(parts[1]) == fast
        finally:
            convert.converter = saved
        seen.add(fast[0])
    assert {"decoded", frames.DECODE_ERROR} <= seen, seen
