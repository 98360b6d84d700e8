"""Admin endpoints: forming a cluster, adding voters and learners, promoting, removing,
snapshots, and the requests that make no sense (a clear error, nothing changed, the node
keeps serving)."""

from __future__ import annotations

from typing import Any

import pytest

from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.store import encode_value, node_key
from pykka_raft.testing import wait_until
from tests.kv.conftest import follower_of, leader_of, request

pytestmark = pytest.mark.timeout(180)


def membership(cluster: LocalCluster, node_id: int) -> dict[str, Any]:
    return dict(request(cluster.url(node_id), "GET", "/v1/status").json["membership"])


def test_init_forms_a_cluster_and_refuses_a_second_time(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3], init=False)
    pristine = request(cluster.url(1), "PUT", "/v1/kv/k", {"value": 1})
    assert pristine.status == 503 and pristine.code == "not_initialized"  # never formed
    for node_id in (1, 2, 3):
        answer = request(cluster.url(node_id), "POST", "/v1/admin/init", {"members": [1, 2, 3]})
        assert answer.status == 200 and answer.json == {"node_id": node_id, "members": [1, 2, 3]}
    leader = leader_of(cluster)
    assert request(cluster.url(leader), "PUT", "/v1/kv/k", {"value": 1}).status == 200
    # The same membership again is fine (idempotent); another one is refused.
    assert request(cluster.url(1), "POST", "/v1/admin/init", {"members": [1, 2, 3]}).status == 200
    other = request(cluster.url(1), "POST", "/v1/admin/init", {"members": [1, 2]})
    assert other.status == 409 and other.code == "not_pristine"
    assert membership(cluster, 1)["voters"] == [1, 2, 3]


def test_a_refused_init_records_no_address(cluster_factory: Any) -> None:
    """The ``nodes`` of an init refused 400 (bad members, an id in other digits) or 409
    (the node is formed already) are not recorded: nothing changed. Those of an init that
    forms the cluster are."""
    cluster = cluster_factory([1, 2], init=False)
    directory = cluster.servers[1].node.directory
    before = directory.static()
    seven = {"http": "192.0.2.7:80", "raft": "192.0.2.7:81"}
    for body in (
        {"nodes": {"7": seven}, "members": "x"},
        {"nodes": {"\u0667": seven}, "members": [1, 2]},  # an Arabic-Indic 7
    ):
        answer = request(cluster.url(1), "POST", "/v1/admin/init", body)
        assert answer.status == 400 and answer.code == "bad_request", answer.data
        assert directory.static() == before
    body = {"nodes": {"7": seven}, "members": [1, 2]}
    assert request(cluster.url(1), "POST", "/v1/admin/init", body).status == 200
    assert request(cluster.url(2), "POST", "/v1/admin/init").status == 200
    formed = directory.static()
    assert formed == {**before, 7: seven}
    leader_of(cluster)
    again = {"nodes": {"8": {"http": "192.0.2.8:80", "raft": "192.0.2.8:81"}}}
    answer = request(cluster.url(1), "POST", "/v1/admin/init", again)
    assert answer.status == 409 and answer.code == "not_pristine"
    assert directory.static() == formed


def test_init_without_a_body_uses_the_configured_members(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2], init=False)
    for node_id in (1, 2):
        answer = request(cluster.url(node_id), "POST", "/v1/admin/init")
        assert answer.status == 200 and answer.json["members"] == [1, 2]
    leader_of(cluster)


