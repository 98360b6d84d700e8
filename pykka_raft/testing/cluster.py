"""An in-process cluster harness: nodes on MemStore (or any storage), the router, and a
metrics hub."""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pykka

from pykka_raft.actor import RaftRef
from pykka_raft.admin import ConfigChangeResponse, InitWithConfig, ProposeConfigChange
from pykka_raft.config import Config
from pykka_raft.errors import Busy, ForwardToLeader, NodeNotLeader
from pykka_raft.messages import ClientPayload, ClientPayloadResponse, HardState, ResponseMode
from pykka_raft.metrics import MetricsHub, RaftMetrics, State
from pykka_raft.network.router import Isolate, RaftRouter, Register, Restore, Unregister
from pykka_raft.statemachine import KeyValueStateMachine
from pykka_raft.storage.memory import DumpStorage, MemStoreData, StorageDump
from pykka_raft.testing.crash import CrashableMemStore, CrashableRaft, PowerSwitch
from pykka_raft.testing.plugs import StoragePlug
from pykka_raft.types import NodeId

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.01
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that (so never
    ``None``); raise ``TimeoutError`` naming ``what`` when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class Cluster:
    """Nodes on MemStore behind one :class:`RaftRouter`, with helpers to drive them.

    Each node's :class:`MemStoreData` outlives the node, so :meth:`stop_node` then
    :meth:`start_node` models a clean restart, and :meth:`crash` then :meth:`start_node` a
    crash: the node's actors drop everything they had queued (see
    :mod:`pykka_raft.testing.crash`). ``storage(node_id, data)`` may start a custom storage
    actor and return its ref; by default each node gets a
    :class:`~pykka_raft.testing.crash.CrashableMemStore` that also records the hard states
    it persisted (:attr:`hard_states`). ``storage`` may also be a
    :class:`~pykka_raft.testing.plugs.StoragePlug`, for any storage: each node then gets a
    directory of its own (under ``directory``, or a temporary directory removed by
    :meth:`shutdown`), and a crash goes through the plug's crash hook. ``network`` may be
    a started network actor with the router's control messages (e.g. a fault-injecting
    one); by default a new :class:`RaftRouter`. With ``tcp``, RPCs still go through that
    network (its faults apply) but travel between the nodes over real loopback sockets,
    one CURVE-secured :class:`~pykka_raft.network.tcp.TcpNetwork` per node
    (:class:`~pykka_raft.network.loopback.LoopbackTcp`; needs the ``[net]`` extra).
    """

    def __init__(
        self,
        node_ids: Iterable[NodeId],
        config: Config | None = None,
        seed: int = 0,
        storage: StoragePlug | Callable[[NodeId, MemStoreData], Any] | None = None,
        hub: MetricsHub | None = None,
        network: Any | None = None,
        tcp: bool = False,
        directory: str | Path | None = None,
    ) -> None:
        self.config = config or Config(
            election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50
        )
        self.seed = seed
        self.plug = storage if isinstance(storage, StoragePlug) else None
        self.make_storage = None if isinstance(storage, StoragePlug) else storage
        self._tmp: str | None = None
        self.directory = Path(directory) if directory is not None else None
        self.router = network if network is not None else RaftRouter.start()
        self.tcp: Any = None
        if tcp:
            from pykka_raft.network.loopback import LoopbackTcp

            self.tcp = LoopbackTcp(self.config)
        self.hub = hub or MetricsHub()
        self.data: dict[NodeId, MemStoreData] = {}
        self.nodes: dict[NodeId, RaftRef] = {}
        self.storages: dict[NodeId, Any] = {}
        self.isolated: set[NodeId] = set()
        self.power: dict[NodeId, PowerSwitch] = {}
        self.hard_states: dict[NodeId, list[HardState]] = {}
        """Hard states each node's storage persisted, in order: all of them for the default
        storage, those :meth:`sample_hard_states` saw for a plugged one."""
        self.crashes = 0
        for node_id in node_ids:
            self.start_node(node_id)

    # --- lifecycle ----------------------------------------------------------------------

    def start_node(self, node_id: NodeId) -> RaftRef:
        """Start (or restart) a node on its storage data."""
        data = self.data.setdefault(node_id, MemStoreData(KeyValueStateMachine(keep_history=True)))
        power = self.power[node_id] = PowerSwitch()
        if self.plug is not None:
            storage = self.plug.start(node_id, self.place(node_id))
        elif self.make_storage is not None:
            storage = self.make_storage(node_id, data)
        else:
            storage = CrashableMemStore.start(
                data=data, power=power, hard_states=self.hard_states.setdefault(node_id, [])
            )
        rng = random.Random(self.seed * 1000 + node_id + 7919 * len(self.hub.history))
        ref = CrashableRaft.start_with_power(
            power, node_id, self.config, self.router, storage, self.hub, rng
        )
        self.storages[node_id] = storage
        self.nodes[node_id] = ref
        if self.tcp is not None:
            self.tcp.attach(node_id, ref)
            self.router.ask(Register(node_id, self.tcp.route))
        else:
            self.router.ask(Register(node_id, ref))
        return ref

    def stop_node(self, node_id: NodeId) -> None:
        """Stop a node and its storage; its data is kept for a restart."""
        self.router.ask(Unregister(node_id))
        if self.tcp is not None:
            self.tcp.detach(node_id)
        ref = self.nodes.pop(node_id)
        ref.stop()
        storage = self.storages.pop(node_id, None)
        if storage is not None:
            storage.stop()

    def crash(self, node_id: NodeId) -> None:
        """Crash a node abruptly: nothing it had queued reaches the network or storage, and
        storage writes it had not acknowledged are lost. Restart it with
        :meth:`start_node`."""
        self.power[node_id].cut()
        self.crashes += 1
        if self.plug is not None and self.plug.crash is not None:
            self.plug.crash(self.storages.pop(node_id))  # at once: the machine died now
        self.stop_node(node_id)
        # A dead machine publishes nothing; the monitors learn from this push that the
        # node's run ended (its next run may start from lower indexes).
        last = self.hub.get(node_id)
        if last is not None and last.state is not State.SHUTDOWN:
            self.hub.tell(attrs.evolve(last, state=State.SHUTDOWN))

    def place(self, node_id: NodeId) -> Path:
        """The directory of a node's plugged storage (the same across its restarts)."""
        if self.directory is None:
            self._tmp = tempfile.mkdtemp(prefix="pykka-raft-cluster-")
            self.directory = Path(self._tmp)
        path = self.directory / f"node-{node_id}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def sample_hard_states(self, timeout: float = 5.0) -> None:
        """Record each running node's hard state, from its storage's dump, if it changed
        (a plugged storage without a ``hard_states`` hook; the others record them all)."""
        if self.plug is None or self.plug.hard_states is not None:
            return
        for node_id, storage in list(self.storages.items()):
            with contextlib.suppress(Exception):  # stopping or crashed meanwhile
                dump: StorageDump = storage.ask(DumpStorage(), timeout=timeout)
                seen = self.hard_states.setdefault(node_id, [])
                if not seen or seen[-1] != dump.hard_state:
                    seen.append(dump.hard_state)

    def recorded_hard_states(self) -> dict[NodeId, list[HardState]]:
        """Every node's persisted hard states, in order (see :attr:`hard_states`)."""
        plug = self.plug
        if plug is not None and plug.hard_states is not None:
            return {n: list(plug.hard_states(n, self.place(n))) for n in sorted(self.power)}
        return {n: list(states) for n, states in self.hard_states.items()}

    def shutdown(self) -> None:
        """Stop every node and the router (and remove a temporary directory)."""
        for node_id in list(self.nodes):
            self.stop_node(node_id)
        self.router.stop()
        if self.tcp is not None:
            self.tcp.stop()
        if self.plug is not None and self.plug.close is not None:
            self.plug.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- formation and waiting ----------------------------------------------------------

    def wait_started(self, timeout: float = 10.0) -> None:
        """Wait until every running node reported metrics (it left initializing)."""
        self.hub.wait_for(lambda m: all(n in m for n in self.nodes), timeout, "every node to start")

    def initialize(self, members: Iterable[NodeId] | None = None, timeout: float = 10.0) -> None:
        """Send ``InitWithConfig(members)`` to every running member in parallel."""
        ids = sorted(members if members is not None else self.nodes)
        self.wait_started(timeout)
        futures = [
            self.nodes[n].ask(InitWithConfig(ids), block=False) for n in ids if n in self.nodes
        ]
        for future in futures:
            future.get(timeout=timeout)

    def leader(self, timeout: float = 15.0) -> NodeId:
        """Wait until the reachable running nodes agree on one leader; return its id."""

        def agreed(latest: dict[NodeId, RaftMetrics]) -> NodeId | None:
            live = [latest[n] for n in self.nodes if n not in self.isolated and n in latest]
            leaders = [m for m in live if m.state is State.LEADER]
            if len(leaders) != 1:
                return None
            leader = leaders[0]
            voters = leader.membership_config.voters()
            agree = all(
                m.current_leader == leader.id and m.current_term == leader.current_term
                for m in live
                if m.id in voters
            )
            return leader.id if agree else None

        leader_id = self.hub.wait_for(agreed, timeout, "an agreed leader")
        assert leader_id is not None
        return leader_id

    def wait_applied(
        self, index: int, nodes: Iterable[NodeId] | None = None, timeout: float = 15.0
    ) -> None:
        """Wait until the given nodes (default: every running node) applied ``index``."""
        ids = list(nodes if nodes is not None else self.nodes)
        self.hub.wait_for(
            lambda m: all(n in m and m[n].last_applied >= index for n in ids),
            timeout,
            f"nodes {ids} to apply index {index}",
        )

    # --- faults -------------------------------------------------------------------------

    def isolate(self, node_id: NodeId) -> None:
        """Cut a node off from all others."""
        self.isolated.add(node_id)
        self.router.ask(Isolate(node_id))

    def restore(self, node_id: NodeId) -> None:
        """Reconnect an isolated node."""
        self.isolated.discard(node_id)
        self.router.ask(Restore(node_id))

    # --- clients ------------------------------------------------------------------------

    def write(
        self, data: Any, mode: ResponseMode = ResponseMode.APPLIED, timeout: float = 20.0
    ) -> ClientPayloadResponse:
        """Write through whichever node leads, following ``ForwardToLeader`` hints.

        Retries only on definite failures (``ForwardToLeader``, and ``Busy`` from a leader
        handing leadership over: the write was not taken), so a write is never applied
        twice; other errors, such as ``OutcomeUnknown`` or ``ShuttingDown`` (not
        accepted), are raised.
        """
        deadline = time.monotonic() + timeout
        target: NodeId | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"write of {data!r} got no answer within {timeout}s")
            if target is None or target not in self.nodes:
                target = self.leader(timeout=remaining)
            node = self.nodes[target]
            try:
                response: ClientPayloadResponse = node.ask(
                    ClientPayload.new(data, mode), timeout=remaining
                )
                return response
            except ForwardToLeader as exc:
                if exc.leader_id is not None:
                    target = exc.leader_id
                else:
                    target = None
                    time.sleep(self.config.election_timeout_min / 1000)
            except Busy:  # a transfer ends within an election timeout: ask again soon
                time.sleep(self.config.heartbeat_interval / 1000)
            except pykka.Timeout as exc:
                raise TimeoutError(f"write of {data!r} got no answer within {timeout}s") from exc

    def change_membership(
        self,
        add: Iterable[NodeId] = (),
        remove: Iterable[NodeId] = (),
        non_voters: Iterable[NodeId] = (),
        timeout: float = 30.0,
    ) -> ConfigChangeResponse:
        """Propose a membership change to the leader and wait for the final configuration.

        Follows ``NodeNotLeader`` hints (nothing was changed); every other error, e.g.
        ``LeadershipLost`` (outcome open), is raised to the caller.
        """
        change = ProposeConfigChange(tuple(add), tuple(remove), tuple(non_voters))
        deadline = time.monotonic() + timeout
        target: NodeId | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{change} got no answer within {timeout}s")
            if target is None or target not in self.nodes:
                target = self.leader(timeout=remaining)
            try:
                response: ConfigChangeResponse = self.nodes[target].ask(change, timeout=remaining)
                return response
            except NodeNotLeader as exc:
                target = exc.leader_id
                if target is None:
                    time.sleep(self.config.election_timeout_min / 1000)
            except pykka.Timeout as exc:
                raise TimeoutError(f"{change} got no answer within {timeout}s") from exc

    def dump(self, node_id: NodeId, timeout: float | None = None) -> StorageDump:
        """A copy of a running node's storage."""
        dump: StorageDump = self.storages[node_id].ask(DumpStorage(), timeout=timeout)
        return dump
