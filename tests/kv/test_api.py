"""The HTTP JSON API of a 3-node in-process cluster: every key-value endpoint and its
errors, redirects from followers, status, cluster view and metrics."""

from __future__ import annotations

import http.client
import socket
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.wsgi import SESSION_FIELDS_BYTES
from pykka_raft.testing import wait_until
from tests.kv.conftest import follower_of, leader_of, request

pytestmark = pytest.mark.timeout(120)


def leader_url(kv3: LocalCluster) -> str:
    return kv3.url(leader_of(kv3))


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -7, 3.5, "text", "ünïcödé", [], [1, [2, None]], {"b": 1, "a": {"c": [True]}}],
)
def test_put_get_delete_round_trip_every_json_value(kv3: LocalCluster, value: Any) -> None:
    url = leader_url(kv3)
    key = f"round-trip/{value!r}"
    path = "/v1/kv/" + quote(key)
    put = request(url, "PUT", path, {"value": value})
    assert put.status == 200, put.data
    assert put.json["existed"] is False and put.json["previous"] is None
    got = request(url, "GET", path)
    assert got.status == 200 and got.json["value"] == value and got.json["key"] == key
    assert got.json["index"] >= put.json["index"]  # read at an index holding the write
    again = request(url, "PUT", path, {"value": "next"})
    assert again.json["existed"] is True and again.json["previous"] == value
    gone = request(url, "DELETE", path)
    assert gone.status == 200 and gone.json["previous"] == "next"
    assert request(url, "GET", path).code == "key_not_found"


