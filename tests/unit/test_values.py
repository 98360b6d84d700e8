"""The one rule for application data (docs/codec.md).

Every accepted value comes back from the primitive form, from ``encode``/``decode`` and
from msgpack equal and with the same types; everything else is refused with an
``EncodeError`` naming the path inside the value; the leader's check agrees exactly with
the encoder and measures the msgpack size.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykka_raft.codec import (
    MAX_DEPTH,
    check_app_value,
    decode,
    encode,
    encoded_size,
    from_primitive,
    register_app_type,
    to_primitive,
)
from pykka_raft.config import DEFAULT_MAX_ENTRY_BYTES, Config
from pykka_raft.errors import ConfigError, DecodeError, EncodeError, EntryTooLarge
from pykka_raft.messages import (
    AppendEntriesRequest,
    ClientPayloadResponse,
    Entry,
    EntryNormal,
    EntryPayload,
    ResponseMode,
    RpcRequest,
)
from pykka_raft.network import frames
from pykka_raft.statemachine import (
    CasResult,
    CompareAndSet,
    Get,
    KeyValueStateMachine,
    Put,
    same_value,
)
from pykka_raft.testing.values import same

MARKERS = ("__type__", "__tuple__", "__dict__", "__int__", "__bytes__")


# --- a strict equality (pykka_raft.testing.values.same) ----------------------------------


def test_same_is_strict() -> None:
    assert same([1, (2.0, math.nan)], [1, (2.0, math.nan)])
    assert not same(1, True)
    assert not same(1, 1.0)
    assert not same(0.0, -0.0)
    assert not same((1,), [1])
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not same(Put("k", 1), Put("k", 1.0))


# --- registered classes used by the properties ------------------------------------------


@register_app_type
@attrs.frozen
class CodecProbe:
    """A registered class with a private field (its key is the alias ``x``)."""

    _x: Any
    y: Any = None


@register_app_type
@attrs.define
class CodecMutableProbe:
    """A registered mutable class (not hashable, so never a dict key)."""

    items: Any


# --- strategies -------------------------------------------------------------------------

_edge_ints = st.sampled_from(
    [0, 127, 128, 255, 256, 2**16, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -32, -33,
     -128, -129, -(2**15), -(2**31) - 1, -(2**63), -(2**63) - 1, 10**80, -(10**80)]
)  # fmt: skip
_text = st.one_of(st.text(max_size=8), st.sampled_from(MARKERS), st.text(min_size=30, max_size=40))
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324]),
)
_hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _edge_ints,
    _floats,
    _text,
    st.binary(max_size=8),
)
_keys = st.recursive(
    _hashable_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(tuple),
        st.builds(Get, st.text(max_size=4)),
        st.builds(CodecProbe, inner, inner),
    ),
    max_leaves=4,
)
_scalars = st.one_of(_hashable_scalars, st.binary(min_size=250, max_size=300))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_text, inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.builds(Put, st.text(max_size=6), inner),
        st.builds(CasResult, st.booleans(), inner),
        st.builds(CompareAndSet, st.text(max_size=4), inner, inner),
        st.builds(CodecProbe, inner, inner),
        st.builds(CodecMutableProbe, inner),
    )


app_values = st.recursive(_scalars, _containers, max_leaves=16)
"""Arbitrary nested application values of the accepted types."""


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


@attrs.frozen
class Unregistered:
    x: int = 1


class ProbeChild(CodecProbe):
    """A subclass of a registered class: not accepted by itself."""


def _function() -> None:
    pass


_refused_leaves = st.sampled_from(
    [
        _function,
        object(),
        {1, 2},
        frozenset({3}),
        Color.RED,
        Name("n"),
        bytearray(b"x"),
        collections.OrderedDict(a=1),
        collections.defaultdict(int),
        Unregistered(),
        ProbeChild(1),
        "lone \ud800 surrogate",
        memoryview(b"m"),
        1j,
    ]
)
any_values = st.recursive(st.one_of(_scalars, _refused_leaves), _containers, max_leaves=12)
"""Values that may hold a refused leaf anywhere (also as a dict key)."""


# --- round trips ------------------------------------------------------------------------


def _msgpack() -> Any:
    return pytest.importorskip("msgpack")


@settings(max_examples=300, deadline=None)
@given(value=app_values)
def test_accepted_values_round_trip_through_primitives_and_json(value: Any) -> None:
    primitive = to_primitive(value, Any)
    assert same(from_primitive(primitive, Any), value)
    assert same(decode(encode(value, Any), Any), value)
    entry = Entry(3, 7, EntryNormal(value))
    assert same(decode(encode(entry), Entry).payload.data, value)
    response = ClientPayloadResponse(7, ResponseMode.APPLIED, value)
    assert same(from_primitive(to_primitive(response), ClientPayloadResponse).data, value)


@settings(max_examples=300, deadline=None)
@given(value=app_values)
def test_accepted_values_round_trip_through_msgpack_with_their_exact_size(value: Any) -> None:
    msgpack = _msgpack()
    packed = msgpack.packb(to_primitive(value, Any))
    assert same(from_primitive(msgpack.unpackb(packed), Any), value)
    assert encoded_size(value) == len(packed)
    entry = Entry(3, 7, EntryNormal(value))
    unpacked = msgpack.unpackb(msgpack.packb(to_primitive(entry)))
    assert same(from_primitive(unpacked, Entry).payload.data, value)


@settings(max_examples=300, deadline=None)
@given(value=any_values)
def test_the_leader_check_agrees_exactly_with_the_encoder(value: Any) -> None:
    try:
        primitive = to_primitive(value, Any)
    except EncodeError as exc:
        with pytest.raises(EncodeError) as info:
            check_app_value(value, root="value")
        assert (info.value.path, info.value.reason) == (exc.path, exc.reason)
        return
    size = check_app_value(value)
    assert same(from_primitive(primitive, Any), value)
    assert size == encoded_size(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\x00\xff", id="bytes"),
        pytest.param({1: "int key"}, id="int-key"),
        pytest.param({(1, "a"): 1, None: 2, 2.5: 3, b"k": 4, True: 5}, id="mixed-keys"),
        pytest.param({"__type__": "Put", "key": "k"}, id="type-marker-key"),
        pytest.param({"__tuple__": [1]}, id="tuple-marker-key"),
        pytest.param({"__bytes__": "AA=="}, id="bytes-marker-key"),
        pytest.param({"__int__": "ff"}, id="int-marker-key"),
        pytest.param({"__dict__": []}, id="dict-marker-key"),
        pytest.param([2**64, -(2**63) - 1, 2**63, 10**5000], id="big-ints"),
        pytest.param([math.nan, -0.0, math.inf, -math.inf], id="floats"),
        pytest.param(((), [], {}, ((),)), id="empties"),
        pytest.param(Put("k", CodecProbe(x=(1,), y={2: [3]})), id="registered"),
        pytest.param("snow ☃ and 𝄞", id="non-ascii"),
    ],
)
def test_each_accepted_kind_round_trips(value: Any) -> None:
    assert same(from_primitive(to_primitive(value, Any), Any), value)
    assert same(decode(encode(value, Any), Any), value)


def test_primitive_form_of_the_tagged_kinds() -> None:
    assert to_primitive({1: "x"}, Any) == {"__dict__": [[1, "x"]]}
    assert to_primitive({"__type__": 1}, Any) == {"__dict__": [["__type__", 1]]}
    assert to_primitive((1, 2), Any) == {"__tuple__": [1, 2]}
    assert to_primitive(2**64, Any) == {"__int__": "10000000000000000"}
    assert to_primitive(-(2**63) - 1, Any) == {"__int__": "-8000000000000001"}
    assert to_primitive(2**64 - 1, Any) == 2**64 - 1
    assert to_primitive(CodecProbe(1), Any) == {"__type__": "CodecProbe", "x": 1, "y": None}
    assert to_primitive({"a": b"\x00"}, Any) == {"a": b"\x00"}


def test_json_form_is_stdlib_json_with_tagged_bytes() -> None:
    text = encode(EntryNormal(b"\x01"), EntryPayload)
    assert json.loads(text) == {"type": "EntryNormal", "data": {"__bytes__": "AQ=="}}


def test_primitive_form_has_only_str_dict_keys_and_no_tuples() -> None:
    def walk(node: Any) -> None:
        assert not isinstance(node, tuple)
        if isinstance(node, dict):
            assert all(type(k) is str for k in node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(to_primitive({(1, 2): [(3,), {4: {None: b"x"}}]}, Any))


# --- refusals ---------------------------------------------------------------------------


def _refusal(value: Any) -> EncodeError:
    with pytest.raises(EncodeError) as info:
        check_app_value(value)
    with pytest.raises(EncodeError) as encoded:
        to_primitive(EntryNormal(value))
    assert str(encoded.value) == str(info.value)
    return info.value


def test_a_refused_value_names_its_path() -> None:
    error = _refusal(Put("k", [0, 1, 2, {"k": _function}]))
    assert error.path == 'data.value[3]["k"]'
    assert "function" in error.reason
    assert str(error).startswith('cannot encode data.value[3]["k"]: type function')
    assert isinstance(error, TypeError)


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        pytest.param(_function, "data", "type function is not accepted", id="function"),
        pytest.param(object(), "data", "type object is not accepted", id="object"),
        pytest.param({1, 2}, "data", "type set", id="set"),
        pytest.param(Color.RED, "data", "Color is not accepted", id="int-enum"),
        pytest.param(Name("x"), "data", "Name is not accepted", id="str-subclass"),
        pytest.param([collections.OrderedDict()], "data[0]", "OrderedDict", id="dict-subclass"),
        pytest.param({"a": bytearray()}, 'data["a"]', "bytearray", id="bytearray"),
        pytest.param((1, Unregistered()), "data[1]", "register_app_type", id="unregistered"),
        pytest.param(ProbeChild(1), "data", "subclass of the registered", id="subclass"),
        pytest.param(Put("k", ("\udc80",)), "data.value[0]", "surrogate", id="surrogate"),
        pytest.param({"\ud800": 1}, "data", "dict key '\\ud800'", id="surrogate-key"),
        pytest.param({(1, _function): 1}, "data", "the dict key (1, <function", id="bad-key"),
        pytest.param({3: {_function: 1}}, "data[3]", "the dict key", id="nested-bad-key"),
    ],
)
def test_refused_values(value: Any, path: str, words: str) -> None:
    error = _refusal(value)
    assert error.path == path
    assert words in error.reason


def test_nesting_is_bounded_and_cycles_are_refused() -> None:
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert same(decode(encode(deep, Any), Any), deep)
    error = _refusal([deep])
    assert "nested deeper" in error.reason
    cycle: list[Any] = []
    cycle.append(cycle)
    assert "contains itself" in _refusal(cycle).reason


@pytest.mark.parametrize("leaf", [2**70, -(2**70), {2**70: 1}, {"k": 2**64}])
def test_an_int_past_64_bits_is_a_leaf_at_the_deepest_level(leaf: Any) -> None:
    """Written as a tagged map one level down, it still counts as the leaf it is: what the
    leader's check accepts at the deepest level decodes on every replica (log rows, frames)."""
    deep = leaf
    for _ in range(MAX_DEPTH - (1 if type(leaf) is dict else 0)):
        deep = [deep]
    check_app_value(deep)
    assert same(decode(encode(deep, Any), Any), deep)
    entry = Entry(3, 2, EntryNormal(deep))
    assert same(decode(encode(entry), Entry).payload.data, deep)
    request = AppendEntriesRequest(1, 3, 1, 1, 3, (entry,), 0)
    body = frames.pack(to_primitive(request, RpcRequest))
    assert same(frames.decode_request(body, 1 << 20).entries[0].payload.data, deep)


