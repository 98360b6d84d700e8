"""A resend after a lost answer is applied once, while the original commits: scripted with
messages held and released by the fault network, on one leader, across a leader change
and a crash, by hand and by RaftClient.

The write is a compare-and-set from ``None`` to 1: applied a second time it would answer
``CasResult(False, 1)``, so an answer of ``CasResult(True, None)`` to a resend proves it
came from the session's cache.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from pykka_raft import (
    CasResult,
    ClientPayload,
    CompareAndSet,
    Config,
    Outcome,
    RaftClient,
    RegisterClient,
    ResponseMode,
    SessionCommand,
    TriggerElection,
    WriteResult,
)
from pykka_raft.messages import EntryNormal
from pykka_raft.sessions import Session
from pykka_raft.testing import Cluster, FaultNetwork, wait_until
from pykka_raft.testing.faultnet import Direction, GetHeld, Heal, LinkRule, SetLinkRule
from pykka_raft.types import NodeId

# Long election timeouts: holding the followers' answers for a second does not make the
# leader step down (check-quorum) or a follower start an election.
SLOW = Config(election_timeout_min=1500, election_timeout_max=3000, heartbeat_interval=50)
SWAP = CompareAndSet("x", None, 1)
SWAPPED = CasResult(True, None)


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    cluster = make_cluster([1, 2, 3], config=SLOW, network=FaultNetwork.start(seed=16))
    cluster.initialize()
    # The first election at once, not after one of SLOW's timeouts (the leader changes the
    # tests are about come later, on their own timeouts).
    cluster.nodes[1].ask(TriggerElection(), timeout=10)
    cluster.leader()
    return cluster


def hold_answers_to(cluster: Cluster, leader: NodeId) -> None:
    """The followers get the leader's entries, but their answers wait: nothing commits."""
    for follower in cluster.nodes:
        if follower != leader:
            rule = LinkRule(hold=True, direction=Direction.RESPONSES)
            cluster.router.ask(SetLinkRule(follower, leader, rule))


def copies(cluster: Cluster, node_id: NodeId, client_id: int, sequence: int = 1) -> list[int]:
    """Indexes of ``node_id``'s log that hold write ``sequence`` of ``client_id``."""
    return [
        entry.index
        for entry in cluster.dump(node_id).log
        if isinstance(entry.payload, EntryNormal)
        and isinstance(entry.payload.data, SessionCommand)
        and (entry.payload.data.client_id, entry.payload.data.sequence) == (client_id, sequence)
    ]


def send(ref: Any, data: Any) -> Any:
    return ref.ask(ClientPayload.new(data, ResponseMode.APPLIED), block=False)


def check_applied_once(cluster: Cluster, client_id: int, indexes: list[int]) -> None:
    """Every node holds x = 1, saw every copy, and applied the first one only."""
    cluster.wait_applied(max(indexes), timeout=30)
    tables = []
    for node_id in cluster.nodes:
        machine: Any = cluster.data[node_id].state_machine
        assert machine.data == {"x": 1}, f"node {node_id}"
        seen = [i for i, data in machine.applied if isinstance(data, SessionCommand)]
        assert [i for i in seen if i in indexes] == indexes
        tables.append(machine.sessions.dump())
        assert tables[-1][client_id].sequence == 1
        assert tables[-1][client_id].response == SWAPPED
    assert all(table == tables[0] for table in tables)


def test_a_resend_on_the_same_leader_is_answered_from_the_cache(cluster: Cluster) -> None:
    leader = cluster.leader()
    client_id = cluster.write(RegisterClient()).data
    hold_answers_to(cluster, leader)
    ref = cluster.nodes[leader]
    write = SessionCommand(client_id, 1, SWAP)
    first = send(ref, write)
    with pytest.raises(pykka.Timeout):  # the answer does not come: lost, for this caller
        first.get(timeout=0.3)
    second = send(ref, write)
    indexes = wait_until(
        lambda: (c := copies(cluster, leader, client_id)) and len(c) == 2 and c, 10, "2 copies"
    )
    assert cluster.router.ask(GetHeld())  # the fault really happened: answers are held
    cluster.router.ask(Heal())
    assert first.get(timeout=15).data == SWAPPED  # the original committed and was applied
    answer = second.get(timeout=15)
    assert (answer.index, answer.data) == (indexes[1], SWAPPED)  # the resend: from the cache
    check_applied_once(cluster, client_id, indexes)


