"""The admin endpoints: forming a cluster, changing its membership, snapshots and
leadership transfer (``POST /v1/admin/...``).

Membership changes and transfers are made by the leader: a follower redirects them. A
request that makes no sense (adding a node twice, removing every voter) is refused with a
409 and changes nothing.
"""

from __future__ import annotations

from typing import Any

import pykka

from pykka_raft import (
    ConfigChangeResponse,
    Get,
    InitWithConfig,
    InitWithConfigError,
    MembershipConfig,
    NodeNotLeader,
    ProposeConfigChange,
    Put,
    RaftError,
    RaftMetrics,
    ShuttingDown,
    SnapshotMeta,
    SnapshotsUnsupported,
    TransferFailed,
    TransferLeadership,
    TransferLeadershipResponse,
    TriggerSnapshot,
)
from pykka_raft.kv.config import endpoint
from pykka_raft.kv.gateway import RaftGateway
from pykka_raft.kv.store import encode_value, node_key
from pykka_raft.kv.wsgi import HttpError, Request, address_field, json_object, node_id_field


class AdminApi:
    """The admin handlers of one node."""

    def __init__(self, gateway: RaftGateway) -> None:
        self.gateway = gateway
        self.node = gateway.node
        self.settings = gateway.settings

    def init(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/init``: form a cluster from pristine nodes (send it to each).

        The body may name the ``members`` (default: this node and its configured peers)
        and give ``nodes``: ``{"<id>": {"raft": "host:port", "http": "host:port"}}``, the
        addresses of members this node's configuration does not name.
        """
        self.gateway.started()
        body = json_object(request.optional_json(), {"members", "nodes"}, set())
        directory = self.node.directory
        records = _records(body.get("nodes"))
        members = body.get("members", sorted({*directory.configured(), *records}))
        if not isinstance(members, list) or not members:
            raise HttpError("bad_request", "members must be a non-empty list of node ids")
        ids = sorted({node_id_field(n, "members[]") for n in members})
        known = directory.known()
        for node_id, record in records.items():  # as set_static will record them
            given = {k: v for k, v in record.items() if v is not None}
            known[node_id] = {**known.get(node_id, {}), **given}
        addresses = {n: known[n]["raft"] for n in ids if n in known and known[n].get("raft")}
        missing = [n for n in ids if n not in addresses]
        if self.node.config.network == "tcp" and missing:
            raise HttpError(
                "bad_request",
                f"the Raft address of node(s) {missing} is not known here: give it in "
                '"nodes" ({"<id>": {"raft": "host:port", "http": "host:port"}}) or as a '
                "peer in this node's configuration",
            )
        # The records are kept once the node may have formed the cluster with them (a
        # refused init changes nothing).
        try:
            self.node.raft.ask(
                InitWithConfig(ids, addresses), timeout=self.settings.request_timeout
            )
        except pykka.Timeout:
            self._keep(records)
            raise HttpError("outcome_unknown", "no answer to InitWithConfig in time") from None
        except InitWithConfigError:
            raise HttpError(
                "not_pristine",
                "this node already belongs to a cluster (or another membership); init only "
                "forms a new cluster from pristine nodes",
            ) from None
        except (ShuttingDown, pykka.ActorDeadError) as exc:
            raise HttpError("shutting_down", f"the node is stopping: {exc}") from None
        self._keep(records)
        return 200, {"node_id": self.node.node_id, "members": ids}

    def _keep(self, records: dict[int, dict[str, str | None]]) -> None:
        for node_id, record in records.items():
            self.node.directory.set_static(node_id, record.get("http"), record.get("raft"))

    def _addresses(self, body: dict[str, Any], need_http: bool) -> tuple[str | None, str | None]:
        """The ``http_address`` and ``raft_address`` of a body, checked: each a reachable
        ``host:port``, the Raft one required on a TCP network."""
        http = body.get("http_address")
        if http is not None or need_http:
            http = address_field(http, "http_address")
        raft = body.get("raft_address")
        if raft is not None:
            raft = address_field(raft, "raft_address")
        elif self.node.config.network == "tcp":
            raise HttpError("bad_request", "raft_address is required on a TCP network")
        return http, raft

    def _check_not_taken(
        self, node_id: int, addresses: tuple[str | None, ...], m: RaftMetrics
    ) -> None:
        """Refuse ``addresses`` for ``node_id`` if one is another member's, in the
        directory or in the membership (a removed node's may be reused)."""
        members = m.voters | m.non_voters
        directory = self.node.directory.known()
        in_membership = dict(m.membership_config.addresses)
        for other in sorted(set(directory) | set(in_membership)):
            recorded = (*directory.get(other, {}).values(), in_membership.get(other))
            theirs = {endpoint(a) for a in recorded if a}
            taken = [a for a in addresses if a is not None and endpoint(a) in theirs]
            if other != node_id and other in members and taken:
                raise HttpError(
                    "bad_request",
                    f"{taken[0]} is an address of member {other}; give node {node_id}'s own",
                )

    def _add(self, request: Request, learner: bool) -> tuple[int, Any]:
        body = json_object(
            request.json(), {"id", "http_address", "raft_address"}, {"id", "http_address"}
        )
        node_id = node_id_field(body["id"])
        http, raft = self._addresses(body, need_http=True)
        m = self.gateway.leader_metrics(request)
        if node_id in m.voters or (learner and node_id in m.non_voters):
            raise HttpError("noop", f"node {node_id} is a member already; nothing changed")
        self._check_not_taken(node_id, (http, raft), m)
        record = encode_value({"http": http, "raft": raft})
        if self.node.state_machine.local_get(node_key(node_id)) != record:
            self.gateway.submit(request, Put(node_key(node_id), record))
        addresses = {node_id: raft} if raft else {}
        change = (
            ProposeConfigChange(add_non_voters=[node_id], addresses=addresses)
            if learner
            else ProposeConfigChange(add_members=[node_id], addresses=addresses)
        )
        return 200, _membership(self.gateway.change(request, change))

    def add_voter(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/voters``: add a node as a voter (it catches up first)."""
        return self._add(request, learner=False)

    def add_learner(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/learners``: add a node as a learner (never votes)."""
        return self._add(request, learner=True)

    def move(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/move``: record a member's new addresses (``etcdctl member
        update``): its HTTP and Raft addresses in the replicated directory and, when the
        Raft address changed, in the membership (an address-only change, one step)."""
        body = json_object(request.json(), {"id", "http_address", "raft_address"}, {"id"})
        node_id = node_id_field(body["id"])
        http, raft = self._addresses(body, need_http=False)
        if http is None and raft is None:
            raise HttpError("bad_request", "give http_address, raft_address or both")
        if http is not None and raft is not None and endpoint(http) == endpoint(raft):
            raise HttpError("bad_request", "http_address and raft_address must differ")
        m = self.gateway.leader_metrics(request)
        members = m.voters | m.non_voters
        if node_id not in members:
            raise HttpError(
                "not_a_member",
                f"node {node_id} is not a member of this cluster; add it with "
                "POST /v1/admin/voters or /v1/admin/learners instead",
            )
        if node_id == self.node.node_id:
            self._check_own(http, raft)
        self._check_not_taken(node_id, (http, raft), m)
        known = self.node.directory.known().get(node_id, {})
        # The Raft address kept when none is given: the membership's, which is where the
        # peers send (the directory's copy may lag it, after a move cut short).
        in_membership = m.membership_config.address_of(node_id)
        kept_raft = in_membership or known.get("raft")
        record = encode_value(
            {
                "http": http if _moved(http, known.get("http")) else known.get("http"),
                "raft": raft if _moved(raft, kept_raft) else kept_raft,
            }
        )
        new_record = self.node.state_machine.local_get(node_key(node_id)) != record
        new_raft = _moved(raft, in_membership)
        if not (new_record or new_raft):
            raise HttpError(
                "noop", f"node {node_id}'s addresses already are {record}; nothing changed"
            )
        # The membership first: a refused change (another one under way) changes nothing,
        # and a move sent again after a failure finds what is left to do.
        config, index = m.membership_config, m.last_log_index
        if new_raft:
            change = ProposeConfigChange(addresses={node_id: raft})
            try:
                response = self.gateway.change(request, change)
                config, index = response.membership, response.index
            except HttpError as exc:
                # The membership has that address already (the metrics read above lagged
                # a move just made): the directory may still need it.
                if exc.code != "noop":
                    raise
        if new_record:
            index = self.gateway.submit(request, Put(node_key(node_id), record)).index
        return 200, _members(index, config)

    def _check_own(self, http: str | None, raft: str | None) -> None:
        """Refuse to record for this node (the leader) addresses it does not listen on:
        it records its own when it is elected, and its peers reach it there. An address is
        its own if it names what it was told to listen on or what it bound."""
        node = self.node
        for given, field, addresses in (
            (http, "http_address", (node.config.http_address, node.http_address)),
            (raft, "raft_address", (node.config.raft_address, node.raft_address)),
        ):
            own = [a for a in addresses if a]
            if given is not None and own and endpoint(given) not in {endpoint(a) for a in own}:
                raise HttpError(
                    "bad_request",
                    f"{field} {given} is not where node {node.node_id}, the leader, listens "
                    f"({own[-1]}): restart it on its new addresses first (another node "
                    "then leads, or it records them itself when it is elected), then move it",
                )

    def promote(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/promote``: make a learner a voter."""
        body = json_object(request.json(), {"id"}, {"id"})
        node_id = node_id_field(body["id"])
        m = self.gateway.leader_metrics(request)
        if node_id not in m.non_voters:
            raise HttpError(
                "not_a_learner",
                f"node {node_id} is not a learner of this cluster; add it with "
                "POST /v1/admin/voters instead",
            )
        change = ProposeConfigChange(add_members=[node_id])
        return 200, _membership(self.gateway.change(request, change))

    def remove(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/remove`` with ``{"ids": [...]}``: remove nodes."""
        body = json_object(request.json(), {"ids"}, {"ids"})
        ids = body["ids"]
        if not isinstance(ids, list) or not ids:
            raise HttpError("bad_request", "ids must be a non-empty list of node ids")
        change = ProposeConfigChange(remove_members=[node_id_field(n, "ids[]") for n in ids])
        self.gateway.leader_metrics(request)
        return 200, _membership(self.gateway.change(request, change))

    def snapshot(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/snapshot``: compact this node's log now (no body, or ``{}``)."""
        json_object(request.optional_json(), set(), set())
        self.gateway.started()
        try:
            meta: SnapshotMeta | None = self.node.raft.ask(
                TriggerSnapshot(), timeout=self.settings.admin_timeout
            )
        except SnapshotsUnsupported as exc:
            raise HttpError("snapshots_unsupported", str(exc)) from None
        except (ShuttingDown, pykka.ActorDeadError) as exc:
            raise HttpError("shutting_down", f"the node is stopping: {exc}") from None
        except (RaftError, pykka.Timeout) as exc:
            raise HttpError("outcome_unknown", f"the snapshot did not finish: {exc}") from None
        out: dict[str, Any] = {"node_id": self.node.node_id, "snapshot": None}
        if meta is not None:
            out["snapshot"] = {
                "id": meta.snapshot_id,
                "index": meta.last_included.index,
                "term": meta.last_included.term,
                "size": meta.size,
            }
        return 200, out

    def backup(self, request: Request) -> tuple[int, Any]:
        """``GET /v1/admin/backup``: every key and value, from the leader, holding at least
        every write acknowledged before the request (a linearizable read first: the state
        machine has applied at least through its index when the items are copied)."""
        self.gateway.leader_metrics(request)
        _, index = self.gateway.read(request, Get(node_key(self.node.node_id)), "linearizable")
        items = self.node.state_machine.export()
        return 200, {
            "node_id": self.node.node_id,
            "index": index,
            "count": len(items),
            "items": items,
        }

    def transfer_leader(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/transfer-leader`` with ``{"id": N}`` (or no body: the most
        up-to-date voter): the leader hands over (dissertation §3.10)."""
        body = json_object(request.optional_json(), {"id"}, set())
        target = node_id_field(body["id"]) if body.get("id") is not None else None
        self.gateway.leader_metrics(request)
        try:
            response: TransferLeadershipResponse = self.node.raft.ask(
                TransferLeadership(target), timeout=self.settings.admin_timeout
            )
        except NodeNotLeader as exc:
            raise self.gateway.redirect(request, exc.leader_id) from None
        except TransferFailed as exc:
            raise HttpError("transfer_failed", str(exc), leader_id=exc.leader_id) from None
        except (ShuttingDown, pykka.ActorDeadError) as exc:
            raise HttpError(
                "outcome_unknown", f"the node stopped during the transfer: {exc}"
            ) from None
        except (RaftError, pykka.Timeout) as exc:
            raise HttpError(
                "outcome_unknown",
                f"the transfer did not answer ({exc or 'timeout'}); read GET /v1/cluster",
            ) from None
        return 200, {
            "leader_id": response.leader_id,
            "term": response.term,
            "leader_url": self.node.directory.http_url(response.leader_id),
        }


def _records(nodes: Any) -> dict[int, dict[str, str | None]]:
    """The ``nodes`` field of ``init``: id -> ``{"raft", "http"}``, checked."""
    if nodes is None:
        return {}
    if not isinstance(nodes, dict):
        raise HttpError("bad_request", 'nodes must be an object {"<id>": {"raft", "http"}}')
    out: dict[int, dict[str, str | None]] = {}
    for key, record in nodes.items():
        if not (str(key).isascii() and str(key).isdigit()) or int(key) < 1:
            raise HttpError("bad_request", f"nodes: {key!r} is not a node id")
        record = json_object(record, {"raft", "http"}, set())
        out[int(key)] = {
            field: address_field(record[field], f"nodes.{key}.{field}")
            if record.get(field) is not None
            else None
            for field in ("raft", "http")
        }
    return out


def _moved(given: str | None, recorded: str | None) -> bool:
    """True if ``given`` names another endpoint than ``recorded`` (``None``: nothing
    given)."""
    return given is not None and (recorded is None or endpoint(given) != endpoint(recorded))


def _membership(response: ConfigChangeResponse) -> dict[str, Any]:
    return _members(response.index, response.membership)


def _members(index: int, config: MembershipConfig) -> dict[str, Any]:
    """The answer of a membership endpoint: ``{"index", "voters", "learners"}``."""
    voters = set(config.members) | set(config.members_after_consensus or ())
    return {
        "index": index,
        "voters": sorted(voters),
        "learners": sorted(set(config.non_voters) - voters),
    }
