"""The I/O thread of :class:`~pykka_raft.network.tcp.TcpNetwork`: every socket, the ZAP
handler, connection events, request ids and timeouts, and the network's counters.

Only :meth:`IoLoop.submit` and :meth:`IoLoop.call` may be used from other threads;
everything else runs on the I/O thread, which owns all of this state, so none of it needs
a lock.

The I/O thread is built in layers of one concept each, every layer extending the one
before: :mod:`~pykka_raft.network.tcp_peers` (peers and their counters),
:mod:`~pykka_raft.network.tcp_base` (state, sockets, hand-over),
:mod:`~pykka_raft.network.tcp_auth` (keys and ZAP), :mod:`~pykka_raft.network.tcp_links`
(connections and their events), :mod:`~pykka_raft.network.tcp_requests` (request
matching and timeouts); this module runs the loop and reports the metrics.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import zmq
import zmq.utils.monitor

from pykka_raft.calls import deliver_error
from pykka_raft.errors import RpcError
from pykka_raft.network.keys import CurveKeys
from pykka_raft.network.tcp_base import _CallResult
from pykka_raft.network.tcp_messages import INTERNAL_ERROR, NetworkMetrics
from pykka_raft.network.tcp_peers import logger
from pykka_raft.network.tcp_requests import IoRequests
from pykka_raft.types import NodeId


class IoLoop(IoRequests):
    """Owns the context, every socket and all of the network's state.

    Only :meth:`submit` and :meth:`call` may be used from other threads; everything else
    runs on the I/O thread. The ROUTER (and the ZAP handler) are bound in the
    constructor, on the caller's thread, so a bind failure raises to whoever starts the
    network; the sockets are handed to the I/O thread when it starts.
    """

    def __init__(
        self,
        node_id: NodeId,
        bind: str,
        addresses: Mapping[NodeId, str],
        keys: CurveKeys | None,
        max_frame_bytes: int,
        rpc_timeout_ms: int,
    ) -> None:
        super().__init__(node_id, bind, addresses, keys, max_frame_bytes, rpc_timeout_ms)
        self.thread = threading.Thread(target=self._run, name=f"raft-net-{node_id}", daemon=True)

    # --- other threads ------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop the I/O thread; every request still waiting is answered ``Unreachable``."""
        self.stopping = True
        self.wake()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(10)
        elif not self.thread.is_alive() and not self.closed:
            self._close()  # never started

    # --- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        poller = self.poller
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.router_monitor, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        if self.zap is not None:
            poller.register(self.zap, zmq.POLLIN)
        try:
            while not self.stopping:
                try:
                    events = dict(poller.poll(self._poll_timeout_ms()))
                except zmq.ZMQError as exc:
                    if exc.errno == zmq.ETERM:
                        return
                    raise
                self._guard(self._step, events)
        except Exception:
            logger.exception("the network I/O thread of node %s failed", self.node_id)
        finally:
            self._close()

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run one step; a bug is logged and counted, and the loop goes on."""
        try:
            fn(*args)
        except Exception as exc:
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        self.errors[INTERNAL_ERROR] += 1
        self.limiter.log(
            logging.ERROR, INTERNAL_ERROR, "node %s: network I/O step failed: %r", self.node_id, exc
        )
        logger.debug("network I/O step failed", exc_info=exc)

    def _step(self, events: dict[Any, int]) -> None:
        if self.wake_r in events:
            # Drain first, then clear: a submitter that finds the flag clear writes a new
            # byte, which this drain can no longer swallow (the next poll wakes for it).
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_r, 4096):
                    pass
            self.wake_pending = False
        self._process_inbox()
        if self.router in events:
            self._recv_requests()
        for sock in events:
            peer = self.by_socket.get(sock)
            if peer is not None:
                self._recv_responses(peer)
                continue
            peer = self.by_monitor.get(sock)
            if peer is not None:
                self._peer_events(peer)
        if self.router_monitor in events:
            self._router_events()
        if self.zap is not None and self.zap in events:
            self._handle_zap()
        now = time.monotonic()
        self._expire(now)
        if now >= self.next_sweep:
            self.next_sweep = now + 1.0
            self.close_idle_outsiders(now)

    def _process_inbox(self) -> None:
        inbox = self.inbox
        for _ in range(len(inbox)):
            item = inbox.popleft()
            kind = item[0]
            if kind == "req":
                try:
                    self._send_request(item[1], item[2])
                except Exception as exc:  # a bug or the system's limits: still answered
                    self._internal_error(exc)
                    if all(p.reply is not item[2] for p in self.pending.values()):
                        error = RpcError(f"the network could not send it: {exc!r}")
                        deliver_error(item[2], error)
            elif kind == "resp":
                self._guard(self._send_response, item[1], item[2], item[3])
            elif kind == "post":  # run here, nobody waits for it
                self._guard(item[1])
            elif kind == "call":
                result: _CallResult = item[2]
                if not result.start():
                    continue  # its caller gave up and was answered: it never runs
                try:
                    result.value = item[1]()
                except Exception as exc:
                    result.error = exc
                result.done.set()

    def metrics(self) -> NetworkMetrics:
        return NetworkMetrics(
            node_id=self.node_id,
            address=self.address,
            secure=self.keys is not None,
            isolated=self.isolated,
            isolated_peers=tuple(sorted(self.isolated_peers)),
            raft_registered=self.raft is not None,
            pending=len(self.pending),
            connections_accepted=self.connections_accepted,
            incoming_disconnects=self.incoming_disconnects,
            frames_received=self.frames_received,
            bytes_received=self.bytes_received,
            peers=tuple(self.peers[n].metrics() for n in sorted(self.peers)),
            errors=tuple(sorted(self.errors.items())),
        )
