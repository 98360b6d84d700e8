"""The arguments of :class:`~pykka_raft.network.tcp.TcpNetwork`, checked before anything
is bound: each one refused with a :class:`~pykka_raft.errors.ConfigError` that names it
and the rule it broke (a node id, a ``host:port``, keys of this node, sizes and times that
make sense), rather than a network that starts and then misbehaves."""

from __future__ import annotations

from typing import Any

import zmq

from pykka_raft.config import Config
from pykka_raft.errors import ConfigError, RaftError
from pykka_raft.messages import check_node_id
from pykka_raft.messages.checks import _address_pairs
from pykka_raft.network.keys import CurveKeys
from pykka_raft.types import NodeId

HEADROOM = 1024 * 1024
"""Bytes allowed in one frame by default on top of the larger of
``Config.snapshot_max_chunk_size`` and ``Config.max_entry_bytes``."""

ENVELOPE = 4096
"""Bytes a request may need besides its one largest part (an entry of
``Config.max_entry_bytes``, a snapshot chunk of ``Config.snapshot_max_chunk_size``): a
smaller ``max_frame_bytes`` is refused, since a write the leader accepts, or a snapshot
chunk, could then never be sent."""

MAX_FRAME_BYTES = 1 << 40
"""The largest ``max_frame_bytes`` taken (libzmq's message size limit is twice it)."""


class TcpBindError(RaftError, zmq.ZMQError):
    """``TcpNetwork.start`` could not listen on its ``bind`` address: the port is taken,
    the host is not an address of this machine, or the name does not resolve.

    Also a ``zmq.ZMQError`` (``errno`` is the OS error number, ``EADDRINUSE`` for a taken
    port), so code written for the raw error still catches it.

    Attributes:
        address: the ``host:port`` the network was asked to bind.
        reason: the OS's reason (``Address already in use``).
    """

    def __init__(self, address: str, errno: int | None, reason: str) -> None:
        self.address = address
        self.reason = reason
        zmq.ZMQError.__init__(self, errno, f"TcpNetwork cannot listen on {address}: {reason}")

    def __reduce__(self) -> Any:
        return (type(self), (self.address, self.errno, self.reason))


def _refuse(field: str, rule: str) -> ConfigError:
    return ConfigError(field, rule, "TcpNetwork")


def check_bind(bind: Any) -> str:
    """``bind`` if it is ``"host:port"`` with a port from 0 (the OS chooses) to 65535."""
    if type(bind) is not str:
        raise _refuse("bind", f"must be a 'host:port' str, got {type(bind).__name__} {bind!r}")
    host, colon, port = bind.rpartition(":")
    if not colon or not host or "/" in host or not port.isascii() or not port.isdigit():
        raise _refuse("bind", f"must be 'host:port' (port 0: the OS chooses), got {bind!r}")
    if int(port) > 65535:
        raise _refuse("bind", f"has port {port}, outside 0 to 65535: {bind!r}")
    return bind


def check_keys(node_id: NodeId, keys: Any, insecure: Any) -> CurveKeys | None:
    """This node's keys, or ``None`` with ``insecure=True``; never both, never neither,
    and never a key pair that its own key list names as another node's."""
    if type(insecure) is not bool:
        raise _refuse("insecure", f"must be a bool, got {type(insecure).__name__} {insecure!r}")
    if keys is None and not insecure:
        raise _refuse(
            "keys",
            "a TcpNetwork needs CURVE keys (CurveKeys.from_dir(directory, node_id)); "
            "pass insecure=True only for local experiments",
        )
    if keys is not None and insecure:
        raise _refuse("keys", "give keys or insecure=True, not both")
    if keys is not None and not isinstance(keys, CurveKeys):
        raise _refuse(
            "keys", f"must be CurveKeys (CurveKeys.from_dir(...)), got {type(keys).__name__}"
        )
    if keys is not None:
        # The key directory names whose public key this is (this node's own entry may be
        # an older key, while its key is being replaced).
        owners = sorted(n for n, public in keys.peer_book().items() if public == keys.public)
        if owners and node_id not in owners:
            raise _refuse(
                "keys",
                f"this key pair is node {owners[0]}'s, not node {node_id}'s: load this "
                f"node's own (CurveKeys.from_dir(directory, {node_id}))",
            )
    return keys


def check_options(
    node_id: Any,
    bind: Any,
    config: Any,
    addresses: Any,
    keys: Any,
    insecure: Any,
    max_frame_bytes: Any,
    rpc_timeout_ms: Any,
) -> tuple[Config, dict[NodeId, str], CurveKeys | None, int, int]:
    """Every argument checked: ``(config, address book, keys, max_frame_bytes,
    rpc_timeout_ms)`` with the defaults filled in.

    Raises:
        ConfigError: the first argument that breaks its rule, named.
    """
    try:
        check_node_id(node_id, "node_id")
        book = dict(_address_pairs(addresses, "addresses"))
    except (TypeError, ValueError) as exc:
        field = "node_id" if str(exc).startswith("node_id") else "addresses"
        raise _refuse(field, str(exc)) from None
    check_bind(bind)
    if config is None:
        config = Config()
    elif not isinstance(config, Config):
        raise _refuse("config", f"must be a Config, got {type(config).__name__} {config!r:.80}")
    check_keys(node_id, keys, insecure)
    least = max(config.max_entry_bytes, config.snapshot_max_chunk_size) + ENVELOPE
    if max_frame_bytes is None:
        max_frame_bytes = max(config.snapshot_max_chunk_size, config.max_entry_bytes)
        max_frame_bytes += HEADROOM
    if type(max_frame_bytes) is not int or not least <= max_frame_bytes <= MAX_FRAME_BYTES:
        raise _refuse(
            "max_frame_bytes",
            f"must be an int of at least the larger of Config.max_entry_bytes and "
            f"Config.snapshot_max_chunk_size, plus 4 KiB ({least}), so that the largest "
            f"write a leader accepts and a snapshot chunk fit in a frame, and at most 2**40; "
            f"got {max_frame_bytes!r}",
        )
    if rpc_timeout_ms is None:
        rpc_timeout_ms = config.rpc_timeout
    if type(rpc_timeout_ms) is not int or rpc_timeout_ms < 1:
        raise _refuse(
            "rpc_timeout_ms",
            f"must be a positive int of milliseconds (default: Config.rpc_timeout), got "
            f"{rpc_timeout_ms!r}",
        )
    return config, book, keys, max_frame_bytes, rpc_timeout_ms


__all__ = [
    "ENVELOPE",
    "HEADROOM",
    "MAX_FRAME_BYTES",
    "check_bind",
    "check_keys",
    "check_options",
]
