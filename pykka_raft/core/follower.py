"""Replication, follower side: the AppendEntries receiver rules of Figure 2 (§5.3).

:func:`plan_append` decides what an AppendEntries means for this node's log without
changing it; the façade carries the plan out (truncate, append, commit, answer), so the
order of those steps stays in one place.
"""

from __future__ import annotations

import attrs

from pykka_raft.core.state import NodeState
from pykka_raft.errors import SafetyViolation
from pykka_raft.messages import AppendEntriesRequest, ConflictOpt, Entry
from pykka_raft.types import LogIndex


@attrs.frozen
class AppendPlan:
    """What to do with an AppendEntries whose term is current.

    Attributes:
        matched: the log holds ``prev_log_index`` with ``prev_log_term`` (else reject).
        hint: on rejection, where our log may last match the leader's.
        truncate_from: delete this index and after first (a conflict, §5.3).
        entries: entries to append after that.
        commit_to: the leader's commit index, capped at the last entry the request
            vouched for (D2: a follower must not commit past what it knows matches).
    """

    matched: bool
    hint: ConflictOpt | None = None
    truncate_from: LogIndex | None = None
    entries: tuple[Entry, ...] = ()
    commit_to: LogIndex = 0


def plan_append(node: NodeState, request: AppendEntriesRequest) -> AppendPlan:
    """§5.3 receiver steps 2-5 for ``request`` (its term is at least ours)."""
    log = node.log
    # Entries through our snapshot point are committed, so they match the leader's:
    # only a later prev_log_index needs checking (§7).
    if request.prev_log_index >= log.offset and (
        log.term_at(request.prev_log_index) != request.prev_log_term
    ):
        return AppendPlan(False, hint=conflict_hint(node, request))
    truncate_from: LogIndex | None = None
    new_entries: tuple[Entry, ...] = ()
    entries = request.entries
    if entries and entries[0].index == log.last_index + 1:
        new_entries = entries  # the common case: they extend our log
        entries = ()
    for pos, entry in enumerate(entries):
        term = log.term_at(entry.index)
        if term == entry.term or entry.index <= log.offset:
            continue  # already have it: never truncate a matching entry
        if term is not None:
            # §5.3: a conflicting entry and all that follow it are deleted.
            if entry.index <= node.commit_index:
                raise SafetyViolation(
                    f"leader {request.leader_id} sent entry {entry.log_id} that conflicts "
                    f"with committed entry {entry.index} (commit index {node.commit_index})"
                )
            truncate_from = entry.index
        new_entries = entries[pos:]
        break
    commit_to = min(request.leader_commit, request.last_index)
    return AppendPlan(True, None, truncate_from, new_entries, commit_to)


def conflict_hint(node: NodeState, request: AppendEntriesRequest) -> ConflictOpt:
    """The highest index at or below ``prev_log_index`` whose term is at most the
    request's ``prev_log_term`` (our last index if our log is shorter), with its term."""
    log = node.log
    if request.prev_log_index > log.last_index:
        return ConflictOpt(log.last_term, log.last_index)
    index = request.prev_log_index
    while index > log.offset and (log.term_at(index) or 0) > request.prev_log_term:
        index -= 1
    return ConflictOpt(log.term_at(index) or 0, index)
