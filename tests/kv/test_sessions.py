"""Client sessions through the HTTP API: a write resent under the same ``(client_id,
sequence)`` is applied once and answered with its first answer; stale sequences and unknown
sessions are clear 409s; writes without a session work as before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pykka_raft import Isolate, Restore
from pykka_raft.kv import BadRequest, Client, HttpSettings, UnknownOutcome
from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.writes import Outcome
from tests.kv.conftest import follower_of, leader_of, request


def register(url: str) -> int:
    answer = request(url, "POST", "/v1/sessions")
    assert answer.status == 200, answer.data
    client_id = answer.json["client_id"]
    assert isinstance(client_id, int) and client_id == answer.json["index"]
    return client_id


def test_a_resent_write_is_applied_once(kv3: LocalCluster) -> None:
    url = kv3.url(leader_of(kv3))
    client_id = register(url)
    first = {"new": 1, "client_id": client_id, "sequence": 1}
    created = request(url, "POST", "/v1/kv/sessions/once/cas", first)
    assert created.status == 200 and created.json["swapped"] and not created.json["existed"]
    # The answer was "lost": the same write again, same sequence. Applied a second time it
    # would fail (the key exists now); it is answered from the session's cache instead.
    again = request(url, "POST", "/v1/kv/sessions/once/cas", first)
    assert again.status == 200 and again.json["swapped"] and not again.json["existed"]
    assert again.json["index"] > created.json["index"]  # a new entry, answered from cache
    # Without a session, the same request is applied again: the check above could fail.
    plain = request(url, "POST", "/v1/kv/sessions/once/cas", {"new": 1})
    assert plain.status == 409 and plain.code == "cas_failed"
    # A put resent: "previous" is the first answer's (null), not the value it wrote.
    put: dict[str, Any] = {"value": "a", "client_id": client_id, "sequence": 2}
    assert request(url, "PUT", "/v1/kv/sessions/put", put).json["existed"] is False
    assert request(url, "PUT", "/v1/kv/sessions/put", put).json["existed"] is False
    assert request(url, "PUT", "/v1/kv/sessions/put", {"value": "b"}).json["previous"] == "a"
    # A delete resent: the first answer again (the key existed), not key_not_found.
    gone: dict[str, Any] = {"client_id": client_id, "sequence": 3}
    assert request(url, "DELETE", "/v1/kv/sessions/put", gone).json["previous"] == "b"
    assert request(url, "DELETE", "/v1/kv/sessions/put", gone).json["previous"] == "b"
    assert request(url, "GET", "/v1/kv/sessions/put").code == "key_not_found"


def test_stale_sequences_and_unknown_sessions_are_409(kv3: LocalCluster) -> None:
    url = kv3.url(leader_of(kv3))
    client_id = register(url)
    for sequence in (1, 2):
        body = {"value": sequence, "client_id": client_id, "sequence": sequence}
        assert request(url, "PUT", "/v1/kv/sessions/stale", body).status == 200
    stale = request(
        url, "PUT", "/v1/kv/sessions/stale", {"value": 9, "client_id": client_id, "sequence": 1}
    )
    assert stale.status == 409 and stale.code == "stale_sequence"
    error = stale.json["error"]
    assert (error["client_id"], error["sequence"], error["latest"]) == (client_id, 1, 2)
    assert request(url, "GET", "/v1/kv/sessions/stale").json["value"] == 2  # nothing applied
    unknown = request(
        url, "PUT", "/v1/kv/sessions/stale", {"value": 9, "client_id": 10**9, "sequence": 1}
    )
    assert unknown.status == 409 and unknown.code == "session_expired"
    assert unknown.json["error"]["client_id"] == 10**9
    # A closed session is gone too.
    assert request(url, "DELETE", f"/v1/sessions/{client_id}").status == 200
    closed = request(
        url, "PUT", "/v1/kv/sessions/stale", {"value": 9, "client_id": client_id, "sequence": 3}
    )
    assert closed.code == "session_expired"
    assert request(url, "DELETE", f"/v1/sessions/{client_id}").code == "session_expired"
    assert request(url, "GET", "/v1/kv/sessions/stale").json["value"] == 2


def test_a_sequence_reused_for_another_operation_is_409(kv3: LocalCluster) -> None:
    """The cached answer of a cas does not fit a put or a delete sent with its sequence,
    nor a put's a cas: each is refused (it was a 500 when the answer did not encode)."""
    url = kv3.url(leader_of(kv3))
    client_id = register(url)
    cas = {"new": 1, "client_id": client_id, "sequence": 1}
    assert request(url, "POST", "/v1/kv/sessions/reused/cas", cas).status == 200
    for method, body in (("PUT", {"value": 2, **cas}), ("DELETE", {**cas})):
        del body["new"]
        answer = request(url, method, "/v1/kv/sessions/reused", body)
        assert answer.status == 409 and answer.code == "sequence_reused", answer.data
        assert answer.json["error"]["sequence"] == 1
    put = {"value": 3, "client_id": client_id, "sequence": 2}
    assert request(url, "PUT", "/v1/kv/sessions/reused", put).status == 200
    reuse = {"new": 4, "client_id": client_id, "sequence": 2}
    answer = request(url, "POST", "/v1/kv/sessions/reused/cas", reuse)
    assert answer.status == 409 and answer.code == "sequence_reused", answer.data
    assert request(url, "GET", "/v1/kv/sessions/reused").json["value"] == 3  # nothing applied


