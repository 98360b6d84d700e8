"""Client writes under concurrency and leader loss (actix-raft's client_writes suite)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from typing import Any

import pykka
import pytest

from pykka_raft import Busy, ClientPayload, Config, GetMetrics, Put, ResponseMode
from pykka_raft.actor.ref import WakeForClients
from pykka_raft.testing import wait_until


def test_concurrent_writes_survive_leader_isolation_exactly_once(formed):
    clients, per_client = 6, 500
    total = clients * per_client
    acked: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    progress = threading.Condition()

    def run(client: int) -> None:
        try:
            for i in range(per_client):
                mode = ResponseMode.APPLIED if i % 2 else ResponseMode.COMMITTED
                response = formed.write(Put(f"c{client}", (client, i)), mode, timeout=60)
                with progress:
                    acked[(client, i)] = response.index
                    progress.notify_all()
        except BaseException as exc:
            errors.append(exc)

    def wait_acked(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: len(acked) >= count or errors, timeout=60)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    wait_acked(total // 3)
    old = formed.leader()
    formed.isolate(old)  # while writes are in flight to it
    new = formed.leader(timeout=20)
    assert new != old
    # The new leader serves. Clients whose writes are pending on the isolated leader wait
    # for a definite outcome, which comes once it rejoins and learns what was committed.
    assert formed.write(Put("failover", "served"), timeout=30).index > 0
    formed.restore(old)
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(acked) == total

    last = max(acked.values())
    formed.wait_applied(last, timeout=30)
    # Every node applied the same sequence; every acknowledged write appears exactly once.
    histories = {}
    for node_id in formed.nodes:
        dump = formed.dump(node_id)
        histories[node_id] = dump.log
        expected = {f"c{c}": (c, per_client - 1) for c in range(clients)}
        assert dump.state_machine == {**expected, "failover": "served"}
    logs = list(histories.values())
    common = min(len(log) for log in logs)
    assert all(log[:common] == logs[0][:common] for log in logs)
    written = Counter(
        e.payload.data.value for e in logs[0] if type(e.payload).__name__ == "EntryNormal"
    )
    for (client, i), index in acked.items():
        assert written[(client, i)] == 1, f"write {(client, i)} appears {written[(client, i)]}x"
        assert logs[0][index - 1].payload.data.value == (client, i)


def test_a_burst_of_writes_does_not_starve_heartbeats(formed):
    """Ten thousand writes queued at once: the leader's inbox holds them all, yet its
    timers keep running (heartbeats go out while it drains), so no election happens and
    every write is answered."""
    leader = formed.leader()
    term = formed.hub.get(leader).current_term
    ref = formed.nodes[leader]
    futures = [ref.ask(ClientPayload.new(Put("burst", i)), block=False) for i in range(10_000)]
    indexes = [future.get(timeout=120).index for future in futures]
    assert indexes == sorted(indexes)
    assert len(set(indexes)) == len(indexes)
    later = {t: ids for t, ids in formed.hub.leaders_by_term().items() if t >= term}
    assert later == {term: {leader}}


def test_callers_that_do_not_wait_cannot_grow_the_client_queue_without_bound(
    make_cluster: Any,
) -> None:
    """1,500 writes sent without waiting while the node is not taking its queue up (its
    wake-up held back, as when it is busy): 1,000 wait, the other 500 are refused Busy at
    once on the caller's thread, and the leader counts them in writes_refused_busy."""
    config = Config(
        election_timeout_min=300,
        election_timeout_max=600,
        heartbeat_interval=50,
        max_pending_writes=10,  # the queue holds 1,000 (one batch) all the same
    )
    cluster = make_cluster([1], config=config)
    cluster.initialize()
    cluster.leader()
    ref = cluster.nodes[1]
    ref.clients.wake_pending = True  # the node does not hear of the queued writes yet
    futures = [ref.ask(ClientPayload.new(Put("k", i)), block=False) for i in range(1500)]
    assert len(ref.clients.items) == ref.clients.limit == 1000  # max_pending_writes < 1000
    for future in futures[1000:]:
        with pytest.raises(Busy, match="wait for the node already"):
            future.get(timeout=0)  # answered already
    assert ref.clients.refused == 500
    pykka.ActorRef.tell(ref, WakeForClients())
    answered = 0
    for future in futures[:1000]:  # taken up now: committed, or Busy beyond the 10
        with contextlib.suppress(Busy):
            future.get(timeout=10)
        answered += 1
    assert answered == 1000
    wait_until(lambda: ref.ask(GetMetrics()).writes_refused_busy >= 500, 10, "the refusals counted")
