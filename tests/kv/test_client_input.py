"""What ``Client`` refuses before it sends anything: values JSON does not carry exactly,
and invalid arguments of its own."""

from __future__ import annotations

from typing import Any

import pytest

from pykka_raft.kv import BadRequest, Client, KvConfigError
from pykka_raft.kv.errors import KvError
from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.writes import Outcome

pytestmark = pytest.mark.timeout(120)

REFUSED: list[tuple[Any, str, str]] = [
    # (value, the path named, a word of the message)
    ({1: "x", "1": "y"}, "value", "the key 1 (int) is not a string"),
    ({1: "x"}, "value", "read back as '1'"),
    ({"a": [0, {(1, 2): 3}]}, "value['a'][1]", "is not a string"),
    ({1, 2}, "value", "type set"),
    (frozenset(), "value", "type frozenset"),
    (b"x", "value", "type bytes"),
    (bytearray(b"x"), "value", "type bytearray"),
    ((1, 2), "value", "tuple"),
    ([1, (2,)], "value[1]", "tuple"),
    (float("nan"), "value", "nan"),
    ({"a": {"b": [float("inf")]}}, "value['a']['b'][0]", "inf"),
    ([-float("inf")], "value[0]", "-inf"),
    (object(), "value", "type object"),
    ({"k": {1.5: 2}}, "value['k']", "the key 1.5 (float)"),
]


@pytest.mark.parametrize(
    ("value", "path", "why"), REFUSED, ids=[f"{i}-{why}" for i, (_, _, why) in enumerate(REFUSED)]
)
@pytest.mark.parametrize("sessions", [True, False])
def test_a_value_json_does_not_carry_exactly_is_refused_before_sending(
    closed_url: str, value: Any, path: str, why: str, sessions: bool
) -> None:
    # Nothing listens at closed_url: had anything been sent, the error would be
    # ClusterUnreachable. The check comes first, with a KvError naming the place.
    client = Client([closed_url], timeout=1, deadline=1, sessions=sessions)
    with pytest.raises(BadRequest) as exc:
        client.put("k", value)
    error = exc.value
    assert error.code == "bad_value" and error.path == path and error.status == 0
    assert why in str(error) and str(error).startswith(f"bad_value: {path}: ")
    assert "nothing was sent" in str(error) and error.exit_code == 4
    for call, field in (
        (lambda: client.cas("k", new=value), "new"),
        (lambda: client.cas("k", value, 1), "expected"),
        (lambda: client.cas("k", 1, value), "new"),
    ):
        with pytest.raises(BadRequest) as cas:
            call()
        assert cas.value.code == "bad_value" and cas.value.path == field + path[len("value") :]


def test_write_returns_a_refused_value_as_not_applied(closed_url: str) -> None:
    client = Client([closed_url], timeout=1, deadline=1)
    result = client.write("PUT", "/v1/kv/k", {"value": {"a": {3}}})
    assert result.outcome is Outcome.NOT_APPLIED and result.attempts == 0
    assert isinstance(result.error, BadRequest) and result.error.path == "value['a']"


def test_a_value_nested_too_deeply_or_holding_itself_is_refused(closed_url: str) -> None:
    loop: list[Any] = []
    loop.append(loop)
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    client = Client([closed_url], timeout=1, deadline=1)
    for value in (loop, deep):
        with pytest.raises(BadRequest) as exc:
            client.put("k", value)
        assert exc.value.code == "bad_value" and "nested too deeply" in str(exc.value)


def test_values_json_carries_are_written_and_read_back_as_they_were(kv3: LocalCluster) -> None:
    client = kv3.client()
    value = {
        "": None,
        "1": [True, False, 0, -1, 2**70, 1.5, -0.0, "x\u00e9\U0001f600"],
        "nested": {"a": [{"b": []}, {}]},
    }
    client.put("input/ok", value)
    assert client.get("input/ok") == value
    client.cas("input/ok", value, [value])
    assert client.get("input/ok") == [value]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": "10"}, "timeout"),
        ({"deadline": -1}, "deadline"),
        ({"deadline": float("nan")}, "deadline"),
        ({"deadline": True}, "deadline"),
        ({"max_redirects": -1}, "max_redirects"),
        ({"max_redirects": 1.5}, "max_redirects"),
        ({"token": "has space"}, "token"),
        ({"token": 12345678901234567}, "token"),
        ({"urls": []}, "urls"),
        ({"urls": ["ftp://x"]}, "urls"),
        ({"urls": [None]}, "urls"),
        ({"urls": ""}, "urls"),
    ],
    ids=lambda x: repr(x),
)
def test_invalid_arguments_are_refused_at_construction(kwargs: dict[str, Any], named: str) -> None:
    arguments: dict[str, Any] = {"urls": ["http://127.0.0.1:1"], **kwargs}
    with pytest.raises(KvConfigError) as exc:
        Client(**arguments)
    assert str(exc.value).startswith(f"Client {named}: ")
    assert isinstance(exc.value, ValueError) and not isinstance(exc.value, KvError)


def test_valid_arguments_are_taken(closed_url: str) -> None:
    client = Client(closed_url, timeout=0.5, deadline=1, max_redirects=0, token="t" * 16)
    assert client.urls == [closed_url] and client.timeout == 0.5
    with pytest.raises(KvError):  # the first call uses them: no ValueError there
        client.get("k")
