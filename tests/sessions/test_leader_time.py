"""The one hook in the Raft actor: on the leader, a write whose data has
``with_leader_time(now)`` takes the leader's wall-clock time before it is appended."""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

from pykka_raft import (
    ApplicationError,
    ClientPayload,
    ForwardToLeader,
    Put,
    RaftClient,
    RegisterClient,
    ResponseMode,
    State,
    register_app_type,
)
from pykka_raft.testing import Cluster


@register_app_type
@attrs.frozen
class NoClock:
    """An application value whose stamping method fails."""

    def with_leader_time(self, now: float) -> Any:
        raise RuntimeError("this value refuses the time")


def applied_data(cluster: Cluster, node_id: int) -> list[Any]:
    return [data for _, data in cluster.data[node_id].state_machine.applied]  # type: ignore[attr-defined]


def test_the_leader_stamps_every_write_of_a_batch(formed: Cluster) -> None:
    leader = formed.leader()
    before = time.time()
    register = ClientPayload.new(RegisterClient(), ResponseMode.APPLIED)
    futures = [formed.nodes[leader].ask(register, block=False) for _ in range(50)]
    ids = [f.get(timeout=30).data for f in futures]
    after = time.time()
    formed.wait_applied(max(ids))
    for node_id in formed.nodes:  # the stamp is in the log: every node applied the same time
        stamps = [d.time for d in applied_data(formed, node_id) if isinstance(d, RegisterClient)]
        assert len(stamps) == 50
        assert all(before <= t <= after for t in stamps)
        assert stamps == sorted(stamps)


def test_a_follower_does_not_stamp(formed: Cluster) -> None:
    leader = formed.leader()
    follower = next(n for n in formed.nodes if n != leader)
    with pytest.raises(ForwardToLeader) as caught:
        formed.nodes[follower].ask(ClientPayload.new(RegisterClient()), timeout=10)
    assert caught.value.payload == ClientPayload.new(RegisterClient())  # handed back as sent
    assert caught.value.leader_id == leader


def test_a_stamping_method_that_fails_refuses_only_its_write(formed: Cluster) -> None:
    leader = formed.leader()
    ref = formed.nodes[leader]
    broken = ref.ask(ClientPayload.new(NoClock()), block=False)
    fine = ref.ask(ClientPayload.new(Put("k", 1), ResponseMode.APPLIED), block=False)
    with pytest.raises(ApplicationError) as caught:
        broken.get(timeout=10)
    assert isinstance(caught.value.error, RuntimeError)  # refused before the core saw it
    assert fine.get(timeout=10).index > 0
    assert RaftClient(formed.nodes).write(Put("k", 2)).response == 1  # the cluster goes on
    assert formed.hub.get(leader).state is not State.SHUTDOWN  # and the node did not stop
