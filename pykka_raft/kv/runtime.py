"""Where a node's storage and network come from: the one place to change when they change.

A key-value node needs a storage actor and a network actor for its Raft node. This module
makes both, behind two factory functions, so that the rest of the service never names a
storage or network class:

- :func:`open_storage` makes the storage: ``MemStore`` today (``storage = "memory"``). The
  durable ``SqliteStore`` (``storage = "sqlite"``, in ``config.data_dir``) plugs in here.
- :func:`open_network` makes the network: the in-process ``RaftRouter`` today
  (``network = "local"``, shared by the nodes of one process through a
  :class:`LocalNetwork`). The TCP network of ``pykka_raft.net`` (``network = "tcp"``, bound
  to ``config.raft_address`` with the keys in ``config.keys_dir``) plugs in here.

Both return a handle with the actor's ref and a ``close`` that releases what the factory
opened, so the node's shutdown does not change when the implementations do.
"""

from __future__ import annotations

from typing import Any

import attrs

from pykka_raft import MemStore, NodeId, RaftRouter, Register, StateMachine, Unregister
from pykka_raft.kv.config import KvConfigError, NodeConfig


class RuntimeUnavailable(KvConfigError):
    """The configuration asks for a storage or network this version does not ship yet."""


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

    def close(self) -> None:
        """Stop the storage actor (a durable storage closes its files here)."""
        self.ref.stop()


@attrs.define
class NetworkHandle:
    """A node's network actor, how to attach its Raft node, and how to close it.

    Attributes:
        ref: the ref of the ``RaftNetwork`` actor, handed to ``Raft.start``.
        owned: a private :class:`LocalNetwork` this handle closes (``None`` when shared).
    """

    ref: Any
    owned: LocalNetwork | None = None
    _node_id: NodeId | None = None

    def attach(self, node_id: NodeId, raft: Any) -> None:
        """Deliver the RPCs addressed to ``node_id`` to the Raft node ``raft``."""
        self.ref.ask(Register(node_id, raft))
        self._node_id = node_id

    def detach(self) -> None:
        """Stop delivering RPCs to the node (before it stops, so peers get a prompt
        ``UnknownNode`` instead of sending to a dead actor)."""
        if self._node_id is not None and self.ref.is_alive():
            self.ref.ask(Unregister(self._node_id))
        self._node_id = None

    def close(self) -> None:
        """Detach the node and stop what this handle owns."""
        self.detach()
        if self.owned is not None:
            self.owned.close()


def open_storage(config: NodeConfig, state_machine: StateMachine) -> StorageHandle:
    """Start the storage actor of the node ``config`` describes, applying to
    ``state_machine``.

    Raises:
        RuntimeUnavailable: ``storage = "sqlite"`` (arrives with the durable storage).
    """
    if config.storage == "memory":
        return StorageHandle(MemStore.start(state_machine=state_machine))
    raise RuntimeUnavailable(
        f"storage {config.storage!r} is not available in this version: the durable "
        "SqliteStore arrives with the storage integration; use storage = 'memory'"
    )


def open_network(config: NodeConfig, local: LocalNetwork | None = None) -> NetworkHandle:
    """Start (or join) the network of the node ``config`` describes.

    Args:
        config: the node's configuration.
        local: for ``network = "local"``, the in-process network shared with the other
            nodes of this process; ``None`` gives the node a private one, which only
            works for a one-node cluster.

    Raises:
        RuntimeUnavailable: ``network = "tcp"`` (arrives with ``pykka_raft.net``), or a
            node with peers on a private local network (they could never be reached).
    """
    if config.network == "local":
        if local is not None:
            return NetworkHandle(local.router)
        if config.peers:
            raise RuntimeUnavailable(
                "peers in other processes need network = 'tcp', which arrives with the "
                "TCP network integration; the 'local' network reaches only nodes of this "
                "process (pykka-raft-kv dev-cluster runs several in one process)"
            )
        owned = LocalNetwork()
        return NetworkHandle(owned.router, owned)
    raise RuntimeUnavailable(
        f"network {config.network!r} is not available in this version: the TCP network "
        "arrives with the pykka_raft.net integration; use network = 'local'"
    )
