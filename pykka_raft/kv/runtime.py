"""Where a node's storage and network come from: the one place to change when they change.

A key-value node needs a storage actor and a network actor for its Raft node. This module
makes both, behind two factory functions, so that the rest of the service never names a
storage or network class:

- :func:`open_storage` makes the storage: ``SqliteStore`` in ``config.data_dir``
  (``storage = "sqlite"``, the default: durable, fsynced unless ``durability = "os"``), or
  ``MemStore`` (``storage = "memory"``: for tests and in-process experiments).
- :func:`open_network` makes the network: ``TcpNetwork`` bound to ``config.raft_address``
  with the CURVE keys of ``config.keys_dir`` (``network = "tcp"``, the default), or the
  in-process ``RaftRouter`` shared by the nodes of one process through a
  :class:`LocalNetwork` (``network = "local"``).

Both return a handle with the actor's ref and a ``close`` that releases what the factory
opened, so the node's shutdown does not change when the implementations do.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import attrs

from pykka_raft import (
    ConfigError,
    MemStore,
    NodeId,
    RaftError,
    RaftRouter,
    Register,
    SqliteStore,
    StateMachine,
    Unregister,
)
from pykka_raft.kv.config import KvConfigError, NodeConfig

logger = logging.getLogger("pykka_raft.kv")


class RuntimeUnavailable(KvConfigError):
    """The configuration asks for a storage or network that cannot work as configured
    (peers in other processes on the in-process network, the ``[net]`` extra missing)."""


class LocalNetwork:
    """One in-process network (a ``RaftRouter``) shared by the nodes of this process.

    Nodes started with the same ``LocalNetwork`` reach each other; nothing outside the
    process can reach them.
    """

    def __init__(self) -> None:
        self.router = RaftRouter.start()

    def close(self) -> None:
        """Stop the router (after the nodes using it have stopped)."""
        self.router.stop()


@attrs.define
class StorageHandle:
    """A node's storage actor and how to close it.

    Attributes:
        ref: the ref of the ``RaftStorage`` actor, handed to ``Raft.start``.
    """

    ref: Any
    created: str | None = None
    """The data directory, when this open created it (it did not exist before)."""

    def close(self) -> None:
        """Stop the storage actor: ``SqliteStore`` commits what is pending, closes its
        database and releases its directory lock here."""
        if self.ref.is_alive():
            self.ref.stop()

    def discard(self) -> None:
        """Close, and remove the data directory if this open created it: for a start that
        failed before the Raft node ran, so that no directory is left tied to the node id
        (nothing in it was ever acknowledged to anyone)."""
        self.close()
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)


@attrs.define
class NetworkHandle:
    """A node's network actor, how to attach its Raft node, and how to close it.

    Attributes:
        ref: the ref of the ``RaftNetwork`` actor, handed to ``Raft.start``.
        address: where the node's Raft endpoint listens, as bound (the port the system
            chose when the configuration said 0); ``None`` on the local network.
        owned: a private :class:`LocalNetwork` this handle closes (``None`` when shared).
        stop_ref: stop ``ref`` on close (a network of this node alone, such as TCP).
    """

    ref: Any
    address: str | None = None
    owned: LocalNetwork | None = None
    stop_ref: bool = False
    _node_id: NodeId | None = None

    def attach(self, node_id: NodeId, raft: Any) -> None:
        """Deliver the RPCs addressed to ``node_id`` to the Raft node ``raft``."""
        self.ref.ask(Register(node_id, raft))
        self._node_id = node_id

    def detach(self) -> None:
        """Stop delivering RPCs to the node (before it stops, so peers get a prompt
        answer instead of sending to a dead actor)."""
        if self._node_id is not None and self.ref.is_alive():
            self.ref.ask(Unregister(self._node_id))
        self._node_id = None

    def metrics(self, timeout: float = 1.0) -> Any:
        """The TCP network's ``NetworkMetrics`` (``None`` for the local network, or when
        the network does not answer in time)."""
        if not self.stop_ref or not self.ref.is_alive():
            return None
        from pykka_raft.net import GetNetworkMetrics

        try:
            return self.ref.ask(GetNetworkMetrics(), timeout=timeout)
        except Exception:  # a stopping network: no figures this time
            return None

    def close(self) -> None:
        """Detach the node and stop what this handle owns."""
        self.detach()
        if self.stop_ref and self.ref.is_alive():
            self.ref.stop()
        if self.owned is not None:
            self.owned.close()


def open_storage(config: NodeConfig, state_machine: StateMachine) -> StorageHandle:
    """Start the storage actor of the node ``config`` describes, applying to
    ``state_machine``.

    With ``sqlite`` the state machine stays in memory and is rebuilt when the node starts,
    from the directory's snapshot and the log up to the durable ``last_applied``
    (``docs/storage.md``); ``raft.snapshot_policy`` bounds that replay.

    Raises:
        StorageError: the data directory cannot be opened (another process has it, it
            belongs to another node, or its data is damaged); the message says what to do.
    """
    if config.storage == "memory":
        return StorageHandle(MemStore.start(state_machine=state_machine))
    assert config.data_dir is not None  # NodeConfig checked it
    created = None if os.path.lexists(config.data_dir) else config.data_dir
    try:
        store = SqliteStore.start(
            config.data_dir, config.node_id, state_machine, durability=config.durability
        )
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    logger.info("data directory %s (durability %s)", config.data_dir, config.durability)
    return StorageHandle(store, created)


def open_network(config: NodeConfig, local: LocalNetwork | None = None) -> NetworkHandle:
    """Start (or join) the network of the node ``config`` describes.

    Args:
        config: the node's configuration.
        local: for ``network = "local"``, the in-process network shared with the other
            nodes of this process; ``None`` gives the node a private one, which only
            works for a one-node cluster.

    Raises:
        RuntimeUnavailable: a node with peers on a private local network (they could never
            be reached), or ``tcp`` without the ``[net]`` extra.
        KvConfigError: the keys cannot be read, or the Raft address cannot be bound.
    """
    if config.network == "local":
        if local is not None:
            return NetworkHandle(local.router)
        if config.peers:
            raise RuntimeUnavailable(
                "peers in other processes need network = 'tcp'; the 'local' network "
                "reaches only nodes of this process (pykka-raft-kv dev-cluster runs "
                "several in one process)"
            )
        owned = LocalNetwork()
        return NetworkHandle(owned.router, owned=owned)
    return _open_tcp(config)


def _open_tcp(config: NodeConfig) -> NetworkHandle:
    try:
        from pykka_raft.net import CurveKeys, TcpBindError, TcpNetwork
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"network = 'tcp' needs the [net] extra: pip install 'pykka_raft[net,kv]' ({exc})"
        ) from exc
    assert config.raft_address is not None  # NodeConfig checked it
    keys = None
    if not config.insecure:
        assert config.keys_dir is not None
        try:
            keys = CurveKeys.from_dir(config.keys_dir, config.node_id)
        except RaftError as exc:
            raise KvConfigError(
                f"keys_dir: {exc} (make this node's key pair with: pykka-raft-kv keygen "
                f"{config.keys_dir} --node {config.node_id})"
            ) from exc
    peers = {n: a for n, a in config.raft_addresses().items() if n != config.node_id}
    try:
        ref = TcpNetwork.start(
            config.node_id,
            config.raft_address,
            config=config.raft,
            addresses=peers,
            keys=keys,
            insecure=config.insecure,
        )
    except TcpBindError as exc:
        raise KvConfigError(
            f"raft_address: cannot listen on {config.raft_address}: {exc.reason}"
        ) from exc
    except ConfigError as exc:  # e.g. a key pair the key directory names as another node's
        raise KvConfigError(str(exc)) from exc
    return NetworkHandle(ref, address=ref.address, stop_ref=True)
