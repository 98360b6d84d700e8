"""The ``RaftNetwork`` contract: carrying RPCs to the Raft actor of their ``target``.

A Raft node tells its network actor a :class:`~pykka_raft.calls.Call` holding an
``AppendEntriesRequest``, ``VoteRequest`` or ``InstallSnapshotRequest``. The network
delivers the request to the Raft node ``request.target`` and answers the call's reply with
that node's response, or with an :class:`~pykka_raft.errors.RpcError` when it cannot.

**Delivery contract.** The network may drop, delay, duplicate and reorder requests and
responses: Raft tolerates all of it (an AppendEntries without an answer is resent after
``Config.rpc_timeout``, heartbeats go out every ``heartbeat_interval``, and a lost vote is
made up for by the next election). It must never block the sending Raft actor, and it should answer
with an error rather than stay silent when it knows delivery failed (unknown or unreachable
node), so the node retries sooner. Raft itself has no transport: a remote network decodes
the request on the receiving side, ``ask``-s the local Raft ref with it, and sends the
answer back.

**Membership.** The Raft node tells its network :class:`MembershipChanged` once it has
started and whenever its membership changes. A network between processes takes the
nodes' addresses from it (``MembershipConfig.addresses``); the base class ignores it.
"""

from __future__ import annotations

import abc
from typing import Any

import attrs
import pykka

from pykka_raft.calls import Call, Reply
from pykka_raft.errors import UnknownMessage
from pykka_raft.messages import (
    AppendEntriesRequest,
    InstallSnapshotRequest,
    MembershipConfig,
    RpcRequest,
    VoteRequest,
)
from pykka_raft.types import NodeId

RPC_REQUESTS = (AppendEntriesRequest, VoteRequest, InstallSnapshotRequest)


@attrs.frozen
class MembershipChanged:
    """Told by the Raft node ``node_id`` to its network: its membership is now ``membership``
    (sent once the node has started, then on every change). No answer."""

    node_id: NodeId
    membership: MembershipConfig


def rpc_source(request: RpcRequest) -> NodeId:
    """The node that sent an RPC request."""
    if isinstance(request, VoteRequest):
        return request.candidate_id
    return request.leader_id


class RaftNetwork(pykka.ThreadingActor, abc.ABC):
    """Base class of network actors: hands each RPC call to :meth:`send`."""

    def on_receive(self, message: Any) -> Any:
        """Route RPC calls to :meth:`send`; other messages to :meth:`handle_other`."""
        if isinstance(message, Call) and isinstance(message.message, RPC_REQUESTS):
            self.send(message.message, message.reply)
            return None
        if isinstance(message, MembershipChanged):
            self.membership_changed(message.node_id, message.membership)
            return None
        return self.handle_other(message)

    def membership_changed(self, node_id: NodeId, membership: MembershipConfig) -> None:
        """Node ``node_id`` has this membership now; the default ignores it."""

    @abc.abstractmethod
    def send(self, request: RpcRequest, reply: Reply) -> None:
        """Deliver ``request`` to node ``request.target``; answer ``reply`` (never block)."""

    def handle_other(self, message: Any) -> Any:
        """Control messages of a concrete network; the default refuses them."""
        raise UnknownMessage(type(self).__name__, message)
