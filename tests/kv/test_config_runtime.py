"""Node configuration (flags and TOML) and the runtime factories' refusals."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from pykka_raft import SnapshotPolicy, StorageError
from pykka_raft.kv import (
    HttpSettings,
    KvConfigError,
    NodeConfig,
    PeerConfig,
    RuntimeUnavailable,
)
from pykka_raft.kv.config import build_config, parse_address, parse_peer
from pykka_raft.kv.config_file import load_file
from pykka_raft.kv.runtime import LocalNetwork, open_network, open_storage
from pykka_raft.kv.server import HttpServer
from pykka_raft.kv.store import KvStateMachine
from pykka_raft.net import generate_keypair

LOCAL = {"node_id": 1, "http_address": "h:1", "storage": "memory", "network": "local"}

TOML = """
node_id = 1
http_address = "127.0.0.1:8001"
raft_address = "127.0.0.1:9001"
data_dir = "/var/lib/pykka-raft-kv/1"
keys_dir = "/etc/pykka-raft-kv/keys"
storage = "sqlite"
network = "tcp"
durability = "os"
session_timeout = 600
max_sessions = 500

[peers.2]
http_address = "127.0.0.1:8002"
raft_address = "127.0.0.1:9002"

[peers.3]
http_address = "127.0.0.1:8003"

[raft]
election_timeout_min = 400
election_timeout_max = 800
snapshot_policy = 5000

