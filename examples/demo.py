"""The pykka_raft demo (``make demo-embedded``): a 3-node cluster that loses its leader and
keeps serving.

Three Raft nodes run in this process on the in-process router, each with a MemStore and a
key-value state machine. The demo forms the cluster, writes 1000 keys from 4 client threads
(250 keys each, one write per key), isolates the leader in the middle of the writes, lets
the others elect a new one, heals the partition, and ends with a summary: the leader
history, the writes acknowledged, and whether every node's state machine ended identical,
holding every key.
"""

from __future__ import annotations

import threading
import time

from pykka_raft import Config, MetricsHub, Put, RaftMetrics, ResponseMode, State
from pykka_raft.testing import Cluster

CLIENTS = 4
WRITES_PER_CLIENT = 250
START = time.monotonic()
PRINT_LOCK = threading.Lock()


def say(text: str) -> None:
    """Print one line of the story with the time since the start."""
    with PRINT_LOCK:
        print(f"[{time.monotonic() - START:6.2f}s] {text}", flush=True)


class StoryHub(MetricsHub):
    """A metrics hub that narrates role and leader changes as they are pushed."""

    def tell(self, metrics: RaftMetrics) -> None:
        before = self.get(metrics.id)
        super().tell(metrics)
        if before is None:
            say(f"node {metrics.id} started as {metrics.state.value}")
        elif (before.state, before.current_term) != (metrics.state, metrics.current_term):
            say(f"node {metrics.id} is {metrics.state.value} in term {metrics.current_term}")


def main() -> None:
    config = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
    cluster = Cluster([1, 2, 3], config=config, seed=1, hub=StoryHub())
    try:
        run(cluster)
    finally:
        cluster.shutdown()


def run(cluster: Cluster) -> None:
    say("forming a 3-node cluster with InitWithConfig([1, 2, 3]) on every node")
    cluster.initialize()
    first = cluster.leader()
    say(f"the cluster agreed on node {first} as leader")

    acked: list[int] = []
    lock = threading.Condition()

    def client(number: int) -> None:
        for i in range(WRITES_PER_CLIENT):
            key = f"client-{number}-{i}"  # every write its own key
            response = cluster.write(Put(key, i), ResponseMode.APPLIED, timeout=60)
            with lock:
                acked.append(response.index)
                lock.notify_all()

    total = CLIENTS * WRITES_PER_CLIENT
    say(f"{CLIENTS} clients start writing {total} keys, {WRITES_PER_CLIENT} each")
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    with lock:
        lock.wait_for(lambda: len(acked) >= total // 3, timeout=60)
        say(f"{len(acked)} writes acknowledged so far")

    old = cluster.leader()
    say(f"partitioning the leader, node {old}, away from the others")
    cluster.isolate(old)
    new = cluster.leader(timeout=30)
    say(f"the majority elected node {new}; clients follow ForwardToLeader to it")
    response = cluster.write(Put("failover", f"node {new} serves"), timeout=30)
    say(f"node {new} committed a write at index {response.index}; {len(acked)} acknowledged")
    say(f"writes pending on node {old} wait for a definite outcome, due when the partition heals")
    cluster.hub.wait_for(lambda m: m[old].state is not State.LEADER, 30, "old leader to step down")
    say(f"node {old} heard from no majority for an election timeout and stepped down")
    say(f"healing the partition: node {old} rejoins")
    cluster.restore(old)
    for thread in threads:
        thread.join(timeout=120)

    last = max(acked)
    cluster.wait_applied(last, timeout=30)
    summarize(cluster, acked, total)


def summarize(cluster: Cluster, acked: list[int], total: int) -> None:
    history: list[tuple[int, int]] = []
    for metrics in cluster.hub.history:
        if metrics.state is State.LEADER and (metrics.current_term, metrics.id) not in history:
            history.append((metrics.current_term, metrics.id))
    dumps = {node_id: cluster.dump(node_id) for node_id in sorted(cluster.nodes)}
    machines = [d.state_machine for d in dumps.values()]
    identical = all(m == machines[0] for m in machines)
    print()
    print("summary")
    print("  leader history: " + ", ".join(f"term {t}: node {n}" for t, n in history))
    print(
        f"  writes acknowledged: {len(acked)} of {total}, distinct log indexes: {len(set(acked))}"
    )
    for node_id, dump in dumps.items():
        print(
            f"  node {node_id}: {len(dump.log)} log entries, applied through "
            f"{dump.last_applied}, {len(dump.state_machine)} keys"
        )
    print(f"  state machines identical: {'yes' if identical else 'NO'}")
    keys = total + 1  # the clients' keys and "failover"
    if not identical or len(set(acked)) != total or len(machines[0]) != keys:
        raise SystemExit("the demo found an inconsistency")


if __name__ == "__main__":
    main()
