"""The checks of a chaos run once its faults healed: liveness (a leader, a commit, every
member converged), safety over the storages' dumps, acknowledged writes and membership
changes, and linearizability of the client history.

Every storage answers :class:`~pykka_raft.storage.DumpStorage`, so these checks work on any
storage; a state machine that dumps an :class:`~pykka_raft.testing.plugs.AppliedHistory`
adds the index-by-index checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pykka

from pykka_raft.admin import (
    ConfigChangeResponse,
    TransferLeadership,
    TransferLeadershipResponse,
    TriggerElection,
)
from pykka_raft.errors import NodeNotLeader, NotAllowed, ShuttingDown, TransferFailed, Unreachable
from pykka_raft.messages import EntryConfigChange, MembershipConfig
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.statemachine import Put
from pykka_raft.storage.messages import StorageDump
from pykka_raft.testing.chaos_options import ChaosReport
from pykka_raft.testing.cluster import Cluster
from pykka_raft.testing.history import Op
from pykka_raft.testing.linearizability import check_kv
from pykka_raft.testing.monitors import check_dumps
from pykka_raft.testing.plugs import AppliedHistory
from pykka_raft.testing.values import canonical
from pykka_raft.types import NodeId

if TYPE_CHECKING:
    from pykka_raft.testing.chaos_nemesis import AdminCall

ADMIN_ERRORS = (NodeNotLeader, NotAllowed, ShuttingDown, TransferFailed, Unreachable)
"""The typed errors a ``TransferLeadership`` or ``TriggerElection`` may be answered with."""


def liveness_bound(cluster: Cluster) -> float:
    """Seconds the checks wait for progress: 20 election timeouts."""
    return 20 * cluster.config.election_timeout_max / 1000


def check_liveness(cluster: Cluster, report: ChaosReport) -> None:
    """After healing, a leader and a committed write within a bounded number of timeouts."""
    bound = liveness_bound(cluster)
    try:
        cluster.leader(timeout=bound)
        cluster.write(Put("__liveness__", report.seed), timeout=bound)
    except Exception as exc:
        report.problems.append(f"liveness: no leader and commit within {bound:.0f}s: {exc}")


def converge(cluster: Cluster, report: ChaosReport, through: int) -> MembershipConfig:
    """Every member of the final configuration applies everything (a final write, and at
    least through ``through``: the last acknowledged change); return that configuration
    (a leader that inherited a joint one finishes it first)."""
    bound = liveness_bound(cluster)

    def settled(latest: dict[NodeId, RaftMetrics]) -> MembershipConfig | None:
        leaders = [m for m in latest.values() if m.state is State.LEADER]
        if len(leaders) != 1 or leaders[0].membership_config.is_in_joint_consensus:
            return None
        return leaders[0].membership_config

    try:
        last = cluster.write(Put("__final__", report.seed), timeout=bound)
        final = cluster.hub.wait_for(settled, bound, "a settled membership")
        assert final is not None
        cluster.wait_applied(max(last.index, through), nodes=final.all_nodes(), timeout=bound)
        return final
    except Exception as exc:
        report.problems.append(f"liveness: nodes did not converge within {bound:.0f}s: {exc}")
        return MembershipConfig(tuple(cluster.nodes))


def snapshot_installs(history: Iterable[RaftMetrics]) -> int:
    """Installs counted in the metrics pushed (a node's counter restarts at 0 with it)."""
    last: dict[NodeId, int] = {}
    installs = 0
    for metrics in history:
        before = last.get(metrics.id, 0)
        now = metrics.snapshots_installed
        installs += now - before if now >= before else now
        last[metrics.id] = now
    return installs


def outcome_text(result: Any) -> str:
    """What a proposed membership change got, in words."""
    if result is None:
        return "no answer (the node crashed)"
    if isinstance(result, ConfigChangeResponse):
        return f"ok at index {result.index}: {result.membership}"
    return f"{type(result).__name__}: {result}"


def dump_all(cluster: Cluster) -> tuple[dict[NodeId, StorageDump], list[str]]:
    """A dump of every running node's storage, and the problems of those that gave none."""
    dumps: dict[NodeId, StorageDump] = {}
    problems = []
    for node_id in sorted(cluster.nodes):
        try:
            dumps[node_id] = cluster.dump(node_id, timeout=liveness_bound(cluster))
        except Exception as exc:
            problems.append(f"node {node_id}'s storage gave no dump: {exc!r}")
    return dumps, problems


def acknowledged_changes_committed(
    outcomes: list[tuple[str, Any]], dumps: Mapping[NodeId, StorageDump], final: MembershipConfig
) -> list[str]:
    """An acknowledged change's configuration is committed: every member holds it."""
    problems = []
    for text, result in outcomes:
        if not isinstance(result, ConfigChangeResponse):
            continue
        for node_id in sorted(final.all_nodes()):
            dump = dumps.get(node_id)
            if dump is None:
                continue  # reported by dump_all
            offset = dump.snapshot.last_included.index if dump.snapshot else 0
            if result.index <= offset:
                continue  # compacted into a snapshot (which holds only committed entries)
            entry = next((e for e in dump.log if e.index == result.index), None)
            if entry is None or entry.payload != EntryConfigChange(result.membership):
                problems.append(
                    f"{text} was acknowledged at index {result.index} but node {node_id} "
                    f"holds {entry} there"
                )
    return problems


def admin_text(call: AdminCall, answered: bool, result: Any) -> str:
    """What a transfer or election call got, in words."""
    if not answered:
        return "no answer"
    if result is None:
        return "ok" if isinstance(call.message, TriggerElection) else "None"
    return outcome_text(result)


def admin_calls_answered(
    calls: Iterable[tuple[AdminCall, bool, Any]], history: Iterable[RaftMetrics]
) -> list[str]:
    """Every transfer and election call was answered (unless its node crashed): an election
    with ``None``, a transfer with a ``TransferLeadershipResponse`` naming a node seen
    leading the term it names, either with one of :data:`ADMIN_ERRORS`."""
    led = {(m.current_term, m.id) for m in history if m.state is State.LEADER}
    problems = []
    for call, answered, result in calls:
        if not answered or isinstance(result, pykka.ActorDeadError):
            if not call.crashed:
                problems.append(f"{call.text}: no answer, and its node did not crash")
            continue
        transfer = isinstance(call.message, TransferLeadership)
        if isinstance(result, TransferLeadershipResponse) and transfer:
            if (result.term, result.leader_id) not in led:
                problems.append(
                    f"{call.text}: answered {result}, but node {result.leader_id} was never "
                    f"seen leading term {result.term}"
                )
        elif not (isinstance(result, ADMIN_ERRORS) or (result is None and not transfer)):
            problems.append(f"{call.text}: answered {admin_text(call, True, result)}")
    return problems


def applied_by(dumps: Mapping[NodeId, StorageDump], final: MembershipConfig) -> set[int]:
    """The indexes the members of ``final`` dumped their state machines at."""
    return {dumps[n].last_applied for n in final.all_nodes() if n in dumps}


def acknowledged_writes_survive(
    ops: tuple[Op, ...], dumps: Mapping[NodeId, StorageDump], members: Iterable[NodeId]
) -> list[str]:
    """Every acknowledged put is in the applied history of every member of the final
    configuration (nothing acked is lost), for the state machines that dump one. Others
    dump their dictionary: the keys written once (``once-<tag>``, never overwritten) hold
    their acknowledged value; the final reads cover the keys written many times."""
    problems = []
    members = set(members)
    acked = [op for op in ops if op.kind == "put" and op.outcome == "ok"]
    for node_id, dump in sorted(dumps.items()):
        state = dump.state_machine
        if node_id not in members:
            continue
        if isinstance(state, AppliedHistory):
            seen = {
                (cmd.key, canonical(cmd.value)) for _, cmd in state.applied if isinstance(cmd, Put)
            }
            missing = [op for op in acked if (op.key, canonical(op.value)) not in seen]
        elif isinstance(state, Mapping):
            missing = [
                op
                for op in acked
                if op.key.startswith("once-")
                and (op.key not in state or canonical(state[op.key]) != canonical(op.value))
            ]
        else:
            continue
        if missing:
            problems.append(
                f"node {node_id} lacks {len(missing)} acknowledged writes, e.g. "
                f"{missing[0].key}={missing[0].value!r}"
            )
    return problems


def check_safety(
    cluster: Cluster,
    report: ChaosReport,
    outcomes: list[tuple[str, Any]],
    final: MembershipConfig,
) -> None:
    """Every check over the storages' dumps and the history, into ``report``."""
    cluster.sample_hard_states()
    dumps, problems = dump_all(cluster)
    for _ in range(3):  # the members' state machines are compared at one index
        if not report.ok or len(applied_by(dumps, final)) <= 1:
            break
        # A change still under way (a learner catching up) may have ended since: the
        # nodes it removed stopped applying, so the members are taken again.
        final = converge(cluster, report, 0)
        dumps, problems = dump_all(cluster)
    else:
        if report.ok and len(applied_by(dumps, final)) > 1:
            problems.append(
                f"the members never dumped at one index: last applied {applied_by(dumps, final)}"
            )
    report.problems += problems
    report.problems += check_dumps(cluster.hub.history, dumps, cluster.recorded_hard_states())
    report.problems += acknowledged_writes_survive(report.ops, dumps, final.all_nodes())
    report.problems += acknowledged_changes_committed(outcomes, dumps, final)
    report.snapshots_installed = snapshot_installs(cluster.hub.history)
    report.linearizability = check_kv(report.ops, canonical if report.options.values else None)
    if not report.linearizability.ok:
        verdict = "undecided" if report.linearizability.undecided else "not linearizable"
        report.problems.append(
            f"history {verdict} on key {report.linearizability.key!r}: "
            f"{report.linearizability.explanation}"
        )
