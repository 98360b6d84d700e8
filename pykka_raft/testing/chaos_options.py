"""What a chaos run does (:class:`ChaosOptions`) and what it found (:class:`ChaosReport`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from pykka_raft.config import Config
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing.history import Op
from pykka_raft.testing.linearizability import LinearizabilityResult
from pykka_raft.testing.plugs import StoragePlug
from pykka_raft.types import NodeId

DEFAULT_CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


@attrs.frozen
class ChaosOptions:
    """What one chaos run does.

    Attributes:
        nodes: cluster size.
        duration: seconds of faults (the run takes a few seconds more to heal and check).
        clients: client threads.
        keys: keys the clients share (few keys make conflicts likely).
        crashes: whether the nemesis crashes and restarts nodes.
        outage: crash every node at once, once, near the end (a power outage).
        config: the nodes' configuration.
        storage: the nodes' storage: a :class:`~pykka_raft.testing.plugs.StoragePlug`
            (:func:`~pykka_raft.testing.plugs.memory_storage` when ``None``;
            :func:`~pykka_raft.testing.plugs.sqlite_storage` for ``SqliteStore``, or your
            own), or a ``(node_id, MemStoreData) -> ref`` factory as
            :class:`~pykka_raft.testing.Cluster` takes.
        op_timeout: seconds a client waits for an answer before recording "unknown".
        membership: whether the nemesis also changes the membership (through the leader,
            without waiting for the answer, so faults hit changes in flight).
        spares: nodes started pristine next to the cluster, for membership changes to add.
        tcp: carry every RPC over real loopback sockets (one CURVE-secured TcpNetwork per
            node, behind the same fault network; needs the ``[net]`` extra).
        values: the clients write arbitrary nested application values
            (:func:`~pykka_raft.testing.values.random_value`: bytes, tuples and lists,
            non-string dict keys, big ints, NaN and the infinities, registered classes), and
            the checks compare them with their types (:func:`~pykka_raft.testing.values.same`).
        reads: most of the clients' gets bypass the log as
            :class:`~pykka_raft.messages.ClientRead`: ``READ_INDEX`` and ``LEASE`` reads
            sent to the node the client takes for the leader, ``READ_INDEX`` reads sent to
            another node, and a few ``STALE`` reads. All but the stale ones go into the
            history the linearizability check reads; the stale ones are only checked to
            return a value some client wrote to that key. Since lease reads assume that no
            voter restarts within a lease (``docs/reads.md``), the nemesis then restarts a
            node only after it has been down for ``election_timeout_min``.
        admin: the nemesis also asks the leader for leadership transfers (to one of its
            voters, itself included, or to ``None``) and any node for an election
            (``TriggerElection``), without waiting for the answer; every call must be
            answered by the end of the run (unless its node crashed), with a typed error
            or, for a transfer, a ``TransferLeadershipResponse`` naming a node seen leading
            that term.
    """

    nodes: int = 3
    duration: float = 4.0
    clients: int = 4
    keys: int = 3
    crashes: bool = True
    outage: bool = False
    config: Config = DEFAULT_CONFIG
    storage: StoragePlug | Callable[[NodeId, MemStoreData], Any] | None = None
    op_timeout: float = 2.0
    membership: bool = False
    spares: int = 2
    tcp: bool = False
    values: bool = False
    reads: bool = False
    admin: bool = False


@attrs.define
class ChaosReport:
    """What a chaos run found."""

    seed: int
    options: ChaosOptions
    problems: list[str] = attrs.field(factory=list)
    timeline: list[str] = attrs.field(factory=list)
    ops: tuple[Op, ...] = ()
    linearizability: LinearizabilityResult | None = None
    elapsed: float = 0.0
    faults: dict[str, int] = attrs.field(factory=dict)
    """How many faults of each kind the nemesis injected (``crash``, ``restart``,
    ``partition``, ``isolate``, ``links``, ``replay``, ``heal``, ``change``, ``outage``,
    ``transfer``, ``election``)."""
    snapshots_installed: int = 0
    """Snapshot installs the nodes reported in their metrics (followers that caught up
    through a snapshot)."""
    storage: str = "memory"
    """The name of the storage the nodes ran on."""
    stale_reads: int = 0
    """``STALE`` reads answered (checked only to return a value that was written)."""

    @property
    def ok(self) -> bool:
        """True when no monitor, liveness check or the linearizability check failed."""
        return not self.problems

    def summary(self) -> str:
        """One line: seed, verdict, and the size of the run."""
        counts = {
            o: sum(1 for op in self.ops if op.outcome == o) for o in ("ok", "fail", "unknown")
        }
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        reads = sum(1 for op in self.ops if op.via is not None and op.outcome == "ok")
        read_text = (
            f"{reads} ok reads without the log + {self.stale_reads} stale, "
            if self.options.reads
            else ""
        )
        return (
            f"seed {self.seed} ({self.storage}): {verdict}; {len(self.ops)} ops "
            f"({counts['ok']} ok, {counts['fail']} failed, {counts['unknown']} unknown), "
            f"{read_text}"
            f"{sum(self.faults.values())} faults, {self.snapshots_installed} snapshot installs, "
            f"{self.elapsed:.1f}s"
        )

    def replay_command(self) -> str:
        """The command line that runs this seed again with the same options (a storage of
        your own cannot be named on a command line: replay it with ``run_chaos``)."""
        o = self.options
        flags = [f"--seed {self.seed}"]
        if o.nodes != 3:
            flags.append(f"--nodes {o.nodes}")
        if o.duration != 4.0:
            flags.append(f"--duration {o.duration:g}")
        flags += [
            f"--{name}" for name in ("membership", "tcp", "values", "admin") if getattr(o, name)
        ]
        flags.append("--reads" if o.reads else "--no-reads")
        if self.storage != "memory":
            flags.append(f"--storage {self.storage}")
        return "python -m pykka_raft.testing.chaos " + " ".join(flags)

    def render(self) -> str:
        """The full report: problems, the fault timeline and the useful part of the history."""
        lines = [self.summary(), f"replay: {self.replay_command()}"]
        lines += ["problems:", *(f"  - {p}" for p in self.problems)]
        lines += ["fault timeline:", *(f"  {t}" for t in self.timeline)]
        lin = self.linearizability
        if lin is not None and not lin.ok:
            # The explanation already ends with the timeline of the ops that matter.
            lines += [f"non-linearizable history of key {lin.key!r}: {lin.explanation}"]
        return "\n".join(lines)
