"""Node configuration (flags and TOML) and the runtime factories' refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pykka_raft import SnapshotPolicy
from pykka_raft.kv import KvConfigError, NodeConfig, PeerConfig, RuntimeUnavailable
from pykka_raft.kv.config import build_config, load_file, parse_address, parse_peer
from pykka_raft.kv.runtime import LocalNetwork, open_network, open_storage
from pykka_raft.kv.store import KvStateMachine

TOML = """
node_id = 1
http_address = "127.0.0.1:8001"
raft_address = "127.0.0.1:9001"
data_dir = "/var/lib/pykka-raft-kv/1"
keys_dir = "/etc/pykka-raft-kv/keys"
storage = "memory"
network = "local"

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
    assert config.peers == (
        PeerConfig(2, "127.0.0.1:8002", "127.0.0.1:9002"),
        PeerConfig(3, "127.0.0.1:8003", None),
    )
    assert config.raft_addresses() == {1: "127.0.0.1:9001", 2: "127.0.0.1:9002"}
    assert config.http_addresses()[3] == "127.0.0.1:8003"
    assert config.raft.election_timeout_min == 400
    assert config.raft.snapshot_policy == SnapshotPolicy.every(5000)
    assert config.http.threads == 4 and config.http.max_body_bytes == 65536


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"http_address": "127.0.0.1:1"}, "node_id: required"),
        ({"node_id": 1}, "http_address: required"),
        ({"node_id": 0, "http_address": "h:1"}, "positive"),
        ({"node_id": "x", "http_address": "h:1"}, "integer"),
        ({"node_id": 1, "http_address": "nowhere"}, "host:port"),
        ({"node_id": 1, "http_address": "h:99999"}, "host:port"),
        ({"node_id": 1, "http_address": "h:1", "colour": "red"}, "unknown"),
        ({"node_id": 1, "http_address": "h:1", "storage": "tape"}, "storage"),
        ({"node_id": 1, "http_address": "h:1", "network": "udp"}, "network"),
        ({"node_id": 1, "http_address": "h:1", "peers": {"x": {}}}, "peers.x"),
        ({"node_id": 1, "http_address": "h:1", "peers": {"2": {"raft": "a"}}}, "peers.2"),
        ({"node_id": 1, "http_address": "h:1", "peers": [1]}, "peers"),
        ({"node_id": 1, "http_address": "h:1", "raft": {"heartbeat_interval": 0}}, "raft."),
        ({"node_id": 1, "http_address": "h:1", "raft": {"no_such": 1}}, "[raft]"),
        ({"node_id": 1, "http_address": "h:1", "raft": {"snapshot_policy": -1}}, "snapshot"),
        ({"node_id": 1, "http_address": "h:1", "http": {"threads": 0}}, "threads"),
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


def test_peer_flags() -> None:
    assert parse_peer("2=127.0.0.1:9002,127.0.0.1:8002") == PeerConfig(
        2, "127.0.0.1:8002", "127.0.0.1:9002"
    )
    assert parse_peer("3=,127.0.0.1:8003") == PeerConfig(3, "127.0.0.1:8003", None)
    for bad in ("2", "x=a:1,b:2", "2=a:1"):
        with pytest.raises(KvConfigError):
            parse_peer(bad)
    with pytest.raises(KvConfigError, match="listed twice"):
        NodeConfig(1, "h:1", peers=(PeerConfig(2, "h:2"), PeerConfig(2, "h:3")))


def test_addresses() -> None:
    assert parse_address("http://127.0.0.1:80/", "x") == ("127.0.0.1", 80)
    assert parse_address("[::1]:8001", "x") == ("::1", 8001)


def test_storage_and_network_that_arrive_later_are_refused_clearly() -> None:
    with pytest.raises(RuntimeUnavailable, match="SqliteStore"):
        open_storage(NodeConfig(1, "h:1", storage="sqlite"), KvStateMachine())
    with pytest.raises(RuntimeUnavailable, match="TCP network"):
        open_network(NodeConfig(1, "h:1", network="tcp"))
    with pytest.raises(RuntimeUnavailable, match="network = 'tcp'"):
        open_network(NodeConfig(1, "h:1", peers=(PeerConfig(2, "h:2"),)))


def test_a_shared_local_network_is_not_closed_by_one_node() -> None:
    local = LocalNetwork()
    try:
        handle = open_network(NodeConfig(1, "h:1", peers=(PeerConfig(2, "h:2"),)), local)
        handle.close()
        assert local.router.is_alive()
    finally:
        local.close()
    private = open_network(NodeConfig(1, "h:1"))
    private.close()
    assert not private.ref.is_alive()
