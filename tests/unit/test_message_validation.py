"""Typed boundaries: public messages check their fields when built, and convert nothing.

A wrong type raises ``TypeError`` and a wrong value ``ValueError``, each naming the field;
decoding runs the same checks, so a malformed message on the wire is a ``DecodeError``.
"""

from __future__ import annotations

import re
from typing import Any

import pykka
import pytest

from pykka_raft import (
    Config,
    Isolate,
    LinkFaults,
    Raft,
    Register,
    Restore,
    SetLinkFaults,
    Unregister,
)
from pykka_raft.admin import InitWithConfig, ProposeConfigChange
from pykka_raft.codec import from_primitive, to_primitive
from pykka_raft.core import RaftCore
from pykka_raft.errors import DecodeError
from pykka_raft.messages import (
    ClientPayload,
    ClientPayloadResponse,
    Entry,
    EntryNormal,
    HardState,
    MembershipConfig,
    ResponseMode,
    SnapshotMeta,
)
from pykka_raft.statemachine import Put
from pykka_raft.storage.messages import (
    AppendEntryToLog,
    ApplyToStateMachine,
    CreateSnapshot,
    DeleteLogsFrom,
    GetLogEntries,
    InstallSnapshot,
    ReadSnapshotChunk,
    ReplicateToLog,
    SaveHardState,
    WriteSnapshotChunk,
)
from pykka_raft.types import LogId


def test_a_string_response_mode_raises_instead_of_meaning_committed() -> None:
    with pytest.raises(TypeError, match=r"ClientPayload\.response_mode must be a ResponseMode"):
        ClientPayload(EntryNormal(Put("k", 1)), "applied")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="response_mode"):
        ClientPayload.new(Put("k", 1), "applied")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ClientPayloadResponse\.response_mode"):
        ClientPayloadResponse(1, "committed")  # type: ignore[arg-type]
    assert ClientPayload.new(1, ResponseMode.APPLIED).response_mode is ResponseMode.APPLIED


def test_a_client_payload_needs_an_entry_normal() -> None:
    with pytest.raises(TypeError, match=r"ClientPayload\.entry .*ClientPayload\.new\(data\)"):
        ClientPayload(Put("k", 1))  # type: ignore[arg-type]