def test_registration_rules() -> None:
    with pytest.raises(TypeError, match="not an attrs class"):
        register_app_type(int)
    assert register_app_type(CodecProbe) is CodecProbe  # again: nothing happens

    @attrs.frozen
    class CodecProbe2:
        x: int = attrs.field(init=False, default=1)

    with pytest.raises(TypeError, match="init=False"):
        register_app_type(CodecProbe2)

    def other() -> type:
        @attrs.frozen
        class CodecProbe:
            z: int

        return CodecProbe

    with pytest.raises(ValueError, match="already named CodecProbe"):
        register_app_type(other())


# --- decoding refuses what the encoder never writes -------------------------------------


@pytest.mark.parametrize(
    ("primitive", "words"),
    [
        pytest.param({"__tuple__": [1], "x": 2}, "extra keys", id="tuple-extra-key"),
        pytest.param({"__tuple__": 1}, "does not hold a list", id="tuple-not-list"),
        pytest.param({"__dict__": [[1]]}, "not a [key, value] pair", id="short-pair"),
        pytest.param({"__dict__": [[[1], 2]]}, "not hashable", id="list-key"),
        pytest.param({"__dict__": [[1, 2], [1, 3]]}, "appears twice", id="duplicate-key"),
        pytest.param({"__int__": "0x10"}, "not a hex string", id="int-not-hex"),
        pytest.param({"__int__": 16}, "not a hex string", id="int-not-str"),
        pytest.param({"__bytes__": "AA=="}, "bytes tag", id="bytes-tag-left"),
        pytest.param({"__type__": "Nope"}, "unknown application type 'Nope'", id="unknown"),
        pytest.param({"__type__": "Put", "k": 1}, "refused its fields", id="bad-fields"),
        pytest.param({"__type__": "Put", "key": 1, "value": 1}, "Put.key must be a str", id="key"),
        pytest.param({1: "x"}, "key of type int", id="plain-int-key"),
        pytest.param((1, 2), "tuple is not part of the primitive form", id="tuple"),
        pytest.param([1, {2, 3}], "set is not part", id="set"),
    ],
)
def test_malformed_primitives_raise_decode_error(primitive: Any, words: str) -> None:
    with pytest.raises(DecodeError) as info:
        from_primitive({"data": [primitive]}, EntryNormal)
    assert "cannot decode EntryNormal: data[0]" in str(info.value)
    assert words in str(info.value)


