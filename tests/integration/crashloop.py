"""Kill a 3-node SqliteStore cluster with SIGKILL again and again; check that no
acknowledged write is ever lost.

    python tests/integration/crashloop.py --kills 50 [--seed 7] [--mode fsync-durable]

Each round starts ``crash_child.py`` on the same three directories, waits until it has
settled, lets its clients write, and kills it at a random moment (seeded), or right after
it starts writing or receiving a snapshot. After every kill:

1. *on disk*: each node's directory is opened (in this process) and every write
   acknowledged so far must be held by a majority of the nodes: its entry in the log at its
   index, or its key in a state machine that applied that index;
2. *after the restart*: the next child reports every node's state machine once they all
   applied a new entry; every acknowledged write must be in each of them, and they must be
   identical.

Rounds alternate between ``durability="fsync"`` with the durable key-value machine and
``durability="os"`` with an in-memory machine rebuilt at start, on two separate clusters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

CHILD = Path(__file__).resolve().parent / "crash_child.py"
ROOT = Path(__file__).resolve().parents[2]
MODES = {"fsync-durable": ("fsync", "durable"), "os-memory": ("os", "memory")}


class CrashCheckFailed(AssertionError):
    """An acknowledged write was lost, or the replicas disagree."""


@attrs.define
class Ack:
    key: str
    value: int
    index: int


class ChildProcess:
    """One run of the child, its output collected line by line as it comes."""

    def __init__(self, directory: Path, run: int, seed: int, mode: str, verify: bool) -> None:
        durability, machine = MODES[mode]
        command = [
            sys.executable,
            str(CHILD),
            f"--dir={directory}",
            f"--run={run}",
            f"--seed={seed}",
            f"--durability={durability}",
            f"--machine={machine}",
        ]
        if verify:
            command.append("--verify-only")
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the child)
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        )
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, after: int = 0) -> int:
        """Wait for a line matching ``predicate`` (from line ``after`` on); its position."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for pos in range(after, len(self.lines)):
                    if predicate(self.lines[pos]):
                        return pos
                after = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(
                        f"the child exited ({self.proc.returncode}):\n{self.errors()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no expected line within {timeout}s:\n{self.errors()}")
                self._cond.wait(min(remaining, 0.5))

    def kill(self) -> None:
        """SIGKILL, reap, and read what it printed until it died."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]


def inspect(directory: Path, node_id: int, machine: str) -> Any:
    """Open a node's directory in this process and dump it."""
    from pykka_raft import DumpStorage, KeyValueStateMachine, SqliteStore

    state = None if machine == "durable" else KeyValueStateMachine(keep_history=False)
    store = SqliteStore.start(directory / f"node{node_id}", node_id, state)
    try:
        return store.ask(DumpStorage(), timeout=60)
    finally:
        store.stop()


def holds(dump: Any, ack: Ack) -> bool:
    """The node's storage holds an acknowledged write (log entry or applied state)."""
    from pykka_raft import EntryNormal, Put

    if dump.last_applied >= ack.index and dump.state_machine.get(ack.key) == ack.value:
        return True
    first = dump.log[0].index if dump.log else None
    if first is None or not first <= ack.index < first + len(dump.log):
        return False
    return dump.log[ack.index - first].payload == EntryNormal(Put(ack.key, ack.value))


@attrs.define
class Cluster:
    """One cluster's directory, mode, and everything acknowledged to its clients."""

    directory: Path
    mode: str
    acks: dict[str, Ack] = attrs.Factory(dict)
    runs: int = 0

    @property
    def machine(self) -> str:
        return MODES[self.mode][1]

    def check_disk(self, nodes: tuple[int, ...] = (1, 2, 3)) -> None:
        dumps = [inspect(self.directory, n, self.machine) for n in nodes]
        for ack in self.acks.values():
            holders = sum(holds(dump, ack) for dump in dumps)
            if holders < 2:
                raise CrashCheckFailed(
                    f"{self.mode}: acknowledged write {ack} is held by {holders} of 3 nodes"
                )

    def check_settled(self, child: ChildProcess, end: int) -> int:
        """Every acknowledged write in each reported state machine, all identical."""
        states = {}
        for line in child.lines[:end]:
            if line.startswith("DUMP "):
                _, node, doc = line.split(" ", 2)
                states[int(node)] = json.loads(doc)["data"]
        if len(states) < 2:
            raise CrashCheckFailed(f"{self.mode}: only {sorted(states)} reported their state")
        first = next(iter(states.values()))
        for node, data in states.items():
            if data != first:
                raise CrashCheckFailed(f"{self.mode}: node {node}'s state machine differs")
            for ack in self.acks.values():
                if data.get(ack.key) != ack.value:
                    raise CrashCheckFailed(f"{self.mode}: node {node} lost acknowledged {ack}")
        return len(states)


