"""Bearer tokens on the HTTP API: a node with a token file serves a request only with one of
its tokens, on every route; its own calls to the other nodes carry its token; a token file
that is missing, empty, holds a short token or is open to others stops the node at start;
the commands send a token file's first token; no token is ever logged."""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pykka_raft.kv import Client, HttpSettings, KvConfigError, KvServer, NodeConfig, Unauthorized
from pykka_raft.kv import auth as auth_module
from pykka_raft.kv.auth import BearerCheck, is_loopback, load_tokens
from pykka_raft.kv.cli import main
from pykka_raft.kv.errors import EXIT_UNAUTHORIZED, EXIT_USAGE
from pykka_raft.kv.local import LocalCluster
from pykka_raft.testing import wait_until
from tests.kv.conftest import formed, leader_of, request
from tests.kv.test_serve import Serve

pytestmark = pytest.mark.timeout(120)

FIRST = "first-token-0123456789-abcdefghij"
SECOND = "second-token-9876543210-klmnopqrs"


def token_file(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.fixture(scope="module")
def tokens_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A token file with two tokens, blank lines and spaces around them."""
    return token_file(tmp_path_factory.mktemp("auth") / "token", f"\n  {FIRST}  \n\n\t{SECOND}\n\n")


@pytest.fixture(scope="module")
def locked(tokens_path: str) -> Iterator[LocalCluster]:
    """A formed 3-node cluster whose nodes share the token file."""
    yield from formed(HttpSettings(token_file=tokens_path))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# (method, path, body): one of each class of endpoint, and a path that is no route.
ROUTES = [
    ("GET", "/v1/kv/auth-key", None),
    ("PUT", "/v1/kv/auth-key", {"value": 1}),
    ("POST", "/v1/kv/auth-key/cas", {"new": 2}),
    ("POST", "/v1/sessions", None),
    ("GET", "/v1/admin/backup", None),
    ("POST", "/v1/admin/snapshot", None),
    ("POST", "/v1/admin/remove", {"ids": [3]}),
    ("GET", "/v1/status", None),
    ("GET", "/v1/cluster", None),
    ("GET", "/metrics", None),
    ("GET", "/", None),
    ("HEAD", "/v1/status", None),
    ("GET", "/no/such/route", None),
]

BAD_HEADERS = {
    "none": {},
    "wrong token": bearer("not-a-token-of-this-node-0123456789"),
    "a token's prefix": bearer(FIRST[:-1]),
    "a token and more": bearer(FIRST + "x"),
    "Basic": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "Bearer alone": {"Authorization": "Bearer"},
    "Bearer and a space": {"Authorization": "Bearer "},
    "two spaces": {"Authorization": f"Bearer  {FIRST}"},
    "two tokens": {"Authorization": f"Bearer {FIRST} {SECOND}"},
    "the token alone": {"Authorization": FIRST},
    "not ASCII": {"Authorization": "Bearer \xe9t\xe9-0123456789abcdef"},
}


@pytest.mark.parametrize("header", sorted(BAD_HEADERS))
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_refuses_a_request_without_a_valid_token(
    locked: LocalCluster, method: str, path: str, body: Any, header: str
) -> None:
    node = locked.url(leader_of(locked))
    answer = request(node, method, path, body, headers=BAD_HEADERS[header])
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    if method != "HEAD":
        assert answer.code == "unauthorized"
        assert FIRST not in answer.data.decode() and SECOND not in answer.data.decode()


@pytest.mark.parametrize("token", [FIRST, SECOND])
def test_every_class_of_endpoint_serves_with_either_token(locked: LocalCluster, token: str) -> None:
    leader = locked.url(leader_of(locked))
    key = f"/v1/kv/auth-served-{token[:5]}"
    assert request(leader, "PUT", key, {"value": 1}, headers=bearer(token)).status == 200
    answer = request(leader, "GET", key, headers=bearer(token))
    assert (answer.status, answer.json["value"]) == (200, 1)
    cas = request(leader, "POST", key + "/cas", {"expected": 1, "new": 2}, headers=bearer(token))
    assert cas.json["swapped"] is True
    assert request(leader, "GET", "/v1/admin/backup", headers=bearer(token)).status == 200
    assert request(leader, "POST", "/v1/admin/snapshot", headers=bearer(token)).status == 200
    assert request(leader, "GET", "/v1/status", headers=bearer(token)).json["node_id"]
    metrics = request(leader, "GET", "/metrics", headers=bearer(token))
    assert b"pykka_raft_kv_requests_total" in metrics.data
    page = request(leader, "GET", "/", headers=bearer(token))
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    # The scheme is case-insensitive (RFC 7235, section 2.1).
    lower = request(leader, "GET", "/v1/status", headers={"Authorization": f"bearer {token}"})
    assert lower.status == 200


def test_a_follower_with_a_token_redirects_and_the_client_follows(locked: LocalCluster) -> None:
    follower = next(n for n in sorted(locked.servers) if n != leader_of(locked))
    answer = request(
        locked.url(follower), "PUT", "/v1/kv/auth-r", {"value": 1}, headers=bearer(FIRST)
    )
    assert answer.status == 307
    client = Client([locked.url(follower)], token=SECOND)
    try:
        assert client.put("auth-r", 7)["existed"] is False
        assert client.get("auth-r") == 7
    finally:
        client.close()


def test_the_cluster_view_of_nodes_sharing_a_token_file_shows_every_member(
    locked: LocalCluster,
) -> None:
    leader = leader_of(locked)
    for node_id in sorted(locked.servers):

        def complete(node_id: int = node_id) -> dict[str, Any] | None:
            # Each node gives each other one a second to answer: ask again if, on a
            # loaded machine, one did not (what is checked is that none is refused).
            url = locked.url(node_id)
            view: dict[str, Any] = request(url, "GET", "/v1/cluster", headers=bearer(SECOND)).json
            errors = [m.get("error") for m in view["members"]]
            assert not any("unauthorized" in (e or "") for e in errors), view
            return view if errors == [None] * 3 else None

        view = wait_until(complete, 30, f"node {node_id}'s view of every member")
        assert [m["id"] for m in view["members"]] == [1, 2, 3]
        assert view["leader_id"] == leader
    client = locked.client()
    assert [m.get("error") for m in client.cluster_status()["members"]] == [None] * 3


def test_a_node_whose_peers_take_other_tokens_shows_them_unauthorized(
    cluster_factory: Any, tmp_path: Path
) -> None:
    cluster = cluster_factory([1, 2], http=HttpSettings(token_file=str(_file(tmp_path, FIRST))))
    other = token_file(tmp_path / "other", SECOND + "\n")
    lonely = KvServer.start(
        NodeConfig(
            3,
            "127.0.0.1:0",
            storage="memory",
            network="local",
            http=HttpSettings(token_file=other),
        ),
        cluster.network,
    )
    try:
        cluster.client().add_voter(3, lonely.http.address)

        def errors() -> dict[int, str | None] | None:
            view = request(cluster.url(1), "GET", "/v1/cluster", headers=bearer(FIRST)).json
            found = {m["id"]: m.get("error") for m in view["members"]}
            return found if found.get(3) and found[1] is None and found[2] is None else None

        seen = wait_until(errors, 30, "node 3 refused, nodes 1 and 2 seen")
        assert "unauthorized" in str(seen[3])
    finally:
        lonely.stop()


def _file(tmp_path: Path, *tokens: str) -> Path:
    path = tmp_path / "tokens"
    token_file(path, "".join(t + "\n" for t in tokens))
    return path


# --- the checks, one at a time ---------------------------------------------------------


def test_every_token_is_compared_in_constant_time_whichever_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(a)
        return compare(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
    check = BearerCheck([FIRST, SECOND])
    check.check({"HTTP_AUTHORIZATION": f"Bearer {FIRST}"})
    assert calls == [FIRST.encode(), SECOND.encode()]  # the second too, after a match


def test_no_token_file_lets_every_request_through(kv3: LocalCluster) -> None:
    assert request(kv3.url(1), "GET", "/v1/status").status == 200
    assert BearerCheck(()).required is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.0.1", False),
        ("192.0.2.7", False),
        ("::", False),
        ("kv.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_tokens_of_a_file_are_its_lines_without_blanks_and_spaces(tokens_path: str) -> None:
    assert load_tokens(tokens_path) == (FIRST, SECOND)


@pytest.mark.parametrize(
    ("text", "mode", "said"),
    [
        (None, 0o600, "cannot read"),
        ("", 0o600, "holds no token"),
        ("\n  \n\t\n", 0o600, "holds no token"),
        (f"{FIRST}\nshort-token\n", 0o600, "line 2: a token must be at least 16 characters"),
        (f"{FIRST[:8]} {FIRST[8:]}\n", 0o600, "line 1: a token is one word"),
        (f"{FIRST}\n", 0o644, "is open to its group or others (mode 0644)"),
        (f"{FIRST}\n", 0o640, "chmod 600"),
        (f"{FIRST}\n", 0o602, "chmod 600"),
    ],
)
def test_a_bad_token_file_stops_the_node_at_start_naming_the_file(
    tmp_path: Path, text: str | None, mode: int, said: str
) -> None:
    path = tmp_path / "token"
    if text is not None:
        token_file(path, text, mode)
    config = NodeConfig(
        1, "127.0.0.1:0", storage="memory", network="local", http=HttpSettings(token_file=str(path))
    )
    with pytest.raises(KvConfigError) as caught:
        KvServer.start(config)
    message = str(caught.value)
    assert message.startswith(f"http.token_file: {path}") or f"cannot read {path}" in message
    assert said in message
    assert "short-token" not in message and FIRST[:8] not in message  # never a token
    # serve says the same and exits 2, before anything starts.
    result = CliRunner().invoke(
        main,
        [
            *("serve", "--id", "1", "--http", "127.0.0.1:0", "--storage", "memory"),
            *("--network", "local", "--token-file", str(path)),
        ],
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert f"error: {message}" in result.output


def test_the_token_file_of_a_configuration_file_is_read(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'node_id = 1\n[http]\ntoken_file = "{tmp_path / "absent"}"\n')
    result = CliRunner().invoke(
        main,
        [
            *("serve", "--config", str(config), "--http", "127.0.0.1:0"),
            *("--storage", "memory", "--network", "local"),
        ],
    )
    assert result.exit_code == EXIT_USAGE
    assert f"error: http.token_file: cannot read {tmp_path / 'absent'}" in result.output
    assert "chmod 600" in result.output  # how to make one


@pytest.mark.parametrize("value", ["", "  ", 5])
def test_a_token_file_setting_that_is_no_path_is_refused(value: Any) -> None:
    with pytest.raises(KvConfigError, match=r"http\.token_file: must be the path"):
        HttpSettings(token_file=value)


def test_a_client_refuses_a_token_that_cannot_travel_in_a_header() -> None:
    for bad in ("", "two words", "line\nbreak", "t\xe9"):
        with pytest.raises(ValueError, match="token"):
            Client("http://127.0.0.1:1", token=bad)


def test_a_node_on_a_non_loopback_address_without_tokens_warns_once(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        host = probe.getsockname()[0]
    except OSError:
        host = "127.0.0.1"
    finally:
        probe.close()
    if is_loopback(host):
        pytest.skip("this machine has no non-loopback IPv4 address")
    caplog.set_level(logging.INFO, logger="pykka_raft.kv")
    opened = []
    for http, where in (
        (HttpSettings(), host),
        (HttpSettings(token_file=str(_file(tmp_path, FIRST))), host),
        (HttpSettings(), "127.0.0.1"),
    ):
        server = KvServer.start(
            NodeConfig(1, f"{where}:0", storage="memory", network="local", http=http)
        )
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        opened.append([m for m in said if "HTTP API" in m])
        caplog.clear()
        server.stop()
    assert len(opened[0]) == 1 and opened[0][0].startswith("OPEN: node 1 serves its HTTP API")
    assert "token_file" in opened[0][0]
    assert opened[1] == [] and opened[2] == []


# --- the commands -------------------------------------------------------------------------


def test_the_commands_send_the_first_token_of_a_token_file(
    locked: LocalCluster, tmp_path: Path
) -> None:
    runner = CliRunner()
    url = ["--url", locked.url(1)]
    given = token_file(tmp_path / "client-token", f"\n{SECOND}\n{FIRST}\n")
    result = runner.invoke(main, [*url, "--token-file", given, "put", "auth-cli", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, [*url, "get", "auth-cli"], env={"PYKKA_RAFT_KV_TOKEN_FILE": given})
    assert (result.exit_code, result.output) == (0, "1\n")
    result = runner.invoke(main, [*url, "status"], env={"PYKKA_RAFT_KV_TOKEN_FILE": given})
    assert result.exit_code == 0 and "leader: node" in result.output


def test_a_command_without_a_valid_token_exits_8(locked: LocalCluster, tmp_path: Path) -> None:
    runner = CliRunner()
    url = ["--url", locked.url(1)]
    for extra in ([], ["--token-file", token_file(tmp_path / "wrong", "w" * 20 + "\n")]):
        for command in (["get", "auth-cli-none"], ["put", "auth-cli-none", "1"], ["status"]):
            env = {"PYKKA_RAFT_KV_TOKEN_FILE": None}
            result = runner.invoke(main, [*url, *extra, *command], env=env)
            assert result.exit_code == EXIT_UNAUTHORIZED, (command, result.output)
            assert "error: unauthorized:" in result.output


def test_a_command_refuses_a_bad_token_file(locked: LocalCluster, tmp_path: Path) -> None:
    loose = token_file(tmp_path / "loose", FIRST + "\n", 0o644)
    result = CliRunner().invoke(main, ["--url", locked.url(1), "--token-file", loose, "status"])
    assert result.exit_code == EXIT_USAGE
    assert f"error: --token-file: {loose} is open to its group or others" in result.output


def test_a_token_file_that_is_a_directory_is_named_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--url", "127.0.0.1:1", "--token-file", str(tmp_path), "get", "k"]
    )
    assert result.exit_code == EXIT_USAGE
    assert f"error: --token-file: {tmp_path} is a directory, not a token file" in result.output
    assert f"> {tmp_path} " not in result.output  # never: write a token over the directory
    assert f"> {tmp_path / 'token'} && chmod 600 {tmp_path / 'token'}" in result.output


def test_a_client_without_a_token_raises_unauthorized(locked: LocalCluster) -> None:
    client = Client(locked.urls, deadline=5.0)
    with pytest.raises(Unauthorized) as caught:
        client.put("auth-none", 1)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    with pytest.raises(Unauthorized):
        client.cluster_status()
    with pytest.raises(Unauthorized):
        Client(locked.urls, token=FIRST[::-1], deadline=5.0).get("auth-none")


# --- logs ---------------------------------------------------------------------------------


def test_no_token_reaches_the_log(
    cluster_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _file(tmp_path, FIRST, SECOND)
    cluster = cluster_factory([1, 2], http=HttpSettings(token_file=str(path)))
    client = cluster.client()
    client.put("auth-log", 1)
    assert client.get("auth-log") == 1
    client.cluster_status()
    follower = next(n for n in sorted(cluster.servers) if n != leader_of(cluster))
    request(cluster.url(follower), "PUT", "/v1/kv/auth-log", {"value": 2}, headers=bearer(SECOND))
    request(cluster.url(follower), "GET", "/v1/cluster", headers=bearer(FIRST))
    request(cluster.url(1), "GET", "/v1/status", headers=bearer(FIRST + "x"))
    request(cluster.url(1), "GET", "/v1/status", headers={"Authorization": f"Basic {SECOND}"})
    client.close()
    text = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "pykka_raft" in text  # the log was captured
    assert FIRST not in text and SECOND not in text


# --- a serve process ----------------------------------------------------------------------


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(*args: str) -> Serve:
        started.append(Serve(list(args), tmp_path / f"serve-{len(started)}.log"))
        return started[-1]

    yield start
    for child in started:
        child.close()


def test_a_serve_process_with_a_token_file_takes_writes_with_a_token_only(
    serve: Any, tmp_path: Path
) -> None:
    path = str(_file(tmp_path, FIRST, SECOND))
    child = serve(
        "--id", "1", "--http", "127.0.0.1:0", "--storage", "memory", "--network", "local",
        "--token-file", path, "--log-level", "DEBUG",
    )  # fmt: skip
    url = child.url()
    client = Client([url], token=SECOND, deadline=30.0)
    try:
        client.init()
        assert client.put("auth-serve", "acknowledged")["existed"] is False
        assert client.get("auth-serve") == "acknowledged"
    finally:
        client.close()
    with pytest.raises(Unauthorized):
        Client([url], deadline=5.0).put("auth-serve", "refused")
    answer = request(url, "GET", "/v1/kv/auth-serve", headers=bearer(FIRST))
    assert answer.json["value"] == "acknowledged"  # the refused write changed nothing
    child.close()
    log = child.log.read_text()
    assert "(bearer tokens required)" in log and "OPEN" not in log
    assert FIRST not in log and SECOND not in log