def test_decode_refuses_bad_base64_and_bad_json() -> None:
    with pytest.raises(DecodeError):
        decode(b'{"data":{"__bytes__":"%%%"}}', EntryNormal)
    with pytest.raises(DecodeError):
        decode(b'{"data":', EntryNormal)


# --- the size limit ---------------------------------------------------------------------


def test_size_is_the_msgpack_size() -> None:
    assert check_app_value(None) == 1
    assert check_app_value("k" * 31) == 32
    assert check_app_value(b"x" * 300) == 303
    assert check_app_value(Put("k", "v")) == 1 + 9 + 4 + 4 + 2 + 6 + 2


def test_an_oversized_value_is_refused_with_its_size_and_the_limit() -> None:
    value = Put("k", b"x" * 1000)
    size = check_app_value(value)
    assert check_app_value(value, max_bytes=size) == size
    with pytest.raises(EntryTooLarge) as info:
        check_app_value(value, max_bytes=size - 1)
    assert (info.value.size, info.value.limit) == (size, size - 1)
    assert f"{size:,} bytes" in str(info.value)
    assert "Config.max_entry_bytes" in str(info.value)


def test_max_entry_bytes_is_a_validated_config_field() -> None:
    assert Config().max_entry_bytes == DEFAULT_MAX_ENTRY_BYTES == 4 * 1024 * 1024
    assert Config(max_entry_bytes=10).max_entry_bytes == 10
    for bad in (0, -1, True, 1.5, "4MiB"):
        with pytest.raises(ConfigError) as info:
            Config(max_entry_bytes=bad)  # type: ignore[arg-type]
        assert info.value.field == "max_entry_bytes"


