"""What a node logs when its metrics change, and which of their fields are pushed to the
metrics subscriber at once (the rest is coalesced)."""

from __future__ import annotations

import logging
from typing import Any

from pykka_raft.logs import NODE
from pykka_raft.metrics import RaftMetrics
from pykka_raft.types import NodeId

logger = logging.getLogger(NODE)


def headline(m: RaftMetrics) -> tuple[Any, ...]:
    """What is pushed at once when it changes (the rest is coalesced)."""
    return (
        m.state,
        m.current_term,
        m.current_leader,
        m.membership_config,
        m.snapshot_index,
        m.snapshots_sent,
        m.snapshots_installed,
        m.snapshots_refused,
    )


def log_changes(node_id: NodeId, last: RaftMetrics | None, now: RaftMetrics) -> None:
    """Log what changed between the metrics last logged and ``now``: role, term or leader,
    the snapshot, a refused snapshot, a completed transfer."""
    if last is None or (last.state, last.current_term, last.current_leader) != (
        now.state,
        now.current_term,
        now.current_leader,
    ):
        leader = f", leader {now.current_leader}" if now.current_leader is not None else ""
        logger.info(
            "node %s: %s in term %s%s",
            node_id,
            now.state.value,
            now.current_term,
            leader,
        )
    if last is not None and now.snapshot_index != last.snapshot_index:
        how = "installed" if now.snapshots_installed > last.snapshots_installed else "created"
        logger.info("node %s: snapshot through index %s %s", node_id, now.snapshot_index, how)
    if last is not None and now.snapshots_refused > last.snapshots_refused:
        logger.warning(
            "node %s: refused a received snapshot whose data does not match its digest; "
            "the leader sends it again",
            node_id,
        )
    if last is not None and now.snapshots_sent > last.snapshots_sent:
        logger.info("node %s: a snapshot transfer to a follower completed", node_id)
