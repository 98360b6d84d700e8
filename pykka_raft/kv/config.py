"""A node process's configuration: who it is, where it listens, who its peers are.

A node process runs one Raft node and one HTTP server. Its configuration comes from
command-line flags or a small TOML file (``docs/kv-service.md`` shows both); the two are
merged into one validated :class:`NodeConfig`.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import math
from collections.abc import Mapping
from typing import Any

import attrs

from pykka_raft import Config, ConfigError, NodeId, SnapshotPolicy
from pykka_raft.kv.errors import KvConfigError
from pykka_raft.kv.http_settings import HttpSettings
from pykka_raft.messages import MAX_NODE_ID
from pykka_raft.sessions import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TIMEOUT

STORAGES = ("sqlite", "memory")
NETWORKS = ("tcp", "local")
DURABILITIES = ("fsync", "os")

__all__ = ["HttpSettings", "KvConfigError", "NodeConfig", "PeerConfig"]
UNSPECIFIED_HOSTS = ("0.0.0.0", "::", "")


def parse_address(value: str, what: str) -> tuple[str, int]:
    """Split ``"host:port"`` (an ``http://`` prefix and ``[v6]`` hosts are accepted).

    Raises:
        KvConfigError: the address has no host or no valid port (0 to 65535; 0 lets the
            system choose a free port when binding).
    """
    text = value.strip()
    for prefix in ("http://", "tcp://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not _digits(port) or int(port) > 65535:
        raise KvConfigError(f"{what}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def endpoint(address: str) -> tuple[str, int]:
    """What ``host:port`` names, as far as can be told without asking DNS: host names
    compared without case or a final dot, ``localhost`` as ``127.0.0.1``, IP addresses in
    their canonical form (``0:0::1`` is ``::1``). An address that does not parse is itself."""
    try:
        host, port = parse_address(address, "address")
    except KvConfigError:
        return address, -1
    host = host.lower().rstrip(".")
    if host in _LOOPBACK_NAMES:
        host = "127.0.0.1"
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return host, port


def format_address(host: str, port: int) -> str:
    """``host:port`` (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_url(address: str) -> str:
    """The base URL of an HTTP address (``host:port`` or already a URL)."""
    host, port = parse_address(address, "http address")
    return f"http://{format_address(host, port)}"


@attrs.frozen
class PeerConfig:
    """Another node of the cluster, as this node's configuration names it.

    Attributes:
        node_id: its Raft node id.
        http_address: its HTTP API, ``host:port``.
        raft_address: where its Raft node listens (``host:port``), for the TCP network;
            ``None`` for nodes in the same process.
    """

    node_id: NodeId
    http_address: str
    raft_address: str | None = None


@attrs.frozen
class NodeConfig:
    """Everything one node process needs.

    Attributes:
        node_id: this node's Raft id (a positive integer).
        http_address: where the HTTP API listens, ``host:port`` (port 0: the system
            picks one; the server reports it).
        raft_address: where the Raft node listens for its peers and how they reach it
            (TCP network; port 0: the system picks one, the node reports it).
        data_dir: the node's data directory (``SqliteStore``; unused with ``memory``).
        keys_dir: where the network's CURVE keys live (TCP network, unless ``insecure``).
        peers: the other members this node knows at start.
        storage: ``"sqlite"`` (default: ``SqliteStore`` in ``data_dir``, durable) or
            ``"memory"`` (``MemStore``: lost when the process ends).
        network: ``"tcp"`` (default: ``TcpNetwork`` between processes and machines) or
            ``"local"`` (the nodes of this process only).
        durability: ``"fsync"`` (default: every acknowledged write was fsynced and
            survives a power cut) or ``"os"`` (survives a crash of the process, not of
            the machine); ``docs/storage.md`` explains both.
        insecure: run the TCP network without CURVE keys: no authentication and no
            encryption. For experiments on one machine only; logged at WARNING.
        session_timeout: seconds of log time after which a client session without
            writes expires (``docs/clients.md``). Give every node the same: the cluster
            applies the value of the latest leader whose value differed
            (``docs/kv-service.md``).
        max_sessions: the most client sessions the cluster keeps; registering one more
            ends the least recently active (``docs/clients.md``); the cluster's, as
            ``session_timeout``.
        raft: the Raft node's settings.
        http: the HTTP layer's settings.
    """

    node_id: NodeId
    http_address: str
    raft_address: str | None = None
    data_dir: str | None = None
    keys_dir: str | None = None
    peers: tuple[PeerConfig, ...] = ()
    storage: str = "sqlite"
    network: str = "tcp"
    durability: str = "fsync"
    insecure: bool = False
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    max_sessions: int = DEFAULT_MAX_SESSIONS
    raft: Config = attrs.field(factory=Config)
    http: HttpSettings = attrs.field(factory=HttpSettings)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.node_id <= MAX_NODE_ID:
            raise KvConfigError(
                f"node_id: must be an integer from 1 to 2**63 - 1, got {self.node_id}"
            )
        _reachable(self.http_address, "http_address")
        if self.raft_address is not None:
            _reachable(self.raft_address, "raft_address")
        if self.storage not in STORAGES:
            raise KvConfigError(f"storage: one of {', '.join(STORAGES)}, got {self.storage!r}")
        if self.network not in NETWORKS:
            raise KvConfigError(f"network: one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.durability not in DURABILITIES:
            raise KvConfigError(
                f"durability: one of {', '.join(DURABILITIES)}, got {self.durability!r}"
            )
        if not math.isfinite(self.session_timeout) or self.session_timeout <= 0:
            raise KvConfigError(
                f"session_timeout: a number of seconds > 0, got {self.session_timeout!r}"
            )
        if self.max_sessions < 1:
            raise KvConfigError(f"max_sessions: at least 1, got {self.max_sessions}")
        if self.storage == "sqlite" and not self.data_dir:
            raise KvConfigError(
                "data_dir: required with storage = 'sqlite' (flag --data-dir); "
                "storage = 'memory' keeps nothing when the process ends"
            )
        if self.network == "tcp":
            if self.raft_address is None:
                raise KvConfigError(
                    "raft_address: required with network = 'tcp' (flag --raft host:port)"
                )
            if self.insecure and self.keys_dir:
                raise KvConfigError("keys_dir and insecure: give one, not both")
            if not self.insecure and not self.keys_dir:
                raise KvConfigError(
                    "keys_dir: required with network = 'tcp' (flag --keys-dir; make keys "
                    "with pykka-raft-kv keygen); insecure = true runs without keys, for "
                    "experiments on one machine only"
                )
        seen = {self.node_id}
        for peer in self.peers:
            if peer.node_id == self.node_id:
                raise KvConfigError(
                    f"peers: node {peer.node_id} is this node (node_id); list the other nodes"
                )
            if peer.node_id in seen:
                raise KvConfigError(f"peers: node {peer.node_id} is listed twice")
            seen.add(peer.node_id)
            parse_address(peer.http_address, f"peers.{peer.node_id}.http_address")
            if peer.raft_address is not None:
                parse_address(peer.raft_address, f"peers.{peer.node_id}.raft_address")

    @property
    def members(self) -> tuple[NodeId, ...]:
        """This node and its peers: the membership ``init`` forms by default."""
        return tuple(sorted({self.node_id, *(p.node_id for p in self.peers)}))

    def raft_addresses(self) -> dict[NodeId, str]:
        """Raft addresses of this node and its peers, where known."""
        out = {p.node_id: p.raft_address for p in self.peers if p.raft_address}
        if self.raft_address:
            out[self.node_id] = self.raft_address
        return out

    def http_addresses(self) -> dict[NodeId, str]:
        """HTTP addresses of this node and its peers."""
        out = {p.node_id: p.http_address for p in self.peers}
        out[self.node_id] = self.http_address
        return out


def _reachable(address: str, what: str) -> None:
    host, _port = parse_address(address, what)
    if host in UNSPECIFIED_HOSTS:
        raise KvConfigError(
            f"{what}: {address!r} is not an address other nodes and clients can reach; "
            "give this machine's own address (it is both where the node listens and what "
            "it tells the others)"
        )


def parse_peer(text: str) -> PeerConfig:
    """Parse a ``--peer`` flag: ``ID=RAFT_ADDRESS,HTTP_ADDRESS`` (``ID=,HTTP_ADDRESS``
    without a Raft address)."""
    node, sep, rest = text.partition("=")
    raft, comma, http = rest.partition(",")
    if not sep or not comma or not _digits(node.strip()):
        raise KvConfigError(f"--peer: expected ID=RAFT_ADDRESS,HTTP_ADDRESS, got {text!r}")
    return PeerConfig(int(node), http.strip(), raft.strip() or None)


_TOP = frozenset(
    {
        "node_id",
        "http_address",
        "raft_address",
        "data_dir",
        "keys_dir",
        "peers",
        "storage",
        "network",
        "durability",
        "insecure",
        "session_timeout",
        "max_sessions",
        "raft",
        "http",
    }
)


def build_config(doc: Mapping[str, Any]) -> NodeConfig:
    """Turn a configuration mapping (a parsed file with flags merged in) into a
    :class:`NodeConfig`.

    Raises:
        KvConfigError: an unknown or missing field, or a value of the wrong type.
    """
    _refuse_unknown("", doc, _TOP, "docs/kv-service.md")
    for field, flag, check in (("node_id", "--id", _int), ("http_address", "--http", _str)):
        if doc.get(field) is None:
            raise KvConfigError(f"{field}: required (flag {flag} or the file)")
        check(doc[field], field)  # in order: a wrong node_id is said before a missing address
    peers_doc = doc.get("peers") or {}
    peers: list[PeerConfig] = []
    if isinstance(peers_doc, Mapping):
        for key, value in peers_doc.items():
            if isinstance(value, PeerConfig):
                peers.append(value)
                continue
            if not _digits(str(key)) or not isinstance(value, Mapping):
                raise KvConfigError(f"peers.{key}: expected a table under a numeric node id")
            _refuse_unknown(f"peers.{key}.", value, _PEER, "docs/kv-service.md")
            if not isinstance(value.get("http_address"), str):
                raise KvConfigError(
                    f"peers.{key}: needs http_address (and optionally raft_address) only"
                )
            peers.append(PeerConfig(int(key), value["http_address"], value.get("raft_address")))
    else:
        raise KvConfigError("peers: expected a table of node id -> {http_address, raft_address}")
    try:
        raft = doc.get("raft") or {}
        http = doc.get("http") or {}
        if not isinstance(raft, (Mapping, Config)) or not isinstance(http, (Mapping, HttpSettings)):
            raise KvConfigError("raft and http: expected tables")
        if isinstance(raft, Mapping):
            _refuse_unknown("raft.", raft, _fields(Config), "docs/configuration.md")
        if isinstance(http, Mapping):
            _refuse_unknown("http.", http, _fields(HttpSettings), "docs/kv-service.md")
        return NodeConfig(
            node_id=_int(doc["node_id"], "node_id"),
            http_address=_str(doc["http_address"], "http_address"),
            raft_address=_opt_str(doc.get("raft_address"), "raft_address"),
            data_dir=_opt_str(doc.get("data_dir"), "data_dir"),
            keys_dir=_opt_str(doc.get("keys_dir"), "keys_dir"),
            peers=tuple(sorted(peers, key=lambda p: p.node_id)),
            storage=_str(doc.get("storage", "sqlite"), "storage"),
            network=_str(doc.get("network", "tcp"), "network"),
            durability=_str(doc.get("durability", "fsync"), "durability"),
            insecure=_bool(doc.get("insecure", False), "insecure"),
            session_timeout=_number(
                doc.get("session_timeout", DEFAULT_SESSION_TIMEOUT), "session_timeout"
            ),
            max_sessions=_int(doc.get("max_sessions", DEFAULT_MAX_SESSIONS), "max_sessions"),
            raft=raft if isinstance(raft, Config) else _raft_config(raft),
            http=http if isinstance(http, HttpSettings) else HttpSettings(**http),
        )
    except ConfigError as exc:
        raise KvConfigError(f"raft.{exc.field}: {exc.rule}") from exc


_PEER = frozenset({"http_address", "raft_address"})


def _fields(settings: type) -> frozenset[str]:
    return frozenset(field.alias for field in attrs.fields(settings))


def _refuse_unknown(
    prefix: str, table: Mapping[str, Any], names: frozenset[str], docs: str
) -> None:
    """Every key of ``table`` is one of ``names``; the error names the first that is not
    (``prefix`` and the key: ``raft.election_timout_min``) and the closest known one."""
    for key in sorted(set(map(str, table)) - names):
        close = difflib.get_close_matches(key, sorted(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KvConfigError(f"{prefix}{key}: no such setting{hint}; see {docs}")


def _raft_config(table: Mapping[str, Any]) -> Config:
    """``Config`` from a ``[raft]`` table; ``snapshot_policy`` is a number of entries
    (compact every N applied entries) or ``false`` (never compact on its own)."""
    fields = dict(table)
    if "snapshot_policy" in fields:
        every = fields.pop("snapshot_policy")
        if every is False:
            fields["snapshot_policy"] = SnapshotPolicy.disabled()
        elif isinstance(every, int) and not isinstance(every, bool) and every > 0:
            fields["snapshot_policy"] = SnapshotPolicy.every(every)
        else:
            raise KvConfigError(
                f"raft.snapshot_policy: a positive number of entries or false, got {every!r}"
            )
    return Config(**fields)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²" (which ``int`` refuses) and other
    scripts' digits."""
    return text.isascii() and text.isdigit()


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and _digits(value):
            return int(value)
        raise KvConfigError(f"{field}: expected an integer, got {value!r}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KvConfigError(f"{field}: expected a number, got {value!r}")
    return float(value)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise KvConfigError(f"{field}: expected true or false, got {value!r}")
    return value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise KvConfigError(f"{field}: expected a string, got {value!r}")
    return value


def _opt_str(value: Any, field: str) -> str | None:
    return None if value is None else _str(value, field)