def test_bad_session_fields_are_400(kv3: LocalCluster) -> None:
    url = kv3.url(leader_of(kv3))
    for body in (
        {"value": 1, "client_id": 1},
        {"value": 1, "sequence": 1},
        {"value": 1, "client_id": "1", "sequence": 1},
        {"value": 1, "client_id": 1, "sequence": 0},
        {"value": 1, "client_id": True, "sequence": 1},
        {"value": 1, "client_id": 2**63, "sequence": 1},  # more than a store keeps
        {"value": 1, "client_id": 1, "sequence": 2**64},
    ):
        answer = request(url, "PUT", "/v1/kv/sessions/bad", body)
        assert answer.status == 400 and answer.code == "bad_request", body
    assert request(url, "POST", "/v1/sessions", {"x": 1}).code == "bad_request"
    for raw in ("abc", "%C2%B2", "%D9%A6", str(2**63)):  # "²" and an Arabic-Indic 6
        assert request(url, "DELETE", f"/v1/sessions/{raw}").code == "bad_request", raw
    assert request(url, "GET", "/v1/kv/sessions/bad").code == "key_not_found"


def test_a_follower_redirects_session_requests(kv3: LocalCluster) -> None:
    leader, follower = leader_of(kv3), follower_of(kv3)
    answer = request(kv3.url(follower), "POST", "/v1/sessions")
    assert answer.status == 307 and answer.json["error"]["leader_id"] == leader
    assert answer.headers["location"] == kv3.url(leader) + "/v1/sessions"


def test_the_client_resends_a_write_whose_answer_was_lost(
    kv3: LocalCluster, losing_proxy: Any
) -> None:
    """The answer to a compare-and-set is lost after the leader applied it: the client
    resends it under the same sequence and gets the first answer (swapped), not the
    ``cas_failed`` a second application would give."""
    proxy = losing_proxy(kv3.url(leader_of(kv3)))
    client = Client([proxy.url], timeout=5, deadline=20)
    result = client.write("POST", "/v1/kv/sessions/lost/cas", {"new": 1})
    assert result.outcome is Outcome.APPLIED, result.error
    assert result.response["swapped"] is True and result.attempts == 2
    assert proxy.lost == [(result.client_id, 1)]
    assert proxy.writes == [(result.client_id, 1), (result.client_id, 1)]  # resent as is
    assert client.get("sessions/lost") == 1
    # The next write of the session takes the next sequence, and its answer arrives.
    assert client.put("sessions/lost", 2)["previous"] == 1
    assert proxy.writes[-1] == (result.client_id, 2)


def test_without_sessions_a_lost_answer_is_unknown(kv3: LocalCluster, losing_proxy: Any) -> None:
    """The fault the test above survives is real: with the answer lost, a client without
    sessions cannot tell, and the write was in fact applied."""
    proxy = losing_proxy(kv3.url(leader_of(kv3)))
    client_id = register(kv3.url(leader_of(kv3)))
    plain = Client([proxy.url], timeout=5, deadline=5, sessions=False)
    # The proxy loses answers to session writes: send one by hand, without resending.
    with pytest.raises(UnknownOutcome):
        plain.call(
            "POST",
            "/v1/kv/sessions/plain/cas",
            {"new": 1, "client_id": client_id, "sequence": 1},
        )
    assert plain.get("sessions/plain") == 1  # applied although no answer came


