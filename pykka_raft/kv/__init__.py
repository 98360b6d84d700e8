"""pykka-raft-kv: a replicated key-value service built on pykka_raft's public API.

One node process runs one Raft node and one HTTP server (waitress): a JSON API for keys
(get, put, delete, compare-and-set), admin endpoints for the membership, ``/metrics`` for
Prometheus and a status page. :class:`Client` is the Python client the ``pykka-raft-kv``
command uses. Install it with ``pip install pykka_raft[kv]``; ``docs/kv-service.md``
documents every endpoint, command and error code.
"""

from pykka_raft.kv.client import Client
from pykka_raft.kv.config import HttpSettings, KvConfigError, NodeConfig, PeerConfig
from pykka_raft.kv.errors import (
    BadRequest,
    BodyTooLarge,
    CasFailed,
    ClusterUnreachable,
    Conflict,
    KeyNotFound,
    KvError,
    MethodNotAllowed,
    NotAKvNode,
    NotFound,
    RestoreIncomplete,
    ServerError,
    Unauthorized,
    Unavailable,
    UnknownOutcome,
)
from pykka_raft.kv.runtime import LocalNetwork, RuntimeUnavailable
from pykka_raft.kv.server import KvServer

__all__ = [
    "BadRequest",
    "BodyTooLarge",
    "CasFailed",
    "Client",
    "ClusterUnreachable",
    "Conflict",
    "HttpSettings",
    "KeyNotFound",
    "KvConfigError",
    "KvError",
    "KvServer",
    "LocalNetwork",
    "MethodNotAllowed",
    "NodeConfig",
    "NotAKvNode",
    "NotFound",
    "PeerConfig",
    "RestoreIncomplete",
    "RuntimeUnavailable",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "UnknownOutcome",
]
