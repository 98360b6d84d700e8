"""Unreliable networks and slow or failing storage."""

from __future__ import annotations

import time

import pytest

from pykka_raft import (
    ClientPayload,
    LinkFaults,
    MemStore,
    OutcomeUnknown,
    Put,
    SetLinkFaults,
    State,
    StorageError,
)


def test_writes_commit_through_drops_duplicates_and_reordering(formed):
    formed.router.ask(SetLinkFaults(LinkFaults(drop=0.05, duplicate=0.1, delay_ms=(0, 15), seed=7)))
    for i in range(150):
        last = formed.write(Put(f"k{i % 5}", i), timeout=60)
    formed.router.ask(SetLinkFaults(LinkFaults()))
    formed.wait_applied(last.index, timeout=30)
    dumps = [formed.dump(n) for n in formed.nodes]
    assert dumps[0].state_machine == {f"k{j}": 145 + j for j in range(5)}
    assert all(d.state_machine == dumps[0].state_machine for d in dumps)
    assert all(d.log == dumps[0].log for d in dumps)


class SlowApplyStore(MemStore):
    """Applying takes longer than an election timeout (the sleep is the scenario)."""

    def apply_to_state_machine(self, entries):
        time.sleep(0.4)
        return super().apply_to_state_machine(entries)


def test_slow_apply_causes_no_election(make_cluster):
    cluster = make_cluster([1, 2, 3], storage=lambda _id, data: SlowApplyStore.start(data=data))
    cluster.initialize()
    leader = cluster.leader(timeout=20)
    term = cluster.hub.get(leader).current_term
    seen = len(cluster.hub.history)
    futures = [
        cluster.nodes[leader].ask(ClientPayload.new(Put("k", i)), block=False) for i in range(10)
    ]
    for future in futures:
        future.get(timeout=30)
    cluster.wait_applied(futures[-1].get().index, timeout=30)
    # Applies took seconds in all, yet heartbeats kept every follower quiet.
    assert {m.current_term for m in cluster.hub.history[seen:]} == {term}
    assert cluster.hub.get(leader).state is State.LEADER


class FailingStore(MemStore):
    """A storage whose disk fails on the first client entry."""

    def write_log(self, entries):
        if any(type(e.payload).__name__ == "EntryNormal" for e in entries):
            raise OSError("disk full")
        super().write_log(entries)


def test_storage_failure_stops_the_node_cleanly(make_cluster):
    cluster = make_cluster([1], storage=lambda _id, data: FailingStore.start(data=data))
    cluster.initialize()
    cluster.leader()
    with pytest.raises(OutcomeUnknown, match="disk full") as pending:
        cluster.nodes[1].ask(ClientPayload.new(Put("k", "v")), timeout=10)
    assert isinstance(pending.value.__cause__, StorageError)
    cluster.hub.wait_for(lambda m: m[1].state is State.SHUTDOWN, 10, "shutdown metrics")