[http]
threads = 4
max_body_bytes = 65536
"""


def test_a_full_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(TOML)
    config = build_config(load_file(path))
    assert config.node_id == 1 and config.members == (1, 2, 3)
    assert (config.storage, config.network, config.durability) == ("sqlite", "tcp", "os")
    assert config.session_timeout == 600.0 and config.max_sessions == 500
    assert config.peers == (
        PeerConfig(2, "127.0.0.1:8002", "127.0.0.1:9002"),
        PeerConfig(3, "127.0.0.1:8003", None),
    )
    assert config.raft_addresses() == {1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}
    assert config.http_addresses()[3] == "127.0.0.1:8003"
    assert config.raft.election_timeout_min == 400
    assert config.raft.snapshot_policy == SnapshotPolicy.every(5000)
    assert config.http.threads == 4 and config.http.max_body_bytes == 65536


def test_relative_paths_of_a_file_are_relative_to_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.toml"
    path.parent.mkdir()
    path.write_text(
        'node_id = 1\nhttp_address = "127.0.0.1:1"\nraft_address = "127.0.0.1:2"\n'
        'data_dir = "d"\nkeys_dir = "/etc/k"\n'
        '[raft]\nsnapshot_dir = "snaps"\n[http]\ntoken_file = "../tok"\n'
    )
    doc = load_file(path)
    assert doc["data_dir"] == str(tmp_path / "sub" / "d")
    assert doc["keys_dir"] == "/etc/k"  # absolute: as written
    assert doc["raft"]["snapshot_dir"] == str(tmp_path / "sub" / "snaps")
    assert doc["http"]["token_file"] == str(tmp_path / "sub" / "../tok")
    config = build_config(load_file(path))
    assert config.data_dir == str(tmp_path / "sub" / "d")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"http_address": "127.0.0.1:1"}, "node_id: required"),
        ({"node_id": 1}, "http_address: required"),
        ({"node_id": 0, "http_address": "h:1"}, "an integer from 1 to"),
        ({"node_id": "x", "http_address": "h:1"}, "integer"),
        ({"node_id": 1, "http_address": "nowhere"}, "host:port"),
        ({"node_id": 1, "http_address": "h:99999"}, "host:port"),
        ({"node_id": 1, "http_address": "h:1", "colour": "red"}, "colour: no such setting"),
        ({**LOCAL, "durabilty": "os"}, "durabilty: no such setting"),
        ({**LOCAL, "durabilty": "os"}, "did you mean 'durability'"),
        (
            {**LOCAL, "peers": {"2": {"htp_address": "h:2"}}},
            "peers.2.htp_address: no such setting",
        ),
        ({"node_id": 1, "http_address": "h:1", "storage": "tape"}, "storage"),
        ({"node_id": 1, "http_address": "h:1", "network": "udp"}, "network"),
        ({"node_id": 1, "http_address": "h:1", "peers": {"x": {}}}, "peers.x"),
        ({"node_id": 1, "http_address": "h:1", "peers": {"2": {"raft": "a"}}}, "peers.2"),
        ({"node_id": 1, "http_address": "h:1", "peers": [1]}, "peers"),
        ({"node_id": 1, "http_address": "h:1", "raft": {"heartbeat_interval": 0}}, "raft."),
        ({"node_id": 1, "http_address": "h:1", "raft": {"no_such": 1}}, "raft.no_such: no such"),
        (
            {"node_id": 1, "http_address": "h:1", "raft": {"election_timout_min": 9}},
            "did you mean 'election_timeout_min'",
        ),
        ({"node_id": 1, "http_address": "h:1", "http": {"threadz": 2}}, "http.threadz: no such"),
        (
            {"node_id": 1, "http_address": "h:1", "http": {"threads": "8"}},
            "http.threads: must be an int",
        ),
        (
            {"node_id": 1, "http_address": "h:1", "http": {"threads": True}},
            "http.threads: must be an int",
        ),
        ({**LOCAL, "http": {"request_timeout": "5s"}}, "http.request_timeout: must be a number"),
        (
            {**LOCAL, "http": {"admin_timeout": float("inf")}},
            "http.admin_timeout: must be positive",
        ),
        ({"node_id": 1, "http_address": "h:1", "raft": {"snapshot_policy": -1}}, "snapshot"),
        ({"node_id": 1, "http_address": "h:1", "http": {"threads": 0}}, "http.threads"),
        ({**LOCAL, "http": {"threads": 100000}}, "http.threads: must be at most 512"),
        ({**LOCAL, "http": {"connection_limit": 0}}, "http.connection_limit: must be at least"),
        ({**LOCAL, "http": {"connection_limit": 10**6}}, "http.connection_limit: must be at most"),
        ({**LOCAL, "http": {"channel_timeout": 0.5}}, "http.channel_timeout: must be an int"),
        ({**LOCAL, "http": {"channel_timeout": 0}}, "http.channel_timeout: must be at least 1"),
        ({**LOCAL, "durability": "never"}, "durability"),
        ({**LOCAL, "insecure": "yes"}, "insecure"),
        ({**LOCAL, "session_timeout": 0}, "session_timeout"),
        ({**LOCAL, "max_sessions": 0}, "max_sessions: at least 1"),
        ({**LOCAL, "max_sessions": "many"}, "max_sessions: expected an integer"),
        ({**LOCAL, "session_timeout": "1h"}, "session_timeout"),
        ({**LOCAL, "session_timeout": True}, "session_timeout"),
        ({**LOCAL, "session_timeout": float("inf")}, "session_timeout"),
        ({**LOCAL, "storage": "sqlite"}, "data_dir: required"),
        ({**LOCAL, "network": "tcp", "insecure": True}, "raft_address: required"),
        ({**LOCAL, "network": "tcp", "raft_address": "h:2"}, "keys_dir: required"),
        (
            {**LOCAL, "network": "tcp", "raft_address": "h:2", "keys_dir": "k", "insecure": True},
            "not both",
        ),
        ({**LOCAL, "http_address": "0.0.0.0:8001"}, "reach"),
        ({"node_id": "one"}, "node_id: expected an integer"),  # before http_address's absence
        ({**LOCAL, "raft_address": "[::]:9001"}, "reach"),
    ],
)
def test_bad_configurations_name_the_field(doc: dict[str, object], message: str) -> None:
    with pytest.raises(KvConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        build_config(doc)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(KvConfigError, match="cannot read"):
        load_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("node_id = = 1")
    with pytest.raises(KvConfigError, match="not valid TOML"):
        load_file(bad)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("node_id = 1\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(KvConfigError, match=f"{latin1} is not valid TOML: it is not UTF-8"):
        load_file(latin1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node_id = 1\n# caf\u00e9\n".encode("latin-1"), "is not valid TOML: it is not UTF-8"),
        (b'node_id = 1\nhttp_address = "127.0.0.1:0"\n[http]\nthreads = 100000\n', "threads"),
    ],
)
def test_serve_refuses_a_bad_file_with_exit_2(tmp_path: Path, text: bytes, message: str) -> None:
    from click.testing import CliRunner

    from pykka_raft.kv.cli import main

    path = tmp_path / "node.toml"
    path.write_bytes(text)
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_peer_flags() -> None:
    assert parse_peer("2=127.0.0.1:9002,127.0.0.1:8002") == PeerConfig(
        2, "127.0.0.1:8002", "127.0.0.1:9002"
    )
    assert parse_peer("3=,127.0.0.1:8003") == PeerConfig(3, "127.0.0.1:8003", None)
    for bad in ("2", "x=a:1,b:2", "2=a:1"):
        with pytest.raises(KvConfigError):
            parse_peer(bad)
    with pytest.raises(KvConfigError, match="listed twice"):
        local(peers=(PeerConfig(2, "h:2"), PeerConfig(2, "h:3")))
    with pytest.raises(KvConfigError, match="node 1 is this node"):
        local(peers=(PeerConfig(1, "h:2"),))


def test_addresses() -> None:
    assert parse_address("http://127.0.0.1:80/", "x") == ("127.0.0.1", 80)
    assert parse_address("[::1]:8001", "x") == ("::1", 8001)


def local(node_id: int = 1, **kwargs: Any) -> NodeConfig:
    return NodeConfig(node_id, "h:1", storage="memory", network="local", **kwargs)


def test_peers_in_other_processes_need_the_tcp_network() -> None:
    with pytest.raises(RuntimeUnavailable, match="network = 'tcp'"):
        open_network(local(peers=(PeerConfig(2, "h:2"),)))


def test_sqlite_storage_in_the_data_directory(tmp_path: Path) -> None:
    config = NodeConfig(1, "h:1", data_dir=str(tmp_path / "d"), network="local")
    machine = KvStateMachine()
    handle = open_storage(config, machine)
    try:
        assert (tmp_path / "d" / "raft.sqlite3").exists()
        # The directory is locked while it is open: a second store is refused.
        with pytest.raises(StorageError):
            open_storage(config, KvStateMachine())
    finally:
        handle.close()
    open_storage(config, KvStateMachine()).close()  # closing released the lock


def test_tcp_network_with_keys_and_a_missing_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_keypair(keys, 1)
    config = NodeConfig(1, "h:1", raft_address="127.0.0.1:0", keys_dir=str(keys), storage="memory")
    handle = open_network(config)
    try:
        host, port = handle.address.rsplit(":", 1)  # type: ignore[union-attr]
        assert host == "127.0.0.1" and int(port) > 0
        assert handle.metrics().secure is True
    finally:
        handle.close()
    assert not handle.ref.is_alive()
    with pytest.raises(KvConfigError, match="keygen"):
        open_network(
            NodeConfig(2, "h:1", raft_address="127.0.0.1:0", keys_dir=str(keys), storage="memory")
        )


def test_a_key_pair_copied_from_another_node_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    for node_id in (1, 2):
        generate_keypair(keys, node_id)
    (keys / "node-1.key_secret").write_bytes((keys / "node-2.key_secret").read_bytes())
    config = NodeConfig(1, "h:1", raft_address="127.0.0.1:0", keys_dir=str(keys), storage="memory")
    with pytest.raises(KvConfigError, match="this key pair is node 2's, not node 1's"):
        open_network(config)


def test_insecure_tcp_network_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    config = NodeConfig(1, "h:1", raft_address="127.0.0.1:0", insecure=True, storage="memory")
    with caplog.at_level(logging.WARNING):
        handle = open_network(config)
    handle.close()
    assert "INSECURE" in caplog.text and "WITHOUT authentication" in caplog.text
    # Once, naming the address bound, not port 0.
    assert caplog.text.count("INSECURE") == 1, caplog.text
    assert f"listens on {handle.address} " in caplog.text and ":0 " not in caplog.text


def test_a_shared_local_network_is_not_closed_by_one_node() -> None:
    local_network = LocalNetwork()
    try:
        handle = open_network(local(peers=(PeerConfig(2, "h:2"),)), local_network)
        handle.close()
        assert local_network.router.is_alive()
    finally:
        local_network.close()
    private = open_network(local())
    private.close()
    assert not private.ref.is_alive()


def test_an_http_port_in_use_is_named_in_the_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"http_address: cannot listen on 127.0.0.1:{port}: "):
            HttpServer(lambda environ, start: [], "127.0.0.1", port, HttpSettings(1, 1024))


def test_a_raft_port_in_use_is_named_in_the_error() -> None:
    taken = open_network(
        NodeConfig(1, "h:1", raft_address="127.0.0.1:0", insecure=True, storage="memory")
    )
    try:
        address = taken.address
        config = NodeConfig(2, "h:2", raft_address=address, insecure=True, storage="memory")
        with pytest.raises(KvConfigError) as exc:
            open_network(config)
    finally:
        taken.close()
    assert str(exc.value) == f"raft_address: cannot listen on {address}: Address already in use"


def test_a_start_refused_for_its_keys_or_its_port_leaves_no_data_directory(
    tmp_path: Path,
) -> None:
    from pykka_raft.kv.server import KvServer

    keys = tmp_path / "keys"
    generate_keypair(keys, 1)  # none for node 9
    d9 = tmp_path / "d9"
    no_keys = NodeConfig(
        9, "127.0.0.1:0", raft_address="127.0.0.1:0", keys_dir=str(keys), data_dir=str(d9)
    )
    with pytest.raises(KvConfigError, match="keygen"):
        KvServer.start(no_keys)
    assert not d9.exists()
    taken = open_network(local_tcp(1))
    try:
        d5 = tmp_path / "d5b"
        with pytest.raises(KvConfigError, match="raft_address: cannot listen"):
            KvServer.start(local_tcp(5, raft_address=taken.address, data_dir=str(d5)))
        assert not d5.exists()
    finally:
        taken.close()


def local_tcp(node_id: int, **kwargs: Any) -> NodeConfig:
    fields: dict[str, Any] = {"raft_address": "127.0.0.1:0", "insecure": True, "storage": "memory"}
    fields.update(kwargs)
    if "data_dir" in fields:
        fields["storage"] = "sqlite"
    return NodeConfig(node_id, "127.0.0.1:0", **fields)


def test_a_failed_start_removes_only_a_data_directory_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pykka_raft.kv import node as node_module
    from pykka_raft.kv.server import KvServer

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the Raft node did not start")

    monkeypatch.setattr(node_module.Raft, "start", refuse)
    new = tmp_path / "new"
    with pytest.raises(RuntimeError):
        KvServer.start(local_tcp(1, data_dir=str(new)))
    assert not new.exists()
    old = tmp_path / "old"
    old.mkdir()
    with pytest.raises(RuntimeError):
        KvServer.start(local_tcp(1, data_dir=str(old)))
    assert old.is_dir() and any(old.iterdir())  # kept: it was there before this start
