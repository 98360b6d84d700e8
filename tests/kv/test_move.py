"""``POST /v1/admin/move`` and the ``move`` command: recording a member's new addresses
(in the replicated directory, and in the membership when its Raft address changed), every
request it refuses (nothing changed), and a node restarted on new ports by a real process
cluster that its peers reach again once it is moved."""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from pykka_raft import GetMetrics
from pykka_raft.kv import BadRequest, Client, Conflict, KvServer, NodeConfig
from pykka_raft.kv.admin_api import AdminApi
from pykka_raft.kv.cli import main
from pykka_raft.kv.launcher import ProcessCluster, wait
from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.store import node_key
from pykka_raft.kv.wsgi import HttpError
from pykka_raft.testing import wait_until
from tests.kv.conftest import follower_of, leader_of, request, secure_processes

pytestmark = pytest.mark.timeout(180)


def free_address() -> str:
    """A loopback address nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def view(url: str) -> tuple[Any, Any]:
    """A node's directory and membership, as ``/v1/status`` shows them."""
    status = request(url, "GET", "/v1/status").json
    return status["nodes"], status["membership"]


def test_a_follower_moved_to_a_new_http_address(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    url = cluster.url(leader)
    new = free_address()
    moved = request(url, "POST", "/v1/admin/move", {"id": follower, "http_address": new})
    assert moved.status == 200, moved.data
    assert moved.json["voters"] == [1, 2, 3] and moved.json["learners"] == []
    assert moved.json["index"] > 0
    # Every node learns it from the replicated directory (the Raft address, none on the
    # in-process network, is kept as it was).
    for node_id in (1, 2, 3):
        wait_until(
            lambda n=node_id: view(cluster.url(n))[0][str(follower)] == {"http": new, "raft": None},
            10,
            f"node {node_id} to learn node {follower}'s new address",
        )
    again = request(url, "POST", "/v1/admin/move", {"id": follower, "http_address": new})
    assert again.status == 409 and again.code == "noop", again.data
    assert new in again.json["error"]["message"]


def test_a_removed_nodes_address_may_be_reused(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    url = cluster.url(leader)
    four = cluster.add_node(4)
    body = {"id": 4, "http_address": four.http.address}
    assert request(url, "POST", "/v1/admin/learners", body).status == 200
    follower = follower_of(cluster)
    taken = {"id": follower, "http_address": four.http.address}
    refused = request(url, "POST", "/v1/admin/move", taken)
    assert refused.status == 400 and "is an address of member 4" in refused.json["error"]["message"]
    assert request(url, "POST", "/v1/admin/remove", {"ids": [4]}).status == 200
    cluster.stop_node(4)
    moved = request(url, "POST", "/v1/admin/move", taken)
    assert moved.status == 200, moved.data
    assert view(url)[0][str(follower)]["http"] == four.http.address


def test_every_refusal_changes_nothing(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    url = cluster.url(leader)
    mine = cluster.servers[follower].http.address
    other = cluster.servers[6 - leader - follower].http.address  # the third node's
    # The new leader records every member's addresses just after it is elected: wait for
    # them, or a move to the address recorded next would find nothing recorded yet.
    state = cluster.servers[leader].node.state_machine
    wait_until(
        lambda: all(state.local_get(node_key(n)) is not None for n in (1, 2, 3)),
        10,
        "the leader to record every member's addresses",
    )
    before = view(url)
    refusals: list[tuple[Any, int, str, str]] = [
        (b"{oops", 400, "bad_json", "not valid JSON"),
        (b"", 400, "bad_json", "needs a JSON body"),
        ([follower], 400, "bad_request", "must be a JSON object"),
        ({"http_address": free_address()}, 400, "bad_request", "missing field(s): id"),
        ({"id": follower}, 400, "bad_request", "give http_address, raft_address or both"),
        ({"id": follower, "http": mine}, 400, "bad_request", "unknown field(s): http"),
        ({"id": "2", "http_address": mine}, 400, "bad_request", "id must be an integer"),
        ({"id": follower, "http_address": 8001}, 400, "bad_request", "must be a string"),
        ({"id": follower, "http_address": "0.0.0.0:1"}, 400, "bad_request", "not an address"),
        ({"id": follower, "http_address": "127.0.0.1:0"}, 400, "bad_request", "real port"),
        (
            {"id": follower, "http_address": mine, "raft_address": mine},
            400,
            "bad_request",
            "must differ",
        ),
        ({"id": 9, "http_address": free_address()}, 409, "not_a_member", "not a member"),
        ({"id": follower, "http_address": other}, 400, "bad_request", "is an address of member"),
        # The same host and port under another name (no DNS asked).
        (
            {"id": follower, "http_address": other.replace("127.0.0.1", "LocalHost.")},
            400,
            "bad_request",
            "is an address of member",
        ),
        ({"id": follower, "http_address": mine}, 409, "noop", "nothing changed"),
        # The leader records its own addresses; it is not moved where it does not listen.
        ({"id": leader, "http_address": free_address()}, 400, "bad_request", "the leader"),
        ({"id": leader, "http_address": cluster.url(leader)}, 409, "noop", "nothing changed"),
    ]
    for body, status, code, words in refusals:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = request(url, "POST", "/v1/admin/move", raw=raw)
        assert (answer.status, answer.code) == (status, code), (body, answer.data)
        assert words in answer.json["error"]["message"], (body, answer.data)
    assert view(url) == before
    # A follower redirects it to the leader, like every membership change.
    body = {"id": follower, "http_address": free_address()}
    redirected = request(cluster.url(follower), "POST", "/v1/admin/move", body)
    assert redirected.status == 307, redirected.data
    assert redirected.headers["location"] == cluster.url(leader) + "/v1/admin/move"
    assert request(url, "PUT", "/v1/kv/still", {"value": "serving"}).status == 200


def test_the_leader_moved_to_its_new_raft_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A one-node cluster on the TCP network restarted on new ports: it leads, and its
    membership records its old Raft address (it says so, naming the ``move`` command). The
    move records its new one: the change commits, as any address-only change does."""
    config = NodeConfig(
        1, "127.0.0.1:0", raft_address="127.0.0.1:0", insecure=True, data_dir=str(tmp_path)
    )
    server = KvServer.start(config)
    try:
        Client([server.url]).init()
        wait_until(lambda: recorded(server) is not None, 10, "the membership's address")
        first = recorded(server)
    finally:
        server.stop()
    with caplog.at_level(logging.WARNING, logger="pykka_raft.kv"):
        server = KvServer.start(config)  # port 0 again: new ports
        try:
            node = server.node
            http, raft = node.http_address, node.raft_address
            assert raft is not None and raft != first
            wait_until(lambda: "move --id 1" in caplog.text, 10, "the warning")
            client = Client([server.url])
            wait_until(lambda: client.status()["state"] == "leader", 10, "it to lead")
            assert recorded(server) == first  # the fault: the membership has the old one
            with pytest.raises(BadRequest, match="raft_address is required on a TCP network"):
                client.move(1, http)
            elsewhere = request(
                server.url,
                "POST",
                "/v1/admin/move",
                {"id": 1, "http_address": http, "raft_address": free_address()},
            )
            assert elsewhere.status == 400 and "the leader" in elsewhere.json["error"]["message"]
            answer = client.move(1, http, raft)
            assert answer["voters"] == [1], answer
            assert recorded(server) == raft
            assert client.status()["nodes"]["1"] == {"http": http, "raft": raft}
            with pytest.raises(Conflict) as noop:
                client.move(1, http, raft)
            assert noop.value.code == "noop"
            assert client.put("after", 1)["existed"] is False
        finally:
            server.stop()


def test_an_address_the_membership_holds_for_another_member_is_taken(
    cluster_factory: Any,
) -> None:
    """A Raft address can be in the membership and not (yet) in the directory: it is a
    member's all the same."""
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    third = 6 - leader - follower
    server = cluster.servers[leader]
    metrics = server.node.raft.ask(GetMetrics(), timeout=10)
    taken = free_address()
    config = attrs.evolve(metrics.membership_config, addresses=((follower, taken),))
    holding = attrs.evolve(metrics, membership_config=config)
    api = AdminApi(server.app.gateway)
    with pytest.raises(HttpError, match=f"is an address of member {follower}"):
        api._check_not_taken(third, (taken,), holding)
    api._check_not_taken(follower, (taken,), holding)  # its own
    api._check_not_taken(third, (taken,), metrics)  # a membership without it: free


def test_a_move_whose_address_change_is_a_noop_still_records_the_directory(
    cluster_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader's metrics may lag a move just made: its address change then answers
    ``noop``, and the directory, which the move writes next, must still be written."""
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    gateway = cluster.servers[leader].app.gateway
    proposed = []

    def noop(request: Any, change: Any) -> Any:
        proposed.append(change)
        raise HttpError("noop", "the membership already is as asked")

    monkeypatch.setattr(gateway, "change", noop)
    new = free_address()
    body = {"id": follower, "http_address": new, "raft_address": free_address()}
    moved = request(cluster.url(leader), "POST", "/v1/admin/move", body)
    assert len(proposed) == 1  # the fault happened
    assert moved.status == 200, moved.data
    assert view(cluster.url(leader))[0][str(follower)]["http"] == new


def test_a_move_cut_short_keeps_the_membership_s_raft_address(
    cluster_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move whose address change committed but whose directory write failed: a later
    move of the HTTP address alone records the Raft address the membership holds (where
    the peers send), not the directory's older one."""
    cluster = cluster_factory([1, 2, 3])
    leader = leader_of(cluster)
    follower = follower_of(cluster)
    url = cluster.url(leader)
    gateway = cluster.servers[leader].app.gateway

    def fails(request: Any, command: Any) -> Any:
        raise HttpError("outcome_unknown", "the write was cut short")

    raft = free_address()
    body = {"id": follower, "http_address": free_address(), "raft_address": raft}
    with monkeypatch.context() as patch:
        patch.setattr(gateway, "submit", fails)
        cut = request(url, "POST", "/v1/admin/move", body)
    assert cut.code == "outcome_unknown", cut.data  # the fault happened
    metrics = cluster.servers[leader].node.raft.ask(GetMetrics(), timeout=10)
    assert metrics.membership_config.address_of(follower) == raft
    assert view(url)[0][str(follower)]["raft"] != raft  # the directory lags
    http = free_address()
    moved = request(url, "POST", "/v1/admin/move", {"id": follower, "http_address": http})
    assert moved.status == 200, moved.data
    assert view(url)[0][str(follower)] == {"http": http, "raft": raft}


def recorded(server: KvServer) -> str | None:
    """The Raft address the membership records for node 1."""
    latest = server.node.view.latest()
    return None if latest is None else latest.membership_config.address_of(1)


def test_the_move_command(cluster_factory: Any) -> None:
    cluster: LocalCluster = cluster_factory([1, 2, 3])
    follower = follower_of(cluster)
    new = free_address()

    def run(*args: str) -> Any:
        flags = [f"--url={u}" for u in cluster.urls]
        return CliRunner().invoke(main, [*flags, "--deadline=3", "move", *args])

    moved = run("--id", str(follower), "--http", new)
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["voters"] == [1, 2, 3]
    twice = run("--id", str(follower), "--http-address", new)  # add-voter's spelling too
    assert twice.exit_code == 4 and "error: noop:" in twice.stderr, twice.output
    unknown = run("--id", "9", "--http", free_address())
    assert unknown.exit_code == 4 and "error: not_a_member:" in unknown.stderr
    taken = run("--id", str(follower), "--http", cluster.url(leader_of(cluster)))
    assert taken.exit_code == 4 and "error: bad_request:" in taken.stderr
    for usage in (["--http", new], ["--id", str(follower)], ["--id", "0", "--http", new]):
        result = run(*usage)
        assert result.exit_code == 2, (usage, result.output)
        assert "Traceback" not in result.output


# --- real processes ---------------------------------------------------------------------

# Elections slow enough that the node cut off by its move never wins one on a loaded
# machine (its peers hear from their leader all along).
RAFT = {"election_timeout_min": 1000, "election_timeout_max": 2000, "heartbeat_interval": 50}
HTTP = {"request_timeout": 10.0, "shutdown_grace": 1.0}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[ProcessCluster]:
    yield from secure_processes(tmp_path, RAFT, HTTP)


def held(address: str) -> socket.socket | None:
    """A socket bound to ``address`` and not listening: nothing else can bind it, and a
    connection to it is refused (``None`` if another process took the port already)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    host, port = address.rsplit(":", 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        return None
    return sock


@pytest.mark.slow
def test_a_follower_restarted_on_new_ports_is_moved(processes: ProcessCluster) -> None:
    leader = processes.form([1, 2, 3])
    moved = next(n for n in (1, 2, 3) if n != leader)
    third = 6 - leader - moved
    node = processes.nodes[moved]
    client = processes.client([leader, third])
    index = client.put("before", 1)["index"]
    processes.wait_applied(index, [1, 2, 3])
    old = (node.http, node.raft)
    assert node.kill(signal.SIGTERM) == 0  # stopped cleanly, its data kept

    # Restarted on new ports (the old ones held, so the system cannot hand them out again).
    sockets = [held(a) for a in old if a]
    try:
        node.http = node.raft = None
        node.start()
    finally:
        for sock in sockets:
            if sock is not None:
                sock.close()
    new = (node.http, node.raft)
    assert new[0] != old[0] and new[1] != old[1], (old, new)

    # The fault: its peers send to the old Raft address, so it gets nothing.
    wait(lambda: "move --id" in node.log_file.read_text(), 30, "the moved node's warning")
    index = client.put("while-away", 2)["index"]
    processes.wait_applied(index, [leader, third])
    away = processes.statuses([moved])[moved]
    assert away["last_applied"] < index, away
    assert processes.statuses([leader])[leader]["nodes"][str(moved)]["http"] == old[0]

    # The command, as a user runs it, against the two nodes that kept their addresses.
    flags = [f"--url={u}" for u in processes.urls([leader, third])]
    args = ["move", "--id", str(moved), "--http", str(new[0]), "--raft", str(new[1])]
    done = subprocess.run(
        [sys.executable, "-m", "pykka_raft.kv", *flags, "--deadline=30", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["voters"] == [1, 2, 3]

    # Writes commit and every node applies them, the moved one included; every node's
    # directory shows the new addresses.
    everyone = processes.client([1, 2, 3])
    index = everyone.put("after", 3)["index"]
    processes.wait_applied(index, [1, 2, 3])
    assert Client([node.url]).get("while-away", consistency="stale") == 2
    expected = {"http": new[0], "raft": new[1]}

    def directories_agree() -> bool:
        statuses = processes.statuses([1, 2, 3])
        return len(statuses) == 3 and all(
            s["nodes"][str(moved)] == expected for s in statuses.values()
        )

    wait(directories_agree, 30, "every node's directory to hold the new addresses")
    for peer in (leader, third):
        log = processes.nodes[peer].log_file.read_text()
        assert f"node {moved} is at {new[1]} (from the membership, was {old[1]})" in log


@pytest.mark.slow
def test_a_cluster_resumed_from_its_directory_restarts_a_moved_node_where_it_was_moved(
    processes: ProcessCluster,
) -> None:
    """A node restarted by hand on new ports and moved there leaves its ready file on the
    old addresses; resuming the directory (``local-cluster --dir D`` again) starts it on
    the addresses the cluster records. Until it is moved, a wait for a leader that fails
    names the node that does not follow and quotes its warning."""
    leader = processes.form([1, 2, 3])
    moved = next(n for n in (1, 2, 3) if n != leader)
    node = processes.nodes[moved]
    old = {"http": node.http, "raft": node.raft}
    assert node.kill(signal.SIGTERM) == 0
    sockets = [held(a) for a in old.values() if a]
    try:
        node.http = node.raft = None
        node.start()  # on new ports
    finally:
        for sock in sockets:
            if sock is not None:
                sock.close()
    new = {"http": node.http, "raft": node.raft}
    wait(lambda: "move --id" in node.log_file.read_text(), 30, "the moved node's warning")
    with pytest.raises(TimeoutError) as exc:
        processes.leader([1, 2, 3], timeout=2)
    why = str(exc.value)
    assert f"node {moved} does not follow" in why and "listens for Raft on" in why, why
    assert str(node.log_file) in why

    flags = [f"--url={u}" for u in processes.urls([1, 2, 3])]
    args = ["move", "--id", str(moved), "--http", str(new["http"]), "--raft", str(new["raft"])]
    assert CliRunner().invoke(main, [*flags, "--deadline=30", *args]).exit_code == 0
    index = processes.client([1, 2, 3]).put("moved", 1)["index"]
    processes.wait_applied(index, [1, 2, 3])
    for node_id in processes.running():
        assert processes.kill(node_id, signal.SIGTERM) == 0
    # What a restart by hand (without --ready-file) leaves: the old addresses.
    ready = processes.root / f"node-{moved}.ready"
    ready.write_text(json.dumps({**json.loads(ready.read_text()), **old}))

    again = ProcessCluster(processes.root, secure=True, raft=processes.raft, http=processes.http)
    try:
        assert again.earlier_nodes() == [1, 2, 3]
        again.resume([1, 2, 3], timeout=60)
        restarted = again.nodes[moved]
        assert {"http": restarted.http, "raft": restarted.raft} == new
        assert again.client([moved]).get("moved", consistency="linearizable") == 1
        assert json.loads(ready.read_text())["raft"] == new["raft"]  # recorded for next time
    finally:
        again.close()
