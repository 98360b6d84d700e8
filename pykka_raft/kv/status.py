"""What a node reports about itself (``GET /v1/status``) and how many nodes' reports make
one view of the cluster (``GET /v1/cluster``, the status page and the ``status`` command).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from pykka_raft.kv.config import http_url
from pykka_raft.kv.node import KvNode


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(
        timespec="milliseconds"
    )


def node_status(node: KvNode) -> dict[str, Any]:
    """This node's own view: role, term, indexes, membership, directory, leader changes."""
    m = node.view.latest()
    directory = node.directory.known()
    out: dict[str, Any] = {
        "node_id": node.node_id,
        "url": http_url(node.http_address),
        "nodes": {
            str(n): {"http": r.get("http"), "raft": r.get("raft")}
            for n, r in sorted(directory.items())
        },
        "leader_changes": [
            {"at": _iso(c.at), "term": c.term, "leader_id": c.leader_id}
            for c in node.view.leader_changes()
        ],
    }
    if m is None:
        out.update(state="starting", term=None, leader_id=None, leader_url=None)
        return out
    config = m.membership_config
    out.update(
        state=m.state.value,
        term=m.current_term,
        leader_id=m.current_leader,
        leader_url=(
            node.directory.http_url(m.current_leader) if m.current_leader is not None else None
        ),
        last_log_index=m.last_log_index,
        commit_index=m.commit_index,
        last_applied=m.last_applied,
        snapshot_index=m.snapshot_index,
        membership={
            "voters": sorted(config.members),
            "voters_after": (
                sorted(config.members_after_consensus)
                if config.members_after_consensus is not None
                else None
            ),
            "learners": sorted(m.non_voters),
            "joint": config.is_in_joint_consensus,
        },
    )
    return out


def _members(status: Mapping[str, Any]) -> tuple[set[int], set[int]]:
    membership = status.get("membership") or {}
    voters = set(membership.get("voters") or ()) | set(membership.get("voters_after") or ())
    return voters, set(membership.get("learners") or ())


def gather(
    seeds: Mapping[str, dict[str, Any] | str], fetch: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """Build the cluster view from some nodes' statuses, fetching the other members'.

    Args:
        seeds: base URL -> that node's status, or an error message if it did not answer.
        fetch: gets a node's status from its base URL; raises on failure (the message is
            shown for that node).

    Returns: ``{"leader_id", "term", "members": [...], "leader_changes": [...]}``; every
    member has its role (``voter`` / ``learner``), its status figures, ``lag`` (entries
    the leader has committed that it has not applied), and ``error`` when unreachable.
    """
    by_id: dict[int, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    urls: dict[int, str] = {}
    pending = dict(seeds)
    fetched: set[str] = set()
    while pending:
        url, result = pending.popitem()
        fetched.add(url)
        if isinstance(result, str):
            errors[url] = result
            continue
        by_id[int(result["node_id"])] = result
        urls.setdefault(int(result["node_id"]), url)
        for node, record in (result.get("nodes") or {}).items():
            http = record.get("http") if isinstance(record, Mapping) else None
            if http:
                urls.setdefault(int(node), http_url(http))
        voters, learners = _members(result)
        for node_id in voters | learners:
            target = urls.get(node_id)
            if target and node_id not in by_id and target not in fetched and target not in pending:
                try:
                    pending[target] = fetch(target)
                except Exception as exc:
                    pending[target] = f"{type(exc).__name__}: {exc}"
    # The leader with the highest term is the authority on membership and commit.
    live = [s for s in by_id.values() if s.get("term") is not None]
    leaders = [s for s in live if s.get("state") == "leader"]
    leader = max(leaders, key=lambda s: s["term"]) if leaders else None
    authority = leader or (max(live, key=lambda s: s["term"]) if live else None)
    voters, learners = _members(authority) if authority else (set(), set())
    ids = sorted(voters | learners | set(by_id))
    members = []
    for node_id in ids:
        status = by_id.get(node_id)
        member_url = urls.get(node_id)
        row: dict[str, Any] = {
            "id": node_id,
            "role": "voter" if node_id in voters else "learner" if node_id in learners else "none",
            "url": member_url,
        }
        if status is None:
            fallback = "address unknown" if member_url is None else "no answer"
            row["error"] = errors.get(member_url, fallback) if member_url else fallback
            row["state"] = "unreachable"
        else:
            for field in (
                "state",
                "term",
                "leader_id",
                "last_log_index",
                "commit_index",
                "last_applied",
                "snapshot_index",
            ):
                row[field] = status.get(field)
            applied = status.get("last_applied")
            row["lag"] = (
                max(0, leader["commit_index"] - applied)
                if leader is not None and isinstance(applied, int)
                else None
            )
        members.append(row)
    changes = (leader or authority or {}).get("leader_changes") or []
    return {
        "leader_id": leader["node_id"] if leader else None,
        "term": leader["term"] if leader else (authority or {}).get("term"),
        "members": members,
        "leader_changes": changes,
        "unreachable": sorted(u for u in errors if u not in urls.values()),
    }