# --- the key-value state machine --------------------------------------------------------


def _apply(machine: KeyValueStateMachine, index: int, command: Any) -> Any:
    return machine.apply(Entry(1, index, EntryNormal(command)))


def _restored(machine: KeyValueStateMachine, keep_history: bool = False) -> KeyValueStateMachine:
    copy = KeyValueStateMachine(keep_history=keep_history)
    copy.restore(machine.snapshot()())
    return copy


def test_snapshot_of_bytes_and_int_keys_restores_equal_values() -> None:
    machine = KeyValueStateMachine()
    _apply(machine, 1, Put("b", b"\x00\xff"))
    _apply(machine, 2, Put("d", {1: "int key"}))
    _apply(machine, 3, Put("t", (1, [2, (3,)])))
    restored = _restored(machine)
    assert same(restored.data, machine.data)
    assert _apply(restored, 4, CompareAndSet("d", {1: "int key"}, "swapped")).swapped
    assert _apply(machine, 4, CompareAndSet("d", {1: "int key"}, "swapped")).swapped


@settings(max_examples=100, deadline=None)
@given(values=st.lists(app_values, max_size=5))
def test_snapshots_restore_equal_values_and_cas_decides_the_same(values: list[Any]) -> None:
    machine = KeyValueStateMachine(keep_history=True)
    for i, value in enumerate(values):
        _apply(machine, i + 1, Put(f"k{i}", value))
    restored = _restored(machine, keep_history=True)
    assert same(restored.data, machine.data)
    assert same(restored.applied, machine.applied)
    for i, value in enumerate(values):
        cas = CompareAndSet(f"k{i}", value, "new")
        copy = decode(encode(cas, Any), Any)  # as a node that received it decodes it
        assert same(_apply(machine, 100 + i, cas), _apply(restored, 100 + i, copy))
        assert same(_apply(machine, 200 + i, cas), _apply(restored, 200 + i, copy))
    assert same(restored.data, machine.data)


def test_cas_treats_nan_as_equal_whatever_the_identity() -> None:
    nan_list = [math.nan]
    assert same_value(nan_list, [math.nan])
    assert same_value({(math.nan,): 1}, {(math.nan,): 1})
    assert same_value(Put("k", math.nan), Put("k", math.nan))
    assert not same_value([1], (1,))
    assert same_value(1, 1.0)  # Python's == between types, as before
    assert not same_value({"a": math.nan}, {"a": 1.0})


def test_history_is_off_by_default_and_restore_refuses_other_data() -> None:
    machine = KeyValueStateMachine()
    _apply(machine, 1, Put("a", 1))
    assert machine.keep_history is False
    assert machine.applied == []
    with pytest.raises(DecodeError):
        machine.restore(encode([1, 2], Any))
    with pytest.raises(DecodeError):
        machine.restore(b"not json")


def test_kv_commands_refuse_non_str_keys() -> None:
    with pytest.raises(TypeError, match=r"Put\.key must be a str"):
        Put(1, "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Get\.key must be a str"):
        Get(Name("n"))


# --- the design note's examples run ------------------------------------------------------


def test_docs_codec_examples_run() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "codec.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "docs/codec.md", "exec"), {"__name__": "docs_codec"})
