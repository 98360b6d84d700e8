"""The counter runs' checks, after everything healed: liveness (a leader, and one more
increment applied within a bound), then exactly-once from the nodes' applied records.

No tag applied twice on any node; every acknowledged increment applied and none reported
"not applied" applied; each counter between the increments acknowledged and those plus
the unknown ones; the same counters and session tables on every node; and Raft's safety
monitors. Kept apart from the runner so the rules read in one place.
"""

from __future__ import annotations

import collections

from pykka_raft.client import Outcome, RaftClient
from pykka_raft.sessions import SessionStateMachine
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.counters_options import CounterReport
from pykka_raft.testing.counters_workload import Counters, Increment
from pykka_raft.testing.monitors import check_cluster_data

__all__ = ["check_counters", "final_write"]


def final_write(
    cluster: Cluster, client: RaftClient, bound: float, report: CounterReport
) -> int | None:
    """Liveness after healing: a leader, and an increment applied within the bound."""
    try:
        cluster.leader(timeout=bound)
    except TimeoutError as exc:
        report.problems.append(f"liveness: no leader within {bound:.0f}s after healing: {exc}")
        return None
    result = client.write(Increment("__final__", f"final-{report.seed}"), timeout=bound)
    if not result.applied or result.index is None:
        report.problems.append(f"liveness: the final increment was not applied: {result}")
        return None
    return result.index


def check_counters(cluster: Cluster, report: CounterReport) -> None:
    """Check exactly-once on every node's applied record; add what fails to the report's
    problems and fill in its finals, duplicates and snapshot installs."""
    machines = {n: cluster.data[n].state_machine for n in sorted(cluster.nodes)}
    problems = report.problems
    problems += check_cluster_data(cluster.hub.history, cluster.data, cluster.hard_states)
    first_id, first = next(iter(machines.items()))
    assert isinstance(first, SessionStateMachine)
    inner = first.inner
    assert isinstance(inner, Counters)
    for node_id, machine in machines.items():
        assert isinstance(machine, SessionStateMachine)
        if machine.inner.data != inner.data:  # type: ignore[attr-defined]
            problems.append(f"nodes {first_id} and {node_id} hold different counters")
        if machine.sessions.dump() != first.sessions.dump():
            problems.append(f"nodes {first_id} and {node_id} hold different session tables")
        tags = collections.Counter(tag for _, tag in machine.inner.tags)  # type: ignore[attr-defined]
        twice = sorted(tag for tag, n in tags.items() if n > 1)
        if twice:
            report.twice = max(report.twice, len(twice))
            problems.append(
                f"node {node_id} applied {len(twice)} increments more than once, e.g. "
                f"{twice[0]} {tags[twice[0]]} times"
            )
    applied = {tag for _, tag in inner.tags}
    counter_of = {i.tag: i.counter for i in report.increments}
    by_counter: dict[str, list[str]] = collections.defaultdict(list)
    for _, tag in inner.tags:
        by_counter[counter_of.get(tag, "__final__")].append(tag)
    report.finals = {c: v for c, v in inner.data.items() if c != "__final__"}
    report.duplicates = sum(1 for row in first.history if row[3] == "duplicate")
    report.snapshots_installed = max(
        (m.snapshots_installed for m in cluster.hub.history), default=0
    )
    for counter, value in sorted(report.finals.items()):
        ops = [i for i in report.increments if i.counter == counter]
        acked = [i for i in ops if i.outcome is Outcome.APPLIED]
        unknown = [i for i in ops if i.outcome is Outcome.UNKNOWN]
        if value != len(by_counter[counter]):
            problems.append(f"{counter} is {value} but {len(by_counter[counter])} tags applied")
        if not len(acked) <= value <= len(acked) + len(unknown):
            problems.append(
                f"{counter} is {value}: not between {len(acked)} acknowledged and "
                f"{len(acked) + len(unknown)} acknowledged or unknown"
            )
        responses = [i.response for i in acked]
        if len(set(responses)) != len(responses) or max(responses, default=0) > value:
            problems.append(f"{counter}: acknowledged increments answered the same value")
    lost = [
        i.tag for i in report.increments if i.outcome is Outcome.APPLIED and i.tag not in applied
    ]
    if lost:
        problems.append(f"{len(lost)} acknowledged increments were never applied, e.g. {lost[0]}")
    phantom = [
        i.tag for i in report.increments if i.outcome is Outcome.NOT_APPLIED and i.tag in applied
    ]
    if phantom:
        problems.append(f"{len(phantom)} increments reported not applied were, e.g. {phantom[0]}")
