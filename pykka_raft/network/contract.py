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
started and whenever its membership changes, before it sends a request to a new member.
A network between processes takes the
nodes' addresses from it (``MembershipConfig.addresses``); the base class ignores it.
"""

from __future__ import annotations

import abc
import logging
from typing import Any

import attrs
import pykka

from pykka_raft._pykka import drain_inbox, use_ref_class
from pykka_raft.calls import AskAwareRef, Call, Reply, answer_dropped, deliver_error, unwrap
from pykka_raft.errors import UnknownMessage, Unreachable
from pykka_raft.logs import NETWORK, RateLimited
from pykka_raft.messages import (
    AppendEntriesRequest,
    InstallSnapshotRequest,
    MembershipConfig,
    ReadIndexRequest,
    RpcRequest,
    TimeoutNowRequest,
    VoteRequest,
)
from pykka_raft.types import NodeId

RPC_REQUESTS = (
    AppendEntriesRequest,
    VoteRequest,
    InstallSnapshotRequest,
    TimeoutNowRequest,
    ReadIndexRequest,
)


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
    if isinstance(request, ReadIndexRequest):
        return request.follower_id
    return request.leader_id


class RaftNetwork(pykka.ThreadingActor, abc.ABC):
    """Base class of network actors: hands each RPC call to :meth:`send`.

    A message the network does not handle, sent with ``ask``, is answered
    :class:`~pykka_raft.errors.UnknownMessage`; sent with ``tell``, it is logged
    (rate-limited) and dropped: a stray message never stops the network, and with it every
    node. When the actor stops, every RPC call still queued is answered
    :class:`~pykka_raft.errors.Unreachable`, so no node waits for an answer that will not
    come.
    """

    def __init__(self) -> None:
        super().__init__()
        use_ref_class(self, self.ref_class)
        self._stray = RateLimited(logging.getLogger(NETWORK))

    ref_class: type[AskAwareRef] = AskAwareRef
    """The ref class ``start()`` returns (a subclass may route some messages itself)."""

    def on_receive(self, message: Any) -> Any:
        """Route RPC calls to :meth:`send`; other messages to :meth:`handle_other`."""
        message, asked = unwrap(message)
        if isinstance(message, Call) and isinstance(message.message, RPC_REQUESTS):
            self.send(message.message, message.reply)
            return None
        try:
            if isinstance(message, MembershipChanged):
                return self.membership_changed(message.node_id, message.membership)
            return self.handle_other(message)
        except Exception as exc:
            if asked:
                raise  # Pykka hands it to the caller; the actor lives on
            if isinstance(message, Call):  # a call is answered, even one it cannot handle
                deliver_error(message.reply, exc)
            self.on_stray(message, exc)  # raising here would stop the network
            return None

    def on_stray(self, message: Any, error: BaseException) -> None:
        """A message sent with ``tell`` could not be handled: log it (rate-limited)."""
        self._stray.log(
            logging.WARNING,
            type(message).__name__,
            "%s dropped a %s sent with tell: %s",
            type(self).__name__,
            type(message).__name__,
            error,
        )

    @classmethod
    def stopped_error(cls) -> Unreachable:
        """What a call gets that this network can no longer handle."""
        return Unreachable(f"the network {cls.__name__} stopped")

    def on_stop(self) -> None:
        """Answer every RPC call still queued: the network is gone."""
        for message in drain_inbox(self):  # a subclass that overrides on_stop calls this
            answer_dropped(message, self.stopped_error())

    def membership_changed(self, node_id: NodeId, membership: MembershipConfig) -> None:
        """Node ``node_id`` has this membership now; the default ignores it."""

    @abc.abstractmethod
    def send(self, request: RpcRequest, reply: Reply) -> None:
        """Deliver ``request`` to node ``request.target``; answer ``reply`` (never block)."""

    def handle_other(self, message: Any) -> Any:
        """Control messages of a concrete network; the default refuses them."""
        raise UnknownMessage(type(self).__name__, message)
