"""The ``pykka-raft-kv`` commands through click's CliRunner, against real HTTP servers:
output and exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pykka_raft.kv import HttpSettings
from pykka_raft.kv.cli import main
from pykka_raft.kv.local import LocalCluster
from tests.kv.conftest import follower_of, leader_of

pytestmark = pytest.mark.timeout(120)


def run(urls: list[str], *args: str, env: dict[str, str] | None = None) -> Result:
    flags = [f"--url={u}" for u in urls]
    return CliRunner().invoke(main, [*flags, "--deadline=3", *args], env=env)


def test_put_get_delete(kv3: LocalCluster) -> None:
    urls = [kv3.url(follower_of(kv3))]
    put = run(urls, "put", "cli/a", '{"n": 1}')
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout)["existed"] is False
    get = run(urls, "get", "cli/a")
    assert get.exit_code == 0 and json.loads(get.stdout) == {"n": 1}
    assert run(urls, "put", "cli/s", "--string", "plain text").exit_code == 0
    assert json.loads(run(urls, "get", "cli/s").stdout) == "plain text"
    deleted = run(urls, "delete", "cli/a")
    assert deleted.exit_code == 0 and json.loads(deleted.stdout)["previous"] == {"n": 1}
    assert run(urls, "put", "cli/two\nlines", "3").exit_code == 0  # any UTF-8 key
    assert json.loads(run(urls, "get", "cli/two\nlines").stdout) == 3


def test_url_from_the_environment(kv3: LocalCluster) -> None:
    result = CliRunner().invoke(
        main, ["put", "cli/env", "1"], env={"PYKKA_RAFT_KV_URL": ",".join(kv3.urls)}
    )
    assert result.exit_code == 0, result.output


def test_cas(kv3: LocalCluster) -> None:
    urls = kv3.urls
    assert run(urls, "cas", "cli/c", "--new", "1").exit_code == 0
    ok = run(urls, "cas", "cli/c", "--expected", "1", "--new", "2")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["previous"] == 1
    failed = run(urls, "cas", "cli/c", "--expected", "1", "--new", "3")
    assert failed.exit_code == 4
    assert "cas_failed" in failed.stderr


def test_refused_requests_exit_4(kv3: LocalCluster) -> None:
    missing = run(kv3.urls, "get", "cli/never")
    assert missing.exit_code == 4 and "key_not_found" in missing.stderr
    assert run(kv3.urls, "get", "cli/never", "--consistency", "lease").exit_code == 4
    assert run(kv3.urls, "remove", "1", "2", "3").exit_code == 4
    transfer = run(kv3.urls, "transfer-leader", "--to", "9")
    assert transfer.exit_code == 4 and "transfer_failed" in transfer.stderr


def test_usage_errors_exit_2(kv3: LocalCluster) -> None:
    assert CliRunner().invoke(main, ["get", "k"], env={"PYKKA_RAFT_KV_URL": ""}).exit_code == 2
    bad_json = run(kv3.urls, "put", "k", "not json")
    assert bad_json.exit_code == 2 and "--string" in bad_json.output
    for value in ("NaN", "Infinity", "[-Infinity]", "1e999", '{"a": [NaN]}'):  # not JSON
        refused = run(kv3.urls, "put", "cli/nan", value)
        assert refused.exit_code == 2 and "is not JSON" in refused.output, (value, refused.output)
        assert run(kv3.urls, "cas", "cli/nan", "--new", value).exit_code == 2
    deep = run(kv3.urls, "put", "cli/deep", "[" * 100_000)  # no RecursionError traceback
    assert deep.exit_code == 2 and "nested too deeply" in deep.output, deep.output
    assert "Traceback" not in deep.output and "(100000 characters)" in deep.output
    assert run(kv3.urls, "remove").exit_code == 2
    assert run(kv3.urls, "promote", "zero").exit_code == 2
    assert run(kv3.urls, "init", "--members", "a,b").exit_code == 2
    assert run(["ftp://x"], "get", "k").exit_code == 2
    assert run(kv3.urls, "no-such-command").exit_code == 2


def test_unreachable_exits_3(closed_url: str) -> None:
    result = run([closed_url], "get", "k")
    assert result.exit_code == 3 and "no node answered" in result.stderr
    assert run([closed_url], "status").exit_code == 3


def test_a_hung_node_exits_3(silent_url: str) -> None:
    # No session could be opened: the write was never sent.
    result = CliRunner().invoke(
        main, [f"--url={silent_url}", "--timeout=0.5", "--deadline=1.5", "put", "k", "1"]
    )
    assert result.exit_code == 3


def test_unknown_outcome_exits_5(kv3: LocalCluster, losing_proxy: Any) -> None:
    proxy = losing_proxy(kv3.url(leader_of(kv3)), lose=1000)
    result = CliRunner().invoke(
        main, [f"--url={proxy.url}", "--timeout=2", "--deadline=1.5", "put", "cli/lost", "1"]
    )
    assert result.exit_code == 5 and "outcome_unknown" in result.stderr
    assert len(proxy.writes) >= 2 and len({seq for _, seq in proxy.writes}) == 1


def test_a_write_whose_answer_was_lost_is_resent_and_applied_once(
    kv3: LocalCluster, losing_proxy: Any
) -> None:
    """cas --new 1 (only if absent) through a proxy that loses the first answer: applied a
    second time it would exit 4 with cas_failed; the resend is answered from the session."""
    proxy = losing_proxy(kv3.url(leader_of(kv3)))
    result = run([proxy.url], "--deadline=20", "cas", "cli/once", "--new", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["swapped"] is True
    assert len(proxy.lost) == 1 and proxy.writes == proxy.lost * 2
    assert json.loads(run(kv3.urls, "get", "cli/once").stdout) == 1


def test_unavailable_exits_6(cluster_factory: Any) -> None:
    cluster = cluster_factory([1], init=False)
    result = CliRunner().invoke(
        main, [f"--url={cluster.url(1)}", "--deadline=0.5", "put", "k", "1"]
    )
    assert result.exit_code == 6 and "not_initialized" in result.stderr
    status = CliRunner().invoke(main, [f"--url={cluster.url(1)}", "status"])
    assert status.exit_code == 6, status.output  # a health check: no leader is known
    assert status.stdout.startswith("leader: none")


def test_status_table(kv3: LocalCluster, closed_url: str) -> None:
    leader = leader_of(kv3)
    result = run([closed_url, kv3.url(2)], "status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"leader: node {leader}, term ")
    assert lines[1].split()[:3] == ["ID", "ROLE", "STATE"]
    rows = {int(line.split()[0]): line.split() for line in lines[2:5]}
    assert sorted(rows) == [1, 2, 3]
    assert all(row[1] == "voter" for row in rows.values())
    assert rows[leader][2] == "leader"
    assert f"error: {closed_url}: did not answer" in result.stdout
    as_json = json.loads(run(kv3.urls, "status", "--json").stdout)
    assert as_json["leader_id"] == leader


def test_cluster_lifecycle(cluster_factory: Any) -> None:
    cluster = cluster_factory([1, 2, 3], init=False)
    init = run(cluster.urls, "init")
    assert init.exit_code == 0, init.output
    assert [json.loads(line)["node_id"] for line in init.stdout.splitlines()] == [1, 2, 3]
    leader_of(cluster)
    again = run(cluster.urls, "init", "--members", "1,2")
    assert again.exit_code == 4 and "not_pristine" in again.stderr
    four = cluster.add_node(4)
    added = run(cluster.urls, "add-voter", "4", "--http-address", four.http.address)
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["voters"] == [1, 2, 3, 4]
    twice = run(cluster.urls, "add-voter", "4", "--http-address", four.http.address)
    assert twice.exit_code == 4 and "noop" in twice.stderr
    five = cluster.add_node(5)
    learner = run(cluster.urls, "add-learner", "5", "--http-address", five.http.address)
    assert learner.exit_code == 0 and json.loads(learner.stdout)["learners"] == [5]
    promoted = run(cluster.urls, "promote", "5")
    assert promoted.exit_code == 0 and json.loads(promoted.stdout)["voters"] == [1, 2, 3, 4, 5]
    removed = run(cluster.urls, "remove", "4", "5")
    assert removed.exit_code == 0 and json.loads(removed.stdout)["voters"] == [1, 2, 3]
    cluster.stop_node(4)  # removed nodes are stopped
    cluster.stop_node(5)
    leader = leader_of(cluster)
    target = next(n for n in (1, 2, 3) if n != leader)
    moved = run(cluster.urls, "transfer-leader", "--to", str(target))
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["leader_id"] == target
    assert leader_of(cluster) == target
    snap = run(cluster.urls, "snapshot")
    assert snap.exit_code == 0
    assert [json.loads(line)["node_id"] for line in snap.stdout.splitlines()] == [1, 2, 3]


CLIENT_COMMANDS = [
    ["get", "k"],
    ["get", "k", "--consistency", "stale"],
    ["put", "k", "1"],
    ["delete", "k"],
    ["cas", "k", "--new", "1"],
    ["init"],
    ["add-voter", "4", "--http-address", "127.0.0.1:1", "--raft-address", "127.0.0.1:2"],
    ["add-learner", "4", "--http-address", "127.0.0.1:1", "--raft-address", "127.0.0.1:2"],
    ["promote", "4"],
    ["remove", "4"],
    ["move", "--id", "4", "--http", "127.0.0.1:1", "--raft", "127.0.0.1:2"],
    ["snapshot"],
    ["transfer-leader"],
    ["transfer-leader", "--to", "2"],
    ["status"],
    ["backup", "-"],
]


@pytest.mark.parametrize("args", CLIENT_COMMANDS, ids=lambda a: " ".join(a))
def test_every_command_against_a_node_that_is_down_exits_3(
    closed_url: str, args: list[str]
) -> None:
    # A write first opens a session, asked again until the deadline: one second of asking
    # is the same path as three.
    result = run([closed_url], "--deadline=1", *args)
    assert result.exit_code == 3, result.output
    assert "error:" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["get"],
        ["put", "k"],
        ["cas", "k"],
        ["cas", "k", "--new", "{oops"],
        ["add-voter", "4"],
        ["add-voter", "x", "--http-address", "127.0.0.1:1"],
        ["add-learner", "0", "--http-address", "127.0.0.1:1"],
        ["promote"],
        ["remove", "-1"],
        ["move", "--http", "127.0.0.1:1"],
        ["move", "--id", "4"],
        ["move", "--id", "x", "--http", "127.0.0.1:1"],
        ["transfer-leader", "--to", "0"],
        ["transfer-leader", "2"],
        ["status", "--bogus"],
        ["snapshot", "extra"],
        ["keygen"],
        ["serve", "--storage", "tape"],
        ["local-cluster", "--nodes", "0"],
        ["dev-cluster", "--nodes", "99"],
        ["dev-cluster", "--base-port", "65535"],  # node 2 would get port 65536
        ["dev-cluster", "--base-port", "70000"],
        ["dev-cluster", "--host", "0.0.0.0"],
        ["add-voter", str(2**63), "--http-address", "127.0.0.1:1"],
        ["demo", "--clients", "0"],
        ["demo", "--seconds", "-1"],
        ["demo", "--seconds", "0"],
        ["demo", "--seconds", "nan"],
        ["cas", "k", "--new", "-", "--expected", "-"],
    ],
    ids=lambda a: " ".join(a),
)
def test_bad_usage_of_every_command_exits_2(closed_url: str, args: list[str]) -> None:
    result = run([closed_url], *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_keygen_writes_a_key_pair_once(tmp_path: Any) -> None:
    made = CliRunner().invoke(main, ["keygen", str(tmp_path), "--node", "3"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "node-3.key").exists() and (tmp_path / "node-3.key_secret").exists()
    assert "public key of node 3: " in made.output  # as python -m pykka_raft.net keygen
    again = CliRunner().invoke(main, ["keygen", str(tmp_path), "--node", "3"])
    assert again.exit_code == 2 and "exists" in again.stderr
    (tmp_path / "file").write_text("")
    nowhere = CliRunner().invoke(main, ["keygen", str(tmp_path / "file" / "keys"), "--node", "3"])
    assert nowhere.exit_code == 2, nowhere.output
    assert f"cannot write a key pair into {tmp_path / 'file' / 'keys'}: " in nowhere.stderr


def test_backup_then_restore_into_a_new_cluster(cluster_factory: Any, tmp_path: Any) -> None:
    old = cluster_factory([1, 2, 3])
    values = {"a": 1, "b/c": {"x": [1, None]}, "nothing": None, "é": "ü", "two\nlines": 2}
    client = old.client()
    for key, value in values.items():
        client.put(key, value)
    path = tmp_path / "backup.json"
    made = run([old.url(follower_of(old))], "backup", str(path))  # a follower redirects
    assert made.exit_code == 0, made.output
    document = json.loads(path.read_text())
    assert document["items"] == values  # the node directory (.kv/) is not in a backup
    assert document["count"] == 5 and document["index"] > 0
    new = cluster_factory([7, 8, 9])
    restored = run(new.urls, "restore", str(path))
    assert restored.exit_code == 0 and "5 keys restored" in restored.stdout, restored.output
    again = new.client()
    assert {key: again.get(key) for key in values} == values
    to_stdout = run(new.urls, "backup", "-")
    assert json.loads(to_stdout.stdout)["items"] == values


def test_a_restore_tries_every_key_and_names_those_that_failed(
    cluster_factory: Any, tmp_path: Any
) -> None:
    # It stopped at the first failure: the keys after it were never written.
    cluster = cluster_factory([1, 2, 3], http=HttpSettings(max_body_bytes=2048))
    items: dict[str, Any] = {f"a{i:03d}": i for i in range(30)}
    items["b"] = "x" * 3000  # over the cluster's body limit: refused
    items.update({f"c{i:03d}": i for i in range(60)})
    path = tmp_path / "backup.json"
    path.write_text(json.dumps({"node_id": 1, "index": 1, "count": len(items), "items": items}))
    result = run(cluster.urls, "restore", str(path))
    assert result.exit_code == 4, result.output  # the failure's own code: refused
    assert "restore_incomplete: 1 of 91 keys were not restored: 'b' (body_too_large" in (
        result.stderr
    )
    client = cluster.client()
    assert all(client.get(key) == value for key, value in items.items() if key != "b")


def test_restore_refuses_what_is_not_a_backup(closed_url: str, tmp_path: Any) -> None:
    for text in ("not json", '{"items": [1]}', '{"other": 1}'):
        path = tmp_path / "bad.json"
        path.write_text(text)
        result = run([closed_url], "restore", str(path))
        assert result.exit_code == 2 and "not a backup" in result.stderr
    missing = run([closed_url], "restore", str(tmp_path / "missing.json"))
    assert missing.exit_code == 2


def test_a_value_from_standard_input(cluster_factory: Any) -> None:
    # A value larger than one argument may be (128 KiB on Linux) but under the node's body
    # limit (1 MiB) can only come this way.
    cluster = cluster_factory([1])
    big = {"items": ["x" * 100] * 3000}
    text = json.dumps(big)
    assert 200_000 < len(text) < 1 << 19
    put = CliRunner().invoke(main, ["--url", cluster.url(1), "put", "big", "-"], input=text)
    assert put.exit_code == 0, put.output
    assert json.loads(run(cluster.urls, "get", "big").stdout) == big
    plain = CliRunner().invoke(
        main, ["--url", cluster.url(1), "put", "s", "-", "--string"], input="two\nlines\n"
    )
    assert plain.exit_code == 0, plain.output
    assert json.loads(run(cluster.urls, "get", "s").stdout) == "two\nlines\n"  # as it is
    for args, given in (
        (["cas", "big", "--expected", "-", "--new", "1"], text),
        (["cas", "big", "--expected", "1", "--new", "-"], "[2]"),
    ):
        swapped = CliRunner().invoke(main, ["--url", cluster.url(1), *args], input=given)
        assert swapped.exit_code == 0, swapped.output
    assert json.loads(run(cluster.urls, "get", "big").stdout) == [2]
    for given in ("not json", b"\xff\xfe"):
        bad = CliRunner().invoke(main, ["--url", cluster.url(1), "put", "k", "-"], input=given)
        assert bad.exit_code == 2 and "VALUE" in bad.output, bad.output