def test_add_a_voter_twice(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    new = cluster.add_node(4)
    body = {"id": 4, "http_address": new.http.address}
    added = request(cluster.url(leader), "POST", "/v1/admin/voters", body)
    assert added.status == 200, added.data
    assert added.json["voters"] == [1, 2, 3, 4] and added.json["learners"] == []
    again = request(cluster.url(leader), "POST", "/v1/admin/voters", body)
    assert again.status == 409 and again.code == "noop"
    # Every node learns the new node's HTTP address from the replicated directory.
    for node_id in (1, 2, 3):
        wait_until(
            lambda n=node_id: cluster.servers[n].node.directory.http_address(4) == new.http.address,
            10,
            f"node {node_id} to learn node 4's address",
        )
    wait_until(
        lambda: request(new.url, "GET", "/v1/status").json["membership"]["voters"] == [1, 2, 3, 4],
        10,
        "node 4 to hold the membership",
    )


def test_learner_then_promote_then_remove(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    url = cluster.url(leader)
    new = cluster.add_node(5)
    added = request(url, "POST", "/v1/admin/learners", {"id": 5, "http_address": new.http.address})
    assert added.status == 200 and added.json["learners"] == [5], added.data
    voter = request(url, "POST", "/v1/admin/promote", {"id": leader})
    assert voter.status == 409 and voter.code == "not_a_learner"
    unknown = request(url, "POST", "/v1/admin/promote", {"id": 9})
    assert unknown.status == 409 and unknown.code == "not_a_learner"
    promoted = request(url, "POST", "/v1/admin/promote", {"id": 5})
    assert promoted.status == 200 and promoted.json["voters"] == [1, 2, 3, 5]
    removed = request(url, "POST", "/v1/admin/remove", {"ids": [5]})
    assert removed.status == 200 and removed.json["voters"] == [1, 2, 3]
    gone = request(url, "POST", "/v1/admin/remove", {"ids": [5]})
    assert gone.status == 409 and gone.code == "noop"
    assert "voters [1, 2, 3]" in gone.json["error"]["message"], gone.json  # what it is


def test_removing_every_member_is_refused_and_nothing_changes(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    url = cluster.url(leader)
    answer = request(url, "POST", "/v1/admin/remove", {"ids": [1, 2, 3]})
    assert answer.status == 409 and answer.code == "inoperable_config"
    assert membership(cluster, leader)["voters"] == [1, 2, 3]
    assert request(url, "PUT", "/v1/kv/still", {"value": "serving"}).status == 200
    assert request(url, "GET", "/v1/kv/still").json["value"] == "serving"


def test_a_node_id_over_64_bits_is_refused_and_the_leader_stays(cluster_factory: Any) -> None:
    # It was accepted: the configuration entry naming it could not be encoded for any peer,
    # and the leader lost its leadership.
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    url = cluster.url(leader)
    term = request(url, "GET", "/v1/status").json["term"]
    for path in ("/v1/admin/voters", "/v1/admin/learners"):
        body = {"id": 2**63, "http_address": "127.0.0.1:9"}
        answer = request(url, "POST", path, body)
        assert answer.status == 400 and answer.code == "bad_request", answer.data
        assert "2**63 - 1" in answer.json["error"]["message"]
    after = request(url, "GET", "/v1/status").json
    assert (after["state"], after["term"]) == ("leader", term)
    assert membership(cluster, leader)["learners"] == []


def test_admin_changes_on_a_follower_are_redirected(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = cluster.url(follower_of(cluster))
    for path, body in (
        ("/v1/admin/voters", {"id": 4, "http_address": "127.0.0.1:9"}),
        ("/v1/admin/learners", {"id": 4, "http_address": "127.0.0.1:9"}),
        ("/v1/admin/promote", {"id": 4}),
        ("/v1/admin/remove", {"ids": [2]}),
    ):
        answer = request(follower, "POST", path, body)
        assert answer.status == 307, (path, answer.data)
        assert answer.headers["location"] == cluster.url(leader) + path
    assert membership(cluster, leader)["voters"] == [1, 2, 3]


def test_snapshot_on_any_node(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    for i in range(5):
        request(cluster.url(leader), "PUT", f"/v1/kv/s{i}", {"value": i})
    follower = follower_of(cluster)
    view = cluster.servers[follower].node.view
    view.wait_for(lambda m: m is not None and m.last_applied >= 7, timeout=10)
    answer = request(cluster.url(follower), "POST", "/v1/admin/snapshot")
    assert answer.status == 200, answer.data
    snap = answer.json["snapshot"]
    assert answer.json["node_id"] == follower and snap["index"] >= 7 and snap["size"] > 0
    view.wait_for(lambda m: m is not None and m.snapshot_index == snap["index"], timeout=10)
    status = request(cluster.url(follower), "GET", "/v1/status").json
    assert status["snapshot_index"] == snap["index"]
    assert request(cluster.url(leader), "GET", "/v1/kv/s4").json["value"] == 4


def test_followers_learn_the_leaders_address_from_the_replicated_directory(
    cluster_factory: Any,
) -> None:
    # No node is told the others' HTTP addresses: the leader records its own in the log.
    cluster = cluster_factory([1, 2, 3], init=False, share_addresses=False)
    for node_id in (1, 2, 3):
        request(cluster.url(node_id), "POST", "/v1/admin/init", {"members": [1, 2, 3]})
    leader = leader_of(cluster)
    follower = cluster.servers[follower_of(cluster)]
    assert follower.node.directory.configured() == (follower.node_id,)

    def redirect() -> Any:
        answer = request(follower.url, "PUT", "/v1/kv/k", {"value": 1})
        if answer.status == 503:  # the leader's record has not reached this node yet
            assert answer.code == "not_leader" and answer.json["error"]["leader_id"] == leader
            return None
        return answer

    answer = wait_until(redirect, 10, "the follower to learn the leader's address")
    assert answer.status == 307
    assert answer.headers["location"] == cluster.url(leader) + "/v1/kv/k"


def test_an_added_node_needs_its_own_reachable_addresses(cluster_factory: Any) -> None:
    # Both were accepted, leaving a learner nobody could reach and a directory entry
    # pointing at another member.
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    url = cluster.url(leader)
    own = cluster.servers[2].http.address
    for body, words in (
        ({"id": 7, "http_address": "0.0.0.0:1"}, "not an address"),
        ({"id": 7, "http_address": own}, "is an address of member 2"),
        # The same host and port under another name (no DNS asked).
        ({"id": 7, "http_address": own.replace("127.0.0.1", "localhost")}, "of member 2"),
        ({"id": 7, "http_address": own.replace("127.0.0.1", "LocalHost.")}, "of member 2"),
        ({"id": 7, "http_address": "http://" + own + "/"}, "of member 2"),
    ):
        answer = request(url, "POST", "/v1/admin/learners", body)
        assert answer.status == 400 and answer.code == "bad_request", answer.data
        assert words in answer.json["error"]["message"]
    assert membership(cluster, leader)["learners"] == []


def test_a_new_leaders_late_record_of_a_member_does_not_undo_a_newer_one(
    cluster_factory: Any,
) -> None:
    """A new leader records the addresses it was given for members the directory lacks,
    computed once it caught up and written one by one afterwards: one recorded meanwhile
    (by ``move``) stays. It was overwritten with the stale one."""
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    node = cluster.servers[leader].node
    stale = encode_value(node.directory.static()[follower])
    wait_until(
        lambda: node.state_machine.local_get(node_key(follower)) is not None,
        10,
        "the leader to record the followers' addresses",
    )
    newer = {"id": follower, "http_address": "127.0.0.1:9"}
    assert request(cluster.url(leader), "POST", "/v1/admin/move", newer).status == 200
    moved = node.state_machine.local_get(node_key(follower))
    assert moved != stale
    # The write the registrar would make had it computed its records before the move.
    assert node._write_record(node_key(follower), stale, "a late record", True)
    assert node.state_machine.local_get(node_key(follower)) == moved
    for n in (1, 2, 3):
        wait_until(
            lambda n=n: cluster.servers[n].node.directory.http_address(follower) == "127.0.0.1:9",
            10,
            f"node {n} to hold the newer record",
        )