def test_a_resend_to_the_next_leader_after_a_crash_is_answered_from_the_cache(
    cluster: Cluster,
) -> None:
    old = cluster.leader()
    client_id = cluster.write(RegisterClient()).data
    hold_answers_to(cluster, old)
    write = SessionCommand(client_id, 1, SWAP)
    first = send(cluster.nodes[old], write)
    others = [n for n in cluster.nodes if n != old]
    wait_until(lambda: all(copies(cluster, n, client_id) for n in others), 10, "replication")
    cluster.crash(old)  # before it learned that the write is on a majority: answer lost
    cluster.router.ask(Heal())
    new = cluster.leader(timeout=30)
    assert new != old
    answer = send(cluster.nodes[new], write).get(timeout=15)
    assert answer.data == SWAPPED  # the new leader committed the original; resend cached
    with pytest.raises(pykka.Timeout):
        first.get(timeout=0.1)  # the crashed leader never answers
    cluster.start_node(old)
    indexes = copies(cluster, new, client_id)
    assert len(indexes) == 2 and indexes[1] == answer.index
    check_applied_once(cluster, client_id, indexes)


def run_in_thread(call: Callable[[], WriteResult]) -> Callable[[], WriteResult]:
    out: list[WriteResult] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()

    def result() -> WriteResult:
        thread.join(timeout=60)
        assert out, "the client did not return"
        return out[0]

    return result


def test_the_client_resends_on_its_own_when_the_answer_is_late(cluster: Cluster) -> None:
    leader = cluster.leader()
    client = RaftClient(cluster.nodes, attempt_timeout=0.3, timeout=30)
    client_id = client.write(CompareAndSet("warm-up", None, 0)).client_id
    assert client_id is not None
    hold_answers_to(cluster, leader)
    result = run_in_thread(lambda: client.write(SWAP))
    wait_until(lambda: len(copies(cluster, leader, client_id, 2)) >= 2, 10, "a resend")
    cluster.router.ask(Heal())
    done = result()
    assert (done.outcome, done.response) == (Outcome.APPLIED, SWAPPED)
    assert done.attempts >= 2 and client.stats.resends >= 1
    indexes = copies(cluster, leader, client_id, 2)
    cluster.wait_applied(max(indexes), timeout=30)
    for node_id in cluster.nodes:
        machine: Any = cluster.data[node_id].state_machine
        assert machine.data == {"warm-up": 0, "x": 1}
        assert machine.sessions.get(client_id) == Session(2, SWAPPED, machine.sessions.clock)


def test_the_client_resends_to_the_next_leader_when_its_leader_crashes(
    cluster: Cluster,
) -> None:
    old = cluster.leader()
    client = RaftClient(cluster.nodes, attempt_timeout=0.5, timeout=30)
    client_id = client.write(CompareAndSet("warm-up", None, 0)).client_id
    assert client_id is not None
    hold_answers_to(cluster, old)
    result = run_in_thread(lambda: client.write(SWAP))
    others = [n for n in cluster.nodes if n != old]
    wait_until(lambda: all(copies(cluster, n, client_id, 2) for n in others), 10, "replication")
    cluster.crash(old)
    cluster.router.ask(Heal())
    done = result()
    assert (done.outcome, done.response) == (Outcome.APPLIED, SWAPPED)
    assert done.attempts >= 2 and client.stats.resends >= 1
    new = cluster.leader(timeout=30)
    assert client.leader == new != old
    cluster.start_node(old)
    indexes = copies(cluster, new, client_id, 2)
    assert len(indexes) >= 2
    cluster.wait_applied(max(indexes), timeout=30)
    for node_id in cluster.nodes:
        machine: Any = cluster.data[node_id].state_machine
        assert machine.data == {"warm-up": 0, "x": 1}
