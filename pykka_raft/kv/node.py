"""One key-value node: a Raft node on its storage and network, with what the HTTP layer
reads from it (latest metrics, recent leader changes, the node directory)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pykka

from pykka_raft import (
    CasResult,
    ClientPayload,
    ClientRead,
    CompareAndSet,
    ForwardToLeader,
    Get,
    NodeId,
    Put,
    Raft,
    RaftError,
    RaftMetrics,
    RaftRef,
    ResponseMode,
    State,
)
from pykka_raft.kv.config import NodeConfig, endpoint, http_url
from pykka_raft.kv.metrics_view import MetricsView
from pykka_raft.kv.runtime import (
    LocalNetwork,
    NetworkHandle,
    StorageHandle,
    open_network,
    open_storage,
)
from pykka_raft.kv.store import (
    SETTINGS_KEY,
    KvStateMachine,
    encode_value,
    node_key,
    settings_record,
)

logger = logging.getLogger("pykka_raft.kv")

RETRY_PAUSE = 1.0
"""Seconds a new leader waits before it tries again to record the directory and the
session settings, after a write of them failed while it still led."""


class NodeDirectory:
    """Where each node's HTTP API and Raft endpoint are.

    Two sources: the replicated directory in the state machine (written when a node is
    added and by every new leader for itself) and this node's own configuration (itself
    and its peers). The replicated record wins, since it is what the cluster agreed on.
    """

    def __init__(self, config: NodeConfig, state_machine: KvStateMachine) -> None:
        self._lock = threading.Lock()
        self._static: dict[NodeId, dict[str, Any]] = {
            p.node_id: {"http": p.http_address, "raft": p.raft_address} for p in config.peers
        }
        self._static[config.node_id] = {"http": config.http_address, "raft": config.raft_address}
        self._state_machine = state_machine

    def set_static(self, node_id: NodeId, http: str | None, raft: str | None = None) -> None:
        """Record a node's addresses as this node's configuration (or ``init``) names
        them; a missing one keeps what was known."""
        with self._lock:
            record = self._static.setdefault(node_id, {"http": None, "raft": None})
            if http is not None:
                record["http"] = http
            if raft is not None:
                record["raft"] = raft

    def static(self) -> dict[NodeId, dict[str, Any]]:
        """The records this node was given (configuration, ``init``), not replicated."""
        with self._lock:
            return {n: dict(r) for n, r in self._static.items()}

    def configured(self) -> tuple[NodeId, ...]:
        """The nodes this node's own configuration names (itself and its peers)."""
        with self._lock:
            return tuple(sorted(self._static))

    def known(self) -> dict[NodeId, dict[str, Any]]:
        """Every known node: id -> ``{"http": "host:port", "raft": ...}``."""
        with self._lock:
            out = {n: dict(r) for n, r in self._static.items()}
        for node_id, record in self._state_machine.node_records().items():
            out[node_id] = {"http": record.get("http"), "raft": record.get("raft")}
        return out

    def http_address(self, node_id: NodeId) -> str | None:
        """The HTTP address of ``node_id``, if known."""
        record = self.known().get(node_id)
        http = record.get("http") if record else None
        return http if isinstance(http, str) else None

    def http_url(self, node_id: NodeId) -> str | None:
        """The base URL of ``node_id``'s HTTP API, if known."""
        address = self.http_address(node_id)
        return http_url(address) if address else None


