"""The Raft actor: a thin shell that runs a :class:`~pykka_raft.driver.NodeDriver` on Pykka.

All protocol decisions live in the core; tokens, the durable barrier and completions in
the driver. This actor supplies the ports: it ``tell``-s the storage and the network a
:class:`~pykka_raft.calls.Call` whose :class:`~pykka_raft.calls.ActorReply` comes back as
a :class:`~pykka_raft.calls.Completed` message, answers callers through their replies,
reads the clock on every message, and publishes metrics and log lines when something an
operator cares about changed. It never blocks on another actor.

One hook for applications: while this node leads, a client write whose data has a
``with_leader_time(now)`` method is replaced by what that method returns, ``now`` being
this node's wall clock (``time.time()``), before the core sees it. Client sessions use it
to carry the leader's time in the log (``docs/clients.md``); a method that raises refuses
that write with :class:`~pykka_raft.errors.ApplicationError` (definitely not applied).
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import attrs
import pykka

from pykka_raft._pykka import use_ref_class
from pykka_raft.actor.arguments import check_arguments
from pykka_raft.actor.events import headline, log_changes
from pykka_raft.actor.lease import LeaseBoard, LeasePublisher
from pykka_raft.actor.ports import ActorPorts
from pykka_raft.actor.ref import ClientQueue, RaftRef, WakeForClients, not_accepted
from pykka_raft.actor.stamp import stamped
from pykka_raft.actor.ticker import Tick, Ticker
from pykka_raft.calls import DEAD_ACTOR_ERRORS, Call, Completed, Reply, deliver_error
from pykka_raft.config import Config
from pykka_raft.core.membership import describe
from pykka_raft.core.node import RaftCore
from pykka_raft.core.state import Role
from pykka_raft.driver import NodeDriver
from pykka_raft.errors import (
    InternalError,
    RaftError,
    ShuttingDown,
    StorageError,
)
from pykka_raft.logs import NODE, RateLimited
from pykka_raft.messages import ClientPayload, ClientRead, MembershipConfig
from pykka_raft.metrics import RaftMetrics, State
from pykka_raft.network.contract import MembershipChanged
from pykka_raft.types import NodeId

logger = logging.getLogger(NODE)

DEFERRED_REPLY = object()  # on_receive result meaning "the answer comes later"
CLIENT_BATCH = 1000  # client writes taken per wake-up


class Raft(pykka.ThreadingActor):
    """One Raft node. Start it with :meth:`Raft.start`; talk to it with messages.

    Messages it handles (through ``ask`` on the returned ref):

    * ``AppendEntriesRequest``, ``VoteRequest``, ``InstallSnapshotRequest``,
      ``TimeoutNowRequest``, ``ReadIndexRequest`` — peer RPCs, usually delivered by the
      network actor;
    * :class:`~pykka_raft.messages.ClientPayload` — a client write (leader only);
    * :class:`~pykka_raft.messages.ClientRead` — a read without the log (``docs/reads.md``);
    * :class:`~pykka_raft.admin.InitWithConfig` — form a cluster from pristine nodes;
    * :class:`~pykka_raft.admin.ProposeConfigChange` — change the membership (leader only);
    * :class:`~pykka_raft.admin.TransferLeadership` — hand leadership over (leader only);
    * :class:`~pykka_raft.admin.TriggerElection` — campaign now (a voter);
    * :class:`~pykka_raft.admin.TriggerSnapshot` — compact the log now;
    * :class:`~pykka_raft.messages.GetMetrics` — the current metrics.

    Calls that need the node's state (``InitWithConfig``, ``ClientRead``, the admin calls
    above but ``ProposeConfigChange``, ``GetMetrics``) sent while it starts are answered
    once it has started; a write or a ``ProposeConfigChange`` sent then is refused as by
    any node that does not lead (``ForwardToLeader``, ``NodeNotLeader``).

    Anything else sent with ``ask`` is answered :class:`~pykka_raft.errors.UnknownMessage`;
    sent with ``tell``, it is logged (rate-limited) and dropped.
    """

    def __init__(
        self,
        node_id: NodeId,
        config: Config,
        network: Any,
        storage: Any,
        metrics: Any | None = None,
        rng: random.Random | None = None,
    ) -> None:
        check_arguments(node_id, config, network, storage, metrics, rng)
        super().__init__()
        ref = use_ref_class(self, RaftRef)
        self._clients = ref.clients = ClientQueue(max(config.max_pending_writes, CLIENT_BATCH))
        self._queue_refusals = 0  # those of self._clients already counted
        self.node_id = node_id
        self.config = config
        self.network = network
        self.storage = storage
        self.metrics_subscriber = metrics
        self.core = RaftCore(node_id, config, rng)
        ports = ActorPorts(self)
        ref.lease = LeaseBoard(guard=ports)
        self.lease = LeasePublisher(ref.lease, self.core, storage)
        self.driver = NodeDriver(self.core, ports)
        self.driver.before_commands = self.lease.before
        self._ticker: Ticker | None = None
        self._stray = RateLimited(logger)
        self._published: RaftMetrics | None = None
        self._logged: RaftMetrics | None = None  # what log_changes last saw
        self._metrics_dirty = False
        self._since_metrics = 0
        self._last_push_check = _now_ms()
        self._metrics_key: tuple[Any, ...] = ()
        self._snapshot_transfers = 0  # core.snapshot_transfer_changes at the last push
        self._told_membership: MembershipConfig | None = None
        self._committed_membership: MembershipConfig | None = None  # as last logged
        self._seen_commit = -1  # the commit index _after last looked at

    @classmethod
    def start(
        cls,
        node_id: NodeId,
        config: Config,
        network: Any,
        storage: Any,
        metrics: Any | None = None,
        rng: random.Random | None = None,
        **kwargs: Any,
    ) -> RaftRef:
        """Start a node (mirrors actix-raft's ``Raft::new(...)`` then ``start()``).

        Args:
            node_id: this node's id.
            config: a validated :class:`~pykka_raft.config.Config`.
            network: the ref of a :class:`~pykka_raft.network.RaftNetwork` actor.
            storage: the ref of a :class:`~pykka_raft.storage.RaftStorage` actor.
            metrics: an actor ref (anything with ``tell``) that receives
                :class:`~pykka_raft.metrics.RaftMetrics`, or ``None``.
            rng: the randomness for election timeouts (seed it to replay a run).
            **kwargs: passed on to the constructor of a subclass.

        Returns:
            The node's :class:`RaftRef`.
        """
        ref = super().start(node_id, config, network, storage, metrics, rng, **kwargs)
        assert isinstance(ref, RaftRef)
        return ref

    # --- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        """Read the initial state from the storage; start the ticker."""
        self._ticker = Ticker(self.actor_ref, self.config.tick_interval)
        self._guarded(lambda: self.driver.boot(_now_ms()))

    def on_stop(self) -> None:
        """Answer every waiting caller and publish final metrics.

        Pending client writes get ``OutcomeUnknown``, writes still queued and calls never
        handled get ``ShuttingDown`` (not accepted), other calls ``ShuttingDown``.
        """
        self._shutdown(ShuttingDown("the Raft node was stopped"))

    def on_failure(self, *exc_info: Any) -> None:
        """An unexpected exception: fail every caller, as on stop."""
        self._shutdown(InternalError(f"the Raft node failed: {exc_info[1]!r}"))

    def _shutdown(self, error: BaseException) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        first = not self.driver.stopped
        self.lease.stop()
        self.driver.stop(error)
        self._clients.refuse_all()
        if first and self.core.role is not Role.INITIALIZING:
            self._publish(attrs.evolve(self.core.metrics(), state=State.SHUTDOWN))

    def _fatal(self, error: BaseException) -> None:
        logger.error("node %s stops: %s", self.node_id, error)
        try:
            self._shutdown(error)
        finally:
            self.stop()  # whatever happened there: a node that is not running stops

    def _guarded(self, step: Any) -> None:
        """Run one step; any failure takes the one fatal path."""
        try:
            step()
        except Exception as exc:  # one fatal path for every bug or failure
            if not isinstance(exc, RaftError):
                logger.exception("node %s failed", self.node_id)
                exc = InternalError(repr(exc))
            self._fatal(exc)

    # --- messages -----------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Translate one message into driver events, then publish what changed."""
        if self.driver.stopped:
            if isinstance(message, Call):
                deliver_error(message.reply, not_accepted())
            elif isinstance(message, WakeForClients):
                self._clients.wake_pending = False  # so that a later write wakes it again
                self._clients.refuse_all()
            return DEFERRED_REPLY
        self._guarded(lambda: self._handle(message))
        if not self.driver.stopped:
            self._guarded(self._after)
        return DEFERRED_REPLY

    def _handle(self, message: Any) -> None:
        driver = self.driver
        # Time is read on every message, not only on ticks: a tick queued behind a
        # backlog of client writes must not delay heartbeats or the quorum check.
        driver.advance(_now_ms())
        if isinstance(message, Completed):
            if isinstance(message.tag, int):
                driver.storage_done(message.tag, message.value, message.error)
            else:
                driver.rpc_done(message.tag, message.value, message.error)
        elif isinstance(message, Call):
            if isinstance(message.message, ClientPayload):
                driver.client_writes(
                    stamped(self.core.role is Role.LEADER, [(message.message, message.reply)])
                )
            else:
                driver.call(message.message, message.reply)
        elif isinstance(message, WakeForClients):
            self._serve_clients()
        elif isinstance(message, Tick):
            if self._ticker is not None:
                self._ticker.pending.clear()
            self._check_storage_alive()
        else:
            self._stray.log(
                logging.WARNING,
                type(message).__name__,
                "node %s dropped a %s sent with tell: a plain tell gets no answer (ask it, or "
                "tell a Call(message, reply)); one the node does not handle is UnknownMessage",
                self.node_id,
                type(message).__name__,
            )

    def _serve_clients(self) -> None:
        """Take the waiting client writes (a bounded batch, so RPCs are not starved)."""
        clients = self._clients
        clients.wake_pending = False
        seen, self._queue_refusals = self._queue_refusals, clients.refused  # on callers' threads
        self.core.counters.writes_refused_busy += self._queue_refusals - seen
        items = clients.items
        take = items.popleft
        batch = [take() for _ in range(min(len(items), CLIENT_BATCH))]
        if items and not clients.wake_pending:
            clients.wake_pending = True
            self.actor_ref.tell(WakeForClients())  # the rest, after what queued meanwhile
        writes: list[tuple[ClientPayload, Reply]] = []
        reads: list[tuple[ClientRead, Reply]] = []
        for message, reply in batch:
            if isinstance(message, ClientPayload):
                writes.append((message, reply))
            else:
                reads.append((message, reply))
        try:
            if writes:
                self.driver.client_writes(stamped(self.core.role is Role.LEADER, writes))
        except BaseException:
            for _, reply in reads:  # taken from the queue, never given to the driver
                deliver_error(reply, not_accepted())
            raise
        if reads:
            self.driver.client_reads(reads)

    def _check_storage_alive(self) -> None:
        """A storage actor that died with commands outstanding will never answer them."""
        alive = getattr(self.storage, "is_alive", None)
        if self.driver.outstanding_storage and callable(alive) and not alive():
            raise StorageError("the storage actor has stopped with commands outstanding")

    # --- what changed -------------------------------------------------------------------

    def _after(self) -> None:
        core = self.core
        if core.role is Role.INITIALIZING:
            return
        self.lease.after()
        self._maybe_publish()
        membership = core.membership
        if membership is not self._told_membership and membership != self._told_membership:
            self._membership_changed(membership)
        if core.commit_index != self._seen_commit:
            self._seen_commit = core.commit_index
            # Every committed configuration is logged once: a joint one too, even when the
            # leader proposed the final one in the step that committed it.
            index, committed = core.log.config_through(core.commit_index)
            last = self._committed_membership
            if committed is not None and committed is not last and committed != last:
                self._committed_membership = committed
                logger.info(
                    "node %s: membership %s committed at index %s",
                    self.node_id,
                    describe(committed),
                    index,
                )

    def _membership_changed(self, membership: MembershipConfig) -> None:
        """Tell the network (a network between processes learns addresses from it) and log."""
        first = self._told_membership is None
        self._told_membership = membership
        if not first:
            joint = " (joint consensus)" if membership.is_in_joint_consensus else ""
            logger.info(
                "node %s: membership is now %s%s", self.node_id, describe(membership), joint
            )
        try:
            self.network.tell(MembershipChanged(self.node_id, membership))
        except DEAD_ACTOR_ERRORS:
            self._fatal(InternalError("the network actor has stopped"))

    def _maybe_publish(self) -> None:
        core = self.core
        now = _now_ms()
        if now - self._last_push_check >= self.config.tick_interval:
            # At most once per tick: the periodic push, and index changes coalesced.
            self._since_metrics += now - self._last_push_check
            self._last_push_check = now
            if self._since_metrics >= self.config.metrics_rate:
                self._since_metrics = 0
                self._published = None  # periodic push, changed or not
            if self._metrics_dirty:
                self._published = None
        if core.snapshot_transfer_changes != self._snapshot_transfers:
            # A snapshot transfer to a peer started or ended: its ``snapshotting`` flag is
            # pushed at once, like a headline change (the rest of ``replication`` waits).
            self._snapshot_transfers = core.snapshot_transfer_changes
            self._published = None
        # Cheap change detection first: building metrics on every message would cost more
        # than the protocol work of a client write.
        key = (
            core.role,
            core.current_term,
            core.leader_id,
            core.log.last_index,
            core.commit_index,
            core.last_applied,
            core.log.offset,
            id(core.membership),
            core.counters.as_tuple(),
            # A follower catching up without moving the commit index (``replication``).
            sum(p.match_index for p in core.leader.progress.values()) if core.leader else 0,
        )
        if key == self._metrics_key and self._published is not None:
            return
        self._metrics_key = key
        last = self._published
        if self._metrics_dirty and last is not None and core.metrics_headline() == headline(last):
            return  # a push of what changed is already due, and nothing is pushed at once
        metrics = core.metrics()
        if last is None or headline(metrics) != headline(last):
            # Against the last metrics logged, not the last pushed: a periodic push
            # forgets the latter, and would log an unchanged role again.
            log_changes(self.node_id, self._logged, metrics)
            self._logged = metrics
            self._publish(metrics)
        elif metrics != last:
            self._metrics_dirty = True

    def _publish(self, metrics: RaftMetrics) -> None:
        self._published = metrics
        self._metrics_dirty = False
        if self.metrics_subscriber is not None:
            try:
                self.metrics_subscriber.tell(metrics)
            except DEAD_ACTOR_ERRORS:
                self.metrics_subscriber = None
            except Exception as exc:  # the subscriber's failure, not the node's
                why = "node %s: its metrics subscriber failed on a push: %r"
                self._stray.log(logging.WARNING, "subscriber", why, self.node_id, exc)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)
