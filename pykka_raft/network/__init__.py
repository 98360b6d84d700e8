"""Networks: the ``RaftNetwork`` contract and the networks that ship with pykka_raft.

- :mod:`~pykka_raft.network.contract`: the delivery contract and the :class:`RaftNetwork`
  base actor.
- :mod:`~pykka_raft.network.router`: :class:`RaftRouter`, the in-process network, with
  fault injection.
- :mod:`~pykka_raft.network.tcp`: ``TcpNetwork``, between processes and machines (ZeroMQ,
  msgpack, CURVE), with :mod:`~pykka_raft.network.tcp_io` (its I/O thread),
  :mod:`~pykka_raft.network.tcp_messages`, :mod:`~pykka_raft.network.frames` (the wire
  format), :mod:`~pykka_raft.network.keys` and :mod:`~pykka_raft.network.loopback` (one per
  node on 127.0.0.1, for tests). They need the ``[net]`` extra and are not imported here:
  use :mod:`pykka_raft.net`.
"""

from pykka_raft.network.contract import RPC_REQUESTS, MembershipChanged, RaftNetwork, rpc_source
from pykka_raft.network.router import (
    Isolate,
    LinkFaults,
    RaftRouter,
    Register,
    Restore,
    SetLinkFaults,
    Unregister,
)

__all__ = [
    "RPC_REQUESTS",
    "Isolate",
    "LinkFaults",
    "MembershipChanged",
    "RaftNetwork",
    "RaftRouter",
    "Register",
    "Restore",
    "SetLinkFaults",
    "Unregister",
    "rpc_source",
]