class KvNode:
    """A Raft node with its storage and network, made by :mod:`pykka_raft.kv.runtime`.

    :meth:`start` opens the storage and the network, starts the Raft node, and starts a
    small thread that, whenever this node becomes leader, records its own addresses in the
    replicated directory (so followers can redirect clients to it), and those of the
    members it was given at ``init`` that the directory lacks.
    """

    def __init__(
        self,
        config: NodeConfig,
        local: LocalNetwork | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.http_address = config.http_address
        self.raft_address = config.raft_address
        # The library's defaults until the log holds a settings record (then its values):
        # the same on every node whatever each one's configuration says. This node's own
        # settings reach the cluster as a record, written when it leads (_records_to_write).
        self.state_machine = KvStateMachine()
        self.view = MetricsView(config.node_id)
        self.directory = NodeDirectory(config, self.state_machine)
        self._local = local
        self._request_timeout = request_timeout or config.http.request_timeout
        self._raft: RaftRef | None = None
        self._storage: StorageHandle | None = None
        self._network: NetworkHandle | None = None
        self._stopping = threading.Event()
        self._registrar: threading.Thread | None = None

    @property
    def raft(self) -> RaftRef:
        """The Raft node's ref (after :meth:`start`)."""
        if self._raft is None:
            raise RuntimeError("the node has not been started")
        return self._raft

    @property
    def has_raft(self) -> bool:
        """True once :meth:`start` has started the Raft node."""
        return self._raft is not None

    @property
    def stopped_on_its_own(self) -> bool:
        """True once the Raft node has stopped without :meth:`stop`: a fatal failure (its
        storage failed, say) ended it. ``serve`` then exits (docs/kv-service.md)."""
        raft = self._raft
        return raft is not None and not self._stopping.is_set() and not raft.is_alive()

    @property
    def started(self) -> bool:
        """True once the Raft node has loaded its state (it publishes metrics)."""
        return self.view.latest() is not None

    def start(self, http_address: str | None = None) -> None:
        """Open storage and network and start the Raft node.

        Args:
            http_address: the address the HTTP server actually bound (when the
                configuration asked for port 0).
        """
        if http_address is not None:
            self.http_address = http_address
        # The network first: its keys and its port are checked before the data directory
        # is made (and tied to this node id), and one this start made is removed again
        # if the start fails before the Raft node runs.
        network = open_network(self.config, self._local)
        try:
            storage = open_storage(self.config, self.state_machine)
        except BaseException:
            network.close()
            raise
        if network.address is not None:
            self.raft_address = network.address
        self.directory.set_static(self.node_id, self.http_address, self.raft_address)
        try:
            self._raft = Raft.start(
                self.node_id, self.config.raft, network.ref, storage.ref, self.view
            )
        except BaseException:
            storage.discard()
            network.close()
            raise
        self._network, self._storage = network, storage
        self._network.attach(self.node_id, self._raft)
        self._registrar = threading.Thread(
            target=self._register_as_leader, name=f"kv-registrar-{self.node_id}", daemon=True
        )
        self._registrar.start()

    def network_metrics(self) -> Any:
        """The TCP network's ``NetworkMetrics`` (``None`` on the local network)."""
        return None if self._network is None else self._network.metrics()

    def stop(self) -> None:
        """Stop the Raft node (it answers what it still holds with ``ShuttingDown``), then
        close storage and network."""
        self._stopping.set()
        self.view.poke()
        if self._network is not None:
            self._network.detach()
        if self._raft is not None:
            self._raft.stop()
        if self._registrar is not None:
            self._registrar.join(timeout=self._request_timeout + 1)
        if self._storage is not None:
            self._storage.close()
        if self._network is not None:
            self._network.close()

    def _warn_if_moved(self) -> None:
        """Log a WARNING if the membership this node started with records another Raft
        address for it: its peers send there and never reach it (port 0 on a restart) until
        the ``move`` command records the new one.
        An address is this node's if it names what the node was told to listen on (a host
        name, say) or what it bound (the address the host resolved to)."""
        first = self.view.wait_for(lambda m: True if self._stopping.is_set() else m, None)
        if not isinstance(first, RaftMetrics):
            return
        recorded = self._recorded_elsewhere(first)
        if recorded is not None:
            logger.warning(
                "node %s listens for Raft on %s, but the cluster's membership records it at "
                "%s: its peers will not reach it. Restart it on %s, or record its new "
                "addresses: pykka-raft-kv --url <a member's URL> move --id %s --http %s "
                "--raft %s (POST /v1/admin/move)",
                self.node_id,
                self.raft_address,
                recorded,
                recorded,
                self.node_id,
                self.http_address,
                self.raft_address,
            )

    def _register_as_leader(self) -> None:
        self._warn_if_moved()
        done_term = -1

        def leading(m: RaftMetrics | None) -> RaftMetrics | bool | None:
            if self._stopping.is_set():
                return True
            if m is not None and m.state is State.LEADER and m.current_term != done_term:
                return m
            return None

        while True:
            metrics = self.view.wait_for(leading, timeout=None)
            if self._stopping.is_set() or not isinstance(metrics, RaftMetrics):
                return
            if self._caught_up() and all(
                self._write_record(key, *write)
                for key, write in self._records_to_write(metrics).items()
            ):
                done_term = metrics.current_term
            else:  # then again while it leads this term (else in the next term it leads)
                self._stopping.wait(RETRY_PAUSE)

    def _recorded_elsewhere(self, metrics: RaftMetrics) -> str | None:
        """The Raft address the membership records for this node if it is not one this
        node listens on (else ``None``)."""
        recorded = metrics.membership_config.address_of(self.node_id)
        own = {endpoint(a) for a in (self.config.raft_address, self.raft_address) if a}
        if recorded is None or self.raft_address is None or endpoint(recorded) in own:
            return None
        return recorded

    def _caught_up(self) -> bool:
        """Wait until this node has applied every entry committed before it asked (a
        ``READ_INDEX`` read): what it then reads locally is the cluster's current
        directory and settings, not an earlier one."""
        try:
            self.raft.ask(ClientRead(Get(SETTINGS_KEY)), timeout=self._request_timeout)
            return True
        except (RaftError, pykka.Timeout, pykka.ActorDeadError) as exc:
            if not self._stopping.is_set() and not isinstance(exc, ForwardToLeader):
                logger.warning("could not catch up before recording the directory: %s", exc)
            return False

    def _records_to_write(self, metrics: RaftMetrics) -> dict[str, tuple[str, str, bool]]:
        """Key -> ``(record, what it is, only if absent)`` of what this new leader writes:
        its own addresses if the directory holds others (unless the membership records
        another Raft address for it), those of members the directory
        lacks but this node was given (at ``init``; only while it still lacks them, so
        that a ``move`` recorded meanwhile stays), and its session settings if the
        cluster's differ."""
        out: dict[str, tuple[str, str, bool]] = {}
        settings = settings_record(self.config.session_timeout, self.config.max_sessions)
        recorded = self.state_machine.local_get(SETTINGS_KEY)
        if recorded != settings:  # first: the others can wait, entries may not
            if recorded is not None:
                logger.warning(
                    "the cluster's session settings are %s, this node's configuration says "
                    "%s: this node leads now and records its own; give every node the same "
                    "session_timeout and max_sessions",
                    recorded,
                    settings,
                )
            out[SETTINGS_KEY] = (settings, "the cluster's session settings", False)
        own = encode_value({"http": self.http_address, "raft": self.raft_address})
        # Not where the membership records another Raft address for it (it was moved, and
        # restarted on its old addresses): ``move`` changes a node's addresses, not this.
        if (
            self.state_machine.local_get(node_key(self.node_id)) != own
            and self._recorded_elsewhere(metrics) is None
        ):
            out[node_key(self.node_id)] = (own, f"the addresses of node {self.node_id}", False)
        members = metrics.voters | metrics.non_voters
        replicated = self.state_machine.node_records()
        for node_id, record in sorted(self.directory.static().items()):
            if node_id in members and node_id not in replicated and record.get("http"):
                what = f"the addresses of node {node_id}"
                out.setdefault(node_key(node_id), (encode_value(record), what, True))
        return out

    def _write_record(self, key: str, record: str, what: str, if_absent: bool) -> bool:
        command = CompareAndSet(key, None, record) if if_absent else Put(key, record)
        try:
            response = self.raft.ask(
                ClientPayload.new(command, ResponseMode.APPLIED),
                timeout=self._request_timeout,
            )
            if isinstance(response.data, CasResult) and not response.data.swapped:
                logger.info("kept %s recorded meanwhile: %s", what, response.data.previous)
            else:
                logger.info("recorded %s: %s", what, record)
            return True
        except ForwardToLeader:
            return False  # no longer leader; the next leader records itself
        except (RaftError, pykka.Timeout, pykka.ActorDeadError) as exc:
            if not self._stopping.is_set():
                logger.warning("could not record %s: %s", what, exc)
            return False
