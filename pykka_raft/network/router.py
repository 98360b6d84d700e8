"""``RaftRouter``: an in-process network for several nodes in one process.

It routes each RPC to the registered Raft ref of its target, can cut nodes off
(:class:`Isolate` / :class:`Restore`), and can inject seeded link faults (drop, delay,
duplicate, reordering through delays) on requests and responses. Delays run on a timer
thread, so no Raft actor ever waits.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from pykka_raft.calls import DEAD_ACTOR_ERRORS, AskAwareRef, Call, Reply, deliver_error
from pykka_raft.errors import UnknownNode, Unreachable
from pykka_raft.messages import RpcRequest
from pykka_raft.messages.checks import _instance_of, _node_id
from pykka_raft.network.contract import RPC_REQUESTS, RaftNetwork, rpc_source
from pykka_raft.types import NodeId

logger = logging.getLogger(__name__)


def _probability(instance: Any, attribute: Any, value: Any) -> None:
    where = f"{type(instance).__name__}.{attribute.name}"
    if type(value) not in (int, float):
        raise TypeError(f"{where} must be a probability (a float), got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where} must be a probability in [0, 1], got {value!r}")


def _delay_range(instance: Any, attribute: Any, value: Any) -> None:
    where = f"{type(instance).__name__}.{attribute.name}"
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(type(bound) not in (int, float) for bound in value)
    ):
        raise TypeError(f"{where} must be a (low, high) tuple of milliseconds, got {value!r}")
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{where} must be (low, high) with 0 <= low <= high, got {value!r}")


def _int(instance: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int:
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be an int, "
            f"got {type(value).__name__} {value!r}"
        )


def _a_ref(instance: Any, attribute: Any, value: Any) -> None:
    if not callable(getattr(value, "tell", None)):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a Raft actor ref (with a "
            f"tell method), got {type(value).__name__} {value!r}"
        )


@attrs.frozen
class Register:
    """Route RPCs for ``node_id`` to ``raft`` (a Raft ref); replaces an earlier route."""

    node_id: NodeId = attrs.field(validator=_node_id)
    raft: Any = attrs.field(validator=_a_ref)


@attrs.frozen
class Unregister:
    """Forget the route to ``node_id``: RPCs to it fail with ``UnknownNode``."""

    node_id: NodeId = attrs.field(validator=_node_id)


@attrs.frozen
class Isolate:
    """Cut ``node_id`` off from every other node, both ways."""

    node_id: NodeId = attrs.field(validator=_node_id)


@attrs.frozen
class Restore:
    """Undo :class:`Isolate` for ``node_id``."""

    node_id: NodeId = attrs.field(validator=_node_id)


@attrs.frozen
class LinkFaults:
    """Faults applied to every message (request or response) crossing the router.

    Attributes:
        drop: probability that a message is lost (the sender hears nothing).
        duplicate: probability that a request is delivered twice.
        delay_ms: a message is held for a uniform random time in this range; different
            delays reorder messages.
        seed: seeds the sequence of fault decisions (which message gets which fault still
            depends on thread timing).
    """

    drop: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    delay_ms: tuple[int, int] = attrs.field(default=(0, 0), validator=_delay_range)
    seed: int = attrs.field(default=0, validator=_int)


@attrs.frozen
class SetLinkFaults:
    """Apply ``faults`` from now on (``LinkFaults()`` turns them off)."""

    faults: LinkFaults = attrs.field(validator=_instance_of(LinkFaults))


class _Delayer:
    """One timer thread that runs callbacks after a delay, in deadline order.

    Callbacks must not block (they ``tell`` actors or answer replies). A callback that
    raises is logged and does not stop the thread. :meth:`stop` discards what is still
    pending and waits for the thread to end.
    """

    def __init__(self, name: str = "raft-router-delayer") -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the timer thread in ``delay_s`` seconds (never, once stopped)."""
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._counter), fn))
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Drop pending callbacks and wait (up to ``timeout`` seconds) for the thread to end."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # one bad callback must not stop every later delivery
                logger.exception("delayed delivery failed")


class _DirectRef(AskAwareRef):
    """A router ref that routes RPC calls in the sender's thread.

    :meth:`RaftRouter.send` is thread-safe, so a request needs no trip through the
    router's inbox: one thread hand-off less per RPC. Control messages still go through
    the inbox, in order.
    """

    router: RaftRouter

    def tell(self, message: Any) -> None:
        """Route an RPC call now; queue anything else for the router's thread."""
        if isinstance(message, Call) and isinstance(message.message, RPC_REQUESTS):
            router = self.router
            if router.direct_send and self.is_alive():
                try:
                    router.send(message.message, message.reply)
                except Exception as exc:  # a failing route answers the call, as the actor would
                    router.routing_failed(message.message, exc)
                    deliver_error(message.reply, exc)
                return
        super().tell(message)


