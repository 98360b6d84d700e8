"""Reads through the HTTP API: each ``consistency`` on the leader and on a follower, what a
linearizable read costs (no log entry), and where each one is served."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from click.testing import CliRunner

from pykka_raft.kv import Client
from pykka_raft.kv.cli import main
from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.store import SETTINGS_KEY
from pykka_raft.testing import wait_until
from tests.kv.conftest import follower_of, leader_of, request


def log_end(cluster: LocalCluster, node_id: int) -> int:
    """The last log index of ``node_id`` as its metrics say."""
    metrics = cluster.servers[node_id].node.view.latest()
    assert metrics is not None
    return metrics.last_log_index


def test_linearizable_reads_anywhere_see_the_last_acknowledged_write(kv3: LocalCluster) -> None:
    """A write acknowledged by the leader is seen at once by a linearizable read on every
    node, each answering itself (200, no redirect); a stale read may lag."""
    leader = leader_of(kv3)
    for value in range(5):
        put = request(kv3.url(leader), "PUT", "/v1/kv/reads/fresh", {"value": value})
        assert put.status == 200
        for node_id in sorted(kv3.servers):
            answer = request(kv3.url(node_id), "GET", "/v1/kv/reads/fresh")
            assert answer.status == 200, (node_id, answer.json)
            assert answer.json["value"] == value, node_id
            assert answer.json["index"] >= put.json["index"]


def test_a_linearizable_read_adds_no_log_entry(kv3: LocalCluster) -> None:
    leader, follower = leader_of(kv3), follower_of(kv3)
    put = request(kv3.url(leader), "PUT", "/v1/kv/reads/cost", {"value": "x"})
    assert put.status == 200
    before = put.json["index"]
    for node_id in (leader, follower):
        for consistency in ("linearizable", "lease", "stale"):
            url = kv3.url(node_id)
            path = f"/v1/kv/reads/cost?consistency={consistency}"
            answer = request(url, "GET", path)
            if answer.status == 307:  # lease on a follower: the leader serves it
                answer = request(url_of(answer.headers["location"]), "GET", path)
            assert answer.status == 200 and answer.json["value"] == "x"
    # The next write takes the next index: the six reads wrote nothing to the log.
    after = request(kv3.url(leader), "PUT", "/v1/kv/reads/cost", {"value": "y"})
    assert after.json["index"] == before + 1, "a read wrote to the log"


def url_of(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}"


def test_lease_reads_are_served_by_the_leader_only(kv3: LocalCluster) -> None:
    leader, follower = leader_of(kv3), follower_of(kv3)
    request(kv3.url(leader), "PUT", "/v1/kv/reads/lease", {"value": [1, 2]})
    on_leader = request(kv3.url(leader), "GET", "/v1/kv/reads/lease?consistency=lease")
    assert on_leader.status == 200 and on_leader.json["value"] == [1, 2]
    # A follower has no lease: it redirects, as it does a write.
    redirected = request(kv3.url(follower), "GET", "/v1/kv/reads/lease?consistency=lease")
    assert redirected.status == 307 and redirected.code == "not_leader"
    assert redirected.json["error"]["leader_id"] == leader
    assert url_of(redirected.headers["location"]) == kv3.url(leader)
    assert redirected.headers["location"].endswith("/v1/kv/reads/lease?consistency=lease")
    # The client follows it.
    assert Client([kv3.url(follower)]).get("reads/lease", "lease") == [1, 2]
    missing = request(kv3.url(leader), "GET", "/v1/kv/reads/never?consistency=lease")
    assert missing.status == 404 and missing.code == "key_not_found"


def test_bad_consistency_values_are_400(kv3: LocalCluster) -> None:
    for value in ("eventual", "LINEARIZABLE", "", "read_index"):
        answer = request(kv3.url(1), "GET", f"/v1/kv/reads/any?consistency={value}")
        assert answer.status == 400 and answer.code == "bad_consistency", value
        assert "linearizable, lease, stale" in answer.json["error"]["message"]


def test_the_cli_reads_with_each_consistency(kv3: LocalCluster) -> None:
    leader = leader_of(kv3)
    request(kv3.url(leader), "PUT", "/v1/kv/reads/cli", {"value": {"a": 1}})
    follower = follower_of(kv3)
    runner = CliRunner()
    for consistency in ("linearizable", "lease", "stale"):

        def read(consistency: str = consistency) -> Any:
            result = runner.invoke(
                main,
                ["--url", kv3.url(follower), "get", "reads/cli", "--consistency", consistency],
            )
            return result if result.exit_code == 0 else None

        result = wait_until(read, 10, f"a {consistency} read through the CLI")
        assert '"a": 1' in result.output or '"a":1' in result.output
    bad = runner.invoke(main, ["--url", kv3.url(1), "get", "k", "--consistency", "eventual"])
    assert bad.exit_code == 2


def test_a_one_voter_cluster_answers_linearizable_reads_at_once(cluster_factory: Any) -> None:
    """One voter: its heartbeat round is acknowledged as it starts, so reads are answered
    at once, without a log entry and without waiting for a write."""
    cluster = cluster_factory([1])
    # A new leader records the session settings and its addresses in the log on its own;
    # once both are there, only the client writes (the count below would otherwise race).
    machine = cluster.servers[1].node.state_machine
    wait_until(
        lambda: machine.local_get(SETTINGS_KEY) is not None and 1 in machine.node_records(),
        10,
        "the leader's own records",
    )
    client = cluster.client(timeout=3.0, deadline=3.0)
    before = client.put("solo", 1)["index"]
    assert client.get("solo") == 1
    assert client.get("solo", "lease") == 1
    assert client.put("solo", 2)["index"] == before + 1  # the reads wrote nothing
