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


def _session_settings(node: KvNode) -> dict[str, Any]:
    """The session settings this node applies (the cluster's), and its configuration's."""
    timeout, most = node.state_machine.session_settings()
    return {
        "session_timeout": timeout,
        "max_sessions": most,
        "configured": {
            "session_timeout": node.config.session_timeout,
            "max_sessions": node.config.max_sessions,
        },
    }


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
        "sessions": _session_settings(node),
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
        replication=[
            {
                "node_id": r.node_id,
                "matched": r.matched,
                "lag": r.lag,
                "snapshotting": r.snapshotting,
            }
            for r in sorted(m.replication, key=lambda r: r.node_id)
        ],
        counters={
            "elections_started": m.elections_started,
            "writes_refused_busy": m.writes_refused_busy,
            "writes_refused_application": m.writes_refused_application,
            "snapshots_sent": m.snapshots_sent,
            "snapshots_installed": m.snapshots_installed,
            "snapshots_refused": m.snapshots_refused,
            "leader_changes": node.view.leader_changes_total,
        },
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
    member has its role (``voter`` / ``learner``), its status figures, ``matched`` and
    ``lag`` from the leader's view of it (the highest index it holds, and how many
    entries of the leader's log it lacks; 0 for the leader itself), and ``error`` when
    unreachable. Without a leader's view, ``lag`` is the entries the most recent
    authority committed that the member has not applied.
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
    progress: dict[int, Mapping[str, Any]] = {
        int(r["node_id"]): r for r in (leader or {}).get("replication") or ()
    }
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
        seen = progress.get(node_id)
        if seen is not None:
            row["matched"], row["lag"] = seen["matched"], seen["lag"]
            row["snapshotting"] = bool(seen.get("snapshotting"))
        elif leader is not None and node_id == leader["node_id"]:
            row["matched"], row["lag"] = leader.get("last_log_index"), 0
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
            if "lag" not in row:
                commit = (authority or {}).get("commit_index")
                row["lag"] = (
                    max(0, commit - applied)
                    if isinstance(commit, int) and isinstance(applied, int)
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


def status_table(view: dict[str, Any]) -> str:
    """The ``status`` command's table: one line per member. ``MATCHED`` and ``LAG`` are the
    leader's view of each member (the highest index it holds, the entries it lacks)."""
    columns = (
        "ID",
        "ROLE",
        "STATE",
        "TERM",
        "LEADER",
        "LAST LOG",
        "COMMIT",
        "APPLIED",
        "MATCHED",
        "LAG",
        "URL",
    )
    rows = [columns]
    for m in view["members"]:

        def cell(name: str, member: dict[str, Any] = m) -> str:
            value = member.get(name)
            return "-" if value is None else str(value)

        rows.append(
            (
                str(m["id"]),
                m["role"],
                m.get("state") or "-",
                cell("term"),
                cell("leader_id"),
                cell("last_log_index"),
                cell("commit_index"),
                cell("last_applied"),
                cell("matched"),
                cell("lag"),
                m.get("url") or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    leader = view.get("leader_id")
    head = (
        f"leader: node {leader}, term {view.get('term')}"
        if leader is not None
        else "leader: none known"
    )
    tail = [f"error: {m['id']}: {m['error']}" for m in view["members"] if m.get("error")]
    tail += [f"error: {u}: did not answer" for u in view.get("unreachable") or ()]
    return "\n".join([head, *lines, *tail])
