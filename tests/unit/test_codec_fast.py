"""The direct Entry paths of the codec against the general (cattrs-generated) ones.

``entry_to_primitive`` and the Entry structure hook skip cattrs for an ``EntryNormal``
entry, ``encode``/``decode`` reuse one JSON encoder and decoder, and the network's
``EntryCache`` reuses one msgpack packer. Each must give byte for byte what the general
path gives for every value, and the same error (type and message) for every malformed
input. The general path here is a converter set up the same way without the direct
hooks, with the stdlib's ``json.dumps``/``json.loads`` and ``msgpack.packb``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import Any

import attrs
import cattrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pykka_raft  # noqa: F401  (registers the key-value command types)
from pykka_raft.codec import (
    MAX_DEPTH,
    convert,
    decode,
    encode,
    encoding,
    entry_to_primitive,
    from_primitive,
    register_app_type,
    to_primitive,
)
from pykka_raft.codec.encoding import _json_constant, _json_default, _json_object
from pykka_raft.errors import DecodeError, EncodeError
from pykka_raft.messages import (
    MAX_RPC_NUMBER,
    AppendEntriesRequest,
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    EntrySnapshotPointer,
    MembershipConfig,
    RpcRequest,
)
from pykka_raft.network import frames
from pykka_raft.network.frames import FrameError
from pykka_raft.statemachine import CasResult, CompareAndSet, Delete, Get, Put

REFERENCE = cattrs.Converter()
_REFERENCE_ENTRY = convert._configure(REFERENCE, fast_entries=False)
CAP = 1 << 24


@register_app_type
@attrs.frozen
class _Point:
    """A registered class with an int-keyed dict field and a default."""

    x: int
    labels: dict[Any, Any] = attrs.field(factory=dict)


@contextlib.contextmanager
def general_path() -> Iterator[None]:
    """Run the codec and the frames with the general converter, no direct Entry hooks."""
    saved = (convert.converter, encoding.entry_to_primitive, frames.entry_to_primitive)
    convert.converter = REFERENCE
    encoding.entry_to_primitive = _REFERENCE_ENTRY
    frames.entry_to_primitive = _REFERENCE_ENTRY
    try:
        yield
    finally:
        convert.converter, encoding.entry_to_primitive, frames.entry_to_primitive = saved


def test_the_reference_has_no_direct_hook() -> None:
    assert _REFERENCE_ENTRY is not entry_to_primitive
    assert convert.converter.get_unstructure_hook(Entry) is entry_to_primitive
    with general_path():
        assert convert.converter.get_unstructure_hook(Entry) is _REFERENCE_ENTRY


def general_json(entry: Entry) -> bytes:
    primitive = REFERENCE.unstructure(entry, Entry)
    return json.dumps(primitive, default=_json_default, separators=(",", ":")).encode()


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (repr tells 1 from True, a tuple from a
    list, -0.0 from 0.0 and shows NaN), and equal where NaN is not involved."""
    return repr(a) == repr(b) and (a == b or "nan" in repr(a))


# --- values ------------------------------------------------------------------------------

TRICKY: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    (1 << 63) - 1,
    -(1 << 63),
    (1 << 64) - 1,
    1 << 64,
    -(1 << 63) - 1,
    10**40,
    -(10**40),
    0.0,
    -0.0,
    1.5,
    math.inf,
    -math.inf,
    math.nan,
    "",
    "ascii",
    "héllo wörld ✓ 日本語 😀",
    '\x00\n"\\',
    b"",
    b"\x00\xffraw",
    bytes(range(256)),
    (),
    [],
    {},
    (1, [2, (3,)]),
    [(1, 2), [1, 2]],
    {1: "int key", "1": "str key"},
    {True: 1, None: 2, 2.5: 3, b"k": 4, (1, "t"): 5},
    {"__type__": "x", "__tuple__": [1], "__dict__": 2, "__int__": "f", "__bytes__": "AA=="},
    {"plain": {"nested": [1, {"deeper": (b"x", 1 << 70)}]}},
    {"ü": "non-ascii key"},
    Put("k", "v"),
    Put("ключ", {"n": (1, 2)}),
    Get("k"),
    Delete("k"),
    CompareAndSet("k", None, (1, 2.5, b"\x00", True)),
    CasResult(True, [Put("a", 1)]),
    _Point(3, {1: "a", (2, 3): b"b"}),
    [Put("a", _Point(-1)), {"p": _Point(1 << 65)}],
    {math.nan: 1, float("nan"): 2},  # two NaN keys: two objects, never equal
    {(math.nan, 1): "a", (float("nan"), 1): "b", math.inf: -math.inf},
]
_DEEP: Any = 0
for _ in range(MAX_DEPTH):
    _DEEP = [_DEEP]
