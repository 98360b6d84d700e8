"""Authentication: the CURVE keys a node accepts (reloaded from the key directory) and
the ZAP handler that admits or refuses each incoming connection.
Part of the I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork` (see
:mod:`~pykka_raft.network.tcp_io`)."""

from __future__ import annotations

import contextlib
import logging
import time

import zmq
import zmq.utils.monitor
from zmq.utils import z85

from pykka_raft.network.keys import CurveKeyError, read_public_keys
from pykka_raft.network.tcp_base import IoBase
from pykka_raft.network.tcp_messages import AUTH_REFUSED
from pykka_raft.network.tcp_peers import BATCH, KEY_RELOAD_INTERVAL, logger
from pykka_raft.types import NodeId


class IoAuth(IoBase):
    """The keys and the ZAP handler."""

    def _reload_keys(self) -> bool:
        """Read the key directory again (rate-limited); True if keys changed."""
        keys = self.keys
        now = time.monotonic()
        if keys is None or keys.key_dir is None or now - self.last_key_reload < KEY_RELOAD_INTERVAL:
            return False
        self.last_key_reload = now
        try:
            found, bad = read_public_keys(keys.key_dir)
        except (CurveKeyError, OSError) as exc:
            self.limiter.log(logging.WARNING, "key_dir", "cannot read the key directory: %s", exc)
            return False
        for node_id, reason in bad.items():
            self.limiter.log(logging.WARNING, f"key_file {node_id}", "%s", reason)
        changed = {n: k for n, k in found.items() if self.peer_keys.get(n) != k}
        if not changed:
            return False
        for node_id, key in changed.items():
            self._trust(node_id, key)
        return True

    def _trust(self, node_id: NodeId, key: bytes) -> None:
        old = self.peer_keys.get(node_id)
        self.peer_keys[node_id] = key
        self._rebuild_owners()
        logger.info("node %s accepts node %s's key %s...", self.node_id, node_id, key[:8].decode())
        peer = self.peers.get(node_id)
        if old is not None and peer is not None and peer.socket is not None:
            self._close_peer_socket(peer)  # reconnect with the new server key

    def _handle_zap(self) -> None:
        zap = self.zap
        assert zap is not None
        for _ in range(BATCH):
            try:
                msg = zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            request_id = msg[1] if len(msg) > 1 else b""
            status, text, user = b"400", b"refused", b""
            if len(msg) >= 6 and msg[0] == b"1.0":
                address = msg[3].decode("ascii", "replace")
                mechanism, credentials = msg[5], msg[6:]
                if mechanism == b"CURVE" and len(credentials) == 1 and len(credentials[0]) == 32:
                    owner = self.key_owners.get(credentials[0])
                    if owner is None and self._reload_keys():
                        owner = self.key_owners.get(credentials[0])
                    if owner is not None:
                        # The key goes with the id: a request on this connection is
                        # refused once the key is replaced (IoRequests._recv_requests).
                        accepted = z85.encode(credentials[0])
                        status, text, user = b"200", b"OK", b"%d:%s" % (owner, accepted)
                        logger.info(
                            "node %s accepted a connection from node %s (%s)",
                            self.node_id,
                            owner,
                            address,
                        )
                    else:
                        key = z85.encode(credentials[0]).decode()
                        self.refuse(
                            AUTH_REFUSED,
                            address,
                            f"a connection with the unknown key {key[:8]}... (not accepted)",
                        )
                else:
                    self.refuse(
                        AUTH_REFUSED, address, f"a {mechanism.decode(errors='replace')} handshake"
                    )
            with contextlib.suppress(zmq.ZMQError):
                zap.send_multipart([b"1.0", request_id, status, text, user, b""])

    def trust(self, node_id: NodeId, key: bytes) -> None:
        self._trust(node_id, key)
