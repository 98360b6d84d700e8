"""Several key-value nodes in one process, on the in-process network.

For trying the HTTP API, the CLI and the client without the TCP network (``pykka-raft-kv
dev-cluster``), and for their tests. Every node has its own HTTP server on a real
loopback port; the Raft traffic between them stays inside the process. This is not a
deployment: everything is lost when the process ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pykka_raft import Config, NodeId
from pykka_raft.kv.auth import load_tokens
from pykka_raft.kv.client import Client
from pykka_raft.kv.config import HttpSettings, NodeConfig, PeerConfig
from pykka_raft.kv.runtime import LocalNetwork
from pykka_raft.kv.server import KvServer


class LocalCluster:
    """Key-value nodes sharing one in-process network, each with its HTTP API.

    Args:
        node_ids: the nodes to start (pristine; call :meth:`init` to form the cluster).
        raft: the Raft settings of every node.
        http: the HTTP settings of every node (with a ``token_file``, the nodes share
            it, and :meth:`client` and :meth:`init` send its first token).
        host: the address every HTTP server binds.
        ports: the HTTP port of each node (default: 0, the system picks).
        share_addresses: give every node the others' HTTP addresses as configured peers
            (False: nodes learn them only from the replicated directory).
        node_options: per node id, other :class:`NodeConfig` fields for that node (for
            example ``{"max_sessions": 10}``).
    """

    def __init__(
        self,
        node_ids: Iterable[NodeId],
        raft: Config | None = None,
        http: HttpSettings | None = None,
        host: str = "127.0.0.1",
        ports: dict[NodeId, int] | None = None,
        share_addresses: bool = True,
        node_options: Mapping[NodeId, Mapping[str, Any]] | None = None,
    ) -> None:
        self.raft = raft or Config()
        self.http = http or HttpSettings()
        token_file = self.http.token_file
        self.token = load_tokens(token_file)[0] if token_file is not None else None
        self.host = host
        self.network = LocalNetwork()
        self.servers: dict[NodeId, KvServer] = {}
        self.share_addresses = share_addresses
        self.node_options = dict(node_options or {})
        try:
            for node_id in node_ids:
                self.add_node(node_id, (ports or {}).get(node_id, 0))
        except BaseException:
            self.close()
            raise

    def add_node(self, node_id: NodeId, port: int = 0) -> KvServer:
        """Start a pristine node (add it to the cluster with the admin API)."""
        peers = (
            tuple(
                PeerConfig(n, s.http.address)
                for n, s in sorted(self.servers.items())
                if n != node_id
            )
            if self.share_addresses
            else ()
        )
        config = NodeConfig(
            node_id=node_id,
            http_address=f"{self.host}:{port}",
            peers=peers,
            storage="memory",
            network="local",
            raft=self.raft,
            http=self.http,
            **self.node_options.get(node_id, {}),
        )
        server = KvServer.start(config, self.network)
        if self.share_addresses:
            for other in self.servers.values():
                other.node.directory.set_static(node_id, server.http.address)
        self.servers[node_id] = server
        return server

    def stop_node(self, node_id: NodeId) -> None:
        """Stop one node cleanly (its data is lost: it lives in memory)."""
        self.servers.pop(node_id).stop()

    @property
    def urls(self) -> list[str]:
        """The HTTP base URLs, by node id."""
        return [s.url for _, s in sorted(self.servers.items())]

    def url(self, node_id: NodeId) -> str:
        """One node's HTTP base URL."""
        return self.servers[node_id].url

    def client(self, **kwargs: object) -> Client:
        """A client that knows every node (with the nodes' token, unless ``token`` is
        given)."""
        kwargs.setdefault("token", self.token)
        return Client(self.urls, **kwargs)  # type: ignore[arg-type]

    def init(self, members: Iterable[NodeId] | None = None) -> None:
        """Form the cluster from ``members`` (default: every node started so far)."""
        ids = sorted(members if members is not None else self.servers)
        Client([self.url(n) for n in ids], token=self.token).init(ids)

    def close(self) -> None:
        """Stop every node, then the network."""
        for node_id in list(self.servers):
            self.stop_node(node_id)
        self.network.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
