"""The Raft actor's ports: a new membership reaches the network before the first request
to one of its new members (a network between processes learns the addresses from it)."""

from __future__ import annotations

from typing import Any

from pykka_raft.actor.ports import ActorPorts
from pykka_raft.calls import Call
from pykka_raft.messages import MembershipConfig, VoteRequest
from pykka_raft.network.contract import MembershipChanged


class _Network:
    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


class _Core:
    def __init__(self, membership: MembershipConfig) -> None:
        self.membership = membership


class _Raft:
    """The parts of a Raft actor the ports use to send."""

    def __init__(self, membership: MembershipConfig) -> None:
        self.node_id = 1
        self.core = _Core(membership)
        self.network = _Network()
        self.actor_ref = None
        self._told_membership: MembershipConfig | None = membership

    def _membership_changed(self, membership: MembershipConfig) -> None:
        self._told_membership = membership
        self.network.tell(MembershipChanged(self.node_id, membership))


def test_a_new_membership_is_told_before_the_first_request_of_a_step() -> None:
    raft = _Raft(MembershipConfig((1, 2)))
    ports = ActorPorts(raft)  # type: ignore[arg-type]
    ports.send(VoteRequest(2, 1, 1, 0, 0))
    assert [type(m) for m in raft.network.told] == [Call]  # nothing new to tell
    grown = MembershipConfig((1, 2, 3), addresses={3: "127.0.0.1:7003"})
    raft.core.membership = grown
    ports.send(VoteRequest(3, 1, 1, 0, 0))
    ports.send(VoteRequest(2, 1, 1, 0, 0))
    assert [type(m) for m in raft.network.told] == [Call, MembershipChanged, Call, Call]
    assert raft.network.told[1].membership == grown
    raft.core.membership = MembershipConfig((1, 2, 3), addresses={3: "127.0.0.1:7003"})
    ports.send(VoteRequest(2, 1, 1, 0, 0))  # an equal one: nothing to tell
    assert [type(m) for m in raft.network.told][-1] is Call and len(raft.network.told) == 5
