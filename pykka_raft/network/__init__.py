"""Networks: the ``RaftNetwork`` contract and the networks that ship with pykka_raft.

- :mod:`~pykka_raft.network.contract`: the delivery contract and the :class:`RaftNetwork`
  base actor.
- :mod:`~pykka_raft.network.router`: :class:`RaftRouter`, the in-process network, with
  fault injection.
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
