"""``pykka_raft.kv.Client``: leader discovery, redirects, dead and hung nodes, typed
errors, unknown outcomes."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pykka_raft import Isolate, Restore
from pykka_raft.kv import (
    BadRequest,
    CasFailed,
    Client,
    ClusterUnreachable,
    Conflict,
    HttpSettings,
    KeyNotFound,
    Unavailable,
    UnknownOutcome,
)
from pykka_raft.kv.errors import EXIT_UNAVAILABLE, EXIT_UNKNOWN_OUTCOME, error_for
from pykka_raft.kv.local import LocalCluster
from tests.kv.conftest import PATIENT, follower_of, leader_of, request

pytestmark = pytest.mark.timeout(120)


def test_finds_the_leader_from_a_follower(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    client = Client([kv3.url(follower_of(kv3))])
    assert client.put("client/a", [1, 2])["existed"] is False
    assert client.leader_url == kv3.url(leader)
    assert client.get("client/a") == [1, 2]
    assert client.cas("client/a", [1, 2], "x")["previous"] == [1, 2]
    assert client.delete("client/a")["previous"] == "x"


def test_typed_errors(kv3: LocalCluster) -> None:
    client = kv3.client()
    with pytest.raises(KeyNotFound) as missing:
        client.get("client/missing")
    assert missing.value.status == 404 and missing.value.code == "key_not_found"
    client.put("client/cas", 1)
    with pytest.raises(CasFailed) as failed:
        client.cas("client/cas", 2, 3)
    assert failed.value.current == 1 and failed.value.exists is True
    with pytest.raises(CasFailed):
        client.cas("client/cas", new=3)  # expected left out: only if absent
    with pytest.raises(BadRequest) as bogus:
        client.get("client/cas", consistency="eventual")
    assert bogus.value.code == "bad_consistency"
    with pytest.raises(Conflict) as not_a_voter:
        client.transfer_leader(9)
    assert not_a_voter.value.code == "transfer_failed"
    with pytest.raises(Conflict) as noop:
        client.remove(9)
    assert noop.value.code == "noop"


def test_skips_nodes_that_are_down(kv3: LocalCluster, closed_url: str) -> None:
    client = Client([closed_url, *kv3.urls])
    client.put("client/down", 1)
    assert client.get("client/down") == 1


def test_no_node_reachable(closed_url: str) -> None:
    client = Client([closed_url], timeout=1, deadline=1)
    with pytest.raises(ClusterUnreachable) as exc:
        client.get("k")
    assert exc.value.exit_code == 3
    with pytest.raises(ClusterUnreachable):
        client.put("k", 1)
    with pytest.raises(ClusterUnreachable):
        client.cluster_status()


def test_a_hung_node(silent_url: str) -> None:
    # With sessions, a write is only sent once a session is open: here it never is, so
    # the write was not sent, and no node answered.
    with pytest.raises(ClusterUnreachable):
        Client([silent_url], timeout=0.5, deadline=1).put("k", 1)
    # Without, a write whose request went out and got no answer may have been applied.
    client = Client([silent_url], timeout=0.5, deadline=1, sessions=False)
    with pytest.raises(UnknownOutcome) as exc:
        client.put("k", 1)
    assert exc.value.exit_code == EXIT_UNKNOWN_OUTCOME
    # A read is safe to retry elsewhere; with nowhere else to go, the cluster is unreachable.
    with pytest.raises(ClusterUnreachable):
        client.get("k")


def test_no_leader_until_the_deadline(cluster_factory: Any) -> None:
    cluster = cluster_factory([1], init=False)
    client = Client(cluster.urls, deadline=0.5)
    with pytest.raises(Unavailable) as exc:
        client.put("k", 1)
    assert exc.value.code == "not_initialized" and exc.value.exit_code == EXIT_UNAVAILABLE


def test_init_then_use_a_one_node_cluster(cluster_factory: Any) -> None:
    cluster = cluster_factory([1], init=False)
    client = Client(cluster.urls)
    assert client.init() == [{"node_id": 1, "members": [1]}]
    client.put("solo", {"ok": True})
    assert client.get("solo") == {"ok": True}
    assert client.status()["state"] == "leader"
    assert client.snapshot()["snapshot"]["index"] >= 2


def test_an_isolated_leader_answers_outcome_unknown(cluster_factory: Any) -> None:
    # The isolated leader must still lead when the write reaches it (see PATIENT).
    cluster = cluster_factory(
        [1, 2, 3], raft=PATIENT, elect=1, http=HttpSettings(request_timeout=1.0)
    )
    leader = leader_of(cluster, timeout=30)
    cluster.network.router.ask(Isolate(leader))
    try:
        client = Client([cluster.url(leader)], timeout=5, deadline=5, sessions=False)
        with pytest.raises(UnknownOutcome) as exc:
            client.put("cut-off", 1)
        assert exc.value.status == 504 and exc.value.code == "outcome_unknown"
    finally:
        cluster.network.router.ask(Restore(leader))
    # The cluster goes on, and the answer that was unknown can be read back.
    client = cluster.client()
    client.put("after", 2)
    assert client.get("after") == 2


def test_the_client_can_be_shared_by_threads(kv3: LocalCluster) -> None:
    client = kv3.client()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(10):
                client.put(f"threads/{t}/{i}", i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert [client.get(f"threads/{t}/9") for t in range(4)] == [9, 9, 9, 9]


def test_error_answers_that_are_not_json_keep_their_status() -> None:
    error = error_for(413, "", "Request Entity Too Large", {})
    assert type(error).__name__ == "BodyTooLarge" and error.exit_code == 4
    assert type(error_for(502, "", "Bad Gateway", {})).__name__ == "ServerError"


def test_a_redirect_loop_is_cut(kv3: LocalCluster) -> None:
    # A follower whose Location points back at itself (a stale directory) is not followed
    # forever.
    follower = follower_of(kv3)
    server = kv3.servers[follower]
    leader = leader_of(kv3)
    server.node.directory.set_static(leader, server.http.address)
    original = server.node.state_machine.node_records
    server.node.state_machine.node_records = lambda: {}  # type: ignore[method-assign]
    try:
        answer = request(server.url, "PUT", "/v1/kv/loop", {"value": 1})
        assert answer.headers["location"].startswith(server.url)
        client = Client([server.url], deadline=1)
        with pytest.raises(Unavailable) as exc:
            client.put("loop", 1)
        assert "redirects" in exc.value.message
    finally:
        server.node.state_machine.node_records = original  # type: ignore[method-assign]
        server.node.directory.set_static(leader, kv3.servers[leader].http.address)


def test_reads_go_on_through_a_leader_failover(cluster_factory: Any) -> None:
    # The followers go on redirecting to a leader that died until they notice (an election
    # timeout): the client waits for them rather than giving up on too many redirects.
    cluster = cluster_factory([1, 2, 3])
    leader, follower = leader_of(cluster), follower_of(cluster)
    cluster.client().put("client/failover", 1)
    client = Client([cluster.url(follower), cluster.url(leader)], deadline=10)
    assert client.get("client/failover") == 1
    cluster.stop_node(leader)
    for _ in range(20):
        assert client.get("client/failover") == 1
    assert client.leader_url in cluster.urls  # it found the new leader