def test_unknown_keys_are_404(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    got = request(url, "GET", "/v1/kv/never-written")
    assert got.status == 404 and got.code == "key_not_found"
    assert got.json["error"]["key"] == "never-written"
    deleted = request(url, "DELETE", "/v1/kv/never-written")
    assert deleted.status == 404 and deleted.code == "key_not_found"


def test_keys_with_slashes_and_unicode(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    assert request(url, "PUT", "/v1/kv/a/b%2Fc/%C3%A9", {"value": 1}).status == 200
    got = request(url, "GET", "/v1/kv/a/b/c/%C3%A9")
    assert got.json["key"] == "a/b/c/é" and got.json["value"] == 1


@pytest.mark.parametrize("key", ["a\nb", "\n", "x\r\ny/z", "tab\there", "ends\n"])
def test_keys_with_line_breaks_and_control_characters(kv3: LocalCluster, key: str) -> None:
    url = leader_url(kv3)
    path = "/v1/kv/" + quote(key, safe="")
    put = request(url, "PUT", path, {"value": 1})
    assert put.status == 200 and put.json["key"] == key, put.data
    got = request(url, "GET", path)
    assert got.status == 200 and got.json["key"] == key
    cas = request(url, "POST", path + "/cas", {"expected": 1, "new": 2})
    assert cas.status == 200 and cas.json["swapped"] is True, cas.data
    assert request(url, "DELETE", path).json["previous"] == 2


def test_compare_and_set(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    created = request(url, "POST", "/v1/kv/cas-key/cas", {"new": 1})  # no expected: absent
    assert created.status == 200 and created.json["swapped"] and not created.json["existed"]
    again = request(url, "POST", "/v1/kv/cas-key/cas", {"new": 2})
    assert again.status == 409 and again.code == "cas_failed"
    assert again.json["error"]["current"] == 1 and again.json["error"]["exists"] is True
    # JSON equality, not Python's: true is not 1.
    not_true = request(url, "POST", "/v1/kv/cas-key/cas", {"expected": True, "new": 3})
    assert not_true.status == 409
    swapped = request(url, "POST", "/v1/kv/cas-key/cas", {"expected": 1, "new": {"n": 3}})
    assert swapped.status == 200 and swapped.json["previous"] == 1
    assert request(url, "GET", "/v1/kv/cas-key").json["value"] == {"n": 3}
    # null is a value like any other, distinct from "absent".
    assert request(url, "POST", "/v1/kv/cas-null/cas", {"expected": None, "new": 1}).status == 409
    assert request(url, "PUT", "/v1/kv/cas-null", {"value": None}).status == 200
    assert request(url, "POST", "/v1/kv/cas-null/cas", {"expected": None, "new": 1}).status == 200


def test_a_follower_redirects_lease_reads_and_writes_to_the_leader(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    follower = kv3.url(follower_of(kv3))
    for method, path, body in (
        ("PUT", "/v1/kv/redirected?x=1", {"value": 5}),
        ("GET", "/v1/kv/redirected?consistency=lease", None),
        ("DELETE", "/v1/kv/redirected", None),
        ("POST", "/v1/kv/redirected/cas", {"new": 1}),
    ):
        answer = request(follower, method, path, body)
        assert answer.status == 307, (method, answer.data)
        assert answer.code == "not_leader"
        assert answer.json["error"]["leader_id"] == leader
        assert answer.headers["location"] == kv3.url(leader) + path
    # Following the redirect writes through the leader.
    location = request(follower, "PUT", "/v1/kv/redirected", {"value": 5}).headers["location"]
    parts = urlsplit(location)
    done = request(f"{parts.scheme}://{parts.netloc}", "PUT", parts.path, {"value": 5})
    assert done.status == 200
    assert request(kv3.url(leader), "GET", "/v1/kv/redirected").json["value"] == 5


def test_consistency_parameter(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    request(url, "PUT", "/v1/kv/consistent", {"value": 1})
    ok = request(url, "GET", "/v1/kv/consistent?consistency=linearizable")
    assert ok.status == 200 and ok.json["value"] == 1
    lease = request(url, "GET", "/v1/kv/consistent?consistency=lease")
    assert lease.status == 200 and lease.json["value"] == 1
    # A stale read is served by any node from its own state machine, without a redirect.
    for node_id in kv3.servers:

        def stale_read(node_url: str = kv3.url(node_id)) -> Any:
            answer = request(node_url, "GET", "/v1/kv/consistent?consistency=stale")
            return answer if answer.status == 200 else None

        stale = wait_until(stale_read, 10, f"the write to reach node {node_id}")
        assert stale.json["value"] == 1 and stale.json["index"] >= 1
    missing = request(kv3.url(1), "GET", "/v1/kv/never-written?consistency=stale")
    assert missing.status == 404 and missing.code == "key_not_found"
    bogus = request(url, "GET", "/v1/kv/consistent?consistency=eventual")
    assert bogus.status == 400 and bogus.code == "bad_consistency"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "bad_json"),
        (b"", "bad_json"),
        (b'{"value": NaN}', "bad_json"),
        (b'{"value": Infinity}', "bad_json"),
        (b'{"value": [-1e400]}', "bad_json"),  # too large for a float: not Python's message
        (b'{"value": "\xff\xfe"}', "bad_json"),
        (b'{"value": ' + b"[" * 2000 + b"]" * 2000 + b"}", "bad_json"),
        (b'"just a string"', "bad_request"),
        (b"[1, 2]", "bad_request"),
        (b"{}", "bad_request"),
        (b'{"value": 1, "ttl": 5}', "bad_request"),
    ],
)
def test_malformed_put_bodies_are_refused(kv3: LocalCluster, raw: bytes, code: str) -> None:
    url = leader_url(kv3)
    answer = request(url, "PUT", "/v1/kv/malformed", raw=raw)
    assert answer.code == code, answer.data
    assert answer.status in (400, 413)
    assert answer.headers["content-type"].startswith("application/json")
    assert request(url, "GET", "/v1/kv/malformed").code == "key_not_found"  # nothing written


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/kv/k/cas", {"expected": 1}),
        ("/v1/kv/k/cas", {"new": 1, "old": 2}),
        ("/v1/kv/k/cas", [1]),
        ("/v1/admin/voters", {"id": "4", "http_address": "127.0.0.1:1"}),
        ("/v1/admin/voters", {"id": 0, "http_address": "127.0.0.1:1"}),
        ("/v1/admin/voters", {"id": True, "http_address": "127.0.0.1:1"}),
        ("/v1/admin/voters", {"id": 4}),
        ("/v1/admin/voters", {"id": 4, "http_address": "nowhere"}),
        ("/v1/admin/voters", {"id": 4, "http_address": "127.0.0.1:0"}),
        ("/v1/admin/voters", {"id": 4, "http_address": 8004}),
        ("/v1/admin/learners", {"id": 4, "http_address": "127.0.0.1:1", "raft_address": 5}),
        ("/v1/admin/promote", {"id": -1}),
        ("/v1/admin/remove", {"ids": []}),
        ("/v1/admin/remove", {"ids": "1"}),
        ("/v1/admin/remove", {"id": 1}),
        ("/v1/admin/init", {"members": []}),
        ("/v1/admin/init", {"members": ["a"]}),
        ("/v1/admin/init", {"nodes": []}),
        ("/v1/admin/init", {"nodes": {"x": {}}}),
        ("/v1/admin/init", {"nodes": {"2": {"raft": "nowhere"}}}),
        ("/v1/admin/init", {"nodes": {"2": {"grpc": "127.0.0.1:1"}}}),
        ("/v1/admin/init", {"members": [1], "extra": True}),
        ("/v1/admin/promote", {}),
        ("/v1/admin/transfer-leader", {"id": "2"}),
        ("/v1/admin/transfer-leader", {"id": 0}),
        ("/v1/admin/transfer-leader", {"to": 2}),
        ("/v1/admin/transfer-leader", [2]),
    ],
)
def test_wrong_types_are_400(kv3: LocalCluster, path: str, body: Any) -> None:
    answer = request(leader_url(kv3), "POST", path, body)
    assert answer.status == 400 and answer.code == "bad_request", answer.data


