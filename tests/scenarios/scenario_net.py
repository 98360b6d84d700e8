"""A scripted, deterministic harness for Raft scenarios from the literature.

The test is the scheduler: nothing happens unless a test step asks for it. There are no
threads, no sleeps and no randomness other than each core's own seeded ``random.Random``;
time is virtual and only moves when a step ticks a core.

* **Cores**: ``N`` :class:`~pykka_raft.core.RaftCore` nodes (or subclasses, for
  negative checks), started from a durable state the test may seed (term, log, applied).
* **Network**: every ``Send`` and every RPC answer becomes a :class:`Msg` in one pool. The
  test decides what happens to each: :meth:`Cluster.deliver` (in any order, so held
  messages can be delivered late), :meth:`Cluster.drop`, :meth:`Cluster.duplicate`, or
  :meth:`Cluster.flush` to deliver everything among a set of nodes in FIFO order. A request
  delivered to a down node is lost; an answer to a crashed requester is lost.
* **Shell**: each node runs on :class:`pykka_raft.driver.NodeDriver`, the driver the Raft
  actor runs on (tokens, the durable barrier that holds ``after_durable`` answers until
  the storage writes issued before them completed, completions turned into core events).
  The harness supplies its ports: storage commands go to one FIFO queue per node; by
  default a node's storage completes them at once, :meth:`Cluster.hold_storage` keeps them
  pending until :meth:`Cluster.complete_storage` or :meth:`Cluster.release_storage`. A
  node starts as the actor does, through ``NodeDriver.boot`` and the two-step read of its
  storage (``LoadInitialState``, then ``LoadLog``). Each node has its own virtual clock,
  moved only by :meth:`Cluster.tick` (the driver is made with ``pauses=False``: a scripted
  tick of 150 ms is 150 ms the node spent listening).
* **Crashes**: :meth:`Cluster.crash` abandons the node's driver (held answers are never
  sent) and loses its pending storage commands and all in-memory state;
  :meth:`Cluster.restart` boots a fresh core and driver from the durable hard state, log
  and ``last_applied``.

Invariants are checked after every step and raise :class:`ScenarioViolation` (an
``AssertionError`` naming the ``check`` that failed, with the last trace events):

* ``election-safety``: at most one leader per term;
* ``log-matching``: over durable logs and over in-memory logs, two entries with the same
  index and term have identical prefixes;
* ``state-machine-safety``: one entry per committed / applied index, on every node;
* ``committed-lost``: every committed entry stays on the durable logs of a majority, and
  ``committed-deleted``: no storage ever deletes one;
* ``leader-completeness``: a leader of a term after the one an entry was known committed in
  holds it;
* ``commit-monotonic``, ``term-monotonic``, ``vote-once``;
* ``vote-durable`` / ``ack-durable``: a granted vote (or a candidate's request) and a
  successful AppendEntries answer leave a node only once what they promise is durable;
* ``client-oracle``: an acknowledged write is the committed entry at its index, and a write
  answered ``ForwardToLeader`` never commits.

Membership (§6). Nodes ``n+1 .. n+pristine`` start pristine (empty log, empty membership),
to be added by a :meth:`Cluster.propose` (``ProposeConfigChange``). The majorities are
those of the configuration in effect:

* ``committed-lost`` counts the holders within each voter set of the configuration the
  committing node was using when it committed (the latest one it had written by then);
* ``config-wellformed``: a configuration has voters, and no voter of the (final) voter set
  is a non-voter (while joint, a ``C_old`` voter being demoted may be listed as a non-voter);
* ``config-transition``: consecutive configuration entries in a log change the voters only
  through joint consensus: ``C`` -> ``C,C'`` -> ``C'`` (only non-voters may change otherwise);
* ``config-one-at-a-time``: no log holds two configuration entries past the commit point;
* ``admin-oracle``: a ``ConfigChangeResponse`` names the committed configuration entry at
  its index;
* ``election-quorum`` (opt-in, ``checks=("election-quorum",)``): a new leader holds the
  granted votes of a majority of each voter set of its configuration.

The module has a distinctive name: test directories have no ``__init__.py`` and pytest puts
each of them on ``sys.path``.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import attrs

from pykka_raft.admin import ConfigChangeResponse, ProposeConfigChange
from pykka_raft.config import Config, SnapshotPolicy
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import (
    Apply,
    Command,
    DeleteLogsFrom,
    LoadInitialState,
    LoadLog,
    Query,
    Respond,
    SaveHardState,
    WriteLog,
)
from pykka_raft.core.quorum import has_quorum
from pykka_raft.driver import NodeDriver, Ports
from pykka_raft.errors import ForwardToLeader
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    ClientPayloadResponse,
    ClientRead,
    ClientReadResponse,
    Entry,
    EntryConfigChange,
    EntryNormal,
    HardState,
    MembershipConfig,
    ReadPolicy,
    ResponseMode,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.storage.memlog import MemLog
from pykka_raft.types import LogIndex, NodeId, Term

CONFIG = Config(
    election_timeout_min=150,
    election_timeout_max=300,
    heartbeat_interval=30,
    snapshot_policy=SnapshotPolicy.disabled(),
    pre_vote=False,
    leader_stickiness=False,
)
"""The paper tests' timing: rpc_timeout = 150 ms, heartbeats every 30 ms. The scripted
storage keeps whole logs (snapshots are covered by tests/paper/test_paper_snapshots.py).
Elections are the paper's (§5.2): PreVote and leader stickiness have scenarios of their
own, which turn them on."""

CoreFactory = Callable[[NodeId, Config, random.Random], RaftCore]

TRACE_TAIL = 25

OPT_IN_CHECKS = frozenset({"election-quorum"})
"""Checks that run only when a cluster asks for them (``checks=``)."""


class ScenarioViolation(AssertionError):
    """A safety invariant broke (or a core raised); ``check`` names which."""

    def __init__(self, check: str, detail: str, trace: Sequence[str]) -> None:
        tail = "\n".join(f"  {line}" for line in trace[-TRACE_TAIL:])
        super().__init__(f"[{check}] {detail}\nlast events:\n{tail}")
        self.check = check


def entries(terms: Sequence[Term], start: LogIndex = 1) -> list[Entry]:
    """Normal entries with the given terms at consecutive indexes, data ``"t<term>i<index>"``."""
    return [
        Entry(term, start + i, EntryNormal(f"t{term}i{start + i}")) for i, term in enumerate(terms)
    ]


def terms_of(log: Iterable[Entry]) -> list[Term]:
    """The terms of a log, index 1 first."""
    return [e.term for e in log]


def describe(entry: Entry | None) -> str:
    """``index/tTERM:what`` for messages."""
    if entry is None:
        return "nothing"
    payload = entry.payload
    if isinstance(payload, EntryNormal):
        what = str(payload.data)
    elif isinstance(payload, EntryConfigChange):
        what = describe_membership(payload.membership)
    else:
        what = type(payload).__name__.removeprefix("Entry").lower()
    return f"{entry.index}/t{entry.term}:{what}"


def describe_membership(m: MembershipConfig) -> str:
    """``voters[1,2,3]``, ``joint[1,2,3|3,4,5]``, with ``+nv[4]`` for non-voters."""
    ids = ",".join
    if m.members_after_consensus is None:
        text = f"voters[{ids(map(str, m.members))}]"
    else:
        text = f"joint[{ids(map(str, m.members))}|{ids(map(str, m.members_after_consensus))}]"
    if m.non_voters:
        text += f"+nv[{ids(map(str, m.non_voters))}]"
    return text


def config_entries(log: Iterable[Entry]) -> list[tuple[LogIndex, MembershipConfig]]:
    """The configuration entries of a log: ``(index, membership)``, oldest first."""
    return [
        (e.index, e.payload.membership) for e in log if isinstance(e.payload, EntryConfigChange)
    ]


def config_transition_ok(old: MembershipConfig, new: MembershipConfig) -> bool:
    """§6: the voters change only through the joint configuration, one step at a time."""
    if old.voter_sets() == new.voter_sets():
        return True  # only non-voters change
    if not old.is_in_joint_consensus:
        return new.is_in_joint_consensus and new.members == old.members
    return not new.is_in_joint_consensus and new.members == old.members_after_consensus


# --- the pieces -------------------------------------------------------------------------


@attrs.define
class Durable(MemLog):
    """What a node's storage holds; it survives crashes: the storage model ``MemStore``
    keeps (no snapshots here), and the state machine, ``applied``: the entries 1..k it
    applied. The oracles check each storage command before the model carries it out."""

    applied: list[Entry] = attrs.field(factory=list)


@dataclass(eq=False)
class Msg:
    """A message in flight: a request, or the answer to one (``reply=True``).

    For an answer ``src`` is the responder, ``dst`` the requester, and ``body`` the response
    (``None`` for an error answer); ``request`` is always the request.
    """

    id: int
    src: NodeId
    dst: NodeId
    body: Any
    request: Any
    reply: bool
    requester_inc: int  # the requester's incarnation: an answer to an earlier one is lost

    def __repr__(self) -> str:
        return f"#{self.id} n{self.src}->n{self.dst} {_msg(self.body)}"


@dataclass(eq=False)
class Write:
    """A client write and what the cluster answered."""

    wid: int
    node: NodeId
    incarnation: int
    payload: ClientPayload
    outcome: str = "pending"  # pending, committed, applied, forward, error, lost
    index: LogIndex | None = None
    error: BaseException | None = None

    @property
    def data(self) -> Any:
        return self.payload.entry.data


@dataclass(eq=False)
class AdminCall:
    """A ``ProposeConfigChange`` sent to a node and what it answered."""

    cid: int
    node: NodeId
    incarnation: int
    request: Any  # a ProposeConfigChange, or any call sent with ask()
    outcome: str = "pending"  # pending, ok, error, lost
    value: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class ReadCall:
    """A ``ClientRead`` sent to a node and what it answered. The scripted state machine
    answers every query with the data of the client entries it applied, in order;
    ``required`` is the data of the writes acknowledged, or seen by a linearizable read
    answered, before the read was sent, which a linearizable answer must hold
    (``read-oracle``)."""

    rid: int
    node: NodeId
    policy: ReadPolicy
    required: frozenset[Any]
    outcome: str = "pending"  # pending, ok, error
    value: tuple[Any, ...] | None = None
    index: LogIndex | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class Node:
    """One node: durable storage and, while up, a core run by its driver."""

    id: NodeId
    durable: Durable
    factory: CoreFactory
    core: RaftCore | None = None
    driver: NodeDriver | None = None
    incarnation: int = 0
    clock: int = 0  # the node's virtual time in ms (moved by Cluster.tick only)
    auto_storage: bool = True
    storage: collections.deque[tuple[int, Command]] = field(default_factory=collections.deque)
    answered: set[int] = field(default_factory=set)  # tokens answered by this incarnation
    completed: list[Command] = field(default_factory=list)  # storage commands, every incarnation
    seen_term: Term = 0
    seen_commit: LogIndex = 0

    @property
    def d(self) -> NodeDriver:
        """The running node's driver (the node must be up)."""
        assert self.driver is not None, f"n{self.id} is down"
        return self.driver

    @property
    def up(self) -> bool:
        return self.core is not None

    @property
    def c(self) -> RaftCore:
        """The running core (the node must be up)."""
        assert self.core is not None, f"n{self.id} is down"
        return self.core


