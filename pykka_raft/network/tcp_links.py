"""Links to peers: opening the DEALER to a peer (with its server key), the connection
events of outgoing and incoming connections, and addresses learned from the membership.
Part of the I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork` (see
:mod:`~pykka_raft.network.tcp_io`)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import zmq
import zmq.utils.monitor

from pykka_raft.errors import RpcError, Unreachable
from pykka_raft.messages import MembershipConfig
from pykka_raft.network import tcp_peers
from pykka_raft.network.tcp_auth import IoAuth
from pykka_raft.network.tcp_messages import BAD_ADDRESS, HANDSHAKE_FAILED, NO_KEY
from pykka_raft.network.tcp_peers import BATCH, REFUSED_RETRY, _endpoint, _event_text, _Peer, logger
from pykka_raft.types import NodeId


class IoLinks(IoAuth):
    """Outgoing connections and connection events."""

    def _connect(self, peer: _Peer, address: str) -> RpcError | None:
        """(Re)open the DEALER to ``peer`` at ``address``; an error if that is impossible."""
        self._close_peer_socket(peer)
        peer.address = address
        server_key: bytes | None = None
        if self.keys is not None:
            server_key = self.peer_keys.get(peer.node_id)
            if server_key is None and self._reload_keys():
                server_key = self.peer_keys.get(peer.node_id)
            if server_key is None:
                self.not_sent(
                    NO_KEY,
                    peer.node_id,
                    "no CURVE public key is known for it: add node-"
                    f"{peer.node_id}.key to the key directory or send TrustKey",
                )
                return Unreachable(f"no CURVE public key is known for node {peer.node_id}")
        try:
            sock = self.ctx.socket(zmq.DEALER)
        except zmq.ZMQError as exc:  # e.g. too many open files
            self.not_sent(BAD_ADDRESS, peer.node_id, f"cannot open a socket: {exc}")
            return Unreachable(f"cannot open a socket to node {peer.node_id}: {exc}")
        monitor: zmq.Socket[bytes] | None = None
        try:
            self._socket_options(sock)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # no queue for a peer that is not connected
            sock.setsockopt(zmq.SNDHWM, 1000)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            if address.startswith("["):
                sock.setsockopt(zmq.IPV6, 1)
            if self.keys is not None and server_key is not None:
                sock.curve_secretkey = self.keys.secret
                sock.curve_publickey = self.keys.public
                sock.curve_serverkey = server_key
            monitor = sock.get_monitor_socket(
                zmq.EVENT_CONNECTED
                | zmq.EVENT_CONNECT_DELAYED
                | zmq.EVENT_CONNECT_RETRIED
                | zmq.EVENT_DISCONNECTED
                | zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            )
            sock.connect(_endpoint(address))
        except (zmq.ZMQError, ValueError) as exc:
            if monitor is not None:  # its pipe's file descriptors, now, not at collection
                sock.disable_monitor()
                monitor.close(linger=0)
            sock.close(linger=0)
            self.not_sent(BAD_ADDRESS, peer.node_id, f"cannot connect to {address!r}: {exc}")
            return Unreachable(f"cannot connect to node {peer.node_id} at {address!r}: {exc}")
        peer.socket, peer.monitor = sock, monitor
        peer.state = "connecting"
        self.by_socket[sock] = peer
        self.by_monitor[monitor] = peer
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(monitor, zmq.POLLIN)
        return None

    def _peer_events(self, peer: _Peer) -> None:
        monitor = peer.monitor
        for _ in range(BATCH):
            if monitor is None or peer.monitor is not monitor:
                return
            try:
                event = zmq.utils.monitor.recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            where = f"node {peer.node_id} at {peer.address}"
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                peer.state = "connected"
                logger.info("node %s connected to %s", self.node_id, where)
            elif kind == zmq.EVENT_CONNECTED:
                peer.state = "handshaking"
            elif kind in (zmq.EVENT_CONNECT_DELAYED, zmq.EVENT_CONNECT_RETRIED):
                if peer.state not in ("refused", "connecting"):
                    peer.state = "connecting"
            elif kind == zmq.EVENT_DISCONNECTED:
                if peer.state == "connected":
                    logger.info("node %s lost its connection to %s", self.node_id, where)
                if peer.state != "refused":
                    peer.state = "disconnected"
                self._fail_pending(peer, "the connection dropped")
            elif kind in (
                zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            ):
                peer.state = "refused"
                self.refuse(
                    HANDSHAKE_FAILED,
                    where,
                    "the handshake failed (it does not accept this node's key, its key is "
                    f"not the one expected, or one side is insecure): {_event_text(event)}",
                )
                # libzmq gives up a connection whose handshake failed: open a new one on
                # the next request after a pause (the key may be accepted by then).
                self._reload_keys()
                peer.retry_at = time.monotonic() + REFUSED_RETRY
                self._close_peer_socket(peer)
                return

    def _router_events(self) -> None:
        for _ in range(BATCH):
            try:
                event = zmq.utils.monitor.recv_monitor_message(self.router_monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_ACCEPTED:
                self.connections_accepted += 1
            elif kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self.keys is None:
                    logger.info("node %s accepted a connection (insecure)", self.node_id)
            elif kind == zmq.EVENT_DISCONNECTED:
                self.incoming_disconnects += 1
                logger.debug("node %s: an incoming connection closed", self.node_id)
            else:  # a handshake failed: a client without CURVE, or with the wrong server key
                self.refuse(
                    HANDSHAKE_FAILED,
                    "an incoming connection",
                    f"the handshake failed: {_event_text(event)}",
                )

    def learn_addresses(self, addresses: Iterable[tuple[NodeId, str]], source: str) -> None:
        for node_id, address in addresses:
            if node_id == self.node_id or self.addresses.get(node_id) == address:
                continue
            old = self.addresses.get(node_id)
            self.addresses[node_id] = address
            logger.info(
                "node %s: node %s is at %s (from %s%s)",
                self.node_id,
                node_id,
                address,
                source,
                f", was {old}" if old else "",
            )
            peer = self.peers.get(node_id)
            if peer is not None:
                peer.address = address
                if peer.socket is not None:
                    self._close_peer_socket(peer)  # reconnect to the new address

    def membership_changed(self, membership: MembershipConfig) -> None:
        """Learn the addresses ``membership`` carries and which nodes are members."""
        self.learn_addresses(membership.addresses, "the membership")
        members = membership.all_nodes()
        if members:  # an empty one (a pristine node's, or addresses only) names no members
            self.members = members

    def close_idle_outsiders(self, now: float) -> None:
        """Close the connections to nodes outside the membership that no request used for
        :data:`OUTSIDER_IDLE` seconds (a leader still talks to a removed node for a while,
        to tell it of its removal; a later request opens a new connection)."""
        if self.members is None:
            return
        busy = {p.peer for p in self.pending.values()}
        for peer in self.peers.values():
            if (
                peer.socket is not None
                and peer.node_id not in self.members
                and peer.node_id not in busy
                and now - peer.last_sent >= tcp_peers.OUTSIDER_IDLE
            ):
                self._close_peer_socket(peer)