def test_init_with_config_converts_no_node_id() -> None:
    with pytest.raises(TypeError, match=r"InitWithConfig\.members item .* got str '2'"):
        InitWithConfig(["2", 3.9])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"got float 3\.9"):
        InitWithConfig([1, 3.9])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got bool True"):
        InitWithConfig([True])  # type: ignore[list-item]
    assert InitWithConfig([3, 1, 3, 2]).members == (3, 1, 2)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: InitWithConfig([1, -2]), id="init"),
        pytest.param(lambda: ProposeConfigChange(add_members=[-1]), id="add"),
        pytest.param(lambda: ProposeConfigChange(remove_members=(-5,)), id="remove"),
        pytest.param(lambda: ProposeConfigChange(add_non_voters={-3}), id="non-voters"),
        pytest.param(lambda: MembershipConfig(members=(1, -1)), id="members"),
        pytest.param(lambda: MembershipConfig((1,), (-2,)), id="after-consensus"),
        pytest.param(lambda: MembershipConfig((1,), non_voters=[-9]), id="membership-non-voters"),
        pytest.param(lambda: HardState(1, -1), id="voted-for"),
        pytest.param(lambda: HardState(-1), id="term"),
    ],
)
def test_negative_node_ids_raise_value_error(build: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda: InitWithConfig(3), "InitWithConfig.members", id="init-int"),
        pytest.param(lambda: InitWithConfig("12"), "InitWithConfig.members", id="init-str"),
        pytest.param(
            lambda: ProposeConfigChange(add_members=4), "ProposeConfigChange.add_members", id="add"
        ),
        pytest.param(
            lambda: ProposeConfigChange(remove_members="5"),
            "ProposeConfigChange.remove_members",
            id="remove",
        ),
        pytest.param(
            lambda: MembershipConfig(members={1: "a:1"}), "MembershipConfig.members", id="mapping"
        ),
        pytest.param(
            lambda: MembershipConfig(members=(1,), members_after_consensus=2),
            "MembershipConfig.members_after_consensus",
            id="after-consensus",
        ),
        pytest.param(
            lambda: MembershipConfig(members=(1,), non_voters=(1.0,)),
            "MembershipConfig.non_voters",
            id="float-item",
        ),
        pytest.param(lambda: HardState(1, "2"), "HardState.voted_for", id="voted-for"),
        pytest.param(lambda: HardState(True), "HardState.current_term", id="term-bool"),
        pytest.param(lambda: HardState(1, None, (1, 2)), "HardState.membership", id="membership"),
    ],
)
def test_wrong_types_raise_type_error_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(TypeError) as info:
        build()
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("node_id", "error", "words"),
    [
        (-1, ValueError, "got -1"),
        ("1", TypeError, "got str '1'"),
        (1.0, TypeError, "got float 1.0"),
        (True, TypeError, "got bool True"),
        (2**63, ValueError, "at most 2\\*\\*63 - 1, got 9223372036854775808"),
    ],
)
def test_a_node_is_started_with_a_checked_node_id(node_id: Any, error: type, words: str) -> None:
    """Raft.start and the core it builds convert nothing: no actor starts with a bad id."""
    with pytest.raises(error, match=f"node_id must be a node id .*{words}"):
        RaftCore(node_id, Config())
    before = len(pykka.ActorRegistry.get_all())
    with pytest.raises(error, match=f"node_id must be a node id .*{words}"):
        Raft.start(node_id, Config(), None, None)
    assert len(pykka.ActorRegistry.get_all()) == before


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [
        pytest.param(lambda: Register(-1, None), ValueError, "Register.node_id", id="register"),
        pytest.param(lambda: Register("2", None), TypeError, "Register.node_id", id="register-str"),
        pytest.param(lambda: Register(2, "ref"), TypeError, "Register.raft", id="register-no-ref"),
        pytest.param(lambda: Unregister(-1), ValueError, "Unregister.node_id", id="unregister"),
        pytest.param(lambda: Unregister(2.0), TypeError, "Unregister.node_id", id="unreg-float"),
        pytest.param(lambda: Isolate(-1), ValueError, "Isolate.node_id", id="isolate"),
        pytest.param(lambda: Isolate("1"), TypeError, "Isolate.node_id", id="isolate-str"),
        pytest.param(lambda: Restore(-3), ValueError, "Restore.node_id", id="restore"),
        pytest.param(lambda: Restore(None), TypeError, "Restore.node_id", id="restore-none"),
        pytest.param(lambda: LinkFaults(drop=2.0), ValueError, "LinkFaults.drop", id="drop"),
        pytest.param(lambda: LinkFaults(drop="0.1"), TypeError, "LinkFaults.drop", id="drop-str"),
        pytest.param(
            lambda: LinkFaults(duplicate=-0.1), ValueError, "LinkFaults.duplicate", id="duplicate"
        ),
        pytest.param(
            lambda: LinkFaults(delay_ms=(20, 10)), ValueError, "LinkFaults.delay_ms", id="delay"
        ),
        pytest.param(
            lambda: LinkFaults(delay_ms=(-1, 10)), ValueError, "LinkFaults.delay_ms", id="neg"
        ),
        pytest.param(lambda: LinkFaults(delay_ms=5), TypeError, "LinkFaults.delay_ms", id="int"),
        pytest.param(lambda: LinkFaults(seed=1.5), TypeError, "LinkFaults.seed", id="seed"),
        pytest.param(
            lambda: SetLinkFaults(0.5), TypeError, "SetLinkFaults.faults", id="set-faults"
        ),
    ],
)
def test_router_controls_check_their_fields(build: Any, error: type, field: str) -> None:
    """The router's control messages are refused when built, naming the field: a bad one
    never reaches the router, which would otherwise route, cut or fault nothing silently."""
    with pytest.raises(error) as info:
        build()
    assert field in str(info.value)


class _Ref:
    """Anything with ``tell`` is a route."""

    def tell(self, message: Any) -> None:
        pass


def test_good_router_controls_are_kept_as_given() -> None:
    assert Isolate(0).node_id == 0
    assert (Register(3, _Ref()).node_id, Unregister(2).node_id, Restore(1).node_id) == (3, 2, 1)
    faults = LinkFaults(drop=1, duplicate=0.5, delay_ms=(0, 2.5), seed=7)
    assert (faults.drop, faults.duplicate, faults.delay_ms, faults.seed) == (1, 0.5, (0, 2.5), 7)
    assert SetLinkFaults(faults).faults is faults


@pytest.mark.parametrize(
    ("addresses", "error", "words"),
    [
        pytest.param({1: 8080}, TypeError, "must be a 'host:port' str", id="port-int"),
        pytest.param({1: "localhost"}, ValueError, "must be 'host:port'", id="no-port"),
        pytest.param({1: ":80"}, ValueError, "must be 'host:port'", id="no-host"),
        pytest.param({1: "h:0"}, ValueError, "outside 1 to 65535", id="port-zero"),
        pytest.param({1: "h:70000"}, ValueError, "outside 1 to 65535", id="port-big"),
        pytest.param(
            {1: "h:\uff18\uff10"}, ValueError, "must be 'host:port'", id="non-ascii-digits"
        ),
        pytest.param({"1": "h:80"}, TypeError, "node id", id="id-str"),
        pytest.param([(1, "a:1"), (1, "b:2")], ValueError, "two addresses", id="duplicate"),
        pytest.param([(1, "a:1", 3)], ValueError, "pairs", id="triple"),
        pytest.param("a:1", TypeError, "must map node ids", id="bare-str"),
        pytest.param(7, TypeError, "must map node ids", id="bare-int"),
    ],
)
def test_addresses_are_host_port_strings(addresses: Any, error: type, words: str) -> None:
    for build in (
        lambda: InitWithConfig([1], addresses),
        lambda: ProposeConfigChange(addresses=addresses),
        lambda: MembershipConfig((1,), addresses=addresses),
    ):
        with pytest.raises(error, match=words):  # type: ignore[call-overload]
            build()


