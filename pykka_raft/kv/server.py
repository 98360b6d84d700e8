"""The HTTP server (waitress) and a whole node process: :class:`KvServer`.

waitress is a production WSGI server with a pool of worker threads, like Pykka's thread
per actor: a request waiting for Raft holds one worker thread, never a Raft actor.
:class:`HttpServer` runs waitress's event loop on a thread of its own, so that it can be
stopped from any thread and keep sending answers while the node drains.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from waitress.server import create_server  # type: ignore[import-untyped]

from pykka_raft.kv.app import KvApp
from pykka_raft.kv.auth import is_loopback, load_tokens
from pykka_raft.kv.config import NodeConfig, format_address, http_url, parse_address
from pykka_raft.kv.http_settings import HttpSettings
from pykka_raft.kv.node import KvNode
from pykka_raft.kv.runtime import LocalNetwork

logger = logging.getLogger("pykka_raft.kv")


class HttpServer:
    """waitress bound to ``host:port`` (port 0: the system picks; read :attr:`port`).

    ``settings`` (``[http]``) give waitress its threads, connection limit and idle
    timeout. The body limit given to waitress is twice the application's: bodies up to that size
    reach the application, which answers its own JSON 413; larger ones are refused by
    waitress while reading, with its plain-text 413, so no body over that is ever buffered.
    """

    def __init__(self, app: Any, host: str, port: int, settings: HttpSettings) -> None:
        self._map: dict[Any, Any] = {}
        try:
            self.server = create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                threads=settings.threads,
                max_request_body_size=2 * settings.max_body_bytes,
                # The map holds the listening socket and a trigger besides the connections.
                connection_limit=settings.connection_limit + 2,
                channel_timeout=settings.channel_timeout,
                cleanup_interval=max(1, min(30, settings.channel_timeout // 2)),
                ident="pykka-raft-kv",
                clear_untrusted_proxy_headers=True,
            )
        except OSError as exc:  # a port in use, an address not of this machine
            where = format_address(host, port)
            error = OSError(f"http_address: cannot listen on {where}: {exc.strerror or exc}")
            error.errno = exc.errno
            raise error from exc
        self.host = host
        self.port: int = self.server.effective_port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"kv-http-{self.port}", daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` as bound."""
        return format_address(self.host, self.port)

    def start(self) -> None:
        """Start serving on the event-loop thread."""
        self._thread.start()

    def _loop(self) -> None:
        from waitress import wasyncore  # type: ignore[import-untyped]

        while not self._stop.is_set():
            wasyncore.loop(timeout=0.5, map=self._map, count=1, use_poll=True)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop: let answers already written be sent, then close every socket."""
        self.server.task_dispatcher.shutdown(timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            getattr(ch, "total_outbufs_len", 0) for ch in list(self._map.values())
        ):
            self._stop.wait(0.01)  # the loop thread is flushing the last answers
        self._stop.set()
        self.server.pull_trigger()
        if self._thread.is_alive():
            self._thread.join(timeout)
        from waitress import wasyncore

        wasyncore.close_all(self._map)


class KvServer:
    """One node process: a Raft node (:class:`KvNode`) and its HTTP API.

    Args:
        config: the node's configuration; ``http_address`` with port 0 binds a free port
            (:attr:`url` tells which).
        local: the in-process network to join (several nodes in one process), or
            ``None`` for the network the configuration names.
    """

    def __init__(self, config: NodeConfig, local: LocalNetwork | None = None) -> None:
        host, port = parse_address(config.http_address, "http_address")
        token_file = config.http.token_file
        tokens = load_tokens(token_file) if token_file is not None else ()  # before any I/O
        self.node = KvNode(config, local)
        self.app = KvApp(self.node, tokens=tokens)
        self.http = HttpServer(self.app, host, port, config.http)
        self.config = config
        self._stopped = False

    @classmethod
    def start(cls, config: NodeConfig, local: LocalNetwork | None = None) -> KvServer:
        """Bind the HTTP port, start the node, then serve."""
        server = cls(config, local)
        server.begin()
        return server

    def begin(self) -> None:
        """Start the node, then serve (the port is bound already)."""
        try:
            self.node.start(http_address=self.http.address)
        except BaseException:
            self._stopped = True
            self.http.stop(0.1)
            raise
        self.http.start()
        if self.app.auth.required:
            logger.info("serving the HTTP API at %s (bearer tokens required)", self.url)
            return
        logger.info("serving the HTTP API at %s", self.url)
        if not is_loopback(self.http.host):
            logger.warning(
                "OPEN: node %s serves its HTTP API on %s WITHOUT authentication: anyone who "
                "reaches this port can read and write every key, back the data up and change "
                "the membership; give [http] token_file (--token-file), or bind a loopback "
                "address",
                self.node_id,
                self.http.address,
            )

    @property
    def url(self) -> str:
        """The HTTP API's base URL."""
        return http_url(self.http.address)

    @property
    def node_id(self) -> int:
        """This node's id."""
        return self.node.node_id

    def stop(self, grace: float | None = None) -> None:
        """Stop cleanly: refuse new requests (503 ``shutting_down``), let those in flight
        finish for ``grace`` seconds, stop the Raft node (what it still holds is answered
        ``outcome_unknown``), close storage and network, then close the HTTP server."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.http.shutdown_grace if grace is None else grace
        self.app.drain()
        if not self.app.wait_idle(grace):
            logger.warning("requests still in flight after %.1f s; stopping Raft", grace)
        self.node.stop()
        if not self.app.wait_idle(self.config.http.request_timeout + 1):
            logger.warning("requests still in flight after the node stopped")
        self.http.stop()
        logger.info("stopped")