def test_a_write_whose_answers_are_always_lost_ends_unknown(
    kv3: LocalCluster, losing_proxy: Any
) -> None:
    proxy = losing_proxy(kv3.url(leader_of(kv3)), lose=1000)
    client = Client([proxy.url], timeout=2, deadline=1.5)
    result = client.write("PUT", "/v1/kv/sessions/unknown", {"value": 1})
    assert result.outcome is Outcome.UNKNOWN and result.attempts >= 2
    assert isinstance(result.error, UnknownOutcome)
    assert {ids[1] for ids in proxy.writes} == {1}  # every attempt under one sequence
    with pytest.raises(UnknownOutcome):
        result.unwrap()
    # It was applied, once: the value is there and one sequence was used.
    assert Client(kv3.urls).get("sessions/unknown") == 1


def test_writes_are_applied_exactly_once_across_a_leader_change(
    cluster_factory: Any,
) -> None:
    """The leader is cut off while a write waits on it (504 after ``request_timeout``);
    the client resends it, under the same sequence, until the new leader applies it."""
    cluster = cluster_factory([1, 2, 3], http=HttpSettings(request_timeout=1.0))
    leader = leader_of(cluster)
    urls = [cluster.url(leader)] + [u for u in cluster.urls if u != cluster.url(leader)]
    client = Client(urls, timeout=5, deadline=30)
    client.put("change/n", 0)  # the session is open, the leader known
    cluster.network.router.ask(Isolate(leader))
    try:
        result = client.write("POST", "/v1/kv/change/n/cas", {"expected": 0, "new": 1})
    finally:
        cluster.network.router.ask(Restore(leader))
    assert result.outcome is Outcome.APPLIED, result.error
    assert result.attempts >= 2 and result.response["swapped"] is True
    assert client.sessions is not None and client.sessions.resends >= 1
    assert client.get("change/n") == 1


def test_a_value_taken_without_a_session_is_taken_in_one(kv3: LocalCluster) -> None:
    # kv3 takes bodies of 4096 bytes. The session's fields made such a value's body too
    # large, so a value read back could not be written again by the client (or restore).
    url = kv3.url(leader_of(kv3))
    value = "é" * 2000 + "x" * (4096 - len('{"value":""}') - 4000)
    body = json.dumps({"value": value}, ensure_ascii=False, separators=(",", ":"))
    assert len(body.encode()) == 4096
    plain = request(url, "PUT", "/v1/kv/sessions/big", raw=body.encode())
    assert plain.status == 200, plain.data
    client = Client([url])  # in a session, sending the same value
    assert client.get("sessions/big") == value
    client.put("sessions/big2", client.get("sessions/big"))
    assert client.get("sessions/big2") == value
    over = request(url, "PUT", "/v1/kv/sessions/big", raw=body.encode() + b" " * 200)
    assert over.status == 413 and over.code == "body_too_large"


def test_a_value_the_body_cannot_carry_as_utf8_is_a_bad_request(kv3: LocalCluster) -> None:
    # A lone surrogate cannot be UTF-8: the client sends it escaped and the node refuses
    # it (the client raised UnicodeEncodeError before sending, aborting a restore).
    with pytest.raises(BadRequest):
        Client([kv3.url(leader_of(kv3))]).put("sessions/surrogate", "\ud800")


def test_a_resend_refused_by_a_node_s_own_body_limit_ends_unknown(
    kv3: LocalCluster, losing_proxy: Any
) -> None:
    """The first copy goes through the leader (whose answer is lost); asked next, a node
    with a smaller ``max_body_bytes`` answers 413 before it would redirect. That limit is
    its own: the write, applied, must not be reported as not applied."""
    leader = leader_of(kv3)
    others = [n for n in kv3.servers if n != leader]
    for node in others:  # as if configured with [http] max_body_bytes = 64
        kv3.servers[node].app.settings = HttpSettings(max_body_bytes=64)
    proxy = losing_proxy(kv3.url(leader))
    client = Client([proxy.url, *(kv3.url(n) for n in others)], timeout=5, deadline=10)
    result = client.write("PUT", "/v1/kv/sessions/big", {"value": "v" * 300})
    assert proxy.lost, "the first answer was not lost"
    assert result.outcome is Outcome.UNKNOWN, result
    assert Client([kv3.url(leader)]).get("sessions/big") == "v" * 300  # it was applied