@attrs.define
class Summary:
    kills: int = 0
    in_create: int = 0
    in_install: int = 0
    acks: int = 0
    seconds: float = 0.0
    modes: dict[str, int] = attrs.Factory(dict)

    def render(self) -> str:
        modes = ", ".join(f"{k} {v}" for k, v in sorted(self.modes.items()))
        return (
            f"{self.kills} kills ({modes}); {self.in_create + self.in_install} landed while a "
            f"snapshot was being written ({self.in_create}) or received/installed "
            f"({self.in_install}); {self.acks} acknowledged writes, none lost; "
            f"{self.seconds:.0f}s"
        )


def snapshot_in_progress(lines: list[str]) -> str | None:
    """``create`` or ``install`` if some node had begun a snapshot it had not finished."""
    open_: dict[tuple[str, str], int] = {}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in ("SNAP-BEGIN", "SNAP-END") and len(parts) == 3:
            key = (parts[1], parts[2])
            open_[key] = open_.get(key, 0) + (1 if parts[0] == "SNAP-BEGIN" else -1)
    kinds = sorted({kind for (_, kind), count in open_.items() if count > 0})
    return kinds[0] if kinds else None


TRIGGERS = (None, "create", "install")
"""Round ``n`` kills at a random moment (``None``) or right after a snapshot starts being
written (``create``) or received (``install``): ``TRIGGERS[n % 3]``."""


def one_round(
    cluster: Cluster, seed: int, rng: random.Random, kind: str | None
) -> tuple[int, str | None]:
    """Start, check the restart, write, kill. Returns (new acks, snapshot kind at the kill)."""
    child = ChildProcess(cluster.directory, cluster.runs, seed, cluster.mode, verify=False)
    try:
        settled = child.wait_for(lambda line: line == "SETTLED", 90)
        cluster.check_settled(child, settled)
        if kind is not None:
            with contextlib.suppress(TimeoutError):  # no snapshot came: kill anyway
                child.wait_for(
                    lambda line: line.startswith("SNAP-BEGIN") and kind in line, 10, settled
                )
            time.sleep(rng.uniform(0, 0.004 if kind == "create" else 0.05))
        else:
            time.sleep(rng.uniform(0.1, 1.5))
    finally:
        child.kill()
    cluster.runs += 1
    before = len(cluster.acks)
    for line in child.lines:
        if line.startswith("ACK "):
            _, key, value, index = line.split()
            cluster.acks[key] = Ack(key, int(value), int(index))
    return len(cluster.acks) - before, snapshot_in_progress(child.lines)


def verify(cluster: Cluster, seed: int) -> None:
    """A last restart that only settles and reports, then exits."""
    child = ChildProcess(cluster.directory, cluster.runs, seed, cluster.mode, verify=True)
    try:
        settled = child.wait_for(lambda line: line == "SETTLED", 90)
        cluster.check_settled(child, settled)
    finally:
        child.kill()


def run_crash_loop(
    kills: int,
    seed: int,
    base: Path,
    modes: tuple[str, ...] = tuple(MODES),
    progress: Callable[[str], None] = lambda line: None,
) -> Summary:
    """``kills`` rounds, alternating between the clusters of ``modes``; raises
    :class:`CrashCheckFailed` (with the seed) at the first lost or diverging write."""
    rng = random.Random(seed)
    clusters = [Cluster(base / mode, mode) for mode in modes]
    summary = Summary()
    started = time.monotonic()
    try:
        for number in range(kills):
            cluster = clusters[number % len(clusters)]
            new, kind = one_round(cluster, seed, rng, TRIGGERS[number % len(TRIGGERS)])
            cluster.check_disk()
            summary.kills += 1
            summary.modes[cluster.mode] = summary.modes.get(cluster.mode, 0) + 1
            summary.in_create += kind == "create"
            summary.in_install += kind == "install"
            progress(
                f"kill {number + 1}/{kills} [{cluster.mode}] +{new} acks "
                f"({len(cluster.acks)} in this cluster)"
                + (f", during a snapshot {kind}" if kind else "")
            )
        for cluster in clusters:
            if cluster.runs:
                verify(cluster, seed)
    except (CrashCheckFailed, RuntimeError, TimeoutError) as exc:
        raise CrashCheckFailed(f"seed {seed}: {exc}") from exc
    summary.acks = sum(len(c.acks) for c in clusters)
    summary.seconds = time.monotonic() - started
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--mode", choices=tuple(MODES), action="append")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"crash loop: {args.kills} kills, seed {seed}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="pykka-raft-crash-"))
    try:
        summary = run_crash_loop(
            args.kills,
            seed,
            base,
            tuple(args.mode or MODES),
            progress=lambda line: print(line, flush=True),
        )
    except CrashCheckFailed as exc:
        print(f"FAILED: {exc}")
        print(f"replay: python {Path(__file__).name} --kills {args.kills} --seed {seed}")
        print(f"data kept in {base}")
        return 1
    print(f"summary: {summary.render()}")
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
