"""The counter runs' options and report: what one run does, and what it found.

Kept apart from the workload, the nemesis and the checks so that each of them (and a
test reading a report) shares these types without importing the runner.
"""

from __future__ import annotations

from typing import Any

import attrs

from pykka_raft.client import Outcome
from pykka_raft.config import Config, SnapshotPolicy

__all__ = ["DEFAULT_CONFIG", "Attempted", "CounterOptions", "CounterReport"]

DEFAULT_CONFIG = Config(  # short timeouts and frequent snapshots: many faults per run
    election_timeout_min=300,
    election_timeout_max=600,
    heartbeat_interval=50,
    snapshot_policy=SnapshotPolicy.every(150),
    snapshot_max_chunk_size=4096,
)
"""The nodes' configuration of a run unless its options say otherwise."""


@attrs.frozen
class CounterOptions:
    """What one run does.

    Attributes:
        nodes: cluster size.
        duration: seconds of faults (the run takes a few seconds more to heal and check).
        workers: threads incrementing (they share two clients).
        counters: how many counters they increment.
        op_timeout: each increment's deadline: past it, an unanswered one is "unknown".
        attempt_timeout: how long one attempt waits before the client resends.
        crashes: whether the nemesis crashes and restarts nodes.
        naive: resend unknown increments without sessions (the control run).
        config: the nodes' configuration.
    """

    nodes: int = 3
    duration: float = 4.0
    workers: int = 4
    counters: int = 3
    op_timeout: float = 1.0
    attempt_timeout: float = 0.4
    crashes: bool = True
    naive: bool = False
    config: Config = DEFAULT_CONFIG


@attrs.frozen
class Attempted:
    """One increment as its worker saw it."""

    counter: str
    tag: str
    outcome: Outcome
    response: Any = None


@attrs.define
class CounterReport:
    """What a run found."""

    seed: int
    options: CounterOptions
    problems: list[str] = attrs.field(factory=list)
    timeline: list[str] = attrs.field(factory=list)
    increments: list[Attempted] = attrs.field(factory=list)
    finals: dict[str, int] = attrs.field(factory=dict)
    resends: int = 0
    """Attempts that repeated an increment after an unknown outcome."""
    duplicates: int = 0
    """Session entries answered from the cache (resends whose original was applied)."""
    twice: int = 0
    """Tags applied more than once (0 unless the run is naive and the checks caught it)."""
    snapshots_installed: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def count(self, outcome: Outcome) -> int:
        """How many increments ended with ``outcome``."""
        return sum(1 for i in self.increments if i.outcome is outcome)

    def summary(self) -> str:
        """One line: the seed, the verdict and the size of the run."""
        verdict = "ok" if self.ok else f"FAILED ({len(self.problems)} problems)"
        return (
            f"seed {self.seed}: {verdict}; {len(self.increments)} increments "
            f"({self.count(Outcome.APPLIED)} applied, {self.count(Outcome.NOT_APPLIED)} not "
            f"applied, {self.count(Outcome.UNKNOWN)} unknown), {self.resends} resends, "
            f"{self.duplicates} answered from the cache, {len(self.timeline)} faults, "
            f"{self.snapshots_installed} snapshot installs, {self.elapsed:.1f}s"
        )

    def render(self) -> str:
        """The summary, the replay command, the problems and the fault timeline."""
        naive = " --naive" if self.options.naive else ""
        lines = [
            self.summary(),
            f"replay: python -m pykka_raft.testing.counters --seed {self.seed}{naive}",
            "problems:",
            *(f"  - {p}" for p in self.problems),
            "fault timeline:",
            *(f"  {t}" for t in self.timeline),
        ]
        return "\n".join(lines)