TRICKY.append(_DEEP)  # exactly as deep as allowed

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(1 << 80), max_value=1 << 80),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_keys = st.one_of(
    st.text(max_size=6), st.integers(), st.booleans(), st.binary(max_size=3), st.floats()
)
_app_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.builds(Put, st.text(max_size=6), inner),
        st.builds(CasResult, st.booleans(), inner),
        st.builds(_Point, st.integers(), st.dictionaries(_keys, inner, max_size=3)),
    ),
    max_leaves=14,
)

MEMBERSHIP = MembershipConfig((1, 2, 3), addresses={1: "127.0.0.1:1", 2: "127.0.0.1:2"})
OTHER_PAYLOADS = [EntryBlank(), EntryConfigChange(MEMBERSHIP), EntrySnapshotPointer("snap")]


def entries_of(value: Any, term: int = 3, index: int = 7) -> list[Entry]:
    return [Entry(term, index, EntryNormal(value))] + [
        Entry(term, index, payload) for payload in OTHER_PAYLOADS
    ]


def check_entry(entry: Entry) -> None:
    """Every encoding of ``entry`` is byte for byte the general one, and decodes alike."""
    general = REFERENCE.unstructure(entry, Entry)
    fast = entry_to_primitive(entry)
    assert msgpack.packb(fast, use_bin_type=True) == msgpack.packb(general, use_bin_type=True)
    assert to_primitive(entry, Entry) == fast
    assert frames.EntryCache().packed(entry) == msgpack.packb(general, use_bin_type=True)
    blob = encode(entry)
    assert blob == general_json(entry)
    assert encode(entry, Entry) == blob
    decoded = decode(blob, Entry)
    loaded = json.loads(blob, object_hook=_json_object, parse_constant=_json_constant)
    assert same(decoded, REFERENCE.structure(loaded, Entry))
    assert same(decoded, entry)
    wire = msgpack.unpackb(msgpack.packb(general, use_bin_type=True), raw=False)
    assert same(from_primitive(wire, Entry), REFERENCE.structure(wire, Entry))
    if not 1 <= entry.index < MAX_RPC_NUMBER or entry.term > MAX_RPC_NUMBER:
        return  # an entry no request may carry (the entry alone encodes the same)
    following = attrs.evolve(entry, index=entry.index + 1)
    request = AppendEntriesRequest(
        2, entry.term, 1, entry.index - 1, entry.term, (entry, following), entry.index
    )
    frames_fast = frames.encode_request(9, request, frames.EntryCache())
    assert frames_fast == frames.encode_request(9, request)
    with general_path():
        assert frames_fast == frames.encode_request(9, request)
        decoded_general = frames.decode_request(frames_fast[1], CAP)
    assert same(frames.decode_request(frames_fast[1], CAP), decoded_general)


@pytest.mark.parametrize("value", TRICKY, ids=[f"v{i}" for i in range(len(TRICKY))])
def test_tricky_values_encode_and_decode_as_the_general_path(value: Any) -> None:
    for entry in entries_of(value):
        check_entry(entry)


@pytest.mark.parametrize(("term", "index"), [(0, 0), (1, 1), ((1 << 64) - 1, (1 << 63) + 5)])
def test_terms_and_indexes_of_any_size_encode_alike(term: int, index: int) -> None:
    for entry in entries_of(Put("k", "v"), term, index):
        check_entry(entry)


@settings(max_examples=300, deadline=None)
@given(value=_app_values, term=st.integers(0, 1 << 40), index=st.integers(1, 1 << 40))
def test_any_value_encodes_and_decodes_as_the_general_path(
    value: Any, term: int, index: int
) -> None:
    check_entry(Entry(term, index, EntryNormal(value)))


@attrs.frozen
class _SubEntry(Entry):
    extra: int = 5


