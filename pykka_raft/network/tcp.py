"""``TcpNetwork``: a ``RaftNetwork`` between processes and machines, over ZeroMQ and msgpack.

Design (see ``docs/network.md`` for the whole picture):

- **Sockets.** Each node binds one ROUTER socket for incoming RPCs and opens one DEALER
  socket per peer it sends to, connected to that peer's ROUTER. Responses to a node's
  requests come back on the DEALER they left on; responses to requests it received go
  back through its ROUTER to the connection the request came in on.
- **Threads.** Every socket belongs to one I/O thread per network. RPCs from the local
  Raft actor are handed to it through a queue and a wake-up pipe (the ref routes them in
  the sender's thread, without a trip through the actor's inbox), so no Raft actor ever
  waits on a socket. Incoming requests are told to the local Raft ref as
  ``Call(request, reply)``; the reply's ``set`` queues the answer for the I/O thread.
- **Requests and timeouts.** Each request carries a 64-bit id; its response carries the
  same id. A request without a response within ``Config.rpc_timeout`` is answered
  ``Unreachable``, and so is every request still waiting on a connection that drops.
- **Security.** CURVE encryption and authentication by default: each node has a key pair
  and lists the public keys it accepts (:class:`~pykka_raft.network.keys.CurveKeys`). A ZAP
  handler on the I/O thread refuses every other key during the handshake, before a byte
  of payload reaches the decoder, and binds each accepted key to its node id: a
  connection may only send requests as that node. ``insecure=True`` turns all of it off
  for local experiments and is logged at WARNING.
- **Bad input** (see :mod:`~pykka_raft.network.frames`) is dropped, counted by kind in
  :class:`NetworkMetrics` and logged once per kind per few seconds under the
  ``pykka_raft.net`` logger; it never reaches the Raft node and never stops the network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pykka

from pykka_raft.calls import AskAwareRef, Call, Reply
from pykka_raft.config import Config
from pykka_raft.errors import UnknownMessage
from pykka_raft.logs import RateLimited
from pykka_raft.messages import MembershipConfig, RpcRequest
from pykka_raft.network.contract import RPC_REQUESTS, MembershipChanged, RaftNetwork
from pykka_raft.network.keys import CurveKeys, check_key
from pykka_raft.network.router import Isolate, Register, Restore, Unregister
from pykka_raft.network.tcp_io import IoLoop
from pykka_raft.network.tcp_messages import (
    STRAY_MESSAGE,
    GetNetworkMetrics,
    NetworkMetrics,
    PeerMetrics,
    TrustKey,
)
from pykka_raft.network.tcp_options import TcpBindError, check_options
from pykka_raft.types import NodeId

logger = logging.getLogger("pykka_raft.net")

# --- the actor --------------------------------------------------------------------------


class TcpNetworkRef(AskAwareRef):
    """The ref :meth:`TcpNetwork.start` returns.

    ``address`` is the ``host:port`` the network's ROUTER socket is bound to (the port the
    OS chose, when started with port 0). RPC calls told to it go straight to the I/O
    thread, in the sender's thread; other messages go through the actor. A message sent
    with ``tell`` that the network does not handle is logged and dropped; with ``ask``,
    it raises :class:`~pykka_raft.errors.UnknownMessage`.
    """

    address: str
    _io: IoLoop

    def tell(self, message: Any) -> None:
        """Hand an RPC, or a told membership, to the I/O thread now (in order: the RPCs
        told after a membership find the addresses it carries); queue anything else for
        the actor."""
        rpc = isinstance(message, Call) and isinstance(message.message, RPC_REQUESTS)
        if rpc or isinstance(message, MembershipChanged):
            if not self.is_alive():
                raise pykka.ActorDeadError(f"{self} is stopped")
            io = self._io
            if rpc:
                io.submit(("req", message.message, message.reply))
            else:
                io.submit(("post", lambda: io.membership_changed(message.membership)))
            return
        super().tell(message)


class TcpNetwork(RaftNetwork):
    """The network between processes: CURVE-secured ZeroMQ sockets, msgpack frames.

    Start one per node, before its Raft node, then register the node::

        net = TcpNetwork.start(1, "0.0.0.0:7001", config=config,
                               addresses={2: "10.0.0.2:7001", 3: "10.0.0.3:7001"},
                               keys=CurveKeys.from_dir("keys", 1))
        raft = Raft.start(1, config, net, storage)
        net.tell(Register(1, raft))

    Messages (``tell`` or ``ask``): :class:`~pykka_raft.network.router.Register` and
    :class:`~pykka_raft.network.router.Unregister` for this node's own Raft ref;
    :class:`~pykka_raft.network.router.Isolate` / :class:`~pykka_raft.network.router.Restore`
    with this node's id (drop all traffic) or a peer's (drop traffic with that peer);
    :class:`TrustKey`; :class:`GetNetworkMetrics` (answers :class:`NetworkMetrics`).

    Args:
        node_id: this node's id.
        bind: ``host:port`` to listen on; port 0 lets the OS choose (read it from the
            ref's ``address``).
        config: the node's :class:`~pykka_raft.config.Config` (``rpc_timeout`` and
            ``snapshot_max_chunk_size`` are used).
        addresses: node id to ``host:port`` of the peers known at start. Addresses in the
            membership (``MembershipConfig.addresses``) are learned as the node reports
            its membership; a newer address replaces an older one, and none is forgotten.
        keys: this node's :class:`~pykka_raft.network.keys.CurveKeys`. Required unless
            ``insecure``.
        insecure: no authentication and no encryption: anyone who reaches the port can
            take part in the cluster. For local experiments only; logged at WARNING.
        max_frame_bytes: the largest frame body accepted or sent; by default the larger
            of ``snapshot_max_chunk_size`` and ``max_entry_bytes``, plus 1 MiB. At least
            that larger one plus 4 KiB: one entry of the largest size the leader accepts,
            and one snapshot chunk, must fit in a frame, or they could never be sent.
        rpc_timeout_ms: how long a request waits for its answer; by default
            ``config.rpc_timeout``.
    """

    ref_class = TcpNetworkRef

    def __init__(
        self,
        node_id: NodeId,
        bind: str = "127.0.0.1:0",
        *,
        config: Config | None = None,
        addresses: Mapping[NodeId, str] | Iterable[tuple[NodeId, str]] = (),
        keys: CurveKeys | None = None,
        insecure: bool = False,
        max_frame_bytes: int | None = None,
        rpc_timeout_ms: int | None = None,
    ) -> None:
        super().__init__()
        config, book, keys, max_frame_bytes, rpc_timeout_ms = check_options(
            node_id, bind, config, addresses, keys, insecure, max_frame_bytes, rpc_timeout_ms
        )
        self.node_id = node_id
        self._io = IoLoop(
            node_id,
            bind,
            book,
            keys,
            max_frame_bytes,
            rpc_timeout_ms,
        )
        self.address = self._io.address
        self._stray = RateLimited(logger)  # under pykka_raft.net, like the rest
        ref = self.actor_ref
        assert isinstance(ref, TcpNetworkRef)
        ref.address = self.address
        ref._io = self._io
        if insecure:
            logger.warning(
                "INSECURE: node %s listens on %s WITHOUT authentication or encryption "
                "(insecure=True): any process that reaches this port can act as a member of "
                "the cluster; use CURVE keys outside local experiments",
                node_id,
                self.address,
            )
        else:
            logger.info("node %s listens on %s (CURVE)", node_id, self.address)
        self._io.start()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> TcpNetworkRef:
        """Start the network; binding happens here, so a taken port raises
        :class:`TcpBindError` here."""
        ref = super().start(*args, **kwargs)
        assert isinstance(ref, TcpNetworkRef)
        return ref

    def on_stop(self) -> None:
        """Close every socket; waiting requests are answered ``Unreachable``."""
        self._io.stop()
        super().on_stop()

    def on_failure(self, *exc_info: Any) -> None:
        """Close every socket, as on a clean stop."""
        self._io.stop()

    def on_stray(self, message: Any, error: BaseException) -> None:
        """A told message the network cannot handle: counted (on the I/O thread, which
        owns the counters), logged and dropped."""
        errors = self._io.errors
        self._io.submit(("post", lambda: errors.update((STRAY_MESSAGE,))))
        super().on_stray(message, error)

    def send(self, request: RpcRequest, reply: Reply) -> None:
        """Hand ``request`` to the I/O thread (an RPC that came through the inbox)."""
        self._io.submit(("req", request, reply))

    def membership_changed(self, node_id: NodeId, membership: MembershipConfig) -> None:
        """Learn the addresses and members the membership carries (a failure, such as an
        I/O thread too busy to answer, is logged and the network goes on)."""
        io = self._io
        io.call(lambda: io.membership_changed(membership))

    def handle_other(self, message: Any) -> Any:
        """Control messages."""
        io = self._io
        if isinstance(message, GetNetworkMetrics):
            return io.call(io.metrics)
        if isinstance(message, Register):
            self._own(message.node_id, message)
            raft = message.raft
            io.call(lambda: setattr(io, "raft", raft))
        elif isinstance(message, Unregister):
            self._own(message.node_id, message)
            io.call(lambda: setattr(io, "raft", None))
        elif isinstance(message, Isolate):
            io.call(lambda: io.set_isolated(message.node_id, True))
        elif isinstance(message, Restore):
            io.call(lambda: io.set_isolated(message.node_id, False))
        elif isinstance(message, TrustKey):
            key = check_key(message.public_key, f"the key of node {message.node_id}")
            io.call(lambda: io.trust(message.node_id, key))
        else:
            raise UnknownMessage(type(self).__name__, message)
        return None

    def _own(self, node_id: NodeId, message: Any) -> None:
        if node_id != self.node_id:
            raise ValueError(
                f"{type(message).__name__}({node_id}) sent to the network of node "
                f"{self.node_id}: a TcpNetwork carries one node; register that node with "
                "its own network"
            )


__all__ = [
    "GetNetworkMetrics",
    "NetworkMetrics",
    "PeerMetrics",
    "TcpBindError",
    "TcpNetwork",
    "TcpNetworkRef",
    "TrustKey",
]
