"""Round trips of every message through the cattrs codec, and its decode errors."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pykka_raft  # noqa: F401  (registers the key-value command types)
from pykka_raft.admin import (
    ConfigChangeResponse,
    InitWithConfig,
    ProposeConfigChange,
    TransferLeadership,
    TransferLeadershipResponse,
    TriggerElection,
    TriggerSnapshot,
)
from pykka_raft.codec import decode, encode, from_primitive, to_primitive
from pykka_raft.errors import DecodeError
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    ClientPayloadResponse,
    ClientRead,
    ClientReadResponse,
    ConflictOpt,
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    EntryPayload,
    EntrySnapshotPointer,
    GetMetrics,
    HardState,
    InitialState,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadPolicy,
    ResponseMode,
    RpcRequest,
    RpcResponse,
    SnapshotMeta,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.statemachine import CasResult, CompareAndSet, Delete, Get, Put
from pykka_raft.storage import (
    STORAGE_MESSAGES,
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    GetInitialState,
    GetLogEntries,
    InstallSnapshot,
    QueryStateMachine,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    WriteSnapshotChunk,
)
from pykka_raft.storage.memory import DumpStorage
from pykka_raft.types import LogId

SIMPLE = MembershipConfig(members=(3, 1, 2))
SNAP_META = SnapshotMeta(LogId(6, 100), SIMPLE, "100-1", 6)
JOINT = MembershipConfig(members=(1, 2, 3), members_after_consensus=(3, 4, 5), non_voters=(7, 6))

PAYLOADS: list[Any] = [
    EntryBlank(),
    EntryNormal(Put("k", "v")),
    EntryNormal(Get("k")),
    EntryNormal(Delete("k")),
    EntryNormal(CompareAndSet("k", None, 3)),
    EntryNormal(CompareAndSet("k", (1, "a"), [1, {"x": (2, 3)}])),
    EntryNormal("plain string"),
    EntryNormal(None),
    EntryNormal(12),
    EntryNormal((1, (2, 3), "x")),
    EntryNormal([1, [2, 3]]),
    EntryNormal({"nested": {"tuple": (1, 2), "list": [Put("a", 1)]}}),
    EntryConfigChange(SIMPLE),
    EntryConfigChange(JOINT),
    EntrySnapshotPointer("snap-1-42"),
]
PAYLOAD_IDS = [
    "blank",
    "normal-put",
    "normal-get",
    "normal-delete",
    "normal-cas",
    "normal-cas-nested",
    "normal-str",
    "normal-none",
    "normal-int",
    "normal-tuple",
    "normal-list",
    "normal-dict",
    "config-simple",
    "config-joint",
    "snapshot-pointer",
]

ENTRIES = tuple(Entry(term=2, index=i + 1, payload=p) for i, p in enumerate(PAYLOADS))

MESSAGES: list[tuple[str, Any]] = [
    ("membership-empty", MembershipConfig()),
    ("membership-simple", SIMPLE),
    ("membership-joint", JOINT),
    ("membership-non-voters-only", MembershipConfig(members=(1,), non_voters=(2, 3))),
    ("entry-blank", Entry(1, 1, EntryBlank())),
    ("entry-normal", Entry(1, 2, EntryNormal(Put("a", 1)))),
    ("entry-config", Entry(3, 4, EntryConfigChange(JOINT))),
    ("entry-snapshot-pointer", Entry(3, 5, EntrySnapshotPointer("s"))),
    ("conflict-opt", ConflictOpt(term=4, index=17)),
    ("append-request-heartbeat", AppendEntriesRequest(2, 5, 1, 10, 4, (), 9)),
    ("append-request-entries", AppendEntriesRequest(2, 5, 1, 0, 0, ENTRIES, 3)),
    ("append-response-ok", AppendEntriesResponse(term=5, success=True)),
    ("append-response-conflict", AppendEntriesResponse(5, False, ConflictOpt(3, 8))),
    ("vote-request", VoteRequest(2, 7, 1, 40, 6)),
    ("vote-response-granted", VoteResponse(7, True)),
    ("vote-response-unknown", VoteResponse(7, False, is_candidate_unknown=True)),
    (
        "install-snapshot-request",
        InstallSnapshotRequest(2, 7, 1, SNAP_META, 0, b"\x00\xffdata", False),
    ),
    ("install-snapshot-request-done", InstallSnapshotRequest(2, 7, 1, SNAP_META, 6, b"", True)),
    ("install-snapshot-response", InstallSnapshotResponse(term=7)),
    ("install-snapshot-response-restart", InstallSnapshotResponse(7, False)),
    ("install-snapshot-response-resume", InstallSnapshotResponse(7, False, 4096)),
    ("timeout-now", TimeoutNowRequest(target=2, term=7, leader_id=1)),
    ("read-index", ReadIndexRequest(target=1, term=7, follower_id=2)),
    ("read-index-response", ReadIndexResponse(7, 42)),
    ("read-index-refused", ReadIndexResponse(7, None)),
    ("client-read", ClientRead(Get("k"))),
    ("client-read-lease", ClientRead(Get("k"), ReadPolicy.LEASE)),
    ("client-read-response", ClientReadResponse(9, ("v", 1))),
    ("query", QueryStateMachine((Get("k"),))),
    ("append-entries-round", AppendEntriesRequest(2, 3, 1, 0, 0, (), 0, round=5)),
    ("timeout-now-response", TimeoutNowResponse(7, True)),
    ("pre-vote", VoteRequest(2, 8, 1, 10, 7, pre_vote=True)),
    ("transfer-vote", VoteRequest(2, 8, 1, 10, 7, transfer=True)),
    ("transfer-leadership", TransferLeadership(3)),
    ("transfer-leadership-any", TransferLeadership()),
    ("transfer-leadership-response", TransferLeadershipResponse(3, 9)),
    ("trigger-election", TriggerElection()),
    ("snapshot-meta", SNAP_META),
    ("initial-state-snapshot", InitialState(LogId(6, 120), 110, HardState(6), SNAP_META)),
    ("trigger-snapshot", TriggerSnapshot()),
    ("create-snapshot", CreateSnapshot(LogId(6, 100), SIMPLE)),
    ("read-snapshot-chunk", ReadSnapshotChunk("100-1", 0, 1024)),
    ("write-snapshot-chunk", WriteSnapshotChunk(SNAP_META, 0, b"\x00abc")),
    ("install-snapshot", InstallSnapshot(SNAP_META)),
    ("client-payload-committed", ClientPayload.new(Put("k", "v"))),
    ("client-payload-applied", ClientPayload.new(Get("k"), ResponseMode.APPLIED)),
    ("client-response-committed", ClientPayloadResponse(3, ResponseMode.COMMITTED)),
    ("client-response-cas", ClientPayloadResponse(4, ResponseMode.APPLIED, CasResult(True, "a"))),
    (
        "client-response-cas-fail",
        ClientPayloadResponse(4, ResponseMode.APPLIED, CasResult(False, 1)),
    ),
    ("client-response-value", ClientPayloadResponse(5, ResponseMode.APPLIED, (1, "x"))),
    ("hard-state-default", HardState()),
    ("hard-state-voted", HardState(current_term=3, voted_for=2, membership=JOINT)),
    ("initial-state", InitialState(LogId(3, 9), 7, HardState(3, None, SIMPLE))),
    ("get-metrics", GetMetrics()),
    ("init-with-config", InitWithConfig((1, 2, 3))),
    ("propose-config-change", ProposeConfigChange((4, 5), (1,), (6,))),
    ("propose-config-change-empty", ProposeConfigChange()),
    ("config-change-response", ConfigChangeResponse(12, SIMPLE)),
    ("get-initial-state", GetInitialState()),
    ("save-hard-state", SaveHardState(HardState(4, 1, JOINT))),
    ("get-log-entries", GetLogEntries(1, 10)),
    ("append-entry-to-log", AppendEntryToLog(ENTRIES)),
    ("replicate-to-log", ReplicateToLog(ENTRIES[:3])),
    ("replicate-to-log-empty", ReplicateToLog(())),
    ("delete-logs-from", DeleteLogsFrom(5)),
    ("apply-to-state-machine", ApplyToStateMachine(ENTRIES)),
    ("dump-storage", DumpStorage()),
    ("kv-put", Put("k", {"v": [1, 2]})),
    ("kv-get", Get("k")),
    ("kv-delete", Delete("k")),
    ("kv-cas", CompareAndSet("k", 1, 2)),
    ("kv-cas-result", CasResult(False, None)),
    ("log-id", LogId(3, 12)),
    ("log-id-zero", LogId()),
    *[
        (
            f"metrics-{state.value}",
            RaftMetrics(1, state, 3, 10, 9, 8, 1 if state is State.FOLLOWER else None, JOINT),
        )
        for state in State
    ],
]


def round_trip(message: Any, as_type: Any = None) -> Any:
    """Encode and decode ``message`` (as ``as_type`` if given)."""
    cls = as_type or type(message)
    return from_primitive(to_primitive(message, as_type), cls)


def contains_bytes(value: Any) -> bool:
    """True if a primitive structure holds a ``bytes`` value anywhere."""
    if isinstance(value, bytes):
        return True
    if isinstance(value, dict):
        return any(contains_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_bytes(v) for v in value)
    return False


@pytest.mark.parametrize("message", [m for _, m in MESSAGES], ids=[i for i, _ in MESSAGES])
def test_round_trip(message: Any) -> None:
    decoded = round_trip(message)
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("message", [m for _, m in MESSAGES], ids=[i for i, _ in MESSAGES])
def test_primitive_form_is_json_unless_bytes(message: Any) -> None:
    primitive = to_primitive(message)
    if contains_bytes(primitive):
        assert isinstance(message, (InstallSnapshotRequest, WriteSnapshotChunk))
        return
    text = json.dumps(primitive)
    assert from_primitive(json.loads(text), type(message)) == message


@pytest.mark.parametrize("message", [m for _, m in MESSAGES], ids=[i for i, _ in MESSAGES])
def test_primitive_form_survives_msgpack(message: Any) -> None:
    msgpack = pytest.importorskip("msgpack")
    unpacked = msgpack.unpackb(msgpack.packb(to_primitive(message)))  # strict map keys
    decoded = from_primitive(unpacked, type(message))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("message", [m for _, m in MESSAGES], ids=[i for i, _ in MESSAGES])
def test_encode_decode_round_trip(message: Any) -> None:
    decoded = decode(encode(message), type(message))
    assert decoded == message
    assert type(decoded) is type(message)


def test_every_message_class_is_covered() -> None:
    import pykka_raft.messages as messages_module

    covered = {type(m) for _, m in MESSAGES} | {type(p) for p in PAYLOADS}
    defined = {
        obj
        for obj in vars(messages_module).values()
        if isinstance(obj, type)
        and attrs.has(obj)
        and obj.__module__.startswith(messages_module.__name__ + ".")
    }
    assert len(defined) > 20  # the classes live in the package's modules
    assert defined - covered == set()
    assert set(STORAGE_MESSAGES) - covered == set()
    import pykka_raft.admin as admin_module

    admin = {
        obj
        for obj in vars(admin_module).values()
        if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == admin_module.__name__
    }
    assert admin - covered == set()


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_entry_payload_union_round_trip(payload: Any) -> None:
    primitive = to_primitive(payload, EntryPayload)
    assert primitive["type"] == type(payload).__name__
    decoded: Any = from_primitive(primitive, EntryPayload)
    assert decoded == payload
    assert type(decoded) is type(payload)


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_entry_round_trip_each_payload(payload: Any) -> None:
    entry = Entry(9, 33, payload)
    assert round_trip(entry) == entry
    assert round_trip(entry).log_id == LogId(9, 33)


RPC_REQUESTS = [
    pytest.param(AppendEntriesRequest(2, 5, 1, 0, 0, ENTRIES, 3), id="append"),
    pytest.param(AppendEntriesRequest(2, 5, 1, 4, 4, (), 3), id="heartbeat"),
    pytest.param(VoteRequest(2, 7, 1, 40, 6), id="vote"),
    pytest.param(InstallSnapshotRequest(2, 7, 1, SNAP_META, 3, b"abc", True), id="snapshot"),
]
RPC_RESPONSES = [
    pytest.param(AppendEntriesResponse(5, True), id="append-ok"),
    pytest.param(AppendEntriesResponse(5, False, ConflictOpt(2, 3)), id="append-conflict"),
    pytest.param(VoteResponse(7, False, True), id="vote"),
    pytest.param(InstallSnapshotResponse(7), id="snapshot"),
]


@pytest.mark.parametrize("message", RPC_REQUESTS)
def test_rpc_request_union_round_trip(message: Any) -> None:
    primitive = to_primitive(message, RpcRequest)
    assert primitive["type"] == type(message).__name__
    decoded: Any = from_primitive(primitive, RpcRequest)
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize("message", RPC_RESPONSES)
def test_rpc_response_union_round_trip(message: Any) -> None:
    primitive = to_primitive(message, RpcResponse)
    assert primitive["type"] == type(message).__name__
    decoded: Any = from_primitive(primitive, RpcResponse)
    assert decoded == message
    assert type(decoded) is type(message)


def test_union_tag_selects_the_member() -> None:
    primitive = to_primitive(VoteResponse(3, True), RpcResponse)
    primitive["type"] = "InstallSnapshotResponse"
    decoded: Any = from_primitive(primitive, RpcResponse)
    assert decoded == InstallSnapshotResponse(3)


def test_primitive_shapes() -> None:
    entry = Entry(1, 2, EntryNormal(Put("k", (1, 2))))
    assert to_primitive(entry) == {
        "term": 1,
        "index": 2,
        "payload": {
            "type": "EntryNormal",
            "data": {"__type__": "Put", "key": "k", "value": {"__tuple__": [1, 2]}},
        },
    }
    assert to_primitive(JOINT) == {
        "members": [1, 2, 3],
        "members_after_consensus": [3, 4, 5],
        "non_voters": [6, 7],
        "addresses": [],
    }
    assert to_primitive(ClientPayloadResponse(1, ResponseMode.APPLIED))["response_mode"] == (
        "applied"
    )
    assert to_primitive(InstallSnapshotRequest(1, 1, 1, SNAP_META, 4, b"xy", True))["data"] == b"xy"


def test_decoding_normalizes_membership_sets() -> None:
    decoded: Any = from_primitive(
        {"members": [3, 1, 3, 2], "members_after_consensus": [5, 4], "non_voters": [9, 9]},
        MembershipConfig,
    )
    assert decoded == MembershipConfig((1, 2, 3), (4, 5), (9,))
    assert decoded.members == (1, 2, 3)
    assert decoded.is_in_joint_consensus


def test_tuples_and_lists_stay_distinct_in_app_data() -> None:
    data = ((1, 2), [3, 4], {"t": (5,), "l": [6]})
    decoded = round_trip(EntryNormal(data)).data
    assert isinstance(decoded, tuple)
    assert isinstance(decoded[0], tuple)
    assert isinstance(decoded[1], list)
    assert isinstance(decoded[2]["t"], tuple)
    assert isinstance(decoded[2]["l"], list)


# --- a property over arbitrary application data -----------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_keys = st.text(max_size=6).filter(lambda k: not k.startswith("__"))
_app_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
        st.builds(Put, st.text(max_size=6), inner),
        st.builds(CasResult, st.booleans(), inner),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(data=_app_values)
def test_app_data_round_trips(data: Any) -> None:
    message = ClientPayloadResponse(1, ResponseMode.APPLIED, data)
    assert round_trip(message) == message
    assert round_trip(EntryNormal(data), EntryPayload) == EntryNormal(data)


# --- decode errors ----------------------------------------------------------------------

MALFORMED = [
    pytest.param(Entry, {"term": 1, "index": 1}, "Entry", id="entry-missing-payload"),
    pytest.param(Entry, {}, "Entry", id="entry-empty"),
    pytest.param(
        Entry, {"term": "x", "index": 1, "payload": {"type": "EntryBlank"}}, "Entry", id="entry-str"
    ),
    pytest.param(Entry, None, "Entry", id="entry-none"),
    pytest.param(Entry, [1, 2], "Entry", id="entry-list"),
    pytest.param(
        Entry, {"term": 1, "index": 1, "payload": {"type": "Bogus"}}, "Entry", id="entry-bad-tag"
    ),
    pytest.param(Entry, {"term": 1, "index": 1, "payload": {}}, "Entry", id="entry-no-tag"),
    pytest.param(VoteRequest, {"target": 1, "term": 2}, "VoteRequest", id="vote-missing"),
    pytest.param(
        VoteResponse, {"term": {"a": 1}, "vote_granted": True}, "VoteResponse", id="vote-dict-term"
    ),
    pytest.param(
        AppendEntriesRequest,
        {
            "target": 1,
            "term": 1,
            "leader_id": 1,
            "prev_log_index": 0,
            "prev_log_term": 0,
            "entries": 5,
            "leader_commit": 0,
        },
        "AppendEntriesRequest",
        id="append-entries-not-list",
    ),
    pytest.param(
        AppendEntriesResponse,
        {"term": 1, "success": False, "conflict_opt": {"term": 1}},
        "AppendEntriesResponse",
        id="conflict-missing-index",
    ),
    pytest.param(MembershipConfig, {"members": ["a"]}, "MembershipConfig", id="members-str"),
    pytest.param(MembershipConfig, {"members": 3}, "MembershipConfig", id="members-int"),
    pytest.param(
        ClientPayload,
        {"entry": {"data": 1}, "response_mode": "later"},
        "ClientPayload",
        id="bad-response-mode",
    ),
    pytest.param(ClientPayload, {"response_mode": "applied"}, "ClientPayload", id="no-entry"),
    pytest.param(HardState, {"current_term": "x"}, "HardState", id="hard-state-term"),
    pytest.param(InitialState, {"last_applied": 0}, "InitialState", id="initial-state-missing"),
    pytest.param(InitWithConfig, {"members": ["x"]}, "InitWithConfig", id="init-bad-member"),
    pytest.param(InitWithConfig, {}, "InitWithConfig", id="init-missing"),
    pytest.param(GetLogEntries, {"start": 1}, "GetLogEntries", id="get-log-entries-missing"),
    pytest.param(
        RaftMetrics,
        {
            "id": 1,
            "state": "dancing",
            "current_term": 1,
            "last_log_index": 0,
            "commit_index": 0,
            "last_applied": 0,
            "current_leader": None,
            "membership_config": {},
        },
        "RaftMetrics",
        id="metrics-bad-state",
    ),
    pytest.param(LogId, {"term": "x", "index": 0}, "LogId", id="log-id-str"),
    pytest.param(EntryNormal, {}, "EntryNormal", id="normal-missing-data"),
    pytest.param(
        EntryNormal, {"data": {"__type__": "Nope", "x": 1}}, "EntryNormal", id="unknown-app-type"
    ),
    pytest.param(
        EntryNormal, {"data": {"__type__": "Put"}}, "EntryNormal", id="app-type-missing-fields"
    ),
    pytest.param(
        ClientPayloadResponse,
        {"index": 1, "response_mode": "applied", "data": {"__type__": "Nope"}},
        "ClientPayloadResponse",
        id="response-unknown-app-type",
    ),
]


@pytest.mark.parametrize(("cls", "data", "name"), MALFORMED)
def test_malformed_input_raises_decode_error_naming_the_class(
    cls: Any, data: Any, name: str
) -> None:
    with pytest.raises(DecodeError) as info:
        from_primitive(data, cls)
    assert f"cannot decode {name}" in str(info.value)


@pytest.mark.parametrize("union", [EntryPayload, RpcRequest, RpcResponse])
def test_unknown_union_tag_raises_decode_error(union: Any) -> None:
    with pytest.raises(DecodeError) as info:
        from_primitive({"type": "NoSuchMessage", "term": 1}, union)
    assert "NoSuchMessage" in str(info.value)
    assert "cannot decode" in str(info.value)


@pytest.mark.parametrize("union", [EntryPayload, RpcRequest, RpcResponse])
def test_union_without_tag_raises_decode_error(union: Any) -> None:
    with pytest.raises(DecodeError):
        from_primitive({"term": 1}, union)


def test_union_member_with_bad_fields_names_the_field() -> None:
    with pytest.raises(DecodeError) as info:
        from_primitive({"type": "VoteRequest", "term": "x"}, RpcRequest)
    assert "$.term" in str(info.value)
    assert "$.target" in str(info.value)


def test_decode_error_is_a_value_error_with_a_cause() -> None:
    with pytest.raises(ValueError) as info:
        from_primitive({"term": 1, "index": "x"}, LogId)
    assert isinstance(info.value, DecodeError)
    assert info.value.__cause__ is not None


def test_unknown_app_type_at_top_level_names_the_type() -> None:
    with pytest.raises(DecodeError, match="unknown application type 'Nope'"):
        from_primitive({"__type__": "Nope"}, Any)


def test_nested_unknown_app_type_message_names_the_type() -> None:
    # The codec raises DecodeError("unknown application type 'Nope': register it first"),
    # and from_primitive re-raises DecodeError unchanged, but only when it is not nested.
    with pytest.raises(DecodeError) as info:
        from_primitive({"data": {"__type__": "Nope"}}, EntryNormal)
    assert "Nope" in str(info.value)


@pytest.mark.parametrize(
    ("cls", "data"),
    [
        pytest.param(AppendEntriesResponse, {"term": 1, "success": "false"}, id="bool-from-str"),
        pytest.param(VoteResponse, {"term": 1, "vote_granted": "no"}, id="vote-bool-from-str"),
        pytest.param(LogId, {"term": 1.7, "index": 2}, id="int-from-float"),
    ],
)
def test_wrong_scalar_types_are_rejected(cls: Any, data: Any) -> None:
    with pytest.raises(DecodeError):
        from_primitive(data, cls)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"__tuple__": [1, 2]}, id="dict-with-tuple-key"),
        pytest.param({"__type__": "Put", "key": "a", "value": 1}, id="dict-with-type-key"),
    ],
)
def test_plain_dicts_with_reserved_keys_round_trip(data: dict[str, Any]) -> None:
    message = EntryNormal(data)
    assert round_trip(message) == message


# --- encode errors ----------------------------------------------------------------------


@attrs.frozen
class NotRegistered:
    """An attrs class nobody registered as application data."""

    x: int


class Plain:
    """Not an attrs class at all."""


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(EntryNormal(NotRegistered(1)), id="normal-attrs"),
        pytest.param(EntryNormal(Plain()), id="normal-plain"),
        pytest.param(EntryNormal((1, [NotRegistered(2)])), id="normal-nested"),
        pytest.param(EntryNormal({1, 2}), id="normal-set"),
        pytest.param(ClientPayloadResponse(1, ResponseMode.APPLIED, Plain()), id="response"),
        pytest.param(ClientPayload.new(NotRegistered(3)), id="client-payload"),
        pytest.param(Entry(1, 1, EntryNormal(NotRegistered(4))), id="entry"),
    ],
)
def test_unregistered_app_type_raises_type_error_on_encode(message: Any) -> None:
    with pytest.raises(TypeError, match="register_app_type"):
        to_primitive(message)


def test_unregistered_app_type_raises_type_error_through_union() -> None:
    with pytest.raises(TypeError, match="NotRegistered"):
        to_primitive(EntryNormal(NotRegistered(1)), EntryPayload)