@pytest.mark.parametrize(
    "path",
    [
        "/v1/admin/init",
        "/v1/admin/voters",
        "/v1/admin/learners",
        "/v1/admin/promote",
        "/v1/admin/remove",
        "/v1/admin/transfer-leader",
        "/v1/admin/snapshot",
        "/v1/sessions",
        "/v1/kv/k/cas",
    ],
)
def test_malformed_json_on_every_post_endpoint(kv3: LocalCluster, path: str) -> None:
    url = leader_url(kv3)
    answer = request(url, "POST", path, raw=b'{"id": 4,', headers={"Content-Length": "9"})
    assert answer.status == 400 and answer.code == "bad_json", answer.data
    assert request(url, "GET", "/v1/status").json["membership"]["voters"] == [1, 2, 3]


def test_bodies_over_the_limit_are_413_before_being_read(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    limit = kv3.http.max_body_bytes + SESSION_FIELDS_BYTES  # room for a session's fields
    big = {"value": "x" * limit}
    answer = request(url, "PUT", "/v1/kv/big", big)
    assert answer.status == 413 and answer.code == "body_too_large"
    assert answer.json["error"]["limit"] == limit
    # A chunked body (no Content-Length) is cut at the limit too.
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)
    try:
        chunks = (b'{"value": "' + b"y" * 1000 + b'"}' for _ in range(6))
        conn.request("PUT", "/v1/kv/big", body=chunks, encode_chunked=True)
        chunked = conn.getresponse()
        assert chunked.status == 413
    finally:
        conn.close()
    # A declared length far over the limit is refused by the server before it reads it.
    huge = request(url, "PUT", "/v1/kv/big", raw=b"x", headers={"Content-Length": "999999999"})
    assert huge.status == 413
    assert request(url, "GET", "/v1/kv/big").code == "key_not_found"
    assert request(url, "PUT", "/v1/kv/big", {"value": "small"}).status == 200  # still serving


