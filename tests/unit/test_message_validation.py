"""Typed boundaries: public messages check their fields when built, and convert nothing.

A wrong type raises ``TypeError`` and a wrong value ``ValueError``, each naming the field;
decoding runs the same checks, so a malformed message on the wire is a ``DecodeError``.
"""

from __future__ import annotations

from typing import Any

import pytest

from pykka_raft.admin import InitWithConfig, ProposeConfigChange
from pykka_raft.codec import from_primitive, to_primitive
from pykka_raft.errors import DecodeError
from pykka_raft.messages import (
    ClientPayload,
    ClientPayloadResponse,
    EntryNormal,
    HardState,
    MembershipConfig,
    ResponseMode,
)
from pykka_raft.statemachine import Put


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
