"""The ``[http]`` connection settings reach waitress: at ``connection_limit`` open
connections a node accepts no more, and connections left idle are closed after
``channel_timeout``, so idle clients cannot make a node unreachable for long."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from pykka_raft.kv import HttpSettings, KvServer, NodeConfig
from tests.kv.conftest import request

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def limited() -> Iterator[KvServer]:
    http = HttpSettings(threads=2, connection_limit=4, channel_timeout=1)
    config = NodeConfig(1, "127.0.0.1:0", storage="memory", network="local", http=http)
    server = KvServer.start(config)
    try:
        yield server
    finally:
        server.stop()


def test_the_defaults_reach_waitress() -> None:
    config = NodeConfig(1, "127.0.0.1:0", storage="memory", network="local")
    server = KvServer(config)
    try:
        adj = server.http.server.adj
        assert adj.connection_limit == 500 + 2  # + the listening socket and the trigger
        assert adj.channel_timeout == 30 and adj.cleanup_interval == 15
    finally:
        server.http.stop(0.1)


def test_idle_connections_are_closed_and_the_limit_frees_up(limited: KvServer) -> None:
    port = limited.http.port
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        # Every connection the node takes is held by an idle client: a new one waits.
        with pytest.raises(OSError):  # socket.timeout
            request(limited.url, "GET", "/v1/status", timeout=0.5)
        started = time.monotonic()
        for sock in idle:  # the node closes each after channel_timeout (1 s) of silence
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 8
        assert request(limited.url, "GET", "/v1/status", timeout=10).status == 200
    finally:
        for sock in idle:
            sock.close()
