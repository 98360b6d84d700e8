"""Safety monitors: checks of Raft's guarantees over what a test cluster recorded.

Each function returns a list of problems (empty when the guarantee held), each a sentence
that names the nodes, terms and indexes involved. The section of the Raft paper that states
the guarantee is in each docstring.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pykka_raft.messages import Entry, HardState, SnapshotMeta
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.storage.messages import StorageDump
from pykka_raft.testing.plugs import AppliedHistory
from pykka_raft.testing.values import difference, same
from pykka_raft.types import LogId, NodeId


def _last_included(meta: SnapshotMeta | None) -> LogId | None:
    return None if meta is None else meta.last_included


def election_safety(history: Iterable[RaftMetrics]) -> list[str]:
    """§5.2 Election Safety: at most one leader in any term."""
    leaders: dict[int, set[NodeId]] = {}
    for m in history:
        if m.state is State.LEADER:
            leaders.setdefault(m.current_term, set()).add(m.id)
    return [
        f"term {term} had {len(ids)} leaders: {sorted(ids)}"
        for term, ids in sorted(leaders.items())
        if len(ids) > 1
    ]


def terms_never_decrease(history: Iterable[RaftMetrics]) -> list[str]:
    """§5.1: a node's current term only grows (across restarts too: it is durable)."""
    last: dict[NodeId, int] = {}
    problems = []
    for m in history:
        if m.current_term < last.get(m.id, 0):
            problems.append(f"node {m.id} went from term {last[m.id]} back to {m.current_term}")
        last[m.id] = max(last.get(m.id, 0), m.current_term)
    return problems


def indexes_never_decrease(history: Iterable[RaftMetrics]) -> list[str]:
    """§5.3, §5.4: within one run of a node its commit index, last applied index and
    snapshot index never decrease (a run ends with a SHUTDOWN push: the node's own, or the
    test cluster's for a node it crashed; a restarted node may start lower, and the storage
    checks say whether it lost anything)."""
    names = ("commit index", "last applied", "snapshot index")
    last: dict[NodeId, tuple[int, ...]] = {}
    problems = []
    for m in history:
        now = (m.commit_index, m.last_applied, m.snapshot_index)
        before = last.get(m.id, now)
        for name, was, is_ in zip(names, before, now, strict=True):
            if is_ < was:
                problems.append(f"node {m.id}: {name} went from {was} back to {is_} in one run")
        if m.state is State.SHUTDOWN:
            last.pop(m.id, None)
        else:
            last[m.id] = tuple(map(max, before, now))
    return list(dict.fromkeys(problems))  # a value held for several pushes: said once


def votes_never_change(hard_states: Mapping[NodeId, Sequence[HardState]]) -> list[str]:
    """§5.2 (Figure 2): a node votes at most once per term, and its term never decreases."""
    problems = []
    for node_id, states in sorted(hard_states.items()):
        votes: dict[int, NodeId] = {}
        term = 0
        for hs in states:
            if hs.current_term < term:
                problems.append(f"node {node_id} persisted term {hs.current_term} after {term}")
            term = max(term, hs.current_term)
            if hs.voted_for is None:
                continue
            first = votes.setdefault(hs.current_term, hs.voted_for)
            if first != hs.voted_for:
                problems.append(
                    f"node {node_id} voted for {first} and then {hs.voted_for} in term "
                    f"{hs.current_term}"
                )
    return problems


def log_matching(
    logs: Mapping[NodeId, Sequence[Entry]], snapshots: Mapping[NodeId, LogId | None] | None = None
) -> list[str]:
    """§5.3 Log Matching: if two logs hold an entry with the same index and term, they are
    identical in all entries up to that index (that both still hold: a log may start after
    a snapshot). A node's snapshot (``snapshots``: its last included id) counts as the
    entry it ends with, compared by term."""
    problems = []
    by_index = {n: {e.index: e for e in log} for n, log in logs.items()}
    terms = {n: {i: e.term for i, e in entries.items()} for n, entries in by_index.items()}
    for node_id, last in (snapshots or {}).items():
        if last is not None and last.index > 0 and node_id in terms:
            terms[node_id].setdefault(last.index, last.term)
    ids = sorted(logs)
    for pos, a in enumerate(ids):
        for b in ids[pos + 1 :]:
            ta, tb = terms[a], terms[b]
            common = sorted(ta.keys() & tb.keys(), reverse=True)
            last_same = next((i for i in common if ta[i] == tb[i]), None)
            if last_same is None:
                continue
            for i in sorted(i for i in common if i <= last_same):
                ea, eb = by_index[a].get(i), by_index[b].get(i)
                if ta[i] != tb[i] or (
                    ea is not None and eb is not None and not same(ea, eb, dict_order=False)
                ):  # NaN-aware, types kept
                    problems.append(
                        f"nodes {a} and {b} agree on entry {last_same} (term "
                        f"{ta[last_same]}) but differ at index {i}: term {ta[i]} vs {tb[i]}"
                    )
                    break
    return problems