def test_an_entry_subclass_takes_the_general_path() -> None:
    entry = _SubEntry(1, 2, EntryNormal(Put("k", (1,))), 7)
    assert entry_to_primitive(entry) == REFERENCE.unstructure(entry, Entry)
    assert to_primitive(entry) == REFERENCE.unstructure(entry)
    assert "extra" in to_primitive(entry)
    prim = to_primitive(entry)
    assert same(from_primitive(prim, _SubEntry), entry)
    assert same(from_primitive(prim, Entry), REFERENCE.structure(prim, Entry))


# --- refusals ----------------------------------------------------------------------------


class _Unregistered:
    pass


@attrs.frozen
class _NotRegistered:
    x: int


REFUSED_VALUES = [
    {1, 2},
    _Unregistered(),
    _NotRegistered(1),
    [1, {"k": (2, frozenset())}],
    {"k": {_NotRegistered(1): 1}},
    "lone \ud800 surrogate",
    Put("k", object()),
]
_TOO_DEEP: Any = 0
for _ in range(MAX_DEPTH + 1):
    _TOO_DEEP = [_TOO_DEEP]
REFUSED_VALUES.append(_TOO_DEEP)


def _error(call: Any, *args: Any) -> tuple[type, str]:
    try:
        call(*args)
    except Exception as exc:
        return type(exc), str(exc)
    raise AssertionError(f"{call} accepted {args!r}")


@pytest.mark.parametrize("value", REFUSED_VALUES, ids=[f"r{i}" for i in range(len(REFUSED_VALUES))])
def test_refused_values_raise_the_same_encode_error(value: Any) -> None:
    entry = Entry(1, 1, EntryNormal(value))
    expected = _error(REFERENCE.unstructure, entry, Entry)
    assert expected[0] is EncodeError
    assert _error(entry_to_primitive, entry) == expected
    assert _error(to_primitive, entry, Entry) == expected
    assert _error(frames.EntryCache().packed, entry) == expected
    with general_path():
        general_encode = _error(encode, entry)
    assert _error(encode, entry) == general_encode


def _good() -> dict[str, Any]:
    return REFERENCE.unstructure(Entry(3, 7, EntryNormal(Put("k", [1, b"x"]))), Entry)


def _with(**changes: Any) -> dict[str, Any]:
    prim = _good()
    for key, value in changes.items():
        if value is _DROP:
            del prim[key]
        else:
            prim[key] = value
    return prim


def _with_payload(**changes: Any) -> dict[str, Any]:
    prim = _good()
    for key, value in changes.items():
        if value is _DROP:
            del prim["payload"][key]
        else:
            prim["payload"][key] = value
    return prim


_DROP = object()

MALFORMED_ENTRIES: list[Any] = [
    None,
    [],
    "entry",
    {},
    _with(term="3"),
    _with(term=True),
    _with(term=3.0),
    _with(term=None),
    _with(index=b"7"),
    _with(index=False),
    _with(term=_DROP),
    _with(payload=_DROP),
    _with(payload=None),
    _with(payload=[1]),
    _with(extra=1),  # accepted by both: extra keys are ignored
    _with_payload(type="EntryBlank"),  # accepted by both: a blank with a stray key
    _with_payload(type="Nope"),
    _with_payload(type=1),
    _with_payload(type=_DROP),
    _with_payload(data=_DROP),
    _with_payload(extra=1),  # accepted by both
    _with_payload(data={"__type__": "Nope"}),
    _with_payload(data={"__type__": 1}),
    _with_payload(data={"__type__": "Put", "key": 1, "value": 2}),  # Put's validator
    _with_payload(data={"__type__": "Put", "key": "k"}),  # a missing field
    _with_payload(data={"__type__": "Put", "key": "k", "value": 1, "x": 2}),
    _with_payload(data={"__int__": "zz"}),
    _with_payload(data={"__int__": 5}),
    _with_payload(data={"__tuple__": 1}),
    _with_payload(data={"__tuple__": [1], "x": 2}),
    _with_payload(data={"__bytes__": "AA=="}),
    _with_payload(data={"__dict__": [[1]]}),
    _with_payload(data={"__dict__": [[[1], 2]]}),
    _with_payload(data={"__dict__": [[1, 2], [1, 3]]}),
    _with_payload(data={1: "int key in a plain dict"}),
    _with_payload(data=[1, {"a": {"__int__": "-"}}]),
    _with_payload(data=(1, 2)),  # a tuple is not part of the primitive form
    _with_payload(data=_Unregistered()),
    _with_payload(data=_TOO_DEEP),
]


