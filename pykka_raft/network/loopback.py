"""Several :class:`~pykka_raft.network.tcp.TcpNetwork` s on 127.0.0.1 in one process.

For test clusters that should talk over real sockets while staying in one process, so
that the in-process tools (a shared :class:`~pykka_raft.network.router.RaftRouter` or
:class:`~pykka_raft.testing.faultnet.FaultNetwork` for fault injection, MemStore data for
the safety monitors) keep working. Each node gets its own TcpNetwork (its own ZeroMQ
context, ROUTER socket, CURVE key and I/O thread); the shared router stays the network
every Raft node is given, and decides faults as usual, but instead of handing a request
straight to the target node it hands it to the **sender's** TcpNetwork, which carries it
over TCP to the target's TcpNetwork and node; the answer travels back the same way and
then through the router's faults for responses.

    tcp = LoopbackTcp(config)
    router.ask(Register(node_id, tcp.route))  # instead of the Raft ref
    tcp.attach(node_id, raft_ref)

A node's TcpNetwork outlives restarts of its Raft node (``detach`` / ``attach``), like a
machine whose Raft process restarts behind the same address.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from pykka_raft.calls import Call
from pykka_raft.config import Config
from pykka_raft.errors import UnknownNode
from pykka_raft.messages import MembershipConfig
from pykka_raft.network.contract import RPC_REQUESTS, MembershipChanged, rpc_source
from pykka_raft.network.keys import CurveKeys, generate_keypair
from pykka_raft.network.router import Register, Unregister
from pykka_raft.network.tcp import TcpNetwork, TcpNetworkRef
from pykka_raft.types import NodeId


class _Route:
    """What the shared router sees as every node's ref: it passes each RPC to the
    TcpNetwork of the node that sent it."""

    def __init__(self, owner: LoopbackTcp) -> None:
        self._owner = owner

    def tell(self, message: Any) -> None:
        if isinstance(message, Call) and isinstance(message.message, RPC_REQUESTS):
            network = self._owner.networks.get(rpc_source(message.message))
            if network is None:
                message.reply.set_exception(UnknownNode(rpc_source(message.message)))
                return
            network.tell(message)
        else:
            raise TypeError(f"a loopback TCP route carries RPC calls, not {message!r}")


class LoopbackTcp:
    """One TcpNetwork per node on 127.0.0.1 (ports chosen by the OS), CURVE by default.

    Args:
        config: the nodes' configuration (timeouts and frame cap).
        secure: CURVE keys (made in a temporary key directory, removed by :meth:`stop`);
            ``False`` runs without them.
    """

    def __init__(self, config: Config, secure: bool = True) -> None:
        self.config = config
        self.secure = secure
        self.key_dir = tempfile.mkdtemp(prefix="pykka-raft-keys-") if secure else None
        self.networks: dict[NodeId, TcpNetworkRef] = {}
        self.addresses: dict[NodeId, str] = {}
        self.route = _Route(self)

    def network(self, node_id: NodeId) -> TcpNetworkRef:
        """Node ``node_id``'s TcpNetwork, started on first use (every other network learns
        its address)."""
        network = self.networks.get(node_id)
        if network is not None:
            return network
        keys = None
        if self.key_dir is not None:
            generate_keypair(self.key_dir, node_id)
            keys = CurveKeys.from_dir(self.key_dir, node_id)
        network = TcpNetwork.start(
            node_id,
            "127.0.0.1:0",
            config=self.config,
            addresses=self.addresses,
            keys=keys,
            insecure=keys is None,
        )
        self.addresses[node_id] = network.address
        news = MembershipChanged(node_id, MembershipConfig(addresses={node_id: network.address}))
        for other in self.networks.values():
            other.ask(news)
        self.networks[node_id] = network
        return network

    def attach(self, node_id: NodeId, raft: Any) -> None:
        """Deliver RPCs that reach node ``node_id``'s network to ``raft``."""
        self.network(node_id).ask(Register(node_id, raft))

    def detach(self, node_id: NodeId) -> None:
        """Node ``node_id`` stopped: its network answers ``Unreachable`` until reattached."""
        network = self.networks.get(node_id)
        if network is not None:
            network.ask(Unregister(node_id))

    def stop(self) -> None:
        """Stop every network and remove the key directory."""
        for network in self.networks.values():
            network.stop()
        self.networks.clear()
        if self.key_dir is not None:
            shutil.rmtree(self.key_dir, ignore_errors=True)