def test_requests_the_http_server_refuses_itself_are_answered_in_plain_text(
    kv3: LocalCluster,
) -> None:
    # docs/kv-service.md (Errors): waitress answers these before the application sees them.
    url = leader_url(kv3)
    limit = kv3.http.max_body_bytes
    cases = [
        ({"Content-Length": "twelve"}, 400),
        ({"Content-Length": str(2 * limit)}, 413),
        ({"Transfer-Encoding": "gzip"}, 501),
        ({"X-Large": "h" * 270_000}, 431),  # headers over 256 KiB
    ]
    for headers, status in cases:
        answer = request(url, "PUT", "/v1/kv/framing", headers=headers)
        assert answer.status == status, (headers, answer.status, answer.data)
        assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    # A body over the limit but under twice it reaches the application: JSON.
    over = b"x" * (limit + SESSION_FIELDS_BYTES + 1)
    under = request(url, "PUT", "/v1/kv/framing", raw=over)
    assert under.status == 413 and under.code == "body_too_large"
    assert request(url, "GET", "/v1/kv/framing").code == "key_not_found"
    assert request(url, "PUT", "/v1/kv/framing", {"value": 1}).status == 200  # still serving


def test_bad_keys(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    long_key = "k" * 1025
    assert request(url, "PUT", f"/v1/kv/{long_key}", {"value": 1}).code == "bad_key"
    assert request(url, "GET", f"/v1/kv/{long_key}").code == "bad_key"
    # Not UTF-8: refused, not read as latin-1 (where %FF would be the key %C3%BF names).
    assert request(url, "PUT", "/v1/kv/%C3%BF", {"value": 1}).status == 200
    for method, body in (("GET", None), ("PUT", {"value": 2}), ("DELETE", None)):
        assert request(url, method, "/v1/kv/%FF", body).code == "bad_key", method
    assert request(url, "GET", "/v1/kv/%C3%BF").json["value"] == 1
    reserved = request(url, "PUT", "/v1/kv/.kv/node/1", {"value": {"http": "evil:1"}})
    assert reserved.status == 400 and reserved.code == "reserved_key"
    assert request(url, "DELETE", "/v1/kv/.kv/node/1").code == "reserved_key"
    assert request(url, "POST", "/v1/kv/.kv/node/1/cas", {"new": 1}).code == "reserved_key"
    # The directory can be read: the leader recorded its own address.
    leader = leader_of(kv3)
    own = request(url, "GET", f"/v1/kv/.kv/node/{leader}")
    assert own.status == 200 and own.json["value"]["http"] == kv3.servers[leader].http.address


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/v1/kv/", 404, "not_found"),
        ("GET", "/v1/admin/voters", 405, "method_not_allowed"),
        ("POST", "/v1/kv/k", 405, "method_not_allowed"),
        ("PATCH", "/v1/kv/k", 405, "method_not_allowed"),
        ("DELETE", "/v1/status", 405, "method_not_allowed"),
        ("PUT", "/", 405, "method_not_allowed"),
    ],
)
def test_unknown_routes_and_wrong_methods(
    kv3: LocalCluster, method: str, path: str, status: int, code: str
) -> None:
    answer = request(leader_url(kv3), method, path, {"value": 1} if method != "GET" else None)
    assert answer.status == status and answer.code == code
    if status == 405:
        assert answer.headers["allow"]
        assert method not in answer.headers["allow"]