def logs_well_formed(
    logs: Mapping[NodeId, Sequence[Entry]], snapshots: Mapping[NodeId, LogId | None] | None = None
) -> list[str]:
    """Each log continues its snapshot (or starts at index 1 without one) and holds
    consecutive indexes with terms that never decrease (§5.3: a leader appends entries of
    its own term after those it holds)."""
    problems = []
    for node_id, log in sorted(logs.items()):
        if not log:
            continue
        last = (snapshots or {}).get(node_id)
        start = last.index + 1 if last is not None else 1
        if log[0].index > start:
            problems.append(f"node {node_id}'s log starts at {log[0].index}, not {start}")
        if last is not None and log[0].index == start and log[0].term < last.term:
            problems.append(f"node {node_id}'s log goes on from snapshot {last} at {log[0].log_id}")
        for before, entry in itertools.pairwise(log):
            if entry.index != before.index + 1 or entry.term < before.term:
                problems.append(f"node {node_id}'s log holds {entry.log_id} after {before.log_id}")
                break
    return problems


def state_machine_safety(applied: Mapping[NodeId, Sequence[tuple[int, Any]]]) -> list[str]:
    """§5.4.3 State Machine Safety: no two nodes apply different entries at one index; and
    each node applies indexes 1, 2, 3, ... in order, each once."""
    problems = []
    for node_id, history in sorted(applied.items()):
        for pos, (index, _) in enumerate(history):
            if index != pos + 1:
                problems.append(f"node {node_id} applied index {index} in position {pos + 1}")
                break
    ids = sorted(applied)
    for pos, a in enumerate(ids):
        for b in ids[pos + 1 :]:
            for x, y in zip(applied[a], applied[b], strict=False):
                if not same(x, y, dict_order=False):
                    problems.append(f"nodes {a} and {b} applied different entries: {x} vs {y}")
                    break
    return problems


def check_cluster_data(
    history: Iterable[RaftMetrics],
    data: Mapping[NodeId, MemStoreData],
    hard_states: Mapping[NodeId, Sequence[HardState]],
) -> list[str]:
    """Every monitor over a :class:`~pykka_raft.testing.Cluster`'s recorded state."""
    history = list(history)
    applied = {n: list(getattr(d.state_machine, "applied", ())) for n, d in data.items()}
    snapshots = {n: _last_included(d.snapshot_meta) for n, d in data.items()}
    logs = {n: list(d.log) for n, d in data.items()}
    return [
        *election_safety(history),
        *terms_never_decrease(history),
        *indexes_never_decrease(history),
        *votes_never_change(hard_states),
        *log_matching(logs, snapshots),
        *logs_well_formed(logs, snapshots),
        *state_machine_safety(applied),
    ]


def state_machines_agree(dumps: Mapping[NodeId, StorageDump]) -> list[str]:
    """§5.4.3 State Machine Safety, on any storage: nodes that applied through the same
    index hold equal state machines, with equal types (NaN equal to NaN; dict order
    aside), as their dumps show."""
    problems = []
    by_applied: dict[int, list[NodeId]] = {}
    for node_id, dump in sorted(dumps.items()):
        by_applied.setdefault(dump.last_applied, []).append(node_id)
    for index, ids in sorted(by_applied.items()):
        first = ids[0]
        for other in ids[1:]:
            a, b = dumps[first].state_machine, dumps[other].state_machine
            where = difference(a, b)
            if where is not None:
                problems.append(
                    f"nodes {first} and {other} applied through index {index} but hold "
                    f"different state machines: {where}"
                )
    return problems


def check_dumps(
    history: Iterable[RaftMetrics],
    dumps: Mapping[NodeId, StorageDump],
    hard_states: Mapping[NodeId, Sequence[HardState]],
) -> list[str]:
    """Every monitor over what any storage reports (:class:`~pykka_raft.storage.DumpStorage`):
    the metrics history, the hard states seen persisted, the logs, and the state machines
    (index by index where a state machine's dump is an
    :class:`~pykka_raft.testing.plugs.AppliedHistory`)."""
    history = list(history)
    applied = {
        n: list(d.state_machine.applied)
        for n, d in dumps.items()
        if isinstance(d.state_machine, AppliedHistory)
    }
    snapshots = {n: _last_included(d.snapshot) for n, d in dumps.items()}
    logs = {n: list(d.log) for n, d in dumps.items()}
    return [
        *election_safety(history),
        *terms_never_decrease(history),
        *indexes_never_decrease(history),
        *votes_never_change(hard_states),
        *log_matching(logs, snapshots),
        *logs_well_formed(logs, snapshots),
        *state_machine_safety(applied),
        *state_machines_agree(dumps),
    ]
