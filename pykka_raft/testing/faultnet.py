"""``FaultNetwork``: an in-process network with scriptable, seeded and traced faults.

:class:`FaultNetwork` is a drop-in :class:`~pykka_raft.network.router.RaftRouter` (it handles
``Register``, ``Unregister``, ``Isolate``, ``Restore`` and ``SetLinkFaults`` the same way)
that adds faults per **directed link**, controlled by the frozen messages of this module,
sent with ``tell`` or ``ask``::

    net = FaultNetwork.start(seed=7)
    net.ask(Register(1, raft1))  # ... one per node
    net.ask(SetDefaultRule(LinkRule(drop=0.05, duplicate=0.1, delay_ms=(0, 15))))
    net.ask(Partition(groups=((1,), (2, 3))))
    net.ask(Heal())

**Links and directions.** The directed link ``(src, dst)`` carries everything ``src`` sends
to ``dst``: ``src``'s requests to ``dst`` *and* ``src``'s responses to ``dst``'s requests.
A :class:`LinkRule` applies to requests, responses or both (its ``direction``), so requests
and responses are faulted independently. Each link has at most one rule per direction: its
override (:class:`SetLinkRule`) if set, else the default (:class:`SetDefaultRule`).

**What happens to a message**, in this order:

1. a request to a node with no route is answered ``UnknownNode`` (event ``"unknown"``);
2. a message crossing a cut (an isolated node, a :class:`Cut`, a :class:`Partition`, or a
   rule with ``block``) is refused (event ``"cut"``): a request is answered
   ``Unreachable``, a response is lost;
3. a rule with ``hold`` queues it until :class:`Release` or :class:`Heal` (``"hold"``);
4. it is dropped with probability ``drop``, silently (``"drop"``);
5. it is sent twice with probability ``duplicate`` (``"duplicate"``), each copy after its
   own random delay in ``delay_ms`` (``"delay"``), so copies and messages may reorder;
6. it is handed to its receiver (``"deliver"``): a request to the target node's ref, a
   response to the caller's reply. Delivered messages enter a bounded buffer from which
   :class:`ReplayOld` re-delivers old ones (``"replay"``).

**Determinism.** Every random decision (drop, duplicate, delay, release order, replay
choice) is drawn from one ``random.Random`` seeded at start or by :class:`SetSeed`, under
one lock. The same seed and the same sequence of messages give the same decisions; in a
live cluster the sequence itself depends on thread timing. Every decision is recorded in a
bounded trace (:class:`GetTrace`) of :class:`TraceEvent` tuples.

**Threads.** Requests are decided on the network actor's thread; responses on the thread
of the actor that answers. Shared state is only touched under the lock; deliveries happen
outside it. Delays run on one timer thread and holds are plain queues, so no actor ever
waits; the timer thread is stopped and joined when the network stops.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable
from typing import Any

import attrs

from pykka_raft.calls import Call, Reply
from pykka_raft.errors import UnknownNode, Unreachable
from pykka_raft.messages import RpcRequest
from pykka_raft.network import rpc_source
from pykka_raft.network.router import RaftRouter, SetLinkFaults, _tell
from pykka_raft.testing.faultnet_control import (
    ClearLinkRule,
    Cut,
    GetHeld,
    GetTrace,
    Heal,
    HeldMessage,
    Partition,
    Release,
    ReplayOld,
    SetDefaultRule,
    SetLinkRule,
    SetSeed,
    TraceEvent,
    Uncut,
    summarize,
)
from pykka_raft.testing.faultnet_rules import KINDS, NO_FAULTS, Direction, Kind, LinkRule
from pykka_raft.types import NodeId

__all__ = [
    "ClearLinkRule",
    "Cut",
    "Direction",
    "FaultNetwork",
    "GetHeld",
    "GetTrace",
    "Heal",
    "HeldMessage",
    "LinkRule",
    "Partition",
    "Release",
    "ReplayOld",
    "SetDefaultRule",
    "SetLinkRule",
    "SetSeed",
    "TraceEvent",
    "Uncut",
    "summarize",
]

# --- internals --------------------------------------------------------------------------


@attrs.frozen(eq=False)
class _Held:
    kind: Kind
    src: NodeId
    dst: NodeId
    summary: str
    deliver: Callable[[], None]


@attrs.frozen(eq=False)
class _Delivered:
    time: float
    kind: Kind
    src: NodeId
    dst: NodeId
    summary: str
    redo: Callable[[], None]


@attrs.frozen(eq=False)
class _FaultReply:
    """The reply a target answers through: carries the response back through the faults."""

    network: FaultNetwork
    request: RpcRequest
    src: NodeId  # the request's sender: the response goes back to it
    dst: NodeId  # the request's target: the response comes from it
    inner: Reply

    def set(self, value: Any = None) -> None:
        """Send the response back (from the answering actor's thread)."""
        inner = self.inner
        self.network._respond(self, value, lambda: inner.set(value))

    def set_exception(self, error: BaseException) -> None:
        """Send the failure back."""
        inner = self.inner
        self.network._respond(self, error, lambda: inner.set_exception(error))


class FaultNetwork(RaftRouter):
    """A :class:`~pykka_raft.network.router.RaftRouter` with per-link, seeded, traced faults.

    Start it with ``FaultNetwork.start(seed=...)`` and use it wherever a ``RaftRouter`` is
    used. Besides the router's messages it handles :class:`SetSeed`,
    :class:`SetDefaultRule`, :class:`SetLinkRule`, :class:`ClearLinkRule`, :class:`Cut`,
    :class:`Uncut`, :class:`Partition`, :class:`Heal`, :class:`Release`,
    :class:`ReplayOld`, :class:`GetTrace` and :class:`GetHeld`.

    ``SetLinkFaults(LinkFaults(drop, duplicate, delay_ms, seed))`` keeps the router's
    meaning: it sets the default rules (requests: drop, duplicate and delay; responses:
    drop and delay) and reseeds the random source with ``seed``.

    Args:
        seed: seeds every fault decision.
        trace_size: how many trace events are kept (the oldest go first).
        replay_buffer: how many delivered messages are kept for :class:`ReplayOld`.
    """

    direct_send = False  # every request is decided on the network's thread, in order

    def __init__(self, seed: int = 0, trace_size: int = 10_000, replay_buffer: int = 1_000) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        # Everything below is guarded by self._lock (read from reply threads too).
        self._defaults: dict[Kind, LinkRule] = dict.fromkeys(KINDS, NO_FAULTS)
        self._overrides: dict[tuple[NodeId, NodeId, Kind], LinkRule] = {}
        self._cuts: set[tuple[NodeId, NodeId]] = set()
        self._partition: dict[NodeId, int] | None = None
        self._held: list[_Held] = []
        self._trace: collections.deque[TraceEvent] = collections.deque(maxlen=trace_size)
        self._delivered: collections.deque[_Delivered] = collections.deque(maxlen=replay_buffer)

    def on_stop(self) -> None:
        """Stop the timer thread; held and delayed messages are lost."""
        super().on_stop()
        with self._lock:
            self._held.clear()

    # --- control ------------------------------------------------------------------------

    def handle_other(self, message: Any) -> Any:
        """Apply a control message (see the module documentation)."""
        if isinstance(message, SetLinkFaults):
            faults = message.faults
            self._set_rules(
                [
                    (None, "request", LinkRule(faults.drop, faults.duplicate, faults.delay_ms)),
                    (None, "response", LinkRule(faults.drop, 0.0, faults.delay_ms)),
                ]
            )
            with self._lock:
                self._rng = random.Random(faults.seed)
        elif isinstance(message, SetSeed):
            with self._lock:
                self._rng = random.Random(message.seed)
        elif isinstance(message, SetDefaultRule):
            rule = message.rule
            self._set_rules([(None, kind, rule) for kind in rule.direction.kinds()])
        elif isinstance(message, SetLinkRule):
            link, rule = (message.src, message.dst), message.rule
            self._set_rules([(link, kind, rule) for kind in rule.direction.kinds()])
        elif isinstance(message, ClearLinkRule):
            with self._lock:
                for kind in message.direction.kinds():
                    self._overrides.pop((message.src, message.dst, kind), None)
        elif isinstance(message, Cut):
            with self._lock:
                self._cuts.add((message.src, message.dst))
        elif isinstance(message, Uncut):
            with self._lock:
                self._cuts.discard((message.src, message.dst))
        elif isinstance(message, Partition):
            groups = {node: i for i, group in enumerate(message.groups) for node in group}
            with self._lock:
                self._partition = groups
        elif isinstance(message, Heal):
            return self._heal(message)
        elif isinstance(message, Release):
            return self._release(message)
        elif isinstance(message, ReplayOld):
            return self._replay(message)
        elif isinstance(message, GetTrace):
            with self._lock:
                trace = tuple(self._trace)
                if message.clear:
                    self._trace.clear()
            return trace
        elif isinstance(message, GetHeld):
            with self._lock:
                return tuple(HeldMessage(h.src, h.dst, h.kind, h.summary) for h in self._held)
        else:
            return super().handle_other(message)
        return None

    def _set_rules(self, rules: list[tuple[tuple[NodeId, NodeId] | None, Kind, LinkRule]]) -> None:
        """Install ``(link, kind, rule)`` rules; a ``None`` link sets the default."""
        if any(rule.delay_ms[1] > 0 for _, _, rule in rules):
            self._start_delayer()  # before any message can be given a delay
        with self._lock:
            for link, kind, rule in rules:
                if link is None:
                    self._defaults[kind] = rule
                else:
                    self._overrides[(link[0], link[1], kind)] = rule

    def _heal(self, message: Heal) -> int:
        with self._lock:
            self._defaults = dict.fromkeys(KINDS, NO_FAULTS)
            self._overrides.clear()
            self._cuts.clear()
            self._partition = None
            held, self._held = self._held, []
        if message.restore_isolated:
            self._isolated = frozenset()
        self._deliver_held(held)
        return len(held)

    def _release(self, message: Release) -> int:
        def matches(item: _Held) -> bool:
            return (message.src is None or item.src == message.src) and (
                message.dst is None or item.dst == message.dst
            )

        with self._lock:
            released = [h for h in self._held if matches(h)]
            self._held = [h for h in self._held if not matches(h)]
            if message.shuffle:
                self._rng.shuffle(released)
        self._deliver_held(released)
        return len(released)

    def _deliver_held(self, held: list[_Held]) -> None:
        for item in held:
            self._record("release", item.src, item.dst, item.summary)
            item.deliver()

    def _replay(self, message: ReplayOld) -> int:
        now = time.monotonic()
        oldest = now - message.min_age_ms / 1000
        with self._lock:
            candidates = [
                d
                for d in self._delivered
                if d.time <= oldest and (d.kind == "request" or message.responses)
            ]
            chosen = self._rng.sample(candidates, min(max(message.count, 0), len(candidates)))
            replays: list[_Delivered] = []
            for item in chosen:
                if self._is_cut(item.kind, item.src, item.dst):
                    self._trace_locked("cut", item.src, item.dst, item.summary)
                else:
                    self._trace_locked("replay", item.src, item.dst, item.summary)
                    replays.append(item)
        for item in replays:
            item.redo()
        return len(replays)

    # --- messages -----------------------------------------------------------------------

    def send(self, request: RpcRequest, reply: Reply) -> None:
        """Carry ``request`` to its target through the faults of its link."""
        src, dst = rpc_source(request), request.target
        summary = summarize(request)
        target = self._routes.get(dst)
        if target is None:
            self._record("unknown", src, dst, summary)
            reply.set_exception(UnknownNode(dst))
            return
        routed = _FaultReply(self, request, src, dst, reply)

        def redo() -> None:  # a replay: to the target's route at that time
            current = self._routes.get(dst)
            if current is not None:
                _tell(current, Call(request, routed))

        def deliver() -> None:
            self._delivered_now("request", src, dst, summary, redo)
            _tell(target, Call(request, routed))

        if not self._transmit("request", src, dst, summary, deliver):
            reply.set_exception(Unreachable(f"node {dst} is unreachable from node {src}"))

    def _respond(self, routed: _FaultReply, outcome: Any, answer: Callable[[], None]) -> None:
        """Carry a response (or error) from the request's target back to its sender."""
        src, dst = routed.dst, routed.src
        summary = summarize(outcome)

        def deliver() -> None:
            self._delivered_now("response", src, dst, summary, answer)
            answer()

        self._transmit("response", src, dst, summary, deliver)

    def _transmit(
        self, kind: Kind, src: NodeId, dst: NodeId, summary: str, deliver: Callable[[], None]
    ) -> bool:
        """Decide the fate of one message and carry it out; False if it crossed a cut."""
        with self._lock:
            if self._is_cut(kind, src, dst):
                self._trace_locked("cut", src, dst, summary)
                return False
            rule = self._rule(kind, src, dst)
            if rule.hold:
                self._held.append(_Held(kind, src, dst, summary, deliver))
                self._trace_locked("hold", src, dst, summary)
                return True
            rng = self._rng
            if rule.drop > 0 and rng.random() < rule.drop:
                self._trace_locked("drop", src, dst, summary)
                return True
            copies = 1
            if rule.duplicate > 0 and rng.random() < rule.duplicate:
                copies = 2
                self._trace_locked("duplicate", src, dst, summary)
            delays: list[float] = []
            low, high = rule.delay_ms
            for _ in range(copies):
                delay_ms = rng.uniform(low, high) if high > 0 else 0.0
                if delay_ms > 0:
                    self._trace_locked("delay", src, dst, f"{summary} +{delay_ms:.1f}ms")
                delays.append(delay_ms / 1000)
        for delay in delays:
            self._later(delay, deliver)
        return True

    def _rule(self, kind: Kind, src: NodeId, dst: NodeId) -> LinkRule:
        """The rule for ``kind`` messages on ``src -> dst`` (call under the lock)."""
        return self._overrides.get((src, dst, kind), self._defaults[kind])

    def _is_cut(self, kind: Kind, src: NodeId, dst: NodeId) -> bool:
        """Whether ``kind`` messages cannot cross ``src -> dst`` (call under the lock)."""
        isolated = self._isolated
        if src in isolated or dst in isolated or (src, dst) in self._cuts:
            return True
        partition = self._partition
        if partition is not None:
            group = partition.get(src)
            if group is None or partition.get(dst) != group:
                return True
        return self._rule(kind, src, dst).block

    def _cut(self, src: NodeId, dst: NodeId) -> bool:
        """Whether requests cannot cross ``src -> dst`` (the router's hook)."""
        with self._lock:
            return self._is_cut("request", src, dst)

    def _delivered_now(
        self, kind: Kind, src: NodeId, dst: NodeId, summary: str, redo: Callable[[], None]
    ) -> None:
        with self._lock:
            now = time.monotonic()  # under the lock: the trace stays in time order
            self._trace.append(TraceEvent(now, "deliver", src, dst, summary))
            self._delivered.append(_Delivered(now, kind, src, dst, summary, redo))

    def _record(self, event: str, src: NodeId, dst: NodeId, summary: str) -> None:
        with self._lock:
            self._trace_locked(event, src, dst, summary)

    def _trace_locked(self, event: str, src: NodeId, dst: NodeId, summary: str) -> None:
        self._trace.append(TraceEvent(time.monotonic(), event, src, dst, summary))
