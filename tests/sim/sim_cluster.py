"""A deterministic, seeded discrete-event simulation of a cluster of :class:`RaftCore` nodes.

One ``random.Random(seed)`` drives everything (each core gets its own ``random.Random``
drawn from it), time is virtual (advanced only through ``RaftCore.tick``), and there are no
threads and no sleeps: a seed replays exactly.

Every node runs on :class:`pykka_raft.driver.NodeDriver`, the driver the Raft actor runs
on: it owns the tokens, the storage sequence numbers and the durable barrier (``Send`` /
``Respond`` with ``after_durable=True`` are held until every storage write issued before
them completed), and turns completions into core events. The simulation supplies the
driver's ports, in virtual time:

* storage: commands complete in FIFO order per node, each after a random delay; a crash
  loses the ones not yet completed;
* a node (re)starts as the actor does: ``NodeDriver.boot``, then the two-step read of its
  storage (``LoadInitialState``, then ``LoadLog``) from its durable hard state, log,
  snapshot, ``last_applied`` and state machine (apply completions are storage completions);
  a crash abandons its driver (held answers are never sent) and all in-memory state;
* time: a ticker per node calls ``NodeDriver.advance`` every 1 to 12 virtual ms;
* ``WriteLog(leader=True)`` validates the leader's normal entries like
  :meth:`pykka_raft.storage.RaftStorage.append_entry_to_log`, with the same rule
  (:func:`pykka_raft.storage.messages.blank_refused`): refused ones are stored blank and
  reported to the driver as rejected.

The network is modelled on :class:`~pykka_raft.network.router.RaftRouter`: a message to a node cut
off by a partition fails at once with an error, others may be dropped (silently), duplicated
(the requester then hears two answers) or delayed (which reorders them); responses cross the
same faults. Each seed picks its own mix of faults.

Membership runs (``membership=True``, see :class:`MembershipProfile`) start a few voters out
of a larger pool of node ids; the others start pristine (empty log, no membership, as a
freshly started node). At random moments a ``ProposeConfigChange`` goes to the leader (or to
any node, for ``NodeNotLeader``): adds, removals, non-voters, promotions, demotions, removing
the leader, replacing every voter, and invalid or empty changes. Every answer is checked
against what was asked, and the invariants use the configuration(s) in effect: a leader
commits only what a majority of each of its voter sets holds durably (both while joint,
§6), a leader is elected by a majority of each of its voter sets, configuration entries
follow one another one at a time and only through the joint configuration, and after the
faults stop the cluster settles on a committed, non-joint configuration whose members all
apply everything.

Snapshot runs (a share of the seeds, see :class:`SnapshotProfile`; decided by a generator of
their own, so that the other seeds replay exactly as before) compact the log with a small
``SnapshotPolicy.every(n)`` and send snapshots in small chunks. The simulated storage then
models the four snapshot commands as :class:`pykka_raft.storage.RaftStorage` does:
``CreateSnapshot`` captures the state machine when the FIFO reaches it and stores it (dropping
the log through it) only after a random build time, behind the storage commands queued
meanwhile, so it may complete after later commands; ``ReadSnapshotChunk`` reads the current
snapshot (``None`` once replaced); ``WriteSnapshotChunk`` keeps received chunks apart, in
order; ``InstallSnapshot`` restores the state machine from them and keeps the log suffix only
if the log holds the snapshot's last entry with its term. The state machine's snapshot holds
its data and its whole applied history, so a node restored from one must end with the same
history as the others. Invariants treat an index inside a node's snapshot as held by it (it
is committed, which is checked when the snapshot is made and when it is installed). Runs
that send ``TriggerSnapshot`` during the faults also compact the leader once more after the
calm phase's write, so that a node still behind catches up by a final install.

Invariants are checked after every simulation step that changed a node (a step that
touched no driver, or a tick after which a node emitted nothing and kept its role, term,
vote and commit index, is not checked again), inside the storage model (every durable
write), and at the driver's ports (every command batch, request and answer); they fail
fast with :class:`SimulationFailure`, whose message carries the seed, a replay command and
the last trace events. ``Simulation.notes`` counts notable situations a run went through
(see :data:`NOTES`), so that a regression test can show that its seed still reproduces
the situation it was written for.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import hashlib
import heapq
import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import attrs

from pykka_raft.admin import (
    ConfigChangeResponse,
    ProposeConfigChange,
    TransferLeadership,
    TransferLeadershipResponse,
    TriggerElection,
    TriggerSnapshot,
)
from pykka_raft.config import Config, SnapshotPolicy
from pykka_raft.core import RaftCore, Role
from pykka_raft.core.commands import (
    NOT_WRITES,
    Apply,
    Command,
    CreateSnapshot,
    DeleteLogsFrom,
    InstallSnapshot,
    LoadInitialState,
    LoadLog,
    Query,
    ReadSnapshotChunk,
    Respond,
    SaveHardState,
    Send,
    WriteLog,
    WriteSnapshotChunk,
)
from pykka_raft.driver import NodeDriver, Ports
from pykka_raft.errors import (
    ApplicationError,
    Busy,
    CatchUpTimeout,
    ChangeInProgress,
    ConfigChangeError,
    ForwardToLeader,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
    NotAllowed,
    OutcomeUnknown,
    ResultUnavailable,
    TransferFailed,
    Unreachable,
)
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
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    ReadPolicy,
    ResponseMode,
    SnapshotMeta,
    TimeoutNowRequest,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.statemachine import Get, KeyValueStateMachine, Put
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.storage.messages import blank_refused
from pykka_raft.types import LogIndex, NodeId, Term

CONFIG = Config(
    election_timeout_min=150,
    election_timeout_max=300,
    heartbeat_interval=30,
    max_payload_entries=3,
    max_inflight=3,
    snapshot_policy=SnapshotPolicy.disabled(),
    pre_vote=False,
    leader_stickiness=False,
)
"""Small batches and pipelines, so that a few seconds of virtual time exercise a lot.
Snapshots are off here; snapshot runs turn them on (see :class:`SnapshotProfile`)."""

SNAPSHOT_SHARE = 0.3
"""The share of seeds that run with snapshots (each kind of run draws its own)."""

SNAPSHOT_CHUNK_ROUND_TRIPS = 2
"""Snapshot runs: extra calm time allowed per chunk of the largest snapshot when the faults
stop, in slowest chunk round trips (the leader's read, the network both ways, the
follower's write): a node that fell behind catches up through a whole snapshot transfer,
one chunk at a time, which starts over when the leader compacts again meanwhile."""

LIVENESS_TIMEOUTS = 20
"""After the faults stop, a leader must commit a new write on every node within this many
maximal election timeouts (plus :data:`CATCH_UP_MS_PER_ENTRY` per entry of backlog)."""

CATCH_UP_MS_PER_ENTRY = 20
"""Extra calm time allowed per entry of backlog when the faults stop (entries the slowest
node has not applied, plus client writes still waiting for an answer, which a leader may
hold queued in memory): a leader writes one batch of 3 entries at a time, so a seed that
wrote faster than that for seconds needs a while to drain; that is throughput, not a loss
of liveness."""

TRACE_TAIL = 30
"""How many trace events a failure message shows."""

READ_ANSWER_MS = 10 * CONFIG.election_timeout_max
"""Every ``ClientRead`` is answered (a value or a typed error) within this many virtual ms,
unless its node crashes first: a leader answers once a heartbeat round confirms it (or
steps down within two election timeouts without a majority, failing its reads), a
follower's question to the leader expires after ``rpc_timeout``, and a read waiting for
its index to be applied on a node that is not leading after ``election_timeout_max``. The
one wait without a bound of its own: a leader holds reads until it has committed an entry
of its term, which may need its followers caught up first (the bound then starts over)."""

ADMIN_ANSWER_MS = 3 * CONFIG.election_timeout_max
"""Every ``TransferLeadership`` and ``TriggerElection`` is answered within this many
virtual ms, unless its node crashes first: a transfer ends once the target leads, or fails
after an election timeout; an election's answer waits only for the node's own vote to be
durable (and a call to a node still starting for its start)."""

REPLAY_HINT = (
    '{env}PYKKA_RAFT_SIM_SEED={seed} .venv/bin/python -m pytest tests/sim -k "replay and n{n}"'
)
MEMBERSHIP_REPLAY_HINT = (
    "{env}PYKKA_RAFT_SIM_SEED={seed} .venv/bin/python -m pytest tests/sim -k membership_replay"
)

CoreFactory = Callable[[NodeId, Config, random.Random], RaftCore]

NOTES = {
    "truncated-write-committed": "a client write's entry was truncated from the log of the "
    "node holding the write, and that entry was committed later all the same",
    "two-writes-one-index": "a node holds two undecided client writes appended at one index "
    "(a deposed leader's, and a newer one after it led again)",
    "install-sweeps-dead-write": "a node installs a snapshot while it holds an undecided "
    "write after the snapshot's point, of an older term than the snapshot's last entry",
    "campaign-outside-latest-config": "a node that is no voter of its latest (uncommitted) "
    "configuration campaigns, as a voter of the one before it",
    "leader-demotes-itself": "a leader appends a configuration that demotes it to non-voter",
    "install-drops-config-entry": "a node installs a snapshot whose last entry it holds with "
    "another term, dropping a configuration entry after the snapshot's point",
    "removed-node-answers-unknown": "a node that is no member of the latest committed "
    "configuration answers a client write OutcomeUnknown",
    "result-unavailable": "a node answers a committed APPLIED write ResultUnavailable: a "
    "snapshot folded its entry away before the node applied it",
    "deletion-outlives-commit": "a node's DeleteLogsFrom, decided while an entry it drops was "
    "not committed (following a leader that lacked it), completes after a newer leader "
    "committed that entry without this node",
    "transfer-to-leaving-voter": "a leader sends TimeoutNow to the target a caller named, a "
    "voter that its joint configuration, or the change it carries out, removes (runs with "
    "admin_ops)",
    "transfer-failed-target-led": "a TransferLeadership is answered TransferFailed although "
    "its target won the election that the transfer's TimeoutNow started (the node asked did "
    "not hear of it in time; runs with admin_ops)",
}
"""Situations a run may go through, counted in ``Simulation.notes`` (the first occurrence
of each is described in ``Simulation.first_note``)."""


_UNKNOWN = object()


def _query(machine: KeyValueStateMachine, query: Any) -> Any:
    """What QueryStateMachine answers for one query (a refused one: its exception)."""
    try:
        return machine.query(query)
    except Exception as exc:
        return exc


class SimulationFailure(AssertionError):
    """An invariant was broken, the core raised, or the cluster did not recover.

    ``check`` names what failed (e.g. ``"election-safety"``, ``"core-raised"``,
    ``"liveness"``); ``seed`` and ``nodes`` replay it.
    """

    def __init__(
        self, message: str, check: str, seed: int, nodes: int, membership: bool = False
    ) -> None:
        super().__init__(message)
        self.check = check
        self.seed = seed
        self.nodes = nodes
        self.membership = membership


# --- the random mix of faults of one seed -----------------------------------------------


@dataclass(frozen=True)
class FaultProfile:
    """How hostile one run is. All times are in virtual milliseconds."""

    fault_ms: int  # how long the faulty phase lasts
    drop: float  # probability that a message (request or response) is lost
    duplicate: float  # probability that a request is delivered twice
    delay_max: int  # normal network delay: uniform in [1, delay_max]
    long_delay: float  # probability of a long delay (reordering across heartbeats)
    long_delay_max: int
    storage_delay_max: int  # a storage command completes after [0, storage_delay_max]
    slow_storage: float  # probability of a much slower storage command (up to 300 ms)
    partition_gap: int | None  # mean time between partitions (None: no partitions)
    partition_ms: int  # longest partition
    crash_gap: int | None  # mean time between crashes (None: no crashes)
    downtime_ms: int  # longest time a crashed node stays down
    reject: float  # probability that the application refuses a valid Put
    write_gap: int  # mean time between client writes

    @classmethod
    def draw(cls, rng: random.Random) -> FaultProfile:
        """A random mix of faults (each fault kind is on or off, with random intensity)."""
        return cls(
            fault_ms=rng.randint(2000, 6000),
            drop=rng.choice((0.0, 0.0, 0.01, 0.05, 0.15, 0.3)),
            duplicate=rng.choice((0.0, 0.01, 0.05)),
            delay_max=rng.randint(1, 25),
            long_delay=rng.choice((0.0, 0.02, 0.1)),
            long_delay_max=rng.randint(50, 400),
            storage_delay_max=rng.choice((1, 5, 20, 60)),
            slow_storage=rng.choice((0.0, 0.01, 0.05)),
            partition_gap=rng.choice((None, 300, 800, 1500)),
            partition_ms=rng.randint(50, 1500),
            crash_gap=rng.choice((None, 200, 600, 1500)),
            downtime_ms=rng.randint(10, 1500),
            reject=rng.choice((0.0, 0.05)),
            write_gap=rng.randint(3, 60),
        )

    def describe(self) -> str:
        """A one-line summary for failure messages."""
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


NAMED_PROFILES = {
    # The fault mix of n3 seed 73, which once caught a truncated write answered
    # ForwardToLeader and later committed: crashes that lose a deletion, duplicates.
    "n3-crash-loses-truncation": FaultProfile(
        fault_ms=20000,
        drop=0.0,
        duplicate=0.05,
        delay_max=9,
        long_delay=0.1,
        long_delay_max=259,
        storage_delay_max=60,
        slow_storage=0.01,
        partition_gap=300,
        partition_ms=512,
        crash_gap=600,
        downtime_ms=1141,
        reject=0.0,
        write_gap=5,
    ),
    # The fault mix of n5 seed 259, the same bug with the entry's copy on another node.
    "n5-copy-on-another-node": FaultProfile(
        fault_ms=20000,
        drop=0.3,
        duplicate=0.01,
        delay_max=16,
        long_delay=0.02,
        long_delay_max=148,
        storage_delay_max=1,
        slow_storage=0.05,
        partition_gap=800,
        partition_ms=986,
        crash_gap=None,
        downtime_ms=1083,
        reject=0.0,
        write_gap=19,
    ),
}
"""Fault profiles that regressions pin by name (``find_seeds.py --profile NAME``)."""


@dataclass(frozen=True)
class MembershipProfile:
    """The membership side of a membership run, drawn from the seed after the faults."""

    voters: int  # the initial voters: nodes 1..voters
    pool: int  # node ids 1..pool; those above ``voters`` start pristine
    change_gap: int  # mean time between proposed membership changes
    to_leader: float  # probability that a change goes to the leader (else to any node)
    catch_up_lag: int  # Config.catch_up_lag
    catch_up_timeout: int  # Config.catch_up_timeout

    @classmethod
    def draw(cls, rng: random.Random) -> MembershipProfile:
        return cls(
            voters=rng.choice((1, 2, 3, 3, 3, 4)),
            pool=rng.choice((5, 6)),
            change_gap=rng.choice((100, 300, 600, 1200)),
            to_leader=rng.choice((0.7, 0.9)),
            catch_up_lag=rng.choice((0, 3, 20)),
            catch_up_timeout=rng.choice((300, 1000, 3000)),
        )

    def config(self) -> Config:
        return attrs.evolve(
            CONFIG, catch_up_lag=self.catch_up_lag, catch_up_timeout=self.catch_up_timeout
        )

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


@dataclass(frozen=True)
class SnapshotProfile:
    """The snapshot side of a snapshot run (§7)."""

    every: int  # SnapshotPolicy.every(n)
    chunk: int  # Config.snapshot_max_chunk_size, in bytes
    build_ms_max: int  # a CreateSnapshot's background build takes [0, build_ms_max] ms
    trigger_gap: int | None  # mean time between TriggerSnapshot calls (None: none)

    @classmethod
    def draw(cls, rng: random.Random) -> SnapshotProfile:
        return cls(
            every=rng.choice((5, 8, 12, 20, 30)),
            chunk=rng.choice((25, 60, 150, 400)),
            build_ms_max=rng.choice((0, 5, 30, 150)),
            trigger_gap=rng.choice((None, None, 300, 1000)),
        )

    @classmethod
    def for_seed(cls, seed: int, kind: str, force: bool = False) -> SnapshotProfile | None:
        """Whether (and how) the run ``kind`` (``"n3"``, ``"n5"``, ``"membership"``) of
        ``seed`` uses snapshots, from a generator of its own: the run's own generator is
        not touched, so the seeds without snapshots replay exactly as before."""
        rng = random.Random(f"pykka-raft-sim-snapshots/{kind}/{seed}")
        use = rng.random() < SNAPSHOT_SHARE
        return cls.draw(rng) if use or force else None

    def config(self, config: Config) -> Config:
        return attrs.evolve(
            config,
            snapshot_policy=SnapshotPolicy.every(self.every),
            snapshot_max_chunk_size=self.chunk,
        )

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


@dataclass(frozen=True)
class AdminProfile:
    """Runs with ``admin_ops=True``: ``TransferLeadership`` (to a voter, to ``None``, to the
    leader itself, to a non-voter or a node outside the cluster) and ``TriggerElection``
    calls at random moments, to the leader or to any node; in membership runs also right
    after a ``ProposeConfigChange``, to its node or to a node it removes, often naming a node
    it removes as the target. Drawn, like every choice of these calls, from a generator of
    their own (:meth:`for_seed`), so that runs without them replay exactly as before."""

    gap: int  # mean time between calls
    to_leader: float  # probability that a call goes to the leader (else to any node)
    election_share: float  # share of TriggerElection among the calls (the rest: transfers)
    after_change: float  # probability of a call right after a ProposeConfigChange

    @classmethod
    def draw(cls, rng: random.Random) -> AdminProfile:
        return cls(
            gap=rng.choice((150, 400, 1000)),
            to_leader=rng.choice((0.6, 0.85)),
            election_share=rng.choice((0.1, 0.25, 0.4)),
            after_change=rng.choice((0.3, 0.7)),
        )

    @classmethod
    def rng_for(cls, seed: int, kind: str) -> random.Random:
        return random.Random(f"pykka-raft-sim-admin/{kind}/{seed}")

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


@dataclass(frozen=True)
class CutProfile:
    """Runs with ``one_way=True``: network cuts that are not partitions, at random moments
    during the faults, one at a time, each healed after at most ``cut_ms``:

    * ``one-way``: the messages of one node to another are dropped (requests and the
      answers to the other's requests), those the other way are delivered;
    * ``mute`` / ``deaf``: every message from (or to) one node is dropped, the others'
      among themselves are not;
    * ``chain``: the nodes in a random line, each reaching only its neighbours (with three
      nodes: A-B-C, A and C cut from each other);
    * ``pair``: two nodes cut from each other, both ways; every other link works.

    Dropped silently (the sender hears nothing, as with a lost message), unlike a
    partition's error. Drawn from a generator of their own (:meth:`rng_for`)."""

    gap: int  # mean time between cuts
    cut_ms: int  # longest cut
    weights: tuple[int, int, int, int, int]  # of one-way, mute, deaf, chain, pair

    KINDS = ("one-way", "mute", "deaf", "chain", "pair")

    @classmethod
    def draw(cls, rng: random.Random) -> CutProfile:
        return cls(
            gap=rng.choice((200, 600, 1500)),
            cut_ms=rng.randint(100, 2000),
            weights=rng.choice(((3, 1, 1, 2, 2), (1, 3, 1, 1, 1), (1, 1, 1, 3, 1))),
        )

    @classmethod
    def rng_for(cls, seed: int, kind: str) -> random.Random:
        return random.Random(f"pykka-raft-sim-cuts/{kind}/{seed}")

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


# --- nodes ------------------------------------------------------------------------------


class SimStateMachine(KeyValueStateMachine):
    """The key-value state machine with its whole applied history in its snapshots, in a
    compact form (compressed JSON, so that transfers take a few small chunks): a node
    restored from a snapshot holds the same history as the nodes that applied every entry."""

    def snapshot(self) -> Callable[[], bytes]:
        data, applied = dict(self.data), list(self.applied)
        return lambda: encode_state(data, applied)

    def restore(self, data: bytes) -> None:
        self.data, self.applied = decode_state(data)


def encode_state(data: dict[str, Any], applied: list[tuple[int, Any]]) -> bytes:
    """``{"data": {...}, "applied": [[index] or [index, key, value], ...]}``, compressed."""
    history: list[list[Any]] = []
    for index, command in applied:
        if command is None:
            history.append([index])
        elif isinstance(command, Put):
            history.append([index, command.key, command.value])
        else:
            raise TypeError(f"cannot snapshot applied command {command!r} at {index}")
    doc = json.dumps({"data": data, "applied": history}, separators=(",", ":"))
    return zlib.compress(doc.encode(), 6)


def decode_state(blob: bytes) -> tuple[dict[str, Any], list[tuple[int, Any]]]:
    doc = json.loads(zlib.decompress(blob))
    applied = [(h[0], Put(h[1], h[2]) if len(h) == 3 else None) for h in doc["applied"]]
    return dict(doc["data"]), applied


@attrs.define
class Durable(MemStoreData):
    """What a node's storage holds: it survives crashes.

    The storage model :class:`~pykka_raft.storage.memlog.MemLog` that ``MemStore`` keeps
    (the log after the snapshot ``snapshot_meta``, whose bytes are ``snapshot_data``; a
    snapshot being received, kept apart; ``last_applied``), with the simulation's state
    machine. The oracles check each storage command before the model carries it out.
    """

    state_machine: SimStateMachine = attrs.field(factory=lambda: SimStateMachine(keep_history=True))


@dataclass(frozen=True)
class StoreSnapshot:
    """The storage's internal step after a background build: store the snapshot."""

    request: CreateSnapshot
    data: bytes


@dataclass
class SimNode:
    """One node: durable storage, and (while up) a core with the shell's volatile state."""

    id: NodeId
    durable: Durable
    up: bool = True
    incarnation: int = 0  # bumped on every crash: stale events and replies are ignored
    core: RaftCore | None = None
    driver: NodeDriver | None = None
    # The storage model: FIFO, each command done after a random delay.
    storage: collections.deque[tuple[Any, Any]] = field(default_factory=collections.deque)
    storage_ready_at: int = 0
    done: int = 0  # the storage's last completed sequence number
    # What the checkers saw of this incarnation's commands: the tokens it answered, and the
    # undecided client writes it appended as leader, by index: [(write id, term)].
    answered: set[int] = field(default_factory=set)
    write_index: dict[LogIndex, list[tuple[int, Term]]] = field(default_factory=dict)
    emitted: bool = False  # the driver carried out commands in this step
    # What the checkers saw of this incarnation.
    seen_term: Term = 0
    seen_vote: NodeId | None = None
    seen_commit: LogIndex = 0
    seen_role: Role = Role.INITIALIZING
    led_term: Term = -1  # the latest term in which it was seen leading
    config_step: int = -1  # the step in which it last appended a configuration entry
    config_appended: LogIndex = 0  # and that entry's index
    term_committed_at: tuple[Term, int] = (-1, 0)  # a term it led, when it first committed in it

    @property
    def started(self) -> bool:
        return self.core is not None and self.core.role is not Role.INITIALIZING

    @property
    def d(self) -> NodeDriver:
        assert self.driver is not None, f"n{self.id} is down"
        return self.driver

    def seen(self) -> tuple[Any, ...]:
        """What a step must change for the node to be checked again."""
        core = self.core
        if core is None:
            return ()
        return (core.role, core.current_term, core.voted_for, core.commit_index)


class SimPorts(Ports):
    """One node's driver ports: the simulated storage, the network, the oracles."""

    def __init__(self, sim: Simulation, node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def storage(self, seq: int, command: Command) -> None:
        self.sim._enqueue_storage(self.node, seq, command)

    def send(self, request: Any) -> None:
        self.sim._send(self.node, request)

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        self.sim._answer(self.node, handle, value, error)

    def observe(self, commands: list[Command]) -> None:
        self.sim._observed(self.node, commands)


@dataclass
class Write:
    """One client write and what the cluster answered."""

    wid: int
    payload: ClientPayload
    node: NodeId
    incarnation: int
    outcome: str = "pending"  # pending, committed, applied, forward, app_error, lost
    index: LogIndex | None = None
    answered: str = ""  # "by nX at t=T", for failure messages


@dataclass
class Read:
    """One ``ClientRead`` and what the cluster answered (``required``: the highest index
    of a write acknowledged, or of a linearizable read answered, before it was sent)."""

    rid: int
    node: NodeId
    policy: ReadPolicy
    key: str
    required: LogIndex
    outcome: str = "pending"  # pending, ok, error, lost
    incarnation: int = 0
    sent_at: int = 0
    started: bool = True  # its node had read its storage when it was sent


@dataclass
class AdminCall:
    """One ``TransferLeadership`` or ``TriggerElection`` and what the cluster answered."""

    aid: int
    kind: str  # "transfer" or "election"
    node: NodeId
    incarnation: int
    target: NodeId | None  # the transfer's target as asked
    sent_at: int
    started: bool  # the node had read its storage
    was_leader: bool
    term: Term
    membership: MembershipConfig  # the node's, when asked
    had_transfer: bool  # a transfer was under way on the node already
    changing: bool  # a membership change was under way on the node (or it was joint)
    chosen: NodeId | None = None  # the target the node chose (or was given)
    timeout_now_term: Term | None = None  # the term of the TimeoutNow this transfer sent
    outcome: str = "pending"  # pending, lost, or the answer's type name
    answered: str = ""

    def describe(self) -> str:
        what = "TriggerElection" if self.kind == "election" else f"Transfer(to {self.target})"
        return (
            f"a{self.aid} {what} to n{self.node} "
            f"({'leader' if self.was_leader else 'not leader'} of t{self.term}, "
            f"{_describe(self.membership)}, asked at t={self.sent_at})"
        )


@dataclass
class Change:
    """One ``ProposeConfigChange`` and what the cluster answered."""

    cid: int
    request: ProposeConfigChange
    node: NodeId
    incarnation: int
    before: MembershipConfig  # the membership of the node asked, when asked
    was_leader: bool
    busy: bool  # the node was already carrying out a change (or a joint configuration)
    target: MembershipConfig | None  # what was asked (None: the request is invalid)
    outcome: str = "pending"  # pending, lost, or the answer's type name
    answered: str = ""
    transferring: bool = False  # the node was handing leadership over


def expected_target(
    before: MembershipConfig, change: ProposeConfigChange, min_voters: int
) -> tuple[MembershipConfig | None, str]:
    """What ``change`` asks of ``before`` (see ``ProposeConfigChange``), computed here
    independently of the core: the target and ``""``, or ``None`` and the error's name."""
    add, remove, learners = (
        set(change.add_members),
        set(change.remove_members),
        set(change.add_non_voters),
    )
    if ((add | learners) & remove) or (add & learners):
        return None, "InoperableConfig"
    voters = (set(before.voters()) | add) - remove - learners
    non_voters = (set(before.non_voters) | learners) - remove - add
    target = MembershipConfig(tuple(sorted(voters)), None, tuple(sorted(non_voters)))
    if target == before:
        return None, "Noop"
    if len(voters) < min_voters and len(voters) < len(before.voters()):
        return None, "InoperableConfig"  # min_voters refuses shrinking only
    return target, ""


# --- the simulation ---------------------------------------------------------------------


class Simulation:
    """A seeded run: a faulty phase, then a calm phase that must reach a live, agreed state."""

    def __init__(
        self,
        seed: int,
        nodes: int = 3,
        core_factory: CoreFactory = RaftCore,
        profile: FaultProfile | None = None,
        keep_trace: bool = False,
        skip_checks: frozenset[str] = frozenset(),
        fault_ms: int | None = None,
        membership: bool = False,
        membership_profile: MembershipProfile | None = None,
        snapshots: bool | None = None,
        snapshot_profile: SnapshotProfile | None = None,
        check_every_step: bool = False,
        pre_vote: bool = False,
        admin_ops: bool = False,
        one_way: bool = False,
        damage: bool = False,
    ) -> None:
        self.seed = seed
        self.check_every_step = check_every_step  # also after steps that changed nothing
        # Snapshots: as the seed decides (None), forced on or off, or this profile.
        kind = "membership" if membership else f"n{nodes}"
        by_seed = SnapshotProfile.for_seed(seed, kind)
        self.sprofile = by_seed
        if snapshot_profile is not None:
            self.sprofile = snapshot_profile
        elif snapshots is not None:
            self.sprofile = SnapshotProfile.for_seed(seed, kind, force=True) if snapshots else None
        # Forced on or off against the seed's choice: PYKKA_RAFT_SIM_SNAPSHOTS replays it.
        self.snapshots_forced = None if self.sprofile == by_seed else self.sprofile is not None
        self.custom = (
            profile is not None
            or core_factory is not RaftCore
            or membership_profile is not None
            or snapshot_profile is not None
        )
        self.skip_checks = skip_checks
        self.fault_ms = fault_ms
        self.rng = random.Random(seed)
        self.profile = profile if profile is not None else FaultProfile.draw(self.rng)
        if fault_ms is not None:  # a longer (or shorter) faulty phase, same seed otherwise
            self.profile = dataclasses.replace(self.profile, fault_ms=fault_ms)
        # Membership runs draw their own parameters after the faults (so that the other runs
        # replay as before), and ``nodes`` is drawn too.
        self.mprofile: MembershipProfile | None = None
        self.config = CONFIG
        if membership:
            self.mprofile = membership_profile or MembershipProfile.draw(self.rng)
            self.config = self.mprofile.config()
            nodes = self.mprofile.voters
        if self.sprofile is not None:
            self.config = self.sprofile.config(self.config)
        # PreVote and leader stickiness (dissertation §9.6, §4.2.3): off by default, so the
        # fixed seeds run the paper's elections; pre_vote=True runs the library default.
        self.pre_vote = pre_vote
        # Reads (dissertation §6.4) join the client workload of the PreVote runs (the
        # library's default elections); the other seeds replay as before.
        self.read_share = 0.3 if pre_vote else 0.0
        self.reads: dict[int, Read] = {}
        self.acked_index = 0  # the highest index of an acknowledged write
        self.read_index = 0  # the highest index a linearizable read was answered at
        self._oracle: tuple[LogIndex, KeyValueStateMachine] = (0, KeyValueStateMachine())
        if pre_vote:
            self.config = attrs.evolve(self.config, pre_vote=True, leader_stickiness=True)
        # Admin calls (TransferLeadership, TriggerElection) and one-way cuts: opt-in, each
        # from a generator of its own, so that the runs without them replay as before.
        self.aprofile: AdminProfile | None = None
        self.arng: random.Random | None = None
        if admin_ops:
            self.arng = AdminProfile.rng_for(seed, kind)
            self.aprofile = AdminProfile.draw(self.arng)
        self.cprofile: CutProfile | None = None
        self.crng: random.Random | None = None
        if one_way:
            self.crng = CutProfile.rng_for(seed, kind)
            self.cprofile = CutProfile.draw(self.crng)
        # Damaged snapshot chunks: opt-in, from a generator of their own too.
        self.drng: random.Random | None = None
        self.damage_rate = 0.0
        if damage:
            self.drng = random.Random(f"pykka-raft-sim-damage/{kind}/{seed}")
            self.damage_rate = self.drng.choice((0.05, 0.2, 0.5))
        self.cuts: frozenset[tuple[NodeId, NodeId]] = frozenset()  # (from, to) dropped
        self.cut_stats: collections.Counter[str] = collections.Counter()
        self.admin_calls: dict[int, AdminCall] = {}
        self.asking: int | None = None  # the admin call being made right now
        # Calls that must be answered by a time (reads, admin calls): (due, kind, id).
        self.answer_due: list[tuple[int, str, int]] = []
        self.n = nodes
        self.pool = self.mprofile.pool if self.mprofile is not None else nodes
        self.core_factory = core_factory
        self.initial_membership = MembershipConfig(members=tuple(range(1, nodes + 1)))
        self.now = 0
        self.events: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self.event_seq = 0
        self.steps = 0
        self.trace: collections.deque[tuple[Any, ...]] = collections.deque(maxlen=200)
        self.full_trace: list[tuple[Any, ...]] | None = [] if keep_trace else None
        self.faulty = True
        self.groups: dict[NodeId, int] | None = None  # partition: node -> side
        # Oracle and checker state.
        self.leaders: dict[Term, NodeId] = {}
        # The configuration each term's leader had when it first led (transfer checks).
        self.won_with: dict[Term, MembershipConfig] = {}
        self.granted: dict[tuple[NodeId, Term], NodeId] = {}
        self.committed: dict[LogIndex, Entry] = {}
        self.commit_term: dict[LogIndex, Term] = {}  # smallest term a node knew it committed
        self.applied: dict[LogIndex, Entry] = {}
        self.entry_ids: dict[tuple[LogIndex, Term], tuple[Entry, Term]] = {}
        self.writes: dict[int, Write] = {}
        self.write_of_value: dict[str, int] = {}
        self.committed_value_at: dict[str, LogIndex] = {}
        self.leader_hint: NodeId | None = None
        self.liveness_write: Write | None = None
        self.final_trigger = False  # the calm phase's TriggerSnapshot was sent
        self.deadline = 0
        # Membership oracle: the latest committed configuration entry (index 0: the one the
        # cluster was formed with), the highest committed index, the votes each candidate
        # got, and the membership changes asked.
        self.committed_config: tuple[LogIndex, MembershipConfig] = (0, self.initial_membership)
        self.commit_max: LogIndex = 0
        self.votes_for: dict[tuple[NodeId, Term], set[NodeId]] = {}
        # Durable logs only lose entries that are not committed (checked at deletion), so
        # the committed-quorum check is needed only when something new is committed.
        self.quorum_dirty = False
        # The order in which indexes were first seen committed, and where each node's
        # DeleteLogsFrom was decided in it: a deletion may complete after a newer leader
        # committed an entry it drops, decided when the entry was not committed.
        self.commit_seq = 0
        self.committed_seq: dict[LogIndex, int] = {}
        self.delete_decided: dict[tuple[NodeId, int, Any], int] = {}
        self.changes: dict[int, Change] = {}
        self.proposing: int | None = None  # the change being asked right now
        self.final_membership: MembershipConfig | None = None
        # Snapshot oracle: every snapshot a storage made (by its id, unique in the run), the
        # indexes of the committed configuration entries, and counts for the summary.
        self.snapshots: dict[str, tuple[SnapshotMeta, bytes]] = {}
        self.committed_config_indexes: list[LogIndex] = []
        self.snapshot_stats: collections.Counter[str] = collections.Counter()
        # Situations the run went through (see NOTES), and the nodes a step touched.
        self.notes: collections.Counter[str] = collections.Counter()
        self.first_note: dict[str, str] = {}
        self.truncated_writes: dict[int, str] = {}  # write id -> where it was truncated
        self.touched: set[NodeId] = set()
        self.checked_steps = 0
        self.nodes: dict[NodeId, SimNode] = {}
        for nid in range(1, self.pool + 1):
            # Nodes beyond the initial voters start pristine, like a freshly started node.
            hs_membership = self.initial_membership if nid <= nodes else MembershipConfig()
            self.nodes[nid] = SimNode(nid, Durable(hard_state=HardState(0, None, hs_membership)))
        for node in self.nodes.values():
            self._boot(node)

    # --- failure reporting ------------------------------------------------------------

    def fail(self, check: str, detail: str) -> SimulationFailure:
        """Build the failure to raise: what broke, how to replay it, and the trace tail."""
        tail = list(self.trace)[-TRACE_TAIL:]
        lines = [
            f"[{check}] {detail}",
            f"seed={self.seed} nodes={self.n} core={self.core_factory.__name__} "
            + (f"membership pool={self.pool} " if self.mprofile is not None else "")
            + f"t={self.now}ms step={self.steps}",
            "replay: "
            + (
                "rerun the test that built this simulation (custom core or profiles)"
                if self.custom
                else (REPLAY_HINT if self.mprofile is None else MEMBERSHIP_REPLAY_HINT).format(
                    seed=self.seed,
                    n=self.n,
                    env=self._replay_env(),
                )
            ),
            f"faults: {self.profile.describe()}",
            *([f"snapshots: {self.sprofile.describe()}"] if self.sprofile is not None else []),
            *([f"admin calls: {self.aprofile.describe()}"] if self.aprofile is not None else []),
            *([f"one-way cuts: {self.cprofile.describe()}"] if self.cprofile is not None else []),
            *(
                [f"membership: {self.mprofile.describe()}; {self._membership_status()}"]
                if self.mprofile is not None
                else []
            ),
            f"last {len(tail)} trace events:",
            *(f"  {_format_event(e)}" for e in tail),
        ]
        return SimulationFailure(
            "\n".join(lines), check, self.seed, self.n, self.mprofile is not None
        )

    def _replay_env(self) -> str:
        """The environment variables the replay tests need to run this seed as it ran."""
        env = ""
        if self.snapshots_forced is not None:
            env += f"PYKKA_RAFT_SIM_SNAPSHOTS={int(self.snapshots_forced)} "
        if self.fault_ms is not None:
            env += f"PYKKA_RAFT_SIM_FAULT_MS={self.fault_ms} "
        if self.pre_vote:
            env += "PYKKA_RAFT_SIM_PRE_VOTE=1 "
        if self.aprofile is not None:
            env += "PYKKA_RAFT_SIM_ADMIN_OPS=1 "
        if self.cprofile is not None:
            env += "PYKKA_RAFT_SIM_ONE_WAY=1 "
        if self.drng is not None:
            env += "PYKKA_RAFT_SIM_DAMAGE=1 "
        if self.skip_checks:
            env += f"PYKKA_RAFT_SIM_SKIP_CHECKS={','.join(sorted(self.skip_checks))} "
        return env

    def _trace(self, *event: Any) -> None:
        record = (self.now, *event)
        self.trace.append(record)
        if self.full_trace is not None:
            self.full_trace.append(record)

    # --- the event loop ---------------------------------------------------------------

    def _schedule(self, delay: int, kind: str, *args: Any) -> None:
        self.event_seq += 1
        heapq.heappush(self.events, (self.now + delay, self.event_seq, kind, args))

    def _gap(self, mean: int, rng: random.Random | None = None) -> int:
        """A random wait of ``mean`` ms on average, drawn from ``rng`` (the run's own by
        default)."""
        return int((rng or self.rng).expovariate(1.0 / mean)) + 1

    def run(self) -> Simulation:
        """Run the faulty phase, then the calm phase; raise :class:`SimulationFailure`."""
        p = self.profile
        self._schedule(self._gap(p.write_gap), "client")
        if p.partition_gap is not None:
            self._schedule(self._gap(p.partition_gap), "partition")
        if p.crash_gap is not None:
            self._schedule(self._gap(p.crash_gap), "crash")
        if self.mprofile is not None:
            self._schedule(self._gap(self.mprofile.change_gap), "admin")
        if self.sprofile is not None and self.sprofile.trigger_gap is not None:
            self._schedule(self._gap(self.sprofile.trigger_gap), "trigger")
        if self.aprofile is not None:
            self._schedule(self._admin_gap(), "admin_call")
        if self.cprofile is not None:
            self._schedule(self._cut_gap(), "cut")
        self._schedule(p.fault_ms, "calm")
        self.deadline = p.fault_ms + LIVENESS_TIMEOUTS * CONFIG.election_timeout_max
        while True:
            if not self.events:
                raise self.fail("simulator", "no events left")
            if self.events[0][0] > self.deadline:
                raise self.fail(
                    "liveness",
                    f"no single leader committed a new write on every node by "
                    f"t={self.deadline}ms ({LIVENESS_TIMEOUTS} election timeouts after the "
                    f"faults stopped, plus catch-up): {self._status()}",
                )
            when, _, kind, args = heapq.heappop(self.events)
            self.now = when
            self.steps += 1
            touched = self.touched
            touched.clear()
            try:
                getattr(self, "_on_" + kind)(*args)
            except SimulationFailure:
                raise
            except Exception as exc:
                raise self.fail("core-raised", f"{type(exc).__name__}: {exc}") from exc
            if self.steps % 1000 == 0:
                self._check_log_matching()
            if self.answer_due and self.answer_due[0][0] < self.now:
                self._check_answers_due()
            if not touched and not self.check_every_step:
                continue  # nothing changed: every invariant still holds
            self.checked_steps += 1
            self._check_nodes(
                [n for n in self.nodes.values() if self.check_every_step or n.id in touched]
            )
            if self.quorum_dirty:
                self.quorum_dirty = False
                self._check_committed_on_quorum()
            if not self.faulty and self._live() and not self._answers_pending():
                break
        self._check_log_matching()
        self._check_final()
        return self

    def _status(self) -> str:
        parts = []
        for node in self.nodes.values():
            core = node.core
            if not node.up or core is None:
                parts.append(f"n{node.id}:down")
                continue
            parts.append(
                f"n{node.id}:{core.role.value} t{core.current_term} leader={core.leader_id} "
                f"last={core.log.last_index} commit={core.commit_index} "
                f"applied={node.durable.last_applied}"
                + (f" snapshot={core.log.offset}" if core.log.offset else "")
                + (
                    f" config@{core.log.config_index}={_describe(core.membership)}"
                    if self.mprofile is not None
                    else ""
                )
            )
        lw = self.liveness_write
        return "; ".join(parts) + (
            f"; liveness write: {lw.outcome}@{lw.index}" if lw else "; no liveness write"
        )

    def _membership_status(self) -> str:
        index, config = self.committed_config
        pending = [c for c in self.changes.values() if c.outcome == "pending"]
        return (
            f"latest committed config @{index}: {_describe(config)}; "
            f"{len(self.changes)} changes asked, {len(pending)} pending"
        )

    # --- nodes: boot, crash, shell ----------------------------------------------------

    def _boot(self, node: SimNode) -> None:
        """A (re)started node: a fresh core on a fresh driver, INITIALIZING until it has
        read its storage."""
        node.up = True
        node.core = self.core_factory(node.id, self.config, random.Random(self.rng.getrandbits(64)))
        node.driver = NodeDriver(node.core, SimPorts(self, node))
        node.storage.clear()
        node.answered = set()
        node.write_index = {}
        node.done = 0
        node.storage_ready_at = self.now
        node.seen_role = Role.INITIALIZING
        self._schedule(self.rng.randint(1, 20), "start", node.id, node.incarnation)
        self._schedule(
            self.rng.randint(1, 2 * CONFIG.tick_interval), "tick", node.id, node.incarnation
        )

    def _on_start(self, nid: NodeId, incarnation: int) -> None:
        """The node's process is up: it asks its storage for its state."""
        node = self.nodes[nid]
        if not node.up or node.incarnation != incarnation:
            return
        self.touched.add(node.id)
        node.d.boot(self.now)

    def _started(self, node: SimNode) -> None:
        """The node read its log and starts: the checkers start from its durable state."""
        d = node.durable
        node.seen_term = d.hard_state.current_term
        node.seen_vote = d.hard_state.voted_for
        node.seen_commit = d.last_applied
        last = d.last_log_id
        self._trace(
            "start",
            node.id,
            f"term={d.hard_state.current_term} vote={d.hard_state.voted_for}"
            f" last={last.index} applied={d.last_applied}"
            + (f" snapshot={d.offset}/t{d.offset_term}" if d.snapshot_meta is not None else ""),
        )

    def _on_tick(self, nid: NodeId, incarnation: int) -> None:
        node = self.nodes[nid]
        if not node.up or node.incarnation != incarnation:
            return
        before = node.seen()
        node.emitted = False
        node.d.advance(self.now)
        if node.emitted or node.seen() != before:
            self.touched.add(node.id)
        self._schedule(self.rng.randint(1, 2 * CONFIG.tick_interval), "tick", nid, incarnation)

    def _crash(self, node: SimNode) -> None:
        lost = sum(1 for _, c in node.storage if not isinstance(c, NOT_WRITES))
        self._trace("crash", node.id, f"lost {len(node.storage)} storage cmds ({lost} writes)")
        calls: list[Write | Change | Read | AdminCall] = [
            *self.writes.values(),
            *self.changes.values(),
            *(r for r in self.reads.values() if r.outcome == "pending"),
            *(a for a in self.admin_calls.values() if a.outcome == "pending"),
        ]
        for call in calls:
            if (
                call.node == node.id
                and call.incarnation == node.incarnation
                and call.outcome == "pending"
            ):
                call.outcome = "lost"
        node.d.abandon()
        node.up = False
        node.core = node.driver = None
        node.incarnation += 1
        node.storage.clear()

    def _observed(self, node: SimNode, commands: list[Command]) -> None:
        """A batch of commands of ``node``'s core, before its driver carries them out."""
        self.touched.add(node.id)
        node.emitted = True
        core = node.core
        assert core is not None
        for command in commands if node.led_term == core.current_term else ():
            if isinstance(command, WriteLog) and command.leader:
                appended = [e for e in command.entries if isinstance(e.payload, EntryConfigChange)]
                if appended:
                    # Mark it before any answer of this batch lets the checkers look at
                    # commits: those were decided under the configuration before it.
                    node.config_step = self.steps
                    node.config_appended = appended[0].index
                    break
        for command in commands:
            if isinstance(command, WriteLog) and command.leader:
                if any(isinstance(e.payload, EntryConfigChange) for e in command.entries):
                    self._check_config_entries(node, command.entries)
                    self._check_config_during_transfer(node, command.entries)
                self._note_appended_writes(node, command.entries)
            elif isinstance(command, Send) and isinstance(command.request, TimeoutNowRequest):
                self._check_timeout_now(node, command.request)
            elif isinstance(command, DeleteLogsFrom):
                for index, waiting in node.write_index.items():
                    if index >= command.index:
                        for wid, _ in waiting:
                            where = f"on n{node.id} at {index} (t={self.now})"
                            self.truncated_writes.setdefault(wid, where)
            elif isinstance(command, InstallSnapshot):
                last = command.meta.last_included
                for index, waiting in sorted(node.write_index.items()):
                    for wid, term in waiting:
                        if (
                            index > last.index
                            and term < last.term
                            and self.writes[wid].outcome == "pending"
                        ):
                            self._note(
                                "install-sweeps-dead-write",
                                f"n{node.id} installs a snapshot through {last.index}/"
                                f"t{last.term} holding w{wid} at {index}/t{term}",
                            )
            elif isinstance(command, Respond):
                if command.token in node.answered:
                    raise self.fail(
                        "answer-once", f"n{node.id} answers token {command.token} again"
                    )
                node.answered.add(command.token)

    def _note_appended_writes(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        """Remember where the node's undecided client writes wait (for NOTES)."""
        for entry in entries:
            data = entry.payload.data if isinstance(entry.payload, EntryNormal) else None
            wid = self.write_of_value.get(data.value) if isinstance(data, Put) else None
            if wid is None:
                continue
            write = self.writes[wid]
            if write.node != node.id or write.incarnation != node.incarnation:
                continue
            waiting = node.write_index.setdefault(entry.index, [])
            for other, term in waiting:
                if self.writes[other].outcome == "pending" and other != wid:
                    self._note(
                        "two-writes-one-index",
                        f"n{node.id} holds w{other} (t{term}) and w{wid} (t{entry.term}) at "
                        f"{entry.index}",
                    )
            waiting.append((wid, entry.term))

    def _note(self, what: str, detail: str) -> None:
        assert what in NOTES, what
        self.notes[what] += 1
        self.first_note.setdefault(what, f"t={self.now} {detail}")
        self._trace("note", what, detail)

    def _enqueue_storage(self, node: SimNode, key: Any, command: Any) -> None:
        """Queue a command on the node's FIFO storage, done after a random delay."""
        node.storage.append((key, command))
        if isinstance(command, DeleteLogsFrom):
            self.delete_decided[(node.id, node.incarnation, key)] = self.commit_seq
        delay = self.rng.randint(0, self.profile.storage_delay_max)
        if self.faulty and self.rng.random() < self.profile.slow_storage:
            delay = self.rng.randint(50, 300)
        node.storage_ready_at = max(node.storage_ready_at, self.now + delay)
        self.event_seq += 1
        heapq.heappush(
            self.events,
            (node.storage_ready_at, self.event_seq, "storage", (node.id, node.incarnation, key)),
        )

    def _on_storage(self, nid: NodeId, incarnation: int, seq: Any) -> None:
        node = self.nodes[nid]
        if not node.up or node.incarnation != incarnation:
            return  # the crash lost it
        head_seq, command = node.storage.popleft()
        if head_seq != seq:
            raise self.fail("simulator", f"storage out of order on n{nid}: {head_seq} != {seq}")
        self.touched.add(node.id)
        d = node.durable
        if isinstance(command, CreateSnapshot):
            # Captured now; stored (and answered) after the background build: not done yet.
            self._capture_snapshot(node, seq, command)
            return
        if isinstance(command, StoreSnapshot):
            seq = seq[1]  # the CreateSnapshot's
        node.done = max(node.done, seq)
        value: Any = None
        if isinstance(command, LoadInitialState):
            value = d.initial_state()
        elif isinstance(command, LoadLog):
            value = d.entries(command.start, command.stop)
            self._started(node)
        elif isinstance(command, SaveHardState):
            self._store_hard_state(node, command.hard_state)
        elif isinstance(command, DeleteLogsFrom):
            self._trace("store", nid, f"DeleteLogsFrom({command.index})")
            if command.index <= d.offset:
                raise self.fail(
                    "committed-deleted",
                    f"n{nid} deletes from {command.index}, inside its snapshot through {d.offset}",
                )
            decided = self.delete_decided.pop((nid, incarnation, seq), self.commit_seq)
            for entry in d.log[command.index - d.offset - 1 :]:
                if self.committed.get(entry.index) != entry:
                    continue
                if self.committed_seq[entry.index] <= decided:
                    raise self.fail(
                        "committed-deleted", f"n{nid} deletes committed entry {_entry(entry)}"
                    )
                self._note(
                    "deletion-outlives-commit",
                    f"n{nid}'s deletion of {_entry(entry)}, decided before the entry was "
                    "committed, completes after a newer leader committed it without this node",
                )
            d.delete_from(command.index)
        elif isinstance(command, StoreSnapshot):
            value = self._store_snapshot(node, seq, command)
        elif isinstance(command, ReadSnapshotChunk):
            value = d.snapshot_chunk(command.snapshot_id, command.offset, command.size)
            self.snapshot_stats["chunks_read" if value is not None else "reads_gone"] += 1
            self._trace(
                "store",
                nid,
                f"ReadSnapshotChunk({command.snapshot_id} @{command.offset} for "
                f"n{command.peer}) -> {'gone' if value is None else f'{len(value)} bytes'}",
            )
        elif isinstance(command, WriteSnapshotChunk):
            self._write_snapshot_chunk(node, command)
        elif isinstance(command, InstallSnapshot):
            self._install_snapshot(node, command.meta, command.keep_log)
        elif isinstance(command, WriteLog):
            value = self._store_entries(node, command)
        elif isinstance(command, Apply):
            value = tuple(self._apply(node, entry) for entry in command.entries)
        elif isinstance(command, Query):
            value = tuple(_query(d.state_machine, query) for _, query in command.reads)
        node.d.storage_done(seq, value)

    def _store_hard_state(self, node: SimNode, hs: HardState) -> None:
        old = node.durable.hard_state
        self._trace("store", node.id, f"HardState(term={hs.current_term} vote={hs.voted_for})")
        if hs.current_term < old.current_term:
            raise self.fail(
                "term-monotonic",
                f"n{node.id} persists term {hs.current_term} over {old.current_term}",
            )
        if (
            hs.current_term == old.current_term
            and old.voted_for is not None
            and hs.voted_for != old.voted_for
        ):
            raise self.fail(
                "vote-stable",
                f"n{node.id} persists vote {hs.voted_for} over {old.voted_for} "
                f"in term {hs.current_term}",
            )
        node.durable.save_hard_state(hs)

    def _store_entries(self, node: SimNode, command: WriteLog) -> dict[LogIndex, BaseException]:
        """Write entries like ``RaftStorage``: a leader's refused entries are stored blank."""
        d = node.durable
        entries = command.entries
        rejected: dict[LogIndex, BaseException] = {}
        if command.leader:
            entries, rejected = blank_refused(entries, lambda entry: self._validate(node, entry))
        stored: list[Entry] = []
        last_index = d.last_index
        prev_term = d.log[-1].term if d.log else d.offset_term
        for entry in entries:
            if entry.index != last_index + 1:
                raise self.fail(
                    "storage-contract",
                    f"n{node.id} writes entry {entry.index} onto a log of {last_index} entries"
                    + (f" (snapshot through {d.offset})" if d.snapshot_meta is not None else ""),
                )
            if entry.term < prev_term:
                raise self.fail(
                    "log-terms", f"n{node.id} writes {_entry(entry)} after a term-{prev_term} entry"
                )
            # Log matching, incrementally: one payload and one previous term per (index, term).
            key = (entry.index, entry.term)
            known = self.entry_ids.setdefault(key, (entry, prev_term))
            if known != (entry, prev_term):
                raise self.fail(
                    "log-matching",
                    f"n{node.id} stores {_entry(entry)} after term {prev_term}, but another log "
                    f"holds {_entry(known[0])} after term {known[1]}",
                )
            stored.append(entry)
            last_index, prev_term = entry.index, entry.term
        d.write(stored)
        first, last = command.entries[0].index, command.entries[-1].index
        self._trace(
            "store",
            node.id,
            f"WriteLog({first}..{last} t{command.entries[-1].term}"
            + (" leader" if command.leader else "")
            + (f" rejected={sorted(rejected)}" if rejected else "")
            + ")"
            + (
                "".join(
                    f" config@{e.index}=[{_describe(e.payload.membership)}]"
                    for e in command.entries
                    if isinstance(e.payload, EntryConfigChange)
                )
                if self.mprofile is not None
                else ""
            ),
        )
        return rejected

    def _validate(self, node: SimNode, entry: Entry) -> None:
        """The application's check on the leader: non-Put data always fails, Puts sometimes."""
        node.durable.state_machine.validate(entry)
        if self.faulty and self.rng.random() < self.profile.reject:
            raise ValueError("the application refused the write")

    def _apply(self, node: SimNode, entry: Entry) -> Any:
        d = node.durable
        expect = d.last_applied + 1
        if entry.index != expect:
            raise self.fail(
                "apply-order", f"n{node.id} applies index {entry.index}, expected {expect}"
            )
        held = d.entry(entry.index)
        if held != entry:
            raise self.fail(
                "apply-durable",
                f"n{node.id} applies {_entry(entry)} but its durable log holds {_entry(held)}",
            )
        prev = self.applied.setdefault(entry.index, entry)
        if prev != entry:
            raise self.fail(
                "state-machine-safety",
                f"n{node.id} applies {_entry(entry)} but another node applied {_entry(prev)}",
            )
        assert node.core is not None
        self._record_committed(entry, node.core.current_term, f"applied on n{node.id}")
        response = d.state_machine.apply(entry)
        d.mark_applied(entry.index)
        return response

    # --- snapshots: the storage side (as RaftStorage and MemStore do) -----------------

    def _committed_membership_at(self, index: LogIndex) -> MembershipConfig:
        """The configuration in effect at committed ``index``: the latest committed
        configuration entry at or before it (the cluster's initial one if none)."""
        indexes = self.committed_config_indexes
        pos = bisect.bisect_right(indexes, index)
        if not pos:
            return self.initial_membership
        return _payload_membership(self.committed[indexes[pos - 1]])

    def _capture_snapshot(self, node: SimNode, seq: int, command: CreateSnapshot) -> None:
        """The FIFO reached ``CreateSnapshot``: the state machine has applied exactly
        through its last entry; capture it now, serialize and store it after a build."""
        d = node.durable
        last = command.last_included
        committed = self.committed.get(last.index)
        point = "snapshot-point" not in self.skip_checks
        if point and d.last_applied != last.index:
            raise self.fail(
                "snapshot-point",
                f"n{node.id} asks for a snapshot through {last.index}/t{last.term}, but its "
                f"state machine has applied through {d.last_applied}",
            )
        if point and (committed is None or committed.log_id != last):
            raise self.fail(
                "snapshot-point",
                f"n{node.id} asks for a snapshot through {last.index}/t{last.term}, where the "
                f"committed entry is {_entry(committed)}",
            )
        expected = self._committed_membership_at(last.index)
        if command.membership != expected:
            raise self.fail(
                "snapshot-membership",
                f"n{node.id} snapshots through {last.index} with configuration "
                f"{_describe(command.membership)}; the one in effect there is "
                f"{_describe(expected)}",
            )
        data = d.state_machine.snapshot()()
        assert self.sprofile is not None, "CreateSnapshot in a run without snapshots"
        build = self.rng.randint(0, self.sprofile.build_ms_max)
        self._trace(
            "store", node.id, f"CreateSnapshot({last.index}/t{last.term}) captured, build {build}ms"
        )
        self._schedule(build, "built", node.id, node.incarnation, seq, command, data)

    def _on_built(
        self, nid: NodeId, incarnation: int, seq: int, command: CreateSnapshot, data: bytes
    ) -> None:
        """The background build finished: the storing joins the FIFO behind what is queued."""
        node = self.nodes[nid]
        if not node.up or node.incarnation != incarnation:
            return  # the crash lost it
        self._enqueue_storage(node, ("built", seq), StoreSnapshot(command, data))

    def _store_snapshot(self, node: SimNode, seq: int, store: StoreSnapshot) -> SnapshotMeta:
        """``store_snapshot``: keep a newer current snapshot, else make this one current
        and drop the log through it, atomically; answer the current meta."""
        d = node.durable
        last = store.request.last_included
        if node.done > seq:
            self.snapshot_stats["created_late"] += 1  # later commands completed before it
        current = d.snapshot_covering(last.index)
        if current is not None:
            self.snapshot_stats["created_superseded"] += 1
            self._trace(
                "store", node.id, f"StoreSnapshot({last.index}) keeps newer {current.snapshot_id}"
            )
            return current
        held = d.entry(last.index)
        if "snapshot-point" not in self.skip_checks and (held is None or held.log_id != last):
            raise self.fail(
                "snapshot-point",
                f"n{node.id} stores a snapshot through {last.index}/t{last.term} but its log "
                f"holds {_entry(held)} there",
            )
        self.snapshot_stats["created"] += 1
        sid = f"n{node.id}.{last.index}.{len(self.snapshots) + 1}"
        digest = hashlib.sha256(store.data).hexdigest()
        meta = SnapshotMeta(last, store.request.membership, sid, len(store.data), digest)
        self.snapshots[sid] = (meta, store.data)
        self._note_dropped_config(node, meta)
        d.compact(meta, store.data)
        self._trace("store", node.id, f"StoreSnapshot({last.index}/t{last.term}) -> {sid}")
        return meta

    def _note_dropped_config(self, node: SimNode, meta: SnapshotMeta) -> None:
        """Before ``meta`` becomes current: note a configuration entry after its point in a
        log that does not continue it (the model drops that log, the entry with it)."""
        d = node.durable
        last = meta.last_included
        if d.continues(last):
            return
        if any(isinstance(e.payload, EntryConfigChange) for e in d.log[last.index - d.offset :]):
            self.snapshot_stats["installed_dropping_config"] += 1
            self._note(
                "install-drops-config-entry",
                f"n{node.id} installs {meta.snapshot_id} through {last.index}/t{last.term} "
                "over a log whose configuration entry after that point goes with it",
            )

    def _write_snapshot_chunk(self, node: SimNode, command: WriteSnapshotChunk) -> None:
        """Store a received chunk apart; offset 0 starts over, the others must follow on."""
        d = node.durable
        meta = command.meta
        receiving = d.receiving
        if command.offset != 0 and (
            receiving is None or receiving[0] != meta or len(receiving[1]) != command.offset
        ):
            have = (
                f"{receiving[0].snapshot_id} through byte {len(receiving[1])}"
                if receiving is not None
                else "nothing"
            )
            raise self.fail(
                "storage-contract",
                f"n{node.id} writes a chunk of {meta.snapshot_id} at {command.offset} but has "
                f"received {have}: chunks must arrive in order",
            )
        d.write_chunk(meta, command.offset, command.data)
        self.snapshot_stats["chunks_written"] += 1
        self._trace(
            "store",
            node.id,
            f"WriteSnapshotChunk({meta.snapshot_id} @{command.offset} +{len(command.data)})",
        )

    def _install_snapshot(self, node: SimNode, meta: SnapshotMeta, keep_log: bool) -> None:
        """Restore the state machine from the received snapshot and make it current."""
        d = node.durable
        last = meta.last_included
        receiving = d.receiving
        if receiving is None or receiving[0] != meta or len(receiving[1]) != meta.size:
            got = (
                f"{len(receiving[1])} bytes of {receiving[0].snapshot_id}" if receiving else "none"
            )
            raise self.fail(
                "storage-contract",
                f"n{node.id} installs {meta.snapshot_id} ({meta.size} bytes) but received {got}",
            )
        if last.index <= d.offset or last.index <= d.last_applied:
            raise self.fail(
                "storage-contract",
                f"n{node.id} installs {meta.snapshot_id} through {last.index} over its snapshot "
                f"through {d.offset} (state machine applied through {d.last_applied})",
            )
        data = d.received(meta)
        original = self.snapshots.get(meta.snapshot_id)
        if original is None or original != (meta, data):
            raise self.fail(
                "snapshot-data",
                f"n{node.id} installs {meta.snapshot_id} through {last.index}, which differs "
                "from the snapshot of that id "
                + ("(unknown id)" if original is None else f"(meta {original[0] == meta})"),
            )
        d.state_machine.restore(data)
        self._check_history(node, "restored from a snapshot")
        restored = _applied_through(d.state_machine.applied)
        if restored != last.index:
            raise self.fail(
                "snapshot-data",
                f"n{node.id} restored snapshot {meta.snapshot_id} through {last.index} but its "
                f"state machine has applied through {restored}",
            )
        if keep_log != d.continues(last):
            raise self.fail(
                "install-keep",
                f"n{node.id} is told keep_log={keep_log} installing {meta.snapshot_id} "
                f"through {last.index}/t{last.term}, but its durable log says otherwise",
            )
        self._note_dropped_config(node, meta)
        kept = d.install(meta, keep_log)
        self.snapshot_stats["installed"] += 1
        self.snapshot_stats["installed_kept_log"] += kept
        self._trace(
            "store",
            node.id,
            f"InstallSnapshot({meta.snapshot_id} {last.index}/t{last.term})"
            + (" log kept" if kept else ""),
        )

    def _check_history(self, node: SimNode, why: str) -> None:
        """The node's applied history is what was applied (anywhere) at each index."""
        for index, data in node.durable.state_machine.applied:
            entry = self.applied.get(index)
            if entry is None or getattr(entry.payload, "data", None) != data:
                raise self.fail(
                    "state-machine-safety",
                    f"n{node.id}'s state machine ({why}) holds {index}:{data!r} where "
                    f"{_entry(entry)} was applied",
                )
        history = node.durable.state_machine.applied
        if [index for index, _ in history] != list(range(1, _applied_through(history) + 1)):
            raise self.fail(
                "state-machine-safety", f"n{node.id}'s state machine ({why}) skips indexes"
            )

    # --- network ----------------------------------------------------------------------

    def _cut(self, a: NodeId, b: NodeId) -> bool:
        return self.groups is not None and self.groups[a] != self.groups[b]

    def _delay(self) -> int:
        p = self.profile
        if self.faulty and self.rng.random() < p.long_delay:
            return self.rng.randint(1, p.long_delay_max)
        return self.rng.randint(1, p.delay_max)

    def _dropped(self) -> bool:
        return self.faulty and self.rng.random() < self.profile.drop

    def _answer(self, node: SimNode, handle: Any, value: Any, error: BaseException | None) -> None:
        """The driver released an answer to the caller ``handle``."""
        kind = handle[0]
        if kind == "client":
            self._client_answer(node, self.writes[handle[1]], value, error)
        elif kind == "config":
            self._config_answer(node, self.changes[handle[1]], value, error)
        elif kind == "trigger":
            self._trigger_answer(node, handle[1], value, error)
        elif kind == "read":
            self._read_answer(node, self.reads[handle[1]], value, error)
        elif kind == "admin":
            self._admin_answer(node, self.admin_calls[handle[1]], value, error)
        else:
            _, src, src_inc, request = handle
            value = value if error is None else None
            if isinstance(value, VoteResponse) and value.vote_granted and not request.pre_vote:
                self._record_vote(node.id, value.term, request.candidate_id)
            if isinstance(value, InstallSnapshotResponse) and value.next_offset:
                self.snapshot_stats["resume_offered"] += 1  # it holds part of that snapshot
            self._trace("reply", node.id, src, _msg(request), _msg(value, error))
            self._reply(node.id, src, src_inc, request, value)

    def _record_vote(self, voter: NodeId, term: Term, candidate: NodeId) -> None:
        """A vote left the node (a granted VoteResponse, or a candidate's VoteRequest)."""
        self.votes_for.setdefault((candidate, term), set()).add(voter)
        if "vote-once" in self.skip_checks:
            return
        prev = self.granted.setdefault((voter, term), candidate)
        if prev != candidate:
            raise self.fail(
                "vote-once",
                f"n{voter} granted its term-{term} vote to n{prev} and to n{candidate}",
            )

    def _send(self, node: SimNode, request: Any) -> None:
        src, dst = node.id, request.target
        if isinstance(request, VoteRequest) and not request.pre_vote:
            self._record_vote(src, request.term, src)  # the candidate's own vote
        if self._cut(src, dst):
            self._trace("unreachable", src, dst, _msg(request))
            self._schedule(1, "response", src, node.incarnation, request, None)
            return
        if self.cuts and (src, dst) in self.cuts:
            self.cut_stats["dropped"] += 1
            self._trace("cut-drop", src, dst, _msg(request))
            return
        if self._dropped():
            self._trace("drop", src, dst, _msg(request))
            return
        copies = 2 if self.faulty and self.rng.random() < self.profile.duplicate else 1
        if self.drng is not None and type(request) is InstallSnapshotRequest:
            request = self._damaged(request)
        for _ in range(copies):
            self._schedule(self._delay(), "request", src, node.incarnation, request)

    def _damaged(self, request: InstallSnapshotRequest) -> InstallSnapshotRequest:
        """With ``damage``: during the faults, one byte of a snapshot chunk flipped now and
        then (the chunk keeps its size), as a faulty link would deliver it."""
        drng = self.drng
        assert drng is not None
        if not self.faulty or not request.data or drng.random() >= self.damage_rate:
            return request
        data = bytearray(request.data)
        data[drng.randrange(len(data))] ^= 1 << drng.randrange(8)
        self.snapshot_stats["chunks_damaged"] += 1
        self._trace("damage", request.leader_id, request.target, _msg(request))
        return attrs.evolve(request, data=bytes(data))

    def _reply(self, src: NodeId, dst: NodeId, dst_inc: int, request: Any, value: Any) -> None:
        """Carry a response from ``src`` back to the requester ``dst``."""
        if self._cut(src, dst) or (self.cuts and (src, dst) in self.cuts) or self._dropped():
            self._trace("drop-reply", src, dst, _msg(request))
            return
        self._schedule(self._delay(), "response", dst, dst_inc, request, value)

    def _on_request(self, src: NodeId, src_inc: int, request: Any) -> None:
        dst = self.nodes[request.target]
        if (
            not dst.up
            or dst.core is None
            or self._cut(src, dst.id)
            or (self.cuts and (src, dst.id) in self.cuts)
        ):
            self._trace("lost", src, dst.id, _msg(request))
            return
        self._trace("deliver", src, dst.id, _msg(request))
        self.touched.add(dst.id)
        refused = dst.core.counters.snapshots_refused
        dst.d.call(request, ("rpc", src, src_inc, request))
        if dst.core.counters.snapshots_refused > refused:
            self.snapshot_stats["refused"] += 1  # damaged bytes, caught by the digest

    def _on_response(self, nid: NodeId, incarnation: int, request: Any, value: Any) -> None:
        node = self.nodes[nid]
        if not node.up or node.incarnation != incarnation:
            return  # the requester crashed: its reply is lost
        self.touched.add(node.id)
        node.d.rpc_done(request, value, None)

    # --- faults -----------------------------------------------------------------------

    def _on_partition(self) -> None:
        if not self.faulty:
            return
        ids = list(self.nodes)
        sides = self.rng.choice((2, 2, 3))
        groups = {nid: self.rng.randrange(sides) for nid in ids}
        self.groups = groups
        desc = " | ".join(
            "{" + ",".join(str(n) for n in ids if groups[n] == g) + "}" for g in range(sides)
        )
        self._trace("partition", desc)
        self._schedule(self.rng.randint(10, self.profile.partition_ms), "heal")

    def _on_heal(self) -> None:
        if self.groups is None:
            return
        self.groups = None
        self._trace("heal")
        if self.faulty and self.profile.partition_gap is not None:
            self._schedule(self._gap(self.profile.partition_gap), "partition")

    def _on_crash(self) -> None:
        if not self.faulty:
            return
        ups = [n for n in self.nodes.values() if n.up]
        if ups:
            node = self.rng.choice(ups)
            self._crash(node)
            self._schedule(self.rng.randint(1, self.profile.downtime_ms), "restart", node.id)
        assert self.profile.crash_gap is not None
        self._schedule(self._gap(self.profile.crash_gap), "crash")

    def _on_restart(self, nid: NodeId) -> None:
        node = self.nodes[nid]
        if node.up:
            return
        self._trace("restart", nid)
        self._boot(node)

    def _on_calm(self) -> None:
        """The faults stop: heal, restart every crashed node, no drops, duplicates or
        reordering; random client writes stop (only the liveness write follows)."""
        self.faulty = False
        self.touched.update(self.nodes)  # check everything, and whether the cluster is live
        longest = max(
            max(n.durable.last_index, n.core.log.last_index if n.core is not None else 0)
            for n in self.nodes.values()
        )
        shortest = min(n.durable.last_applied for n in self.nodes.values())
        waiting = sum(1 for w in self.writes.values() if w.outcome == "pending")
        self.deadline += CATCH_UP_MS_PER_ENTRY * (longest - shortest + waiting)
        if self.sprofile is not None:
            # A node behind the leader's snapshot point catches up by a whole transfer.
            size = max(len(n.durable.snapshot_data) for n in self.nodes.values())
            size += size // 4 + 100  # it grows with the last entries
            p = self.profile
            round_trip = 2 * p.delay_max + 2 * p.storage_delay_max + 10
            chunks = size // self.sprofile.chunk + 1
            self.deadline += SNAPSHOT_CHUNK_ROUND_TRIPS * round_trip * chunks
        self._trace("calm", f"liveness deadline t={self.deadline}")
        if self.groups is not None:
            self._on_heal()
        if self.cuts:
            self._on_uncut()
        for node in self.nodes.values():
            if not node.up:
                self._trace("restart", node.id)
                self._boot(node)

    # --- TriggerSnapshot ----------------------------------------------------------------

    def _on_trigger(self) -> None:
        """Snapshot runs: ask a random running node to compact now."""
        if not self.faulty:
            return
        assert self.sprofile is not None and self.sprofile.trigger_gap is not None
        self._schedule(self._gap(self.sprofile.trigger_gap), "trigger")
        ups = [n for n in self.nodes.values() if n.up and n.core is not None]
        if ups:
            self._trigger(self.rng.choice(ups))

    def _trigger(self, node: SimNode) -> None:
        self._trace("trigger", node.id)
        self.touched.add(node.id)
        node.d.call(TriggerSnapshot(), ("trigger", node.durable.last_applied))

    def _trigger_answer(
        self, node: SimNode, applied: LogIndex, meta: Any, error: BaseException | None
    ) -> None:
        """``TriggerSnapshot`` answers a stored snapshot of committed entries (``None``
        only if nothing was ever applied), or ``Unreachable`` while starting."""
        self.snapshot_stats["triggers_answered"] += 1
        self._trace("trigger-answer", node.id, repr(meta) if meta is None else meta.snapshot_id)
        if error is not None:
            if not isinstance(error, Unreachable) or node.started:
                raise self.fail("snapshot-oracle", f"TriggerSnapshot failed: {error!r}")
            return
        if meta is None:
            if applied or node.durable.snapshot_meta is not None:
                raise self.fail(
                    "snapshot-oracle",
                    f"TriggerSnapshot on n{node.id} answered None after applying {applied}",
                )
            return
        known = self.snapshots.get(meta.snapshot_id) if isinstance(meta, SnapshotMeta) else None
        if known is None or known[0] != meta:
            raise self.fail(
                "snapshot-oracle", f"TriggerSnapshot on n{node.id} answered unknown {meta!r}"
            )

    # --- one-way cuts (opt-in) -----------------------------------------------------------

    def _cut_gap(self) -> int:
        assert self.crng is not None and self.cprofile is not None
        return self._gap(self.cprofile.gap, self.crng)

    def _on_cut(self) -> None:
        """Cut some links one way (or both ways between some nodes), until ``uncut``."""
        if not self.faulty:
            return
        rng, p = self.crng, self.cprofile
        assert rng is not None and p is not None
        ids = list(self.nodes)
        kind = rng.choices(CutProfile.KINDS, weights=p.weights)[0]
        cuts: set[tuple[NodeId, NodeId]] = set()
        if kind == "one-way":
            a, b = rng.sample(ids, 2)
            cuts = {(a, b)}
            desc = f"n{a}->n{b} dropped, n{b}->n{a} delivered"
        elif kind in ("mute", "deaf"):
            a = rng.choice(ids)
            cuts = {(a, b) if kind == "mute" else (b, a) for b in ids if b != a}
            desc = f"n{a} " + (
                "reaches nobody, hears everyone" if kind == "mute" else "is heard, hears nobody"
            )
        elif kind == "chain":
            line = rng.sample(ids, len(ids))
            pos = {n: i for i, n in enumerate(line)}
            cuts = {(a, b) for a in ids for b in ids if abs(pos[a] - pos[b]) > 1}
            desc = "-".join(f"n{n}" for n in line) + " (each reaches its neighbours only)"
        else:
            a, b = rng.sample(ids, 2)
            cuts = {(a, b), (b, a)}
            desc = f"n{a} and n{b} cut from each other, both ways"
        self.cuts = frozenset(cuts)
        self.cut_stats[kind] += 1
        self._trace("cut", f"{kind}: {desc}")
        self._schedule(rng.randint(10, p.cut_ms), "uncut")

    def _on_uncut(self) -> None:
        if not self.cuts:
            return
        self.cuts = frozenset()
        self._trace("uncut")
        if self.faulty:
            self._schedule(self._cut_gap(), "cut")

    # --- TransferLeadership and TriggerElection (opt-in) --------------------------------

    def _admin_gap(self) -> int:
        assert self.arng is not None and self.aprofile is not None
        return self._gap(self.aprofile.gap, self.arng)

    def _on_admin_call(self) -> None:
        """Ask the leader (usually) or any running node for a transfer or an election."""
        if not self.faulty:
            return
        rng, p = self.arng, self.aprofile
        assert rng is not None and p is not None
        self._schedule(self._admin_gap(), "admin_call")
        ups = [n for n in self.nodes.values() if n.up and n.core is not None]
        leaders = [n for n in ups if n.core is not None and n.core.role is Role.LEADER]
        if leaders and rng.random() < p.to_leader:
            node = max(leaders, key=lambda n: n.core.current_term if n.core else 0)
        elif ups:
            node = rng.choice(ups)
        else:
            return
        self._admin_call(node)

    def _after_change(self, node: SimNode, change: Change) -> None:
        """Membership runs: right after a ``ProposeConfigChange`` (at once, or a few ms
        later), a transfer or an election, to its node or to a node it removes, often
        naming a node it removes as the target."""
        rng, p = self.arng, self.aprofile
        assert rng is not None and p is not None
        if rng.random() >= p.after_change:
            return
        target = change.target
        leaving = sorted(
            set(change.before.voters()) - set(target.voters())
            if target is not None
            else change.request.remove_members
        )
        asked = node
        if leaving and rng.random() < 0.3:
            asked = self.nodes[rng.choice(leaving)]
        if rng.random() < 0.5:
            if asked.up and asked.core is not None:
                self._admin_call(asked, tuple(leaving))
        else:
            self._schedule(rng.randint(1, 60), "admin_call_to", asked.id, tuple(leaving))

    def _on_admin_call_to(self, nid: NodeId, leaving: tuple[NodeId, ...]) -> None:
        node = self.nodes[nid]
        if self.faulty and node.up and node.core is not None:
            self._admin_call(node, leaving)

    def _admin_call(self, node: SimNode, leaving: tuple[NodeId, ...] = ()) -> AdminCall:
        rng, p = self.arng, self.aprofile
        assert rng is not None and p is not None
        core = node.core
        assert core is not None
        message: TransferLeadership | TriggerElection
        target: NodeId | None = None
        if rng.random() < p.election_share:
            message = TriggerElection()
        else:
            m = core.membership if core.membership.all_nodes() else self.committed_config[1]
            voters = sorted(m.voters())
            roll = rng.random()
            if leaving and roll < 0.5:
                target = rng.choice(leaving)
            elif roll < 0.2:
                target = None  # the most caught-up voter
            elif roll < 0.85 and voters:
                target = rng.choice(voters)  # the node itself, sometimes
            else:
                target = rng.choice(list(self.nodes))  # a non-voter, an outsider, ...
            message = TransferLeadership(target)
        call = AdminCall(
            len(self.admin_calls) + 1,
            "election" if isinstance(message, TriggerElection) else "transfer",
            node.id,
            node.incarnation,
            target,
            self.now,
            node.started,
            core.role is Role.LEADER,
            core.current_term,
            core.membership,
            core.transfer is not None,
            core.membership.is_in_joint_consensus
            or (core.leader is not None and core.leader.change is not None),
        )
        self.admin_calls[call.aid] = call
        self._trace("admin-call", node.id, call.describe())
        self.asking = call.aid
        self.touched.add(node.id)
        node.d.call(message, ("admin", call.aid))
        self.asking = None
        if call.kind == "transfer" and not call.had_transfer and core.transfer is not None:
            call.chosen = core.transfer.target  # the transfer this call started
        if call.outcome == "pending":
            heapq.heappush(self.answer_due, (self.now + ADMIN_ANSWER_MS, "admin", call.aid))
        return call

    def _admin_answer(
        self, node: SimNode, call: AdminCall, value: Any, error: BaseException | None
    ) -> None:
        """``admin-oracle``: each call is answered once, with its value or the right typed
        error; ``transfer-oracle``: a successful transfer names the target, which led the
        term it names, and a transfer does not fail while its node follows the target;
        ``transfer-failed-led``: nor once the target won the election its TimeoutNow
        started, with a configuration without the node (which is then never told)."""
        self._observe_commit(node)
        core = node.core
        assert core is not None
        outcome = type(error).__name__ if error is not None else type(value).__name__
        at_once = self.asking == call.aid

        def bad(why: str, check: str = "admin-oracle") -> SimulationFailure:
            return self.fail(check, f"{call.describe()} answered {outcome}: {why}")

        if call.outcome != "pending":
            raise bad(f"answered already ({call.outcome} {call.answered})", "admin-answer")
        call.outcome = outcome
        call.answered = f"by n{node.id} at t={self.now}"
        detail = f": {error}" if error is not None else f" {value!r}" if value is not None else ""
        self._trace("admin-answer", node.id, f"a{call.aid} {outcome}{detail}")
        if call.kind == "election":
            if error is None:
                if value is not None:
                    raise bad("TriggerElection answers None")
            elif isinstance(error, NotAllowed):
                if core.may_campaign():
                    raise bad("the node may campaign")
            elif not (isinstance(error, Unreachable) and not call.started):
                raise bad("an unexpected error")
            return
        wanted = call.target if call.target is not None else call.chosen
        if error is None:
            if not isinstance(value, TransferLeadershipResponse):
                raise bad("not a TransferLeadershipResponse")
            if wanted is None or value.leader_id != wanted:
                raise bad(f"the target was n{wanted}", "transfer-oracle")
            led = self.leaders.get(value.term)
            if led != value.leader_id:
                raise bad(
                    f"n{value.leader_id} did not lead term {value.term} (n{led} did)",
                    "transfer-oracle",
                )
            if value.term < call.term:
                raise bad(f"term {value.term} is older than the call's", "transfer-oracle")
            return
        if isinstance(error, NodeNotLeader):
            if call.was_leader:
                raise bad("the leader answered NodeNotLeader")
            if call.started and not at_once:
                raise bad("NodeNotLeader must come at once")
            return
        if not isinstance(error, TransferFailed):
            raise bad("not a TransferFailed")
        if not call.was_leader and call.started:
            raise bad("a node that is not the leader must answer NodeNotLeader")
        m = call.membership
        if (
            at_once
            and not call.had_transfer
            and not call.changing  # a transfer may wait for the change, or be refused
            and (node.id in m.members or node.id in (m.members_after_consensus or ()))
            and call.target is not None
            and call.target != node.id
            and m.is_voter(call.target)
        ):
            raise bad(f"n{call.target} is a voter of {_describe(m)}: the transfer must start")
        if (
            wanted is not None
            and wanted != node.id
            and core.leader_id == wanted
            and self.leaders.get(core.current_term) == wanted
        ):
            raise bad(
                f"the node follows n{wanted}, the leader of term {core.current_term}",
                "transfer-oracle",
            )
        if call.timeout_now_term is not None:
            elected = call.timeout_now_term + 1
            if wanted is not None and self.leaders.get(elected) == wanted:
                won_with = self.won_with[elected]
                if not won_with.contains(node.id) and "transfer-failed-led" not in self.skip_checks:
                    # Not a fault of the network: the configuration the new leader won with
                    # leaves the node asked out, so it is never told; the transfer did
                    # succeed. (One that removes the node later, while a partition keeps
                    # the node from hearing the new term, is only noted.)
                    raise bad(
                        f"n{wanted} won term {elected}, the election its TimeoutNow started, "
                        f"leading {_describe(won_with)}, without n{node.id}",
                        "transfer-failed-led",
                    )
                self._note(
                    "transfer-failed-target-led",
                    f"{call.describe()} answered TransferFailed ({error}) at t={self.now}, "
                    f"but n{wanted} led term {elected}, the election its TimeoutNow started",
                )

    def _check_timeout_now(self, node: SimNode, request: TimeoutNowRequest) -> None:
        """``transfer-target``: a leader tells only a voter of its latest configuration to
        campaign; ``transfer-to-leaving``: nor, when it chose the target itself (a transfer
        to ``None``, or a removed leader's handover), one that the configuration it is
        moving to (C_new while joint, or the change it carries out) removes. A target named
        by the caller that is leaving so is only noted (``transfer-to-leaving-voter``)."""
        core = node.core
        assert core is not None
        target = request.target
        named = False
        for call in self.admin_calls.values():
            if call.aid == self.asking and call.kind == "transfer" and call.chosen is None:
                call.chosen = target  # the call being made started it and sent it at once
            if (
                call.kind == "transfer"
                and call.outcome == "pending"
                and call.node == node.id
                and call.incarnation == node.incarnation
                and call.chosen == target
            ):
                call.timeout_now_term = request.term
                named = call.target is not None
        m = core.membership
        what = (
            f"leader n{node.id} of term {core.current_term} sends TimeoutNow to n{target} "
            f"({'named by the caller' if named else 'its own choice'}), which its latest "
            f"configuration {_describe(m)} (at {core.log.config_index})"
        )
        if not m.is_voter(target):
            if "transfer-target" not in self.skip_checks:
                raise self.fail("transfer-target", f"{what} has not as a voter")
            return
        leaving = ""
        if m.members_after_consensus is not None and target not in m.members_after_consensus:
            leaving = f"{what} removes (joint)"
        change = core.leader.change if core.leader is not None else None
        if change is not None and not change.target.is_voter(target):
            leaving = (
                f"{what} has as a voter, but the change in progress (to "
                f"{_describe(change.target)}) removes"
            )
        if not leaving:
            return
        if named:
            self._note("transfer-to-leaving-voter", leaving)
        elif "transfer-to-leaving" not in self.skip_checks:
            raise self.fail("transfer-to-leaving", leaving)

    def _check_config_during_transfer(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        """``config-during-transfer``: a leader handing leadership over appends no
        configuration entry (its log must stop growing, and the target must stay a voter)."""
        core = node.core
        assert core is not None
        transfer = core.transfer
        if transfer is None or "config-during-transfer" in self.skip_checks:
            return
        entry = next(e for e in entries if isinstance(e.payload, EntryConfigChange))
        raise self.fail(
            "config-during-transfer",
            f"leader n{node.id} of term {core.current_term} appends configuration "
            f"{_describe(_payload_membership(entry))} at {entry.index} while it hands "
            f"leadership over to n{transfer.target}",
        )

    # --- answers due ---------------------------------------------------------------------

    def _check_answers_due(self) -> None:
        """``read-answer`` / ``admin-answer``: a call whose node is still the one asked
        (no crash since) is answered by its due time."""
        due = self.answer_due
        while due and due[0][0] < self.now:
            _, kind, cid = heapq.heappop(due)
            call: Read | AdminCall = self.reads[cid] if kind == "read" else self.admin_calls[cid]
            node = self.nodes[call.node]
            if call.outcome != "pending" or node.incarnation != call.incarnation:
                continue
            if kind == "read":
                assert isinstance(call, Read)
                core = node.core
                term, since = node.term_committed_at
                if (
                    core is not None
                    and core.role is Role.LEADER
                    and (term != core.current_term or self.now - since < READ_ANSWER_MS)
                ):
                    # A leader holds its reads until it commits an entry of its term, which
                    # may take a catch-up of its followers first (or it steps down): the
                    # bound starts over from that commit.
                    later = since if term == core.current_term else self.now
                    heapq.heappush(due, (later + READ_ANSWER_MS, kind, cid))
                    continue
                raise self.fail(
                    "read-answer",
                    f"r{call.rid} ({call.policy.value} {call.key}) sent to n{call.node} at "
                    f"t={call.sent_at} was not answered within {READ_ANSWER_MS} ms",
                )
            assert isinstance(call, AdminCall)
            raise self.fail(
                "admin-answer",
                f"{call.describe()} was not answered within {ADMIN_ANSWER_MS} ms",
            )

    def _answers_pending(self) -> bool:
        """A read or admin call still waits for its answer on the node asked."""
        for _, kind, cid in self.answer_due:
            call: Read | AdminCall = self.reads[cid] if kind == "read" else self.admin_calls[cid]
            if call.outcome == "pending" and self.nodes[call.node].incarnation == call.incarnation:
                return True
        return False

    # --- clients ----------------------------------------------------------------------

    def _on_client(self) -> None:
        if not self.faulty:
            return
        self._schedule(self._gap(self.profile.write_gap), "client")
        ups = [n for n in self.nodes.values() if n.up]
        hint = self.nodes.get(self.leader_hint) if self.leader_hint is not None else None
        if hint is not None and hint.up and self.rng.random() < 0.7:
            node = hint
        elif ups:
            node = self.rng.choice(ups)
        else:
            return
        if self.read_share and self.rng.random() < self.read_share:
            self._read(node)
            return
        wid = len(self.writes) + 1
        data: Any
        if self.rng.random() < 0.05:
            data = f"bad{wid}"  # not a key-value command: the application refuses it
        else:
            data = Put(f"k{self.rng.randrange(4)}", f"v{wid}")
        mode = ResponseMode.APPLIED if self.rng.random() < 0.5 else ResponseMode.COMMITTED
        self._submit(node, ClientPayload.new(data, mode))

    def _read(self, node: SimNode) -> None:
        roll = self.rng.random()
        policy = (
            ReadPolicy.STALE
            if roll < 0.1
            else ReadPolicy.LEASE
            if roll < 0.55
            else ReadPolicy.READ_INDEX
        )
        read = Read(len(self.reads) + 1, node.id, policy, f"k{self.rng.randrange(4)}", 0)
        # Real-time order: no older than a write acknowledged, or a read answered, before.
        read.required = max(self.acked_index, self.read_index)
        read.incarnation, read.sent_at, read.started = node.incarnation, self.now, node.started
        self.reads[read.rid] = read
        self._trace("client", node.id, f"r{read.rid} {policy.value} {read.key}")
        self.touched.add(node.id)
        node.d.call(ClientRead(Get(read.key), policy), ("read", read.rid))
        if read.outcome == "pending":
            heapq.heappush(self.answer_due, (self.now + READ_ANSWER_MS, "read", read.rid))

    def _read_answer(
        self, node: SimNode, read: Read, value: Any, error: BaseException | None
    ) -> None:
        """read-oracle: a linearizable read is at an index no older than any write
        acknowledged before it was sent, and answers the key's value at that index;
        read-answer: it is answered once, with a value or a typed error (``ForwardToLeader``,
        or ``Unreachable`` from a node still starting)."""
        if read.outcome != "pending":
            raise self.fail(
                "read-answer", f"r{read.rid} on n{node.id} answered again ({read.outcome})"
            )
        if error is not None:
            read.outcome = "error"
            self._trace("answer", node.id, f"r{read.rid} {type(error).__name__}")
            if not isinstance(error, ForwardToLeader) and not (
                isinstance(error, Unreachable) and not read.started
            ):
                raise self.fail(
                    "read-answer",
                    f"r{read.rid} ({read.policy.value} on n{node.id}) failed with {error!r}",
                )
            return
        read.outcome = "ok"
        if not isinstance(value, ClientReadResponse):
            raise self.fail("read-oracle", f"r{read.rid} answered {value!r}")
        self._trace("answer", node.id, f"r{read.rid} at {value.index}: {value.data!r}")
        if read.policy is not ReadPolicy.STALE:
            if value.index < read.required:
                raise self.fail(
                    "read-oracle",
                    f"r{read.rid} ({read.policy.value} on n{node.id}) read at index "
                    f"{value.index}, before index {read.required} that a write acknowledged "
                    "or a read answered before it was sent had: a stale read",
                )
            self.read_index = max(self.read_index, value.index)
        expected = self._value_at(read.key, value.index)
        if expected is not _UNKNOWN and expected != value.data:
            raise self.fail(
                "read-oracle",
                f"r{read.rid} on n{node.id} answered {read.key}={value.data!r} at index "
                f"{value.index}, where the committed log gives {expected!r}",
            )

    def _value_at(self, key: str, index: LogIndex) -> Any:
        """The key's value after the committed entries through ``index`` (replayed)."""
        done, machine = self._oracle
        if index < done:
            done, machine = 0, KeyValueStateMachine()
        for i in range(done + 1, index + 1):
            entry = self.applied.get(i) or self.committed.get(i)
            if entry is None:
                return _UNKNOWN  # not seen committed anywhere: nothing to compare with
            machine.apply(entry)
            done = i
        self._oracle = (done, machine)
        return machine.data.get(key)

    def _submit(self, node: SimNode, payload: ClientPayload) -> Write:
        wid = len(self.writes) + 1
        write = Write(wid, payload, node.id, node.incarnation)
        self.writes[wid] = write
        data = payload.entry.data
        if isinstance(data, Put):
            self.write_of_value[data.value] = wid
        self._trace("client", node.id, f"w{wid} {_data(data)} {payload.response_mode.value}")
        self.touched.add(node.id)
        node.d.call(payload, ("client", wid))
        return write

    def _client_answer(
        self, node: SimNode, write: Write, value: Any, error: BaseException | None
    ) -> None:
        # Answers are released in the middle of a step: bring the commit record up to date.
        self._observe_commit(node)
        data = write.payload.entry.data
        write.answered = f"by n{node.id} at t={self.now}"
        if error is not None:
            self._trace("answer", node.id, f"w{write.wid} {type(error).__name__}")
            if isinstance(error, ForwardToLeader):
                write.outcome = "forward"
                if error.payload != write.payload:
                    raise self.fail(
                        "client-oracle",
                        f"ForwardToLeader for w{write.wid} hands back {error.payload!r}",
                    )
                self.leader_hint = error.leader_id
            elif isinstance(error, ApplicationError):
                write.outcome = "app_error"
            elif isinstance(error, Busy):
                # Refused, never appended: only while its leader hands leadership over.
                write.outcome = "busy"
                if node.core is None or node.core.transfer is None:
                    raise self.fail(
                        "client-oracle",
                        f"w{write.wid} refused {error!r} by n{node.id}, which is handing "
                        "no leadership over",
                    )
            elif isinstance(error, OutcomeUnknown):
                write.outcome = "unknown"  # it may commit or not: nothing to check
                if not self.committed_config[1].contains(node.id):
                    self._note(
                        "removed-node-answers-unknown",
                        f"n{node.id}, out of {_describe(self.committed_config[1])}, answers "
                        f"w{write.wid} OutcomeUnknown",
                    )
                return
            elif isinstance(error, ResultUnavailable):
                # Committed and applied, its result folded into a snapshot before this
                # node applied it: an acknowledgement at error.index, without a result.
                self._note("result-unavailable", f"n{node.id} answers w{write.wid} {error!r}")
                self._acknowledged(write, error.index)
                if write.payload.response_mode is not ResponseMode.APPLIED:
                    raise self.fail("client-oracle", f"COMMITTED w{write.wid} got {error!r}")
                return
            else:
                raise self.fail("client-oracle", f"w{write.wid} failed with {error!r}")
            at = self.committed_value_at.get(data.value) if isinstance(data, Put) else None
            if at is not None:
                raise self.fail(
                    "client-oracle",
                    f"w{write.wid} answered {type(error).__name__} but its entry is committed "
                    f"at {at}",
                )
            return
        if not isinstance(value, ClientPayloadResponse):
            raise self.fail("client-oracle", f"w{write.wid} answered {value!r}")
        self._trace("answer", node.id, f"w{write.wid} {value.response_mode.value}@{value.index}")
        self.leader_hint = node.id
        if value.response_mode is not write.payload.response_mode:
            raise self.fail("client-oracle", f"w{write.wid} answered in mode {value}")
        if not isinstance(data, Put):
            raise self.fail("client-oracle", f"refused w{write.wid} acknowledged at {value.index}")
        self._acknowledged(write, value.index)
        if value.response_mode is ResponseMode.APPLIED:
            previous = None
            for i in range(value.index - 1, 0, -1):
                entry = self.applied[i]
                if isinstance(entry.payload, EntryNormal) and entry.payload.data.key == data.key:
                    previous = entry.payload.data.value
                    break
            if value.data != previous:
                raise self.fail(
                    "client-oracle",
                    f"w{write.wid} (Put {data.key}) answered {value.data!r}, expected {previous!r}",
                )
        elif value.data is not None:
            raise self.fail("client-oracle", f"committed w{write.wid} carries data {value.data!r}")

    def _acknowledged(self, write: Write, index: LogIndex) -> None:
        """``write`` was answered as committed at ``index``: that must be its entry."""
        write.outcome = write.payload.response_mode.value
        write.index = index
        self.acked_index = max(self.acked_index, index)
        committed = self.committed.get(index)
        if committed is None or committed.payload != write.payload.entry:
            raise self.fail(
                "client-oracle",
                f"w{write.wid} acknowledged at {index}, where the committed entry is "
                f"{_entry(committed)}",
            )

    # --- membership changes -----------------------------------------------------------

    def _on_admin(self) -> None:
        """Ask for a random membership change: usually of the leader, sometimes of anyone."""
        if not self.faulty:
            return
        assert self.mprofile is not None
        self._schedule(self._gap(self.mprofile.change_gap), "admin")
        ups = [n for n in self.nodes.values() if n.up and n.core is not None]
        leaders = [n for n in ups if n.core is not None and n.core.role is Role.LEADER]
        if leaders and self.rng.random() < self.mprofile.to_leader:
            node = max(leaders, key=lambda n: n.core.current_term if n.core else 0)
        elif ups:
            node = self.rng.choice(ups)
        else:
            return
        assert node.core is not None
        m = node.core.membership
        if not m.all_nodes():  # a pristine node: ask relative to the cluster's configuration
            m = self.committed_config[1]
        change = self._propose(node, self._draw_change(m, node.id))
        if self.aprofile is not None:
            self._after_change(node, change)

    def _draw_change(self, m: MembershipConfig, asked: NodeId) -> ProposeConfigChange:
        """A random change relative to ``m``; mostly valid (at least one voter stays)."""
        rng = self.rng
        voters = sorted(m.voters())
        learners = sorted(m.non_voters)
        outside = [n for n in self.nodes if n not in m.all_nodes()]

        def some(pool: list[NodeId], most: int) -> list[NodeId]:
            return rng.sample(pool, rng.randint(1, min(most, len(pool)))) if pool else []

        kind = rng.choices(
            (
                "add",
                "remove",
                "non-voter",
                "promote",
                "demote",
                "replace",
                "remove-leader",
                "mixed",
                "noop",
            ),
            weights=(25, 18, 10, 10, 5, 10, 8, 10, 4),
        )[0]
        if kind == "add":  # new voters: outsiders, or current non-voters (promotion)
            return ProposeConfigChange(add_members=some(outside + learners, 2))
        if kind == "remove" and len(voters) > 1:
            gone = some(voters, len(voters) - 1)
            return ProposeConfigChange(remove_members=gone + some(learners, 1))
        if kind == "remove" and learners:
            return ProposeConfigChange(remove_members=some(learners, 2))
        if kind == "non-voter" and outside:
            return ProposeConfigChange(add_non_voters=some(outside, 2))
        if kind == "promote" and learners:
            return ProposeConfigChange(add_members=some(learners, 2))
        if kind == "demote" and len(voters) > 1:
            return ProposeConfigChange(add_non_voters=some(voters, len(voters) - 1))
        if kind == "replace":  # every voter goes; new ones from outside or the non-voters
            fresh = some(outside + learners, 3)
            if fresh:
                return ProposeConfigChange(add_members=fresh, remove_members=voters)
        if kind == "remove-leader" and asked in voters:
            return ProposeConfigChange(add_members=some(outside, 1), remove_members=[asked])
        if kind == "noop":
            return ProposeConfigChange(add_members=some(voters, 1), remove_members=outside[:1])
        # mixed: any three random subsets of the pool, often invalid (clash, no voter left)
        pool = list(self.nodes)
        return ProposeConfigChange(
            add_members=[n for n in pool if rng.random() < 0.2],
            remove_members=[n for n in pool if rng.random() < 0.2],
            add_non_voters=[n for n in pool if rng.random() < 0.1],
        )

    def _propose(self, node: SimNode, request: ProposeConfigChange) -> Change:
        core = node.core
        assert core is not None
        before = core.membership
        target, _ = expected_target(before, request, self.config.min_voters)
        busy = (
            before.is_in_joint_consensus
            or not before.is_voter(node.id)
            or any(
                c.outcome == "pending" and c.node == node.id and c.incarnation == node.incarnation
                for c in self.changes.values()
            )
        )
        cid = len(self.changes) + 1
        change = Change(
            cid,
            request,
            node.id,
            node.incarnation,
            before,
            core.role is Role.LEADER,
            busy,
            target,
        )
        change.transferring = core.transfer is not None
        self.changes[cid] = change
        self._trace(
            "admin",
            node.id,
            f"c{cid} add={list(request.add_members)} remove={list(request.remove_members)} "
            f"non-voters={list(request.add_non_voters)}",
        )
        self.proposing = cid
        self.touched.add(node.id)
        node.d.call(request, ("config", cid))
        self.proposing = None
        if (
            change.outcome == "pending"
            and change.was_leader
            and change.transferring
            and "config-during-transfer" not in self.skip_checks
        ):
            raise self.fail(
                "config-during-transfer",
                f"c{cid} to leader n{node.id} (membership {_describe(before)}) was accepted "
                "while it hands leadership over",
            )
        if change.outcome == "pending" and (not change.was_leader or target is None or change.busy):
            raise self.fail(
                "config-oracle",
                f"c{cid} to n{node.id} ({'leader' if change.was_leader else core.role.value}, "
                f"membership {_describe(before)}) was not answered at once",
            )
        return change

    def _config_answer(
        self, node: SimNode, change: Change, value: Any, error: BaseException | None
    ) -> None:
        """Check the answer to a membership change against what was asked."""
        self._observe_commit(node)
        core = node.core
        assert core is not None
        change.answered = f"by n{node.id} at t={self.now}"
        outcome = type(error).__name__ if error is not None else type(value).__name__
        change.outcome = outcome
        self._trace("admin-answer", node.id, f"c{change.cid} {outcome}")
        at_once = self.proposing == change.cid
        target, invalid = expected_target(change.before, change.request, self.config.min_voters)

        def bad(why: str) -> SimulationFailure:
            return self.fail(
                "config-oracle",
                f"c{change.cid} to n{node.id} (asked of membership {_describe(change.before)}, "
                f"{'leader' if change.was_leader else 'not leader'}"
                f"{', busy' if change.busy else ''}) answered {outcome}: {why}",
            )

        if error is not None and not isinstance(error, ConfigChangeError):
            raise bad(f"not a ConfigChangeError: {error!r}")
        if not change.was_leader:
            if not isinstance(error, NodeNotLeader):
                raise bad("a node that is not the leader must answer NodeNotLeader")
            return
        if isinstance(error, NodeNotLeader):
            raise bad("the leader answered NodeNotLeader")
        refused = isinstance(error, (ChangeInProgress, Noop, InoperableConfig))
        if refused and not at_once:
            raise bad("a refusal must come at once")
        if change.busy:
            if not refused:
                raise bad("another change was in progress: it must be refused at once")
            return
        if change.transferring and refused:
            return  # a leader handing leadership over refuses changes (any refusal)
        if isinstance(error, ChangeInProgress):
            raise bad("no other change was in progress")
        if refused or target is None:
            if outcome != invalid:
                raise bad(f"expected {invalid or 'the change to be carried out'}")
            return
        if isinstance(error, LeadershipLost):
            if core.role is Role.LEADER:
                raise bad("the node is still the leader")
            return
        if isinstance(error, CatchUpTimeout):
            new_voters = set(target.voters() if target else ()) - set(change.before.voters())
            if not error.nodes or not set(error.nodes) <= new_voters:
                raise bad(f"nodes {error.nodes} are not new voters ({sorted(new_voters)})")
            lagging = set(error.nodes) & core.membership.voters()
            if lagging:
                raise bad(f"nodes {sorted(lagging)} are voters already")
            return
        if error is not None:
            raise bad(f"unexpected error {error!r}")
        if not isinstance(value, ConfigChangeResponse):
            raise bad(f"unexpected value {value!r}")
        if value.membership != target:
            raise bad(f"expected membership {_describe(target) if target else invalid}")
        committed = self.committed.get(value.index)
        if committed is None or committed.payload != EntryConfigChange(value.membership):
            raise bad(
                f"index {value.index} holds committed {_entry(committed)}, not that configuration"
            )
        if self.committed_config[0] != value.index:
            raise bad(
                f"the latest committed configuration is at {self.committed_config[0]}, not "
                f"{value.index}"
            )

    # --- invariants -------------------------------------------------------------------

    def _record_committed(self, entry: Entry, term: Term, why: str) -> None:
        """A node in ``term`` knows ``entry`` is committed: check it against all known so far.

        The entry was committed in ``term`` or earlier, so every leader of a later term must
        hold it (leader completeness, §5.4). The entry's own term is not the bound: an
        entry of term 14 may be committed by the leader of term 19 while a partitioned
        leader of term 18, which lacks it, is still in office.
        """
        new = entry.index not in self.committed
        prev = self.committed.setdefault(entry.index, entry)
        if prev != entry:
            raise self.fail(
                "state-machine-safety",
                f"{_entry(entry)} is committed ({why}) but {_entry(prev)} was committed before",
            )
        if new:
            self.commit_seq += 1
            self.committed_seq[entry.index] = self.commit_seq
        if new and isinstance(entry.payload, EntryConfigChange):
            bisect.insort(self.committed_config_indexes, entry.index)
        if entry.index > self.commit_max:
            self.commit_max = entry.index
            self.quorum_dirty = True
        if isinstance(entry.payload, EntryConfigChange) and entry.index > self.committed_config[0]:
            self.committed_config = (entry.index, entry.payload.membership)
        known_term = self.commit_term.get(entry.index)
        if known_term is not None and known_term <= term:
            return
        self.commit_term[entry.index] = term
        self._check_leaders_hold(entry, term)
        if known_term is not None:
            return  # seen before: the client checks below were done then
        payload = entry.payload
        if isinstance(payload, EntryNormal):
            data = payload.data
            if not isinstance(data, Put):
                raise self.fail("client-oracle", f"refused entry {_entry(entry)} is committed")
            at = self.committed_value_at.setdefault(data.value, entry.index)
            if at != entry.index:
                raise self.fail(
                    "client-oracle", f"write {data.value} committed at {at} and at {entry.index}"
                )
            write = self.writes[self.write_of_value[data.value]]
            truncated = self.truncated_writes.get(write.wid)
            if truncated is not None:
                self._note(
                    "truncated-write-committed",
                    f"w{write.wid}, truncated {truncated}, is committed at {entry.index}",
                )
            if write.outcome in ("forward", "app_error", "busy"):
                raise self.fail(
                    "client-oracle",
                    f"w{write.wid} was answered {write.outcome} ({write.answered}) but is "
                    f"committed at {_entry(entry)} ({why})",
                )
            if write.index is not None and write.index != entry.index:
                raise self.fail(
                    "client-oracle",
                    f"w{write.wid} was acknowledged at {write.index} but is committed at "
                    f"{entry.index}",
                )

    def _check_leaders_hold(self, entry: Entry, commit_term: Term) -> None:
        """Leader completeness for the leaders in office of a term after ``commit_term``."""
        for node in self.nodes.values():
            core = node.core
            if (
                node.up
                and core is not None
                and core.role is Role.LEADER
                and core.current_term > commit_term
                and not _holds(core, entry)
            ):
                raise self.fail(
                    "leader-completeness",
                    f"{_entry(entry)} is committed (by term {commit_term}) but leader "
                    f"n{node.id} of term {core.current_term} lacks it (it has "
                    f"{_entry(_get(core, entry.index))})",
                )

    def _observe_commit(self, node: SimNode) -> None:
        """Record the entries a running node's commit index newly covers."""
        core = node.core
        if not node.up or core is None or core.role is Role.INITIALIZING:
            return
        commit = core.commit_index
        if commit < node.seen_commit:
            raise self.fail(
                "commit-monotonic", f"n{node.id} commit index went {node.seen_commit}->{commit}"
            )
        if commit > node.seen_commit:
            if commit > core.log.last_index:
                raise self.fail(
                    "commit-monotonic",
                    f"n{node.id} commits {commit} beyond its log end {core.log.last_index}",
                )
            start, node.seen_commit = node.seen_commit, commit
            if (
                core.role is Role.LEADER
                and node.term_committed_at[0] != core.current_term
                and core.log.term_at(commit) == core.current_term
            ):
                node.term_committed_at = (core.current_term, self.now)  # its reads may go on
            if core.current_term == node.led_term:
                # Its own decision: no other node leads a term this node led.
                self._check_leader_commit(node, start, commit)
            offset = core.log.offset
            for i in range(start + 1, commit + 1):
                if i <= offset:
                    # Inside the snapshot it installed: some node applied it (so it is
                    # recorded), and the snapshot was checked against it at the install.
                    if i not in self.committed:
                        raise self.fail(
                            "snapshot-committed",
                            f"n{node.id} holds index {i} in its snapshot through {offset}, "
                            "but no node applied it",
                        )
                    continue
                self._record_committed(
                    core.log.get(i), core.current_term, f"commit index of n{node.id}"
                )

    def _check_nodes(self, nodes: Any) -> None:
        """The per-step invariants over the running nodes among ``nodes``."""
        for node in nodes:
            core = node.core
            if not node.up or core is None or core.role is Role.INITIALIZING:
                continue
            nid = node.id
            term = core.current_term
            if term < node.seen_term:
                raise self.fail(
                    "term-monotonic", f"n{nid} term went from {node.seen_term} to {term}"
                )
            if (
                term == node.seen_term
                and node.seen_vote is not None
                and core.voted_for != node.seen_vote
            ):
                raise self.fail(
                    "vote-stable",
                    f"n{nid} changed its term-{term} vote from {node.seen_vote} "
                    f"to {core.voted_for}",
                )
            node.seen_term, node.seen_vote = term, core.voted_for
            if core.role is not node.seen_role:
                self._trace("role", nid, f"{node.seen_role.value}->{core.role.value} t{term}")
                node.seen_role = core.role
                if core.role is Role.CANDIDATE and not core.membership.is_voter(nid):
                    self._note(
                        "campaign-outside-latest-config",
                        f"n{nid} campaigns in term {term} outside {_describe(core.membership)}",
                    )
                if core.role is Role.LEADER:
                    self._check_new_leader(node)
                    self._check_election_quorum(node)
            if core.role is Role.LEADER:
                holder = self.leaders.setdefault(term, nid)
                self.won_with.setdefault(term, core.membership)
                if holder != nid:
                    raise self.fail(
                        "election-safety", f"n{holder} and n{nid} are both leaders of term {term}"
                    )
                node.led_term = term
            self._observe_commit(node)

    def _check_new_leader(self, node: SimNode) -> None:
        core = node.core
        assert core is not None
        for index, entry in self.committed.items():
            commit_term = self.commit_term[index]
            if commit_term < core.current_term and not _holds(core, entry):
                raise self.fail(
                    "leader-completeness",
                    f"n{node.id} leads term {core.current_term} without {_entry(entry)}, "
                    f"committed by term {commit_term} (it has {_entry(_get(core, index))})",
                )

    # --- invariants: the configuration(s) in effect (§6) ------------------------------

    def _voters_holding(self, voters: Any, entry: Entry) -> list[NodeId]:
        """The voters (ids of the pool only) whose durable log holds ``entry``."""
        out = []
        for v in voters:
            node = self.nodes.get(v)
            if node is not None and node.durable.holds(entry):
                out.append(v)
        return out

    def _check_majorities(
        self, check: str, entry: Entry, voter_sets: Any, what: str | Callable[[], str]
    ) -> None:
        if check in self.skip_checks:
            return
        for voters in voter_sets:
            holders = self._voters_holding(voters, entry)
            if 2 * len(holders) <= len(voters):
                raise self.fail(
                    check,
                    f"{what if isinstance(what, str) else what()}: only {holders} of voter "
                    f"set {list(voters)} durably hold {_entry(entry)}",
                )

    def _check_leader_commit(self, node: SimNode, start: LogIndex, commit: LogIndex) -> None:
        """A leader (that may have stepped down since, in the same term) advanced its
        commit index only once a majority of *each* voter set of its configuration durably
        held the entry: both C_old and C_new while joint, never non-voters.

        Its configuration is the latest in its log, except one appended in this very step:
        a leader decides commits before it appends the next configuration entry.
        """
        core = node.core
        assert core is not None
        config_index = core.log.config_index
        if node.config_step == self.steps:
            config_index = _config_before(core, node.config_appended)
        membership = _membership_of(core, config_index)
        if commit <= core.log.offset:
            raise self.fail(
                "snapshot-committed",
                f"leader n{node.id} of term {core.current_term} commits {start}->{commit}, "
                f"inside its own snapshot through {core.log.offset}",
            )
        entry = core.log.get(commit)
        what = (
            f"leader n{node.id} of term {core.current_term} committed {start}->{commit} in "
            f"configuration {_describe(membership)}"
        )
        self._check_majorities("commit-quorum", entry, membership.voter_sets(), what)
        if core.role is Role.LEADER:
            self._check_removed_leader(node)

    def _check_committed_on_quorum(self) -> None:
        """Committed entries stay on a majority of the configuration in effect.

        With C_k the latest committed configuration entry (at index k): it was first
        committed under C_k itself (the next configuration entry waits for its commit),
        so a majority of each voter set of C_k durably holds index k, and so every entry
        before it, for good. Entries committed after k were committed under C_k or under
        the one configuration appended after it, whose voter sets always include C_k's
        last set (C_old of a joint entry, or C_new after C_old,new): a majority of that set
        holds the highest committed index.
        """
        index, config = self.committed_config
        if index:
            entry = self.committed[index]
            self._check_majorities(
                "committed-quorum",
                entry,
                config.voter_sets(),
                lambda: f"the latest committed configuration is {_describe(config)}",
            )
        if self.commit_max > index:
            last = config.voter_sets()[-1]
            entry = self.committed[self.commit_max]
            self._check_majorities(
                "committed-quorum",
                entry,
                (last,),
                lambda: (
                    f"{_entry(entry)} is committed after the latest committed configuration "
                    f"{_describe(config)} (at {index})"
                ),
            )

    def _check_election_quorum(self, node: SimNode) -> None:
        """A new leader got the votes of a majority of each voter set of its configuration
        (both while joint); nobody else counts, nor its own vote unless it is in the set.

        It is a voter of that configuration, or of the one before it in its log: a node
        that the latest (uncommitted) configuration removes or demotes may still be needed
        to elect a leader (dissertation §4.2.2), and then leads without counting itself.
        """
        if "election-quorum" in self.skip_checks:
            return
        core = node.core
        assert core is not None
        m = core.membership
        term = core.current_term
        if not m.is_voter(node.id):
            prev_index = _config_before(core, core.log.config_index)
            prev = _membership_of(core, prev_index)
            # Its configuration in its snapshot is committed: no previous one counts.
            from_snapshot = core.log.config_index <= core.log.offset
            if not core.log.config_index or from_snapshot or not prev.is_voter(node.id):
                raise self.fail(
                    "election-quorum",
                    f"n{node.id} leads term {term} but is no voter of {_describe(m)} nor of "
                    f"the configuration before it",
                )
        votes = self.votes_for.get((node.id, term), set()) | {node.id}
        for voters in m.voter_sets():
            got = sorted(v for v in voters if v in votes)
            if 2 * len(got) <= len(voters):
                raise self.fail(
                    "election-quorum",
                    f"n{node.id} leads term {term} in configuration {_describe(m)} with the "
                    f"votes of {sorted(votes)}: only {got} of voter set {list(voters)}",
                )

    def _check_removed_leader(self, node: SimNode) -> None:
        """A leader that is no voter of its committed (non-joint) configuration has stepped
        down in the step that committed it (§6), or is handing leadership over to a voter
        (dissertation §3.10), for at most an election timeout. Checked when a leader's
        commit index moves, the only way for its configuration to become committed."""
        core = node.core
        assert core is not None
        m = core.membership
        transfer = core.transfer
        handing_over = (
            transfer is not None
            and core.now - transfer.started_at <= core.config.election_timeout_max
        )
        if (
            not m.is_in_joint_consensus
            and not m.is_voter(node.id)
            and core.log.config_index <= core.commit_index
            and not handing_over
        ):
            raise self.fail(
                "removed-leader",
                f"n{node.id} still leads term {core.current_term} after committing "
                f"configuration {_describe(m)} (at {core.log.config_index}) without it",
            )

    def _check_config_entries(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        """A leader appends a configuration entry only once the previous one is committed,
        and only one step at a time: from C_old to C_old,new (or to C_old with other
        non-voters), from C_old,new only to C_new; the first one is the initial membership."""
        core = node.core
        assert core is not None
        self._observe_commit(node)  # its commit index may have moved in this step
        for entry in entries:
            payload = entry.payload
            if not isinstance(payload, EntryConfigChange):
                continue
            new = payload.membership
            if node.id in new.non_voters and node.id in new.members:
                self._note(
                    "leader-demotes-itself",
                    f"leader n{node.id} of term {core.current_term} appends {_describe(new)} "
                    f"at {entry.index}",
                )
            prev_index = _config_before(core, entry.index)
            if prev_index == 0:
                if "config-transition" not in self.skip_checks and new != self.initial_membership:
                    raise self.fail(
                        "config-transition",
                        f"n{node.id} writes {_describe(new)} at {entry.index} as the first "
                        f"configuration; the cluster was formed with "
                        f"{_describe(self.initial_membership)}",
                    )
                continue
            prev = _membership_of(core, prev_index)
            if prev_index > core.log.offset and self.committed.get(prev_index) != core.log.get(
                prev_index
            ):
                raise self.fail(
                    "config-one-at-a-time",
                    f"leader n{node.id} of term {core.current_term} appends configuration "
                    f"{_describe(new)} at {entry.index} while the previous one, "
                    f"{_describe(prev)} at {prev_index}, is not committed (highest "
                    f"committed index {self.commit_max})",
                )
            if "config-transition" in self.skip_checks:
                continue
            if prev.members_after_consensus is not None:
                legal = (
                    new.members_after_consensus is None
                    and new.members == prev.members_after_consensus
                )
            else:
                legal = new.members == prev.members
            if not legal:
                raise self.fail(
                    "config-transition",
                    f"leader n{node.id} goes from {_describe(prev)} (at {prev_index}) to "
                    f"{_describe(new)} (at {entry.index}) without joint consensus",
                )

    def _check_log_matching(self) -> None:
        """Pairwise over durable logs: entries with equal index and term have equal prefixes.

        A node's snapshot stands for the committed entries it covers, so a log is compared
        with another's snapshot as with the committed entries there.
        """
        logs = [(n.id, self._durable_log(n)) for n in self.nodes.values()]
        for pos, (a, la) in enumerate(logs):
            for b, lb in logs[pos + 1 :]:
                for i in range(min(len(la), len(lb)) - 1, -1, -1):
                    if la[i].term == lb[i].term:
                        if la[: i + 1] != lb[: i + 1]:
                            j = next(k for k in range(i + 1) if la[k] != lb[k])
                            raise self.fail(
                                "log-matching",
                                f"n{a} and n{b} agree on index {i + 1} term {la[i].term} but "
                                f"differ at {j + 1}: {_entry(la[j])} vs {_entry(lb[j])}",
                            )
                        break

    def _durable_log(self, node: SimNode) -> list[Entry]:
        """The node's durable log from index 1: its snapshot part from the committed entries."""
        d = node.durable
        if d.snapshot_meta is None:
            return d.log
        missing = [i for i in range(1, d.offset + 1) if i not in self.committed]
        if missing:
            raise self.fail(
                "snapshot-committed",
                f"n{node.id}'s snapshot through {d.offset} covers uncommitted index {missing[0]}",
            )
        return [self.committed[i] for i in range(1, d.offset + 1)] + d.log

    # --- the calm phase ---------------------------------------------------------------

    def _live(self) -> bool:
        """Calm phase: once a single leader exists, write through it; done when applied
        everywhere."""
        if any(not n.started for n in self.nodes.values()):
            return False
        leaders = [
            n for n in self.nodes.values() if n.core is not None and n.core.role is Role.LEADER
        ]
        lw = self.liveness_write
        # A write answered OutcomeUnknown (e.g. its node's log was replaced by a snapshot)
        # may or may not commit: write again, as a client would.
        if lw is None or lw.outcome in ("forward", "app_error", "lost", "unknown", "busy"):
            if len(leaders) == 1:
                data = Put("liveness", f"v{len(self.writes) + 1}")
                self.liveness_write = self._submit(leaders[0], ClientPayload.new(data))
            return False
        if lw.index is None or len(leaders) != 1:
            return False
        if (
            not self.final_trigger
            and self.sprofile is not None
            and self.sprofile.trigger_gap is not None
            and leaders[0].durable.last_applied >= lw.index
        ):
            # Runs with TriggerSnapshot compact the leader once more after the last write:
            # a node still behind then catches up by installing a snapshot of everything.
            self.final_trigger = True
            self._trigger(leaders[0])
        if self.mprofile is None:
            return all(n.durable.last_applied >= lw.index for n in self.nodes.values())
        # Membership runs: the leader's latest configuration is committed and not joint, no
        # change waits for an answer, and every member of it (voter or not) applied it all.
        leader = leaders[0]
        core = leader.core
        assert core is not None
        m = core.membership
        if (
            m.is_in_joint_consensus
            or core.log.config_index > core.commit_index
            or any(
                c.outcome == "pending" and self.nodes[c.node].incarnation == c.incarnation
                for c in self.changes.values()
            )
        ):
            return False
        upto = max(lw.index, core.log.config_index)
        if not all(self.nodes[i].durable.last_applied >= upto for i in m.all_nodes()):
            return False
        # Removed nodes settle too: the leader has told each one that its removal committed
        # (or dropped it), and every write a node still holds got its answer.
        if (core.leader is not None and core.leader.departing) or any(
            w.outcome == "pending" and self.nodes[w.node].incarnation == w.incarnation
            for w in self.writes.values()
        ):
            return False
        self.final_membership = m
        return True

    def _members(self) -> list[SimNode]:
        """The nodes that must hold everything at the end: all of them, or in membership
        runs the members (voters and non-voters) of the final configuration."""
        if self.final_membership is None:
            return list(self.nodes.values())
        return [self.nodes[i] for i in sorted(self.final_membership.all_nodes())]

    def _check_final(self) -> None:
        """After recovery: every acknowledged write is applied on every node, and every
        write sent to a node that is still running was answered."""
        members = {n.id for n in self._members()}
        for write in self.writes.values():
            node = self.nodes[write.node]
            if write.outcome == "pending" and node.incarnation == write.incarnation:
                raise self.fail(
                    "client-oracle" if write.node in members else "removed-node-answers",
                    f"w{write.wid} sent to n{write.node} was never answered"
                    + ("" if write.node in members else " (the node was removed)"),
                )
            if write.index is None:
                continue
            for n in self._members():
                history = n.durable.state_machine.applied
                got = history[write.index - 1] if write.index <= len(history) else None
                if got != (write.index, write.payload.entry.data):
                    raise self.fail(
                        "client-oracle",
                        f"acknowledged w{write.wid} at {write.index} is not applied on n{n.id} "
                        f"(it applied {got})",
                    )
        for n in self.nodes.values():
            self._check_history(n, "at the end")
        by_applied: dict[LogIndex, dict[str, Any]] = {}
        for n in self.nodes.values():
            data = by_applied.setdefault(n.durable.last_applied, n.durable.state_machine.data)
            if data != n.durable.state_machine.data:
                raise self.fail("state-machine-safety", f"n{n.id} state machine differs")
        for change in self.changes.values():
            node = self.nodes[change.node]
            if change.outcome == "pending" and node.incarnation == change.incarnation:
                raise self.fail(
                    "config-oracle", f"c{change.cid} sent to n{change.node} was never answered"
                )
        final = self.final_membership
        if final is not None:
            if self.committed_config[1] != final:
                raise self.fail(
                    "membership-converged",
                    f"the leader's configuration {_describe(final)} is not the latest "
                    f"committed one, {_describe(self.committed_config[1])}",
                )
            for n in self._members():
                assert n.core is not None
                if n.core.membership != final:
                    raise self.fail(
                        "membership-converged",
                        f"member n{n.id} uses {_describe(n.core.membership)}, the leader "
                        f"{_describe(final)}",
                    )

    # --- summaries --------------------------------------------------------------------

    def summary(self) -> dict[str, int]:
        """Counts that show what a run exercised."""
        outcomes = collections.Counter(w.outcome for w in self.writes.values())
        out = {
            "steps": self.steps,
            "virtual_ms": self.now,
            "terms_with_leader": len(self.leaders),
            "applied": len(self.applied),
            "writes": len(self.writes),
            **{f"writes_{k}": v for k, v in sorted(outcomes.items())},
        }
        if self.reads:
            for outcome, count in collections.Counter(
                (r.policy.value, r.outcome) for r in self.reads.values()
            ).items():
                out[f"reads_{outcome[0]}_{outcome[1]}"] = count
        if self.mprofile is not None:
            configs = [
                e.payload.membership
                for e in self.committed.values()
                if isinstance(e.payload, EntryConfigChange)
            ]
            answers = collections.Counter(c.outcome for c in self.changes.values())
            out["configs_committed"] = len(configs)
            out["joint_committed"] = sum(1 for m in configs if m.is_in_joint_consensus)
            out["changes"] = len(self.changes)
            out.update({f"changes_{k}": v for k, v in sorted(answers.items())})
            initial = set(self.initial_membership.members)
            final = self.final_membership
            out["final_voters_new"] = len(set(final.voters()) - initial) if final else 0
        out.update({f"note_{k}": v for k, v in sorted(self.notes.items())})
        if self.aprofile is not None:
            calls = collections.Counter((a.kind, a.outcome) for a in self.admin_calls.values())
            out.update({f"admin_{kind}_{outcome}": n for (kind, outcome), n in calls.items()})
        if self.cprofile is not None:
            out.update({f"cuts_{k}": v for k, v in sorted(self.cut_stats.items())})
        if self.sprofile is not None:
            out["snapshot_runs"] = 1
            out.update({f"snapshots_{k}": v for k, v in sorted(self.snapshot_stats.items())})
        return out


# --- helpers ----------------------------------------------------------------------------


def _applied_through(history: list[tuple[LogIndex, Any]]) -> LogIndex:
    """The index a state machine's history (``keep_history``) ends at (0 if empty)."""
    return history[-1][0] if history else 0


def _config_before(core: RaftCore, index: LogIndex) -> LogIndex:
    """The index of the latest configuration entry before ``index`` in ``core``'s log; the
    snapshot point if the snapshot's configuration is the one before it; 0 if none."""
    log = core.log
    indexes = getattr(log, "_config_indexes", None)
    if indexes is not None:
        found = next((i for i in reversed(indexes) if i < index), 0)
    else:
        found = next(
            (
                i
                for i in range(index - 1, log.offset, -1)
                if isinstance(log.get(i).payload, EntryConfigChange)
            ),
            0,
        )
    if not found and log.snapshot_membership is not None and log.offset < index:
        return log.offset
    return found


def _membership_of(core: RaftCore, config_index: LogIndex) -> MembershipConfig:
    """The configuration at ``config_index`` (as :func:`_config_before` returns them)."""
    log = core.log
    if config_index <= log.offset and log.snapshot_membership is not None:
        return log.snapshot_membership
    if not config_index:
        return core.hard_membership
    return _payload_membership(log.get(config_index))


def _payload_membership(entry: Entry) -> MembershipConfig:
    payload = entry.payload
    assert isinstance(payload, EntryConfigChange)
    return payload.membership


def _describe(m: MembershipConfig) -> str:
    text = "voters " + ",".join(map(str, m.members))
    if m.members_after_consensus is not None:
        text += " joint " + ",".join(map(str, m.members_after_consensus))
    if m.non_voters:
        text += " non-voters " + ",".join(map(str, m.non_voters))
    return text


def _get(core: RaftCore, index: LogIndex) -> Entry | None:
    """The entry the core's log holds at ``index`` (``None``: none, or compacted)."""
    return core.log.get(index) if core.log.offset < index <= core.log.last_index else None


def _holds(core: RaftCore, entry: Entry) -> bool:
    """The core's log holds ``entry``, or its snapshot covers it: a snapshot holds
    committed entries only (checked when it is made and when it is installed)."""
    return entry.index <= core.log.offset or _get(core, entry.index) == entry


def _data(data: Any) -> str:
    if isinstance(data, Put):
        return f"{data.key}={data.value}"
    return repr(data)


def _entry(entry: Entry | None) -> str:
    if entry is None:
        return "nothing"
    payload = entry.payload
    if isinstance(payload, EntryNormal):
        what = _data(payload.data)
    else:
        what = type(payload).__name__.removeprefix("Entry").lower()
    return f"{entry.index}/t{entry.term}:{what}"


def _msg(message: Any, error: BaseException | None = None) -> str:
    if error is not None:
        return f"error {type(error).__name__}"
    if isinstance(message, AppendEntriesRequest):
        span = f" {message.prev_log_index + 1}..{message.last_index}" if message.entries else ""
        return (
            f"AE(t{message.term} prev={message.prev_log_index}/t{message.prev_log_term}{span} "
            f"commit={message.leader_commit})"
        )
    if isinstance(message, VoteRequest):
        kind = "PreVote" if message.pre_vote else "Vote"
        return f"{kind}(t{message.term} last={message.last_log_index}/t{message.last_log_term})"
    if isinstance(message, TimeoutNowRequest):
        return f"TimeoutNow(t{message.term})"
    if isinstance(message, AppendEntriesResponse):
        hint = (
            f" hint={message.conflict_opt.index}/t{message.conflict_opt.term}"
            if (message.conflict_opt)
            else ""
        )
        return f"AEResp(t{message.term} {'ok' if message.success else 'reject'}{hint})"
    if isinstance(message, VoteResponse):
        return f"VoteResp(t{message.term} {'granted' if message.vote_granted else 'denied'})"
    if isinstance(message, InstallSnapshotRequest):
        last = message.meta.last_included
        return (
            f"IS(t{message.term} {message.meta.snapshot_id} {last.index}/t{last.term} "
            f"@{message.offset}+{len(message.data)}/{message.meta.size}"
            f"{' done' if message.done else ''})"
        )
    if isinstance(message, InstallSnapshotResponse):
        return f"ISResp(t{message.term} {'ok' if message.success else 'refused'})"
    if message is None:
        return "none"
    return repr(message)


def _format_event(event: tuple[Any, ...]) -> str:
    when, kind, *rest = event
    if kind in ("deliver", "reply", "drop", "drop-reply", "lost", "unreachable", "cut-drop"):
        src, dst, *what = rest
        return f"t={when:>5} {kind:<11} n{src}->n{dst} {' '.join(what)}"
    if rest and isinstance(rest[0], int):
        return f"t={when:>5} {kind:<11} n{rest[0]} {' '.join(str(r) for r in rest[1:])}"
    return f"t={when:>5} {kind:<11} {' '.join(str(r) for r in rest)}"


def run_simulation(
    seed: int,
    nodes: int = 3,
    core_factory: CoreFactory = RaftCore,
    profile: FaultProfile | None = None,
    keep_trace: bool = False,
    skip_checks: frozenset[str] = frozenset(),
    fault_ms: int | None = None,
    membership: bool = False,
    membership_profile: MembershipProfile | None = None,
    snapshots: bool | None = None,
    snapshot_profile: SnapshotProfile | None = None,
    pre_vote: bool = False,
    admin_ops: bool = False,
    one_way: bool = False,
    damage: bool = False,
) -> Simulation:
    """Run one seeded simulation to the end; raise :class:`SimulationFailure` on a violation.

    With ``membership=True`` the cluster size comes from the seed (``nodes`` is ignored)
    and membership changes run during the faults (see :class:`MembershipProfile`).
    ``snapshots`` forces snapshots on or off (``None``: the seed decides, see
    :meth:`SnapshotProfile.for_seed`); ``snapshot_profile`` sets them. ``admin_ops`` adds
    ``TransferLeadership`` and ``TriggerElection`` calls (:class:`AdminProfile`),
    ``one_way`` one-way cuts and chains (:class:`CutProfile`), ``damage`` a flipped bit in
    some snapshot chunks (:meth:`Simulation._damaged`); all are off by default.
    """
    return Simulation(
        seed,
        nodes,
        core_factory,
        profile,
        keep_trace,
        skip_checks,
        fault_ms,
        membership,
        membership_profile,
        snapshots,
        snapshot_profile,
        pre_vote=pre_vote,
        admin_ops=admin_ops,
        one_way=one_way,
        damage=damage,
    ).run()


def run_membership_simulation(
    seed: int,
    core_factory: CoreFactory = RaftCore,
    keep_trace: bool = False,
    skip_checks: frozenset[str] = frozenset(),
    fault_ms: int | None = None,
    profile: FaultProfile | None = None,
    membership_profile: MembershipProfile | None = None,
    snapshots: bool | None = None,
    snapshot_profile: SnapshotProfile | None = None,
    pre_vote: bool = False,
    admin_ops: bool = False,
    one_way: bool = False,
    damage: bool = False,
) -> Simulation:
    """A membership run: a few voters of a larger pool, membership changes under faults."""
    return Simulation(
        seed,
        3,
        core_factory,
        profile,
        keep_trace,
        skip_checks,
        fault_ms,
        membership=True,
        membership_profile=membership_profile,
        snapshots=snapshots,
        snapshot_profile=snapshot_profile,
        pre_vote=pre_vote,
        admin_ops=admin_ops,
        one_way=one_way,
        damage=damage,
    ).run()