class RaftRouter(RaftNetwork):
    """The in-process network: one router shared by every node of a test or embedded cluster.

    Control it with :class:`Register`, :class:`Unregister`, :class:`Isolate`,
    :class:`Restore` and :class:`SetLinkFaults` (``tell`` or ``ask``). RPCs told to its ref
    are routed in the sender's thread (``direct_send``); a subclass that must decide every
    request on its own thread sets ``direct_send = False``.

    Subclasses (such as :class:`pykka_raft.testing.faultnet.FaultNetwork`) reuse the routing
    table (``_routes``, changed only on the actor's thread; senders' threads look routes
    up in it, each lookup one ``dict.get``), the isolated set
    (``_isolated``, a frozenset replaced, never mutated, so other threads may read it),
    ``_lock`` (guards ``_rng`` and any state read from reply threads) and the timer thread
    (:meth:`_start_delayer`, :meth:`_later`), which is stopped and joined when the actor
    stops or fails.
    """

    direct_send: ClassVar[bool] = True

    ref_class = _DirectRef

    def __init__(self) -> None:
        super().__init__()
        ref = self.actor_ref
        assert isinstance(ref, _DirectRef)
        ref.router = self
        self._routes: dict[NodeId, Any] = {}
        # Read from other threads (responses); replaced, never mutated in place.
        self._isolated: frozenset[NodeId] = frozenset()
        self._faults = LinkFaults()
        self._rng = random.Random(0)
        self._lock = threading.Lock()
        self._delayer: _Delayer | None = None

    def on_stop(self) -> None:
        """Stop the delay thread (pending delayed messages are lost) and wait for it."""
        self._stop_delayer()
        super().on_stop()

    def on_failure(self, *exc_info: Any) -> None:
        """An unexpected failure stops the actor: stop the delay thread as on a clean stop."""
        self._stop_delayer()

    def handle_other(self, message: Any) -> Any:
        """Apply a control message."""
        if isinstance(message, Register):
            self._routes[message.node_id] = message.raft
        elif isinstance(message, Unregister):
            self._routes.pop(message.node_id, None)
        elif isinstance(message, Isolate):
            self._isolated = self._isolated | {message.node_id}
        elif isinstance(message, Restore):
            self._isolated = self._isolated - {message.node_id}
        elif isinstance(message, SetLinkFaults):
            if message.faults.delay_ms[1] > 0:
                self._start_delayer()
            with self._lock:
                self._faults = message.faults
                self._rng = random.Random(message.faults.seed)
        else:
            return super().handle_other(message)
        return None

    def routing_failed(self, request: RpcRequest, error: BaseException) -> None:
        """Routing ``request`` raised: logged at most once per interval (a broken route is
        used at every heartbeat)."""
        kind = type(request).__name__
        self._stray.log(logging.ERROR, f"routing {kind}", "routing %s failed: %r", kind, error)

    def _start_delayer(self) -> None:
        """Start the timer thread if it is not running (call on the actor's thread)."""
        if self._delayer is None:
            self._delayer = _Delayer(f"{type(self).__name__}-delayer")

    def _stop_delayer(self) -> None:
        delayer, self._delayer = self._delayer, None
        if delayer is not None:
            delayer.stop()

    def _cut(self, src: NodeId, dst: NodeId) -> bool:
        isolated = self._isolated
        return src in isolated or dst in isolated

    def _fate(self) -> tuple[bool, bool, float]:
        """Decide (drop, duplicate, delay seconds) for one message."""
        with self._lock:
            faults = self._faults
            drop = faults.drop > 0 and self._rng.random() < faults.drop
            dup = faults.duplicate > 0 and self._rng.random() < faults.duplicate
            lo, hi = faults.delay_ms
            delay = self._rng.uniform(lo, hi) / 1000 if hi > 0 else 0.0
        return drop, dup, delay

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay`` seconds on the timer thread, or now if no delay.

        Once the actor stopped, a delayed ``fn`` never runs (the message is lost).
        """
        delayer = self._delayer
        if delay <= 0:
            fn()
        elif delayer is not None:
            delayer.call_later(delay, fn)

    def send(self, request: RpcRequest, reply: Reply) -> None:
        """Deliver ``request`` to its target's Raft ref, with faults if set."""
        src, dst = rpc_source(request), request.target
        target = self._routes.get(dst)
        if target is None:
            deliver_error(reply, UnknownNode(dst))
            return
        if self._cut(src, dst):
            deliver_error(reply, Unreachable(f"node {dst} is unreachable from node {src}"))
            return
        drop, dup, delay = self._fate()
        if drop:
            return
        routed = _RoutedReply(self, src, dst, reply)
        for _ in range(2 if dup else 1):
            self._later(delay, lambda: _tell(target, Call(request, routed)))


def _tell(target: Any, message: Any) -> None:
    # A stopped node: the request is lost, as on a real network.
    with contextlib.suppress(*DEAD_ACTOR_ERRORS):
        target.tell(message)


@attrs.frozen(eq=False)
class _RoutedReply:
    """Carries a response back through the router's cuts and faults."""

    router: RaftRouter
    src: NodeId
    dst: NodeId
    inner: Reply

    def set(self, value: Any = None) -> None:
        self._back(lambda: self.inner.set(value))

    def set_exception(self, error: BaseException) -> None:
        self._back(lambda: self.inner.set_exception(error))

    def _back(self, deliver: Callable[[], None]) -> None:
        if self.router._cut(self.src, self.dst):
            return
        drop, _, delay = self.router._fate()
        if not drop:
            self.router._later(delay, deliver)