class _NodePorts(Ports):
    """A node's driver ports: the scripted storage queue, the message pool, the oracles."""

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node

    def storage(self, seq: int, command: Command) -> None:
        self.node.storage.append((seq, command))

    def send(self, request: Any) -> None:
        self.cluster._sent(self.node, request)

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        self.cluster._answered(self.node, handle, value, error)

    def observe(self, commands: list[Command]) -> None:
        self.cluster._observed(self.node, commands)


# --- the cluster ------------------------------------------------------------------------


class Cluster:
    """``n`` nodes (ids ``1..n``, all voters) and a scripted network.

    ``terms``, ``logs`` and ``applied`` seed each node's durable state (a number for all, or
    a dict by node); seeded applied entries count as committed. ``pristine`` more nodes
    (ids ``n+1..n+pristine``) start with an empty log and an empty membership, to be added
    by a membership change. ``factory`` (or ``factories`` by node) builds the cores, for
    negative checks with broken subclasses. ``config`` is every core's configuration.
    ``skip_checks`` disables named invariants (to see what a later one catches) and
    ``checks`` enables opt-in ones (:data:`OPT_IN_CHECKS`).
    """

    def __init__(
        self,
        n: int,
        *,
        terms: Term | dict[NodeId, Term] = 0,
        logs: dict[NodeId, Sequence[Entry]] | None = None,
        applied: LogIndex | dict[NodeId, LogIndex] = 0,
        factory: CoreFactory = RaftCore,
        factories: dict[NodeId, CoreFactory] | None = None,
        skip_checks: Iterable[str] = (),
        pristine: int = 0,
        config: Config = CONFIG,
        checks: Iterable[str] = (),
    ) -> None:
        self.config = config
        self.formed = tuple(range(1, n + 1))
        self.ids = tuple(range(1, n + pristine + 1))
        self.membership = MembershipConfig(members=self.formed)
        unknown = set(checks) - OPT_IN_CHECKS
        assert not unknown, f"unknown opt-in checks {unknown}"
        self.skip_checks = frozenset(skip_checks) | (OPT_IN_CHECKS - set(checks))
        self.pool: list[Msg] = []
        self._msg_ids = itertools.count(1)
        self.trace: list[str] = []
        self.writes: list[Write] = []
        self._write_of_data: dict[Any, Write] = {}
        # Oracles.
        self.leaders: dict[Term, NodeId] = {}
        self.votes: dict[tuple[NodeId, Term], NodeId] = {}
        self.committed: dict[LogIndex, Entry] = {}
        self.commit_term: dict[LogIndex, Term] = {}
        self.applied_at: dict[LogIndex, Entry] = {}
        # The configurations a committed entry may have been committed under (§6).
        self.commit_configs: dict[LogIndex, tuple[MembershipConfig, ...]] = {}
        self.calls: list[AdminCall] = []
        self.reads: list[ReadCall] = []
        # Each running node's membership before the current step; the configuration in
        # effect on it at the point its commands have been carried out to (it changes with
        # each configuration entry it writes); and, for the entries it asked to apply in
        # this step, the configuration in effect when it did (that is, when it committed).
        self._pre_step: dict[NodeId, MembershipConfig] = {}
        self._stream: dict[NodeId, MembershipConfig] = {}
        self._apply_config: dict[tuple[NodeId, LogIndex], MembershipConfig] = {}
        self.nodes: dict[NodeId, Node] = {}
        logs = logs or {}
        for nid in self.ids:
            log = list(logs.get(nid, ()))
            if nid in self.formed:
                term = terms[nid] if isinstance(terms, dict) else terms
                k = applied.get(nid, 0) if isinstance(applied, dict) else applied
                hard_state = HardState(term, None, self.membership)
            else:
                assert not log, f"pristine n{nid} has no log"
                k, hard_state = 0, HardState()
            durable = Durable(hard_state=hard_state, log=log, applied=log[:k], last_applied=k)
            core_factory = (factories or {}).get(nid, factory)
            self.nodes[nid] = Node(nid, durable, core_factory)
        with self._step("seed"):
            for node in self.nodes.values():
                for entry in node.durable.applied:
                    self._record_committed(entry, entry.term, f"seeded as applied on n{node.id}")
            for node in self.nodes.values():
                self._boot(node)

    # --- access -----------------------------------------------------------------------

    def __getitem__(self, nid: NodeId) -> RaftCore:
        """The running core of node ``nid``."""
        return self.nodes[nid].c

    def log(self, nid: NodeId) -> list[Entry]:
        """The durable log of node ``nid``."""
        return list(self.nodes[nid].durable.log)

    def log_terms(self, nid: NodeId) -> list[Term]:
        """The terms of node ``nid``'s durable log."""
        return terms_of(self.nodes[nid].durable.log)

    def configs(self, nid: NodeId) -> list[tuple[LogIndex, MembershipConfig]]:
        """The configuration entries of node ``nid``'s durable log: ``(index, membership)``."""
        return config_entries(self.nodes[nid].durable.log)

    def effective_membership(self, nid: NodeId) -> MembershipConfig:
        """The configuration node ``nid`` must use by §6, computed by the harness: the latest
        configuration entry in its (in-memory) log, else the one in its durable hard state."""
        node = self.nodes[nid]
        log = node.c.log.slice(1, node.c.log.last_index + 1) if node.up else node.durable.log
        found = config_entries(log)
        return found[-1][1] if found else node.durable.hard_state.membership

    @property
    def commit_index(self) -> LogIndex:
        """The highest index known committed (by any node, ever)."""
        return max(self.committed, default=0)

    def completed(self, nid: NodeId, kind: type | tuple[type, ...] = object) -> list[Any]:
        """The storage commands of ``kind`` that completed on ``nid`` (every incarnation)."""
        return [c for c in self.nodes[nid].completed if isinstance(c, kind)]

    def pending_storage(self, nid: NodeId) -> list[Command]:
        """The storage commands issued by ``nid`` and not completed yet."""
        return [c for _, c in self.nodes[nid].storage]

    # --- the network ------------------------------------------------------------------

    def msgs(
        self,
        kind: type | None = None,
        *,
        src: NodeId | None = None,
        dst: NodeId | None = None,
        term: Term | None = None,
        reply: bool | None = None,
        where: Callable[[Msg], bool] | None = None,
    ) -> list[Msg]:
        """The messages in flight that match, oldest first."""
        return [
            m
            for m in self.pool
            if (kind is None or isinstance(m.body, kind))
            and (src is None or m.src == src)
            and (dst is None or m.dst == dst)
            and (term is None or getattr(m.body, "term", None) == term)
            and (reply is None or m.reply == reply)
            and (where is None or where(m))
        ]

    def one(self, kind: type | None = None, **filters: Any) -> Msg:
        """The single message in flight that matches."""
        found = self.msgs(kind, **filters)
        assert len(found) == 1, f"expected one {getattr(kind, '__name__', 'message')}: {found}"
        return found[0]

    def answers_to(self, msg: Msg) -> list[Msg]:
        """The answers in flight to the request ``msg`` carried."""
        return [m for m in self.pool if m.reply and m.request is msg.request]

    def deliver(self, *msgs: Msg) -> None:
        """Deliver each message now (it leaves the pool)."""
        for msg in msgs:
            assert msg in self.pool, f"{msg} is not in flight"
            with self._step(f"deliver {msg}"):
                self._deliver(msg)

    def inject(self, src: NodeId, dst: NodeId, request: Any) -> Msg:
        """Put a request in flight as if ``src`` had sent it (e.g. to a node it does not
        normally send to); its answer comes back to ``src``'s current incarnation."""
        self._post(src, dst, request, request, False, self.nodes[src].incarnation)
        return self.pool[-1]

    def drop(self, *msgs: Msg) -> None:
        """Lose each message."""
        for msg in msgs:
            self.pool.remove(msg)
            self._trace(f"drop {msg}")

    def drop_where(self, kind: type | None = None, **filters: Any) -> list[Msg]:
        """Lose every matching message in flight; return them."""
        found = self.msgs(kind, **filters)
        self.drop(*found)
        return found

    def duplicate(self, msg: Msg) -> Msg:
        """Put a copy of ``msg`` in flight (delivered independently); return the copy."""
        copy = Msg(
            next(self._msg_ids),
            msg.src,
            msg.dst,
            msg.body,
            msg.request,
            msg.reply,
            msg.requester_inc,
        )
        self.pool.append(copy)
        self._trace(f"duplicate {msg} as #{copy.id}")
        return copy

    def flush(self, among: Iterable[NodeId] | None = None, limit: int = 10_000) -> int:
        """Deliver, oldest first, every message between nodes of ``among`` (default: all) whose
        destination is up, including the ones this produces, until none is left; others
        stay held. Returns how many were delivered."""
        group = set(self.ids if among is None else among)
        count = 0
        while True:
            ready = [
                m for m in self.pool if m.src in group and m.dst in group and self.nodes[m.dst].up
            ]
            if not ready:
                return count
            count += 1
            assert count <= limit, f"flush did not settle after {limit} messages"
            self.deliver(ready[0])

    # --- nodes, time, clients -------------------------------------------------------------

    def tick(self, nid: NodeId, ms: int) -> None:
        """``ms`` of virtual time pass on node ``nid`` (one tick)."""
        node = self.nodes[nid]
        with self._step(f"tick n{nid} {ms}ms"):
            self._trace(f"tick n{nid} {ms}ms")
            node.clock += ms
            node.d.advance(node.clock)
            self._pump(node)

    def heartbeat(self, nid: NodeId) -> None:
        """One heartbeat interval passes on ``nid`` (a leader sends its heartbeats)."""
        self.tick(nid, self.config.heartbeat_interval)

    def timeout(self, nid: NodeId, limit: int = 10_000) -> None:
        """Tick ``nid`` 10 ms at a time until its election timeout starts a new term."""
        node = self.nodes[nid]
        before = node.c.current_term
        assert node.c.role is not Role.LEADER, f"n{nid} leads: it has no election timeout"
        for _ in range(limit // 10):
            self.tick(nid, 10)
            if node.c.current_term > before:
                return
        raise AssertionError(f"n{nid} did not time out within {limit} ms")

    def elect(self, nid: NodeId, voters: Iterable[NodeId], drop_others: bool = True) -> None:
        """Time ``nid`` out, then :meth:`campaign`; ``nid`` must win."""
        self.timeout(nid)
        self.campaign(nid, voters, drop_others)
        assert self[nid].role is Role.LEADER, f"n{nid} did not win term {self[nid].current_term}"

    def campaign(
        self, nid: NodeId, voters: Iterable[NodeId], drop_others: bool = True
    ) -> dict[NodeId, Any]:
        """Deliver the candidate ``nid``'s VoteRequests of its term to ``voters`` and each
        answer back at once; lose the requests to other nodes (unless ``drop_others`` is
        false). Returns the answers delivered, by voter (``VoteResponse`` or ``None``)."""
        term = self[nid].current_term
        voters = set(voters)
        answers: dict[NodeId, Any] = {}
        for msg in self.msgs(VoteRequest, src=nid, term=term):
            if msg.dst in voters:
                self.deliver(msg)
                for answer in self.answers_to(msg):
                    answers[msg.dst] = answer.body
                    self.deliver(answer)
            elif drop_others:
                self.drop(msg)
        return answers

    def write(self, nid: NodeId, data: Any, mode: ResponseMode = ResponseMode.COMMITTED) -> Write:
        """A client sends ``data`` (unique across the scenario) to node ``nid``."""
        assert data not in self._write_of_data, f"write data {data!r} is not unique"
        node = self.nodes[nid]
        write = Write(len(self.writes) + 1, nid, node.incarnation, ClientPayload.new(data, mode))
        self.writes.append(write)
        self._write_of_data[data] = write
        with self._step(f"client w{write.wid} {data!r} -> n{nid}"):
            self._trace(f"client w{write.wid} {data!r} -> n{nid}")
            node.d.call(write.payload, ("client", write))
            self._pump(node)
        return write

    def read(self, nid: NodeId, policy: ReadPolicy = ReadPolicy.READ_INDEX) -> ReadCall:
        """A client sends a ``ClientRead`` to node ``nid``."""
        node = self.nodes[nid]
        # Real-time order: every write acknowledged, and every write a linearizable read
        # saw, before this read was sent.
        required = frozenset(
            w.data for w in self.writes if w.outcome in ("committed", "applied")
        ).union(
            *(
                r.value or ()
                for r in self.reads
                if r.outcome == "ok" and r.policy is not ReadPolicy.STALE
            )
        )
        call = ReadCall(len(self.reads) + 1, nid, policy, required)
        self.reads.append(call)
        with self._step(f"client r{call.rid} {policy.value} -> n{nid}"):
            self._trace(f"client r{call.rid} {policy.value} -> n{nid}")
            node.d.call(ClientRead("everything", policy), ("read", call))
            self._pump(node)
        return call

    def ask(self, nid: NodeId, message: Any) -> AdminCall:
        """Send any other call (e.g. ``TransferLeadership``) to node ``nid``; its answer is
        recorded in the returned call, unchecked."""
        node = self.nodes[nid]
        call = AdminCall(len(self.calls) + 1, nid, node.incarnation, message)
        self.calls.append(call)
        with self._step(f"call c{call.cid} {message} -> n{nid}"):
            node.d.call(message, ("other", call))
            self._pump(node)
        return call

    def propose(
        self,
        nid: NodeId,
        add: Iterable[NodeId] = (),
        remove: Iterable[NodeId] = (),
        non_voters: Iterable[NodeId] = (),
        addresses: Mapping[NodeId, str] | None = None,
    ) -> AdminCall:
        """An admin sends ``ProposeConfigChange(add, remove, non_voters, addresses)`` to
        node ``nid``."""
        node = self.nodes[nid]
        request = ProposeConfigChange(
            tuple(add), tuple(remove), tuple(non_voters), addresses=addresses or ()
        )
        call = AdminCall(len(self.calls) + 1, nid, node.incarnation, request)
        self.calls.append(call)
        with self._step(f"admin c{call.cid} {request} -> n{nid}"):
            self._trace(f"admin c{call.cid} {request} -> n{nid}")
            node.d.call(request, ("admin", call))
            self._pump(node)
        return call

    # --- storage and crashes ------------------------------------------------------------

    def hold_storage(self, nid: NodeId) -> None:
        """From now on ``nid``'s storage commands stay pending until completed by the test."""
        self.nodes[nid].auto_storage = False

    def complete_storage(self, nid: NodeId, count: int | None = None) -> None:
        """Complete the oldest ``count`` (default: all) pending storage commands of ``nid``."""
        node = self.nodes[nid]
        todo = len(node.storage) if count is None else count
        assert todo <= len(node.storage), f"n{nid} has only {len(node.storage)} pending"
        for _ in range(todo):
            with self._step(f"storage n{nid}"):
                self._complete(node)

    def release_storage(self, nid: NodeId) -> None:
        """Complete everything pending on ``nid`` and complete its storage at once again."""
        self.nodes[nid].auto_storage = True
        with self._step(f"release storage n{nid}"):
            self._pump(self.nodes[nid])

    def crash(self, nid: NodeId) -> None:
        """Node ``nid`` stops: pending storage commands, held answers, memory are lost."""
        node = self.nodes[nid]
        assert node.up, f"n{nid} is already down"
        with self._step(f"crash n{nid}"):
            self._trace(
                f"crash n{nid}: lost {len(node.storage)} pending storage commands "
                f"{[type(c).__name__ for _, c in node.storage]} and every held answer"
            )
            calls: list[Write | AdminCall] = [*self.writes, *self.calls]
            for call in calls:
                if (
                    call.node == nid
                    and call.incarnation == node.incarnation
                    and call.outcome == "pending"
                ):
                    call.outcome = "lost"
            node.d.abandon()
            node.core = node.driver = None
            node.incarnation += 1
            node.storage.clear()
            node.auto_storage = True

    def wipe(self, nid: NodeId) -> None:
        """Node ``nid``, down, loses its storage: it restarts pristine."""
        node = self.nodes[nid]
        assert not node.up, f"n{nid} is running"
        with self._step(f"wipe n{nid}"):
            self._trace(f"wipe n{nid}: its storage is lost")
            node.durable = Durable()

    def restart(self, nid: NodeId, factory: CoreFactory | None = None) -> None:
        """Start ``nid`` again from its durable state."""
        node = self.nodes[nid]
        assert not node.up, f"n{nid} is running"
        if factory is not None:
            node.factory = factory
        with self._step(f"restart n{nid}"):
            self._boot(node)

    # --- the shell: a driver per node, with the harness's ports ------------------------

    def _boot(self, node: Node) -> None:
        """Start a fresh core on a fresh driver; it reads its storage in two steps."""
        core = node.factory(node.id, self.config, random.Random(1000 * node.id + node.incarnation))
        node.core = core
        node.driver = NodeDriver(core, _NodePorts(self, node), pauses=False)
        node.answered = set()
        d = node.durable
        self._trace(
            f"start n{node.id}: term={d.hard_state.current_term} vote={d.hard_state.voted_for} "
            f"log={terms_of(d.log)} applied={len(d.applied)}"
        )
        node.driver.boot(node.clock)
        self._pump(node)

    def _pump(self, node: Node) -> None:
        while node.up and node.auto_storage and node.storage:
            self._complete(node)

    def _observed(self, node: Node, commands: list[Command]) -> None:
        """A batch of the core's commands, before the driver carries them out."""
        for command in commands:
            self._follow_stream(node, command)
            if isinstance(command, Respond):
                if command.token in node.answered:
                    raise self._fail(
                        "answer-once", f"n{node.id} answers token {command.token} again"
                    )
                node.answered.add(command.token)

    def _complete(self, node: Node) -> None:
        """The oldest pending storage command of ``node`` completes."""
        seq, command = node.storage.popleft()
        node.completed.append(command)
        d = node.durable
        value: Any = None
        if isinstance(command, LoadInitialState):
            value = d.initial_state()
        elif isinstance(command, LoadLog):
            value = d.entries(command.start, command.stop)
        elif isinstance(command, SaveHardState):
            self._store_hard_state(node, command.hard_state)
        elif isinstance(command, DeleteLogsFrom):
            self._trace(f"n{node.id} stores DeleteLogsFrom({command.index})")
            for entry in d.log[command.index - 1 :]:
                if self.committed.get(entry.index) == entry:
                    raise self._fail(
                        "committed-deleted", f"n{node.id} deletes committed {describe(entry)}"
                    )
            d.delete_from(command.index)
        elif isinstance(command, WriteLog):
            for i, entry in enumerate(command.entries):
                if entry.index != d.last_index + i + 1:
                    raise self._fail(
                        "storage-contract",
                        f"n{node.id} writes {describe(entry)} onto a log of {d.last_index + i}",
                    )
            d.write(command.entries)
            last = command.entries[-1]
            self._trace(
                f"n{node.id} stores WriteLog({command.entries[0].index}..{last.index} "
                f"t{last.term}{' leader' if command.leader else ''})"
            )
            value = {} if command.leader else None  # the application refuses nothing
        elif isinstance(command, Apply):
            value = tuple(self._apply(node, entry) for entry in command.entries)
        elif isinstance(command, Query):
            state = tuple(e.payload.data for e in d.applied if isinstance(e.payload, EntryNormal))
            value = tuple(state for _ in command.reads)  # one answer per read
        else:
            raise self._fail("storage-contract", f"n{node.id}: unexpected {command!r}")
        node.d.storage_done(seq, value)
        if isinstance(command, LoadLog):
            # Started: what the checkers saw of the node starts from its durable state.
            node.seen_term = d.hard_state.current_term
            node.seen_commit = node.c.commit_index

    def _store_hard_state(self, node: Node, hs: HardState) -> None:
        old = node.durable.hard_state
        self._trace(f"n{node.id} stores HardState(term={hs.current_term} vote={hs.voted_for})")
        if hs.current_term < old.current_term:
            raise self._fail(
                "term-monotonic", f"n{node.id} persists term {hs.current_term} over {old}"
            )
        if (
            hs.current_term == old.current_term
            and old.voted_for is not None
            and hs.voted_for != old.voted_for
        ):
            raise self._fail(
                "vote-once", f"n{node.id} persists vote {hs.voted_for} over {old.voted_for}"
            )
        node.durable.save_hard_state(hs)

    def _apply(self, node: Node, entry: Entry) -> Any:
        d = node.durable
        if entry.index != len(d.applied) + 1:
            raise self._fail(
                "apply-order", f"n{node.id} applies {entry.index} after {len(d.applied)}"
            )
        if d.entry(entry.index) != entry:
            raise self._fail(
                "apply-durable", f"n{node.id} applies {describe(entry)} not in its durable log"
            )
        prev = self.applied_at.setdefault(entry.index, entry)
        if prev != entry:
            raise self._fail(
                "state-machine-safety",
                f"n{node.id} applies {describe(entry)}, another node applied {describe(prev)}",
            )
        self._record_committed(entry, node.c.current_term, f"applied on n{node.id}", node)
        d.applied.append(entry)
        d.mark_applied(entry.index)
        self._trace(f"n{node.id} applies {describe(entry)}")
        return f"applied {describe(entry)}"

    def _sent(self, node: Node, request: Any) -> None:
        """A request leaves ``node`` (the driver released it)."""
        if isinstance(request, VoteRequest) and not request.pre_vote:
            self._check_vote_durable(node, request.term, node.id, "asks for votes")
            self._record_vote(node.id, request.term, node.id)
        self._post(node.id, request.target, request, request, False, node.incarnation)

    def _answered(self, node: Node, handle: Any, value: Any, error: BaseException | None) -> None:
        """An answer leaves ``node`` (the driver released it) for the caller ``handle``."""
        kind, what = handle
        if kind == "client":
            self._client_answer(node, what, value, error)
            return
        if kind == "admin":
            self._admin_answer(node, what, value, error)
            return
        if kind == "read":
            self._read_answer(node, what, value, error)
            return
        if kind == "other":
            what.outcome, what.value, what.error = (
                ("ok" if error is None else "error"),
                value,
                error,
            )
            return
        msg: Msg = what
        value = value if error is None else None
        if isinstance(value, VoteResponse) and value.vote_granted and not msg.request.pre_vote:
            self._check_vote_durable(node, value.term, msg.request.candidate_id, "grants")
            self._record_vote(node.id, value.term, msg.request.candidate_id)
        if isinstance(value, AppendEntriesResponse) and value.success:
            self._check_ack_durable(node, msg.request)
        self._post(node.id, msg.src, value, msg.request, True, msg.requester_inc)

    def _post(
        self, src: NodeId, dst: NodeId, body: Any, request: Any, reply: bool, inc: int
    ) -> None:
        msg = Msg(next(self._msg_ids), src, dst, body, request, reply, inc)
        self.pool.append(msg)
        self._trace(f"send {msg}")

    def _deliver(self, msg: Msg) -> None:
        self.pool.remove(msg)
        if not msg.reply:
            dst = self.nodes[msg.dst]
            if not dst.up:
                self._trace(f"lost {msg} (n{msg.dst} is down)")
                return
            self._trace(f"deliver {msg}")
            dst.d.call(msg.request, ("rpc", msg))
            self._pump(dst)
            return
        requester = self.nodes[msg.dst]
        if not requester.up or requester.incarnation != msg.requester_inc:
            self._trace(f"lost {msg} (the requester restarted or is down)")
            return
        self._trace(f"deliver {msg}")
        requester.d.rpc_done(msg.request, msg.body, None)
        self._pump(requester)

    # --- clients ------------------------------------------------------------------------

    def _client_answer(
        self, node: Node, write: Write, value: Any, error: BaseException | None
    ) -> None:
        self._observe_commit(node)  # the answer may depend on a commit made in this step
        if error is not None:
            write.error = error
            write.outcome = "forward" if isinstance(error, ForwardToLeader) else "error"
            self._trace(f"n{node.id} answers w{write.wid}: {type(error).__name__}")
            at = self._committed_at(write)
            if at is not None:
                raise self._fail(
                    "client-oracle",
                    f"w{write.wid} answered {write.outcome} but is committed at {at}",
                )
            return
        if not isinstance(value, ClientPayloadResponse):
            raise self._fail("client-oracle", f"w{write.wid} answered {value!r}")
        write.outcome = value.response_mode.value
        write.index = value.index
        self._trace(f"n{node.id} answers w{write.wid}: {write.outcome} at {value.index}")
        committed = self.committed.get(value.index)
        if committed is None or committed.payload != write.payload.entry:
            raise self._fail(
                "client-oracle",
                f"w{write.wid} acknowledged at {value.index} where {describe(committed)} is "
                "committed",
            )

    def _read_answer(
        self, node: Node, call: ReadCall, value: Any, error: BaseException | None
    ) -> None:
        if error is not None:
            call.outcome, call.error = "error", error
            self._trace(f"n{node.id} answers r{call.rid}: {type(error).__name__}")
            return
        if not isinstance(value, ClientReadResponse):
            raise self._fail("read-oracle", f"r{call.rid} answered {value!r}")
        call.outcome, call.value, call.index = "ok", value.data, value.index
        self._trace(f"n{node.id} answers r{call.rid} at {value.index}: {len(value.data)} writes")
        missing = call.required - set(value.data)
        if missing and call.policy is not ReadPolicy.STALE:
            raise self._fail(
                "read-oracle",
                f"r{call.rid} ({call.policy.value} on n{node.id}) misses acknowledged writes "
                f"{sorted(map(repr, missing))}: a stale read",
            )

    def _admin_answer(
        self, node: Node, call: AdminCall, value: Any, error: BaseException | None
    ) -> None:
        self._observe_commit(node)
        if error is not None:
            call.outcome, call.error = "error", error
            self._trace(f"n{node.id} answers c{call.cid}: {type(error).__name__}")
            return
        call.outcome, call.value = "ok", value
        self._trace(f"n{node.id} answers c{call.cid}: {value!r}")
        if not isinstance(value, ConfigChangeResponse):
            raise self._fail("admin-oracle", f"c{call.cid} answered {value!r}")
        committed = self.committed.get(value.index)
        if committed is None or committed.payload != EntryConfigChange(value.membership):
            raise self._fail(
                "admin-oracle",
                f"c{call.cid} answered {describe_membership(value.membership)} at "
                f"{value.index} where {describe(committed)} is committed",
            )

    def _committed_at(self, write: Write) -> LogIndex | None:
        for index, entry in self.committed.items():
            if entry.payload == write.payload.entry:
                return index
        return None

    # --- invariants -------------------------------------------------------------------

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        """One scripted step: a core that raises is a violation; check afterwards."""
        self._pre_step = {
            n.id: self.effective_membership(n.id) for n in self.nodes.values() if n.up
        }
        self._stream = dict(self._pre_step)
        self._apply_config = {}
        try:
            yield
        except AssertionError:
            raise
        except Exception as exc:
            raise self._fail("core-raised", f"{what}: {type(exc).__name__}: {exc}") from exc
        self.check()

    def _fail(self, check: str, detail: str) -> ScenarioViolation:
        return ScenarioViolation(check, detail, self.trace)

    def _trace(self, line: str) -> None:
        self.trace.append(line)

    def _record_vote(self, voter: NodeId, term: Term, candidate: NodeId) -> None:
        prev = self.votes.setdefault((voter, term), candidate)
        if prev != candidate and "vote-once" not in self.skip_checks:
            raise self._fail(
                "vote-once", f"n{voter} gave its term-{term} vote to n{prev} and n{candidate}"
            )

    def _check_vote_durable(self, node: Node, term: Term, candidate: NodeId, what: str) -> None:
        hs = node.durable.hard_state
        if "vote-durable" in self.skip_checks:
            return
        if hs.current_term < term or (hs.current_term == term and hs.voted_for != candidate):
            raise self._fail(
                "vote-durable",
                f"n{node.id} {what} (term {term}, for n{candidate}) but its durable hard state "
                f"is term {hs.current_term} vote {hs.voted_for}",
            )

    def _check_ack_durable(self, node: Node, request: AppendEntriesRequest) -> None:
        if "ack-durable" in self.skip_checks:
            return
        log = node.durable.log
        prev = request.prev_log_index
        ok = prev == 0 or (prev <= len(log) and log[prev - 1].term == request.prev_log_term)
        missing = [e for e in request.entries if e.index > len(log) or log[e.index - 1] != e]
        if not ok or missing:
            raise self._fail(
                "ack-durable",
                f"n{node.id} acknowledges {_msg(request)} but its durable log is {terms_of(log)}",
            )

    def _record_committed(
        self, entry: Entry, term: Term, why: str, node: Node | None = None
    ) -> None:
        prev = self.committed.setdefault(entry.index, entry)
        if prev != entry:
            raise self._fail(
                "state-machine-safety",
                f"{describe(entry)} is committed ({why}) but {describe(prev)} was committed",
            )
        known = self.commit_term.get(entry.index)
        if known is None or term < known:
            self.commit_term[entry.index] = term
        if known is None:
            self.commit_configs[entry.index] = self._configs_in_effect(node, entry.index)
            self._trace(f"committed {describe(entry)} ({why})")
            write = (
                self._write_of_data.get(entry.payload.data)
                if isinstance(entry.payload, EntryNormal)
                else None
            )
            if write is not None and write.outcome in ("forward", "error"):
                raise self._fail(
                    "client-oracle",
                    f"w{write.wid} was answered {write.outcome} but {describe(entry)} commits",
                )

    def _configs_in_effect(
        self, node: Node | None, index: LogIndex
    ) -> tuple[MembershipConfig, ...]:
        """The configuration ``node`` counted majorities in when it committed ``index``:
        the one in effect at that point of its command stream (§6: a node uses the latest
        configuration in its log, from the moment it writes it). Seeded: the initial one."""
        if node is None or node.core is None:
            return (self.membership,)
        found = self._apply_config.get((node.id, index)) or self._stream.get(node.id)
        return (found or self.effective_membership(node.id),)

    def _follow_stream(self, node: Node, command: Command) -> None:
        """Track the configuration in effect on ``node`` along its command stream."""
        if isinstance(command, WriteLog):
            found = config_entries(command.entries)
            if found:
                self._stream[node.id] = found[-1][1]
        elif isinstance(command, DeleteLogsFrom):
            found = config_entries(node.c.log.slice(1, command.index))
            self._stream[node.id] = found[-1][1] if found else node.durable.hard_state.membership
        elif isinstance(command, Apply) and node.id in self._stream:
            for entry in command.entries:
                self._apply_config.setdefault((node.id, entry.index), self._stream[node.id])

    def _observe_commit(self, node: Node) -> None:
        core = node.core
        if core is None or core.role is Role.INITIALIZING:
            return
        commit = core.commit_index
        if commit < node.seen_commit:
            raise self._fail(
                "commit-monotonic", f"n{node.id} commit index {node.seen_commit} -> {commit}"
            )
        if commit > core.log.last_index:
            raise self._fail(
                "commit-monotonic",
                f"n{node.id} commit index {commit} beyond its log end {core.log.last_index}",
            )
        for i in range(node.seen_commit + 1, commit + 1):
            self._record_committed(
                core.log.get(i), core.current_term, f"commit of n{node.id}", node
            )
        node.seen_commit = commit

    def check(self) -> None:
        """Every invariant, now (called after each step)."""
        for node in self.nodes.values():
            core = node.core
            if core is None or core.role is Role.INITIALIZING:
                continue
            if core.current_term < node.seen_term:
                raise self._fail(
                    "term-monotonic", f"n{node.id} term {node.seen_term} -> {core.current_term}"
                )
            node.seen_term = core.current_term
            if core.role is Role.LEADER:
                if core.current_term not in self.leaders:
                    self._check_election_quorum(node)
                holder = self.leaders.setdefault(core.current_term, node.id)
                if holder != node.id and "election-safety" not in self.skip_checks:
                    raise self._fail(
                        "election-safety",
                        f"n{holder} and n{node.id} both lead term {core.current_term}",
                    )
            self._observe_commit(node)
        durable = [(f"n{n.id} durable", n.durable.log) for n in self.nodes.values()]
        memory = [
            (f"n{n.id} memory", list(n.c.log.slice(1, n.c.log.last_index + 1)))
            for n in self.nodes.values()
            if n.up
        ]
        self._check_log_matching(durable)
        self._check_log_matching(memory)
        self._check_configs(durable + memory)
        for index, entry in sorted(self.committed.items()):
            holders = [
                n.id
                for n in self.nodes.values()
                if index <= len(n.durable.log) and n.durable.log[index - 1] == entry
            ]
            configs = self.commit_configs[index]
            if "committed-lost" not in self.skip_checks and not any(
                has_quorum(m.voter_sets(), holders) for m in configs
            ):
                raise self._fail(
                    "committed-lost",
                    f"committed {describe(entry)} is durable only on {holders}, not on a "
                    "majority of each voter set of "
                    + " or ".join(describe_membership(m) for m in configs),
                )
            for node in self.nodes.values():
                core = node.core
                if (
                    core is not None
                    and core.role is Role.LEADER
                    and core.current_term > self.commit_term[index]
                    and not _holds(core, entry)
                ):
                    raise self._fail(
                        "leader-completeness",
                        f"n{node.id} leads term {core.current_term} without {describe(entry)}, "
                        f"committed by term {self.commit_term[index]}",
                    )

    def _check_election_quorum(self, node: Node) -> None:
        """A node just seen leading its term holds the votes of a majority of each voter
        set of its configuration (its own vote included)."""
        if "election-quorum" in self.skip_checks:
            return
        core = node.c
        term = core.current_term
        granted = {node.id} | {
            v for (v, t), cand in self.votes.items() if t == term and cand == node.id
        }
        pre = self._pre_step.get(node.id)
        now = self.effective_membership(node.id)
        configs = [now] if pre is None else [pre, now]
        if not any(has_quorum(m.voter_sets(), granted) for m in configs):
            raise self._fail(
                "election-quorum",
                f"n{node.id} leads term {term} with the votes of {sorted(granted)} only, "
                f"in {describe_membership(configs[0])}",
            )

    def _check_configs(self, logs: list[tuple[str, list[Entry]]]) -> None:
        commit = self.commit_index
        for name, log in logs:
            found = config_entries(log)
            for index, m in found:
                final = (
                    m.members if m.members_after_consensus is None else m.members_after_consensus
                )
                if (
                    not m.members or not final or set(final) & set(m.non_voters)
                ) and "config-wellformed" not in self.skip_checks:
                    raise self._fail(
                        "config-wellformed", f"{name} holds {describe_membership(m)} at {index}"
                    )
            for (i, old), (j, new) in itertools.pairwise(found):
                if not config_transition_ok(old, new) and "config-transition" not in (
                    self.skip_checks
                ):
                    raise self._fail(
                        "config-transition",
                        f"{name}: {describe_membership(old)} at {i} is followed by "
                        f"{describe_membership(new)} at {j}",
                    )
            pending = [(i, m) for i, m in found if i > commit]
            if len(pending) > 1 and "config-one-at-a-time" not in self.skip_checks:
                raise self._fail(
                    "config-one-at-a-time",
                    f"{name} holds {len(pending)} configurations past the commit point "
                    f"{commit}: "
                    + ", ".join(f"{describe_membership(m)} at {i}" for i, m in pending),
                )

    def _check_log_matching(self, logs: list[tuple[str, list[Entry]]]) -> None:
        for pos, (a, la) in enumerate(logs):
            for b, lb in logs[pos + 1 :]:
                for i in range(min(len(la), len(lb)) - 1, -1, -1):
                    if la[i].term == lb[i].term:
                        if la[: i + 1] != lb[: i + 1]:
                            raise self._fail(
                                "log-matching",
                                f"{a} and {b} agree on index {i + 1} term {la[i].term} but not "
                                f"before: {terms_of(la)} vs {terms_of(lb)}",
                            )
                        break

    def check_final(self) -> None:
        """The end-of-scenario checks: the per-step invariants, plus the four properties
        stated explicitly over the whole run."""
        # Election safety (one leader per term, every leader ever seen recorded in
        # ``leaders``), log matching over durable and in-memory logs, and committed entries
        # on a durable majority are checked by check(); committed entries never lost: held
        # by every running leader.
        self.check()
        for entry in self.committed.values():
            for node in self.nodes.values():
                if node.up and node.c.role is Role.LEADER:
                    assert _holds(node.c, entry), f"leader n{node.id} lacks {describe(entry)}"
        # State machine safety: every state machine applied a prefix of the committed log.
        for node in self.nodes.values():
            for entry in node.durable.applied:
                assert self.committed.get(entry.index) == entry, (
                    f"n{node.id} applied {describe(entry)}, committed there: "
                    f"{describe(self.committed.get(entry.index))}"
                )
        # Clients: acknowledged writes are committed where they were acknowledged.
        for write in self.writes:
            at = self._committed_at(write)
            if write.outcome in ("committed", "applied"):
                assert at == write.index, f"w{write.wid} acknowledged at {write.index}, at {at}"
            if write.outcome in ("forward", "error"):
                assert at is None, f"w{write.wid} answered {write.outcome}, committed at {at}"


def _holds(core: RaftCore, entry: Entry) -> bool:
    return entry.index <= core.log.last_index and core.log.get(entry.index) == entry


def _msg(body: Any) -> str:
    if isinstance(body, AppendEntriesRequest):
        span = f" [{body.prev_log_index + 1}..{body.last_index}]" if body.entries else ""
        return (
            f"AE(t{body.term} prev={body.prev_log_index}/t{body.prev_log_term}{span} "
            f"commit={body.leader_commit})"
        )
    if isinstance(body, VoteRequest):
        return f"Vote(t{body.term} last={body.last_log_index}/t{body.last_log_term})"
    if isinstance(body, AppendEntriesResponse):
        hint = (
            f" hint={body.conflict_opt.index}/t{body.conflict_opt.term}"
            if body.conflict_opt
            else ""
        )
        return f"AEResp(t{body.term} {'ok' if body.success else 'reject'}{hint})"
    if isinstance(body, VoteResponse):
        return f"VoteResp(t{body.term} {'granted' if body.vote_granted else 'denied'})"
    if body is None:
        return "error"
    return repr(body)


__all__ = [
    "CONFIG",
    "OPT_IN_CHECKS",
    "AdminCall",
    "Cluster",
    "Msg",
    "ScenarioViolation",
    "Write",
    "config_entries",
    "config_transition_ok",
    "describe",
    "describe_membership",
    "entries",
    "terms_of",
]