def raw_head(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """HEAD over a bare socket (http.client drops what follows a HEAD's headers): the
    status, headers and every byte the node sent after them until it closed."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=15) as s:
        s.sendall(f"HEAD {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, body


@pytest.mark.parametrize("path", ["/v1/status", "/metrics", "/", "/v1/kv/head-key", "/v1/cluster"])
def test_head_is_get_without_a_body(kv3: LocalCluster, path: str) -> None:
    url = leader_url(kv3)
    assert request(url, "PUT", "/v1/kv/head-key", {"value": "x" * 100}).status == 200
    status, headers, body = raw_head(url, path)
    assert status == 200 and body == b""
    assert int(headers["content-length"]) > 0  # the length a GET's body has
    assert headers["content-type"] == request(url, "GET", path).headers["content-type"]


def test_head_never_has_a_body(kv3: LocalCluster) -> None:
    url = leader_url(kv3)
    status, _, body = raw_head(url, "/v1/kv/head-never-written")
    assert status == 404 and body == b""
    status, headers, body = raw_head(url, "/v1/sessions")  # POST only: 405, no body
    assert status == 405 and body == b"" and headers["allow"] == "POST"
    assert request(url, "DELETE", "/v1/status").headers["allow"] == "GET, HEAD"


def test_status_of_each_node(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    for node_id, server in kv3.servers.items():
        # A follower learns the commit index with the leader's next heartbeat.
        def knows_commit(url: str = server.url) -> bool:
            return bool(request(url, "GET", "/v1/status").json["commit_index"] >= 1)

        wait_until(knows_commit, 10, f"node {node_id} to know the commit index")
        status = request(server.url, "GET", "/v1/status").json
        assert status["node_id"] == node_id
        assert status["url"] == server.url
        assert status["leader_id"] == leader
        assert status["leader_url"] == kv3.url(leader)
        assert status["state"] == ("leader" if node_id == leader else "follower")
        assert status["membership"]["voters"] == [1, 2, 3]
        assert status["membership"]["learners"] == []
        assert set(status["nodes"]) == {"1", "2", "3"}
        assert status["commit_index"] >= 1 and status["term"] >= 1
        assert status["leader_changes"][-1]["leader_id"] == leader


def test_cluster_view_from_any_node(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    for server in kv3.servers.values():
        view = request(server.url, "GET", "/v1/cluster").json
        assert view["leader_id"] == leader
        assert [m["id"] for m in view["members"]] == [1, 2, 3]
        assert all(m["role"] == "voter" and "error" not in m for m in view["members"])
        assert [m["state"] for m in view["members"] if m["id"] == leader] == ["leader"]
        assert all(m["lag"] >= 0 for m in view["members"])


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = request(url, "GET", "/metrics").data.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_in_prometheus_format(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    url = kv3.url(leader)
    answer = request(url, "GET", "/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    before = _samples(url)
    node = (("node", str(leader)),)
    status = request(url, "GET", "/v1/status").json
    assert before[("pykka_raft_term", node)] == status["term"]
    assert before[("pykka_raft_is_leader", node)] == 1
    assert before[("pykka_raft_state", (("node", str(leader)), ("state", "leader")))] == 1
    assert before[("pykka_raft_voters", node)] == 3
    assert ("pykka_raft_commit_index", node) in before
    assert ("pykka_raft_last_applied", node) in before
    count = ("pykka_raft_kv_write_seconds_count", (("op", "put"),))
    assert request(url, "PUT", "/v1/kv/measured", {"value": 1}).status == 200
    after = _samples(url)
    assert after[count] == before.get(count, 0) + 1
    ok = ("pykka_raft_kv_requests_total", (("method", "PUT"), ("route", "kv"), ("status", "200")))
    assert after[ok] >= 1
    # Methods a client makes up are counted under one label: they cannot add series.
    for i in range(5):
        assert request(url, f"MADEUP{i}", "/v1/status").status == 405
    series = [k for k in _samples(url) if k[0] == "pykka_raft_kv_requests_total"]
    assert not any(("method", f"MADEUP{i}") in labels for _, labels in series for i in range(5))
    assert any(("method", "other") in labels for _, labels in series)


def test_status_page_is_served(kv3: LocalCluster) -> None:
    answer = request(leader_url(kv3), "GET", "/")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert b"/v1/cluster" in answer.data