def test_good_addresses_are_kept_sorted() -> None:
    config = MembershipConfig((1, 2), addresses={2: "[::1]:7001", 1: "10.0.0.1:7000"})
    assert config.addresses == ((1, "10.0.0.1:7000"), (2, "[::1]:7001"))
    assert InitWithConfig([1], [(1, "h:1"), (1, "h:1")]).addresses == ((1, "h:1"),)


@pytest.mark.parametrize(
    ("cls", "primitive", "field"),
    [
        pytest.param(InitWithConfig, {"members": [1, -2]}, "members", id="init-negative"),
        pytest.param(InitWithConfig, {"members": [True]}, "members", id="init-bool"),
        pytest.param(
            InitWithConfig, {"members": [1], "addresses": [[1, "nohost"]]}, "addresses", id="addr"
        ),
        pytest.param(MembershipConfig, {"members": [-1]}, "members", id="membership"),
        pytest.param(HardState, {"current_term": 1, "voted_for": -4}, "voted_for", id="hard"),
        pytest.param(
            ClientPayload,
            {"entry": {"data": 1}, "response_mode": "soon"},
            "response_mode",
            id="mode",
        ),
        pytest.param(
            ProposeConfigChange, {"add_members": [1.5]}, "add_members", id="propose-float"
        ),
    ],
)
def test_decoding_runs_the_same_checks(cls: Any, primitive: Any, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        from_primitive(primitive, cls)
    assert f"cannot decode {cls.__name__}" in str(info.value)
    assert field in str(info.value)


@pytest.mark.parametrize(
    "message",
    [
        InitWithConfig([2, 1], {1: "a:1", 2: "b:2"}),
        ProposeConfigChange((4,), (1,), (5,), {4: "h:4"}),
        MembershipConfig((1, 2), (2, 3), (4,), {3: "c:3"}),
        HardState(3, 2, MembershipConfig((1, 2, 3))),
        ClientPayload.new(Put("k", b"v"), ResponseMode.APPLIED),
    ],
)
def test_valid_messages_still_round_trip(message: Any) -> None:
    assert from_primitive(to_primitive(message), type(message)) == message


@pytest.mark.parametrize(
    ("build", "field"),
    [
        pytest.param(lambda: SaveHardState("hs"), "SaveHardState.hard_state", id="hard-state"),
        pytest.param(lambda: GetLogEntries("a", None), "GetLogEntries.start", id="range"),
        pytest.param(lambda: ReplicateToLog("entries"), "ReplicateToLog.entries", id="str"),
        pytest.param(lambda: AppendEntryToLog({}), "AppendEntryToLog.entries", id="dict"),
        pytest.param(lambda: ApplyToStateMachine((1,)), "ApplyToStateMachine.entries", id="ints"),
        pytest.param(lambda: DeleteLogsFrom(1.5), "DeleteLogsFrom.index", id="float"),
        pytest.param(lambda: CreateSnapshot(None, None), "CreateSnapshot.last_included", id="c"),
        pytest.param(lambda: ReadSnapshotChunk(1, 0, 1), "ReadSnapshotChunk.snapshot_id", id="r"),
        pytest.param(lambda: WriteSnapshotChunk(None, 0, b""), "WriteSnapshotChunk.meta", id="w"),
        pytest.param(lambda: InstallSnapshot(None, True), "InstallSnapshot.meta", id="install"),
        pytest.param(
            lambda: InstallSnapshot(SnapshotMeta(LogId(1, 1), MembershipConfig((1,)), "s", 1), 1),
            "InstallSnapshot.keep_log",
            id="keep-log",
        ),
    ],
)
def test_storage_messages_check_their_fields(build: Any, field: str) -> None:
    """Sent straight to a storage, a wrong field is a TypeError when the message is built,
    not a Python error inside the storage (or a value stored for the node to trip on)."""
    with pytest.raises(TypeError, match=re.escape(field)):
        build()


def test_storage_messages_take_lists_of_entries_and_bytes_like_data() -> None:
    """What a network may deliver: a request's entries as a list, a chunk as a bytearray."""
    entry = Entry(1, 1, EntryNormal(Put("k", 1)))
    assert ReplicateToLog([entry]).entries == (entry,)
    meta = SnapshotMeta(LogId(1, 1), MembershipConfig((1,)), "s", 1)
    assert WriteSnapshotChunk(meta, 0, bytearray(b"x")).data == b"x"