def _general_from_primitive(data: Any) -> Any:
    with general_path():
        return from_primitive(data, Entry)


@pytest.mark.parametrize(
    "prim", MALFORMED_ENTRIES, ids=[f"m{i}" for i in range(len(MALFORMED_ENTRIES))]
)
def test_malformed_entries_get_the_same_answer(prim: Any) -> None:
    try:
        expected: Any = _general_from_primitive(prim)
    except DecodeError as exc:
        assert _error(from_primitive, prim, Entry) == (DecodeError, str(exc))
    else:
        assert same(from_primitive(prim, Entry), expected)
    request = to_primitive(AppendEntriesRequest(2, 3, 1, 6, 3, (), 7), RpcRequest)
    request["entries"] = [_good(), prim]
    try:
        body = msgpack.packb(request, use_bin_type=True)
    except TypeError:
        return  # an object msgpack cannot carry never arrives in a frame
    with general_path():
        general = _outcome(frames.decode_request, body, CAP)
    assert _outcome(frames.decode_request, body, CAP) == general


def test_malformed_entries_are_refused() -> None:
    """The list above mostly holds refusals (so the comparison covers errors)."""
    refused = 0
    for prim in MALFORMED_ENTRIES:
        with contextlib.suppress(DecodeError):
            _general_from_primitive(prim)
            continue
        refused += 1
    assert refused >= len(MALFORMED_ENTRIES) - 3


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", repr(call(*args)))
    except FrameError as exc:
        return ("FrameError", exc.kind, exc.detail)
    except DecodeError as exc:
        return ("DecodeError", str(exc))


# --- JSON bytes --------------------------------------------------------------------------

BAD_BLOBS = [
    b"",
    b"{",
    b"\xff\xfe",
    b"\xef\xbb\xbf" + encode(Entry(1, 1, EntryBlank())),
    encode(Entry(1, 1, EntryBlank())).decode().encode("utf-16"),
    encode(Entry(1, 1, EntryBlank())).decode().encode("utf-32-le"),
    b'{"term":1,"index":1,"payload":{"data":{"__bytes__":1},"type":"EntryNormal"}}',
    b'{"term":1,"index":1,"payload":{"data":{"__bytes__":"!!"},"type":"EntryNormal"}}',
    b'{"term":1,"index":1,"payload":{"data":"\\ud800","type":"EntryNormal"}}',
    b'{"term":1,"index":1,"payload":{"data":NaN,"type":"EntryNormal"}}',
    b'{"term":1,"index":1,"payload":{"data":"\xc3\xa9","type":"EntryNormal"}}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("blob", BAD_BLOBS, ids=[f"b{i}" for i in range(len(BAD_BLOBS))])
def test_odd_json_bytes_decode_as_json_loads_does(blob: bytes) -> None:
    def general(data: bytes) -> Any:
        try:
            primitive = json.loads(data, object_hook=_json_object, parse_constant=_json_constant)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"cannot decode Entry: {exc}") from exc
        return _general_from_primitive(primitive)

    try:
        expected = general(blob)
    except DecodeError as exc:
        assert _error(decode, blob, Entry) == (DecodeError, str(exc))
    else:
        assert same(decode(blob, Entry), expected)


def test_two_nan_keys_come_back_as_two_keys() -> None:
    """The json module's own constant hook returns one shared NaN object: a dict with two
    NaN keys (which a Python dict holds, NaN never being equal to itself) came back from
    ``decode`` as a key "appearing twice", and a node installing such a snapshot stopped."""
    value: dict[Any, int] = {math.nan: 1, float("nan"): 2}
    value.update({(float("nan"),): 3})
    value.update({(float("nan"),): 4})
    assert len(value) == 4
    back = decode(encode(value, Any), Any)
    assert len(back) == 4 and same(back, value)
    entry = Entry(1, 1, EntryNormal(value))
    assert same(decode(encode(entry), Entry), entry)
    inf_back = decode(encode([math.inf, -math.inf, math.nan], Any), Any)
    assert repr(inf_back) == "[inf, -inf, nan]"
