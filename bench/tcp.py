"""The TCP group of ``make bench``: three nodes, one process each, over loopback TCP.

pykka_raft (``TcpNetwork``, with CURVE and with ``insecure=True``) against PySyncObj,
each with three node processes on 127.0.0.1 and the client load running inside the
leader's process (so neither system pays for a client connection), in the same run:

- throughput: writes answered per second with 256 in flight (10-byte values);
- sequential write latency (one write at a time), p50 and p99;
- failed writes, and leader changes during the run (a healthy run has neither).

Every write is answered once the leader applied it. The coordinator prints one JSON object
per system; ``python -m bench.tcp`` runs them all and prints a table. Node processes are
``python -m bench.tcp node '<json>'``, driven by one-line commands on stdin.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_DUMP_PROFILE: Callable[[], None] | None = None
INFLIGHT = 256

SYSTEMS: list[tuple[str, str, dict[str, Any]]] = [
    ("tcp_raft_secure", "pykka_raft, 3 processes, TCP + CURVE", {"system": "pykka_raft"}),
    (
        "tcp_raft_insecure",
        "pykka_raft, 3 processes, TCP insecure",
        {"system": "pykka_raft", "insecure": True},
    ),
    ("tcp_pso", "PySyncObj, 3 processes (defaults)", {"system": "pysyncobj"}),
    ("tcp_pso_tuned", "PySyncObj, 3 processes (tuned)", {"system": "pysyncobj", "tuned": True}),
]


# --- the node processes -------------------------------------------------------------------


class _Counter:
    """A reply / callback target that counts answers and failures."""

    def __init__(self, done: Callable[[], None], failures: list[int]) -> None:
        self.done = done
        self.failures = failures

    def set(self, value: Any = None) -> None:
        self.done()

    def set_exception(self, error: BaseException | None = None) -> None:
        self.failures[0] += 1
        self.done()


def _workload(
    submit_factory: Callable[[str], Any], sequential_call: Callable[[], None], sequential_count: int
) -> dict[str, Any]:
    from bench.workers import DURATION, Window, latency_summary, sequential

    window = Window(INFLIGHT)
    throughput = window.run(submit_factory("x" * 10), DURATION)
    seq = sequential(sequential_call, sequential_count)
    return {
        "throughput_10B_per_s": throughput,
        "cpu_us_per_write_10B_leader_process": window.cpu_per_op_us,
        "sequential": latency_summary(seq),
    }


class _RaftNode:
    def __init__(self, options: dict[str, Any]) -> None:
        from pykka_raft import Config, KeyValueStateMachine, MemStore, Raft, Register
        from pykka_raft.net import CurveKeys, TcpNetwork

        self.config = Config(
            election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50
        )
        node_id = int(options["id"])
        keys = None if options.get("insecure") else CurveKeys.from_dir(options["keys"], node_id)
        self.network = TcpNetwork.start(
            node_id, "127.0.0.1:0", config=self.config, keys=keys, insecure=keys is None
        )
        storage = MemStore.start(KeyValueStateMachine(keep_history=False))
        self.raft = Raft.start(node_id, self.config, self.network, storage)
        self.network.ask(Register(node_id, self.raft))
        from pykka_raft import GetMetrics

        self.raft.ask(GetMetrics(), timeout=10)  # answered once the node has started
        self.address = self.network.address
        self.id = node_id

    def command(self, op: str, arg: Any) -> Any:
        from pykka_raft import (
            Call,
            ClientPayload,
            GetMetrics,
            InitWithConfig,
            Put,
            ResponseMode,
            State,
        )
        from pykka_raft.net import GetNetworkMetrics

        if op == "init":
            book = {int(k): v for k, v in arg.items()}
            self.raft.ask(InitWithConfig(sorted(book), book), timeout=10)
            return None
        if op == "state":
            m = self.raft.ask(GetMetrics(), timeout=10)
            return {
                "leader": m.state is State.LEADER,
                "term": m.current_term,
                "cpu_s": time.process_time(),
                "last_log_index": m.last_log_index,
                "last_applied": m.last_applied,
            }
        if op == "net":
            m = self.network.ask(GetNetworkMetrics(), timeout=10)
            return {
                "errors": dict(m.errors),
                "pending": m.pending,
                "rtt_p50": [p.rtt_ms_p50 for p in m.peers],
                "timeouts": [p.timeouts for p in m.peers],
                "requests_sent": [p.requests_sent for p in m.peers],
            }
        if op == "seq":
            from bench.workers import latency_summary, sequential

            def put() -> None:
                self.raft.ask(
                    ClientPayload.new(Put("seq", "x" * 10), ResponseMode.APPLIED), timeout=10
                )

            return latency_summary(sequential(put, int(arg)))
        if op == "run":
            failures = [0]
            counter = iter(range(1 << 62))
            leader = self.raft

            def factory(value: str) -> Callable[[Callable[[], None]], None]:
                def submit(done: Callable[[], None]) -> None:
                    payload = ClientPayload.new(
                        Put(f"k{next(counter) % 1000}", value), ResponseMode.APPLIED
                    )
                    leader.tell(Call(payload, _Counter(done, failures)))

                return submit

            def one() -> None:
                leader.ask(
                    ClientPayload.new(Put("seq", "x" * 10), ResponseMode.APPLIED), timeout=10
                )

            from bench.workers import SEQUENTIAL

            result = _workload(factory, one, SEQUENTIAL)
            result["failed_writes"] = failures[0]
            return result
        raise ValueError(op)


class _PsoNode:
    def __init__(self, options: dict[str, Any]) -> None:
        from pysyncobj import SyncObj, SyncObjConf, replicated

        from bench.workers import PYSYNCOBJ_DEFAULTS, PYSYNCOBJ_TUNED

        settings = dict(PYSYNCOBJ_TUNED if options.get("tuned") else PYSYNCOBJ_DEFAULTS)
        self.tuned = bool(options.get("tuned"))

        class KV(SyncObj):  # type: ignore[misc]
            def __init__(self, address: str, partners: list[str]) -> None:
                super().__init__(address, partners, SyncObjConf(**settings))
                self.data: dict[str, str] = {}

            @replicated  # type: ignore[misc]
            def put(self, key: str, value: str) -> None:
                self.data[key] = value

        self.address = options["address"]
        self.obj = KV(self.address, [a for a in options["all"] if a != self.address])

    def command(self, op: str, arg: Any) -> Any:
        obj = self.obj
        if op == "init":
            return None
        if op == "state":
            leader = obj._getLeader()
            return {
                "leader": obj._isReady() and leader is not None and str(leader) == self.address,
                "term": obj.raftCurrentTerm,
                "cpu_s": time.process_time(),
            }
        if op == "net":
            return {}
        if op == "run":
            from pysyncobj import FAIL_REASON

            failures = [0]
            counter = iter(range(1 << 62))

            def factory(value: str) -> Callable[[Callable[[], None]], None]:
                def submit(done: Callable[[], None]) -> None:
                    def callback(result: Any, error: Any) -> None:
                        if error != FAIL_REASON.SUCCESS:
                            failures[0] += 1
                        done()

                    obj.put(f"k{next(counter) % 1000}", value, callback=callback)

                return submit

            def one() -> None:
                obj.put("seq", "x" * 10, sync=True, timeout=10)

            from bench.workers import SEQUENTIAL

            count = SEQUENTIAL if self.tuned else SEQUENTIAL // 4  # 100 ms per write
            result = _workload(factory, one, count)
            result["failed_writes"] = failures[0]
            return result
        raise ValueError(op)


def node_main(options: dict[str, Any]) -> None:
    """A node process: ``READY <address>``, then one JSON answer per command line."""
    node: Any = _RaftNode(options) if options["system"] == "pykka_raft" else _PsoNode(options)
    print(f"READY {node.address}", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        if command["op"] == "dump_profile":
            if _DUMP_PROFILE is not None:
                _DUMP_PROFILE()
            print(json.dumps({"ok": None}), flush=True)
            continue
        try:
            answer = {"ok": node.command(command["op"], command.get("arg"))}
        except Exception as exc:
            answer = {"error": repr(exc)}
        print(json.dumps(answer), flush=True)
    os._exit(0)  # PySyncObj keeps threads; the coordinator is done with us


# --- the coordinator ----------------------------------------------------------------------


class _Process:
    def __init__(self, options: dict[str, Any], log: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.profile = log.with_suffix(".prof")
        if options.get("profile"):
            env["PYKKA_RAFT_BENCH_PROFILE"] = str(self.profile)
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.tcp", "node", json.dumps(options)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._line(60)
        if not ready.startswith("READY "):
            raise RuntimeError(f"node did not start: {ready!r}; see {log}")
        self.address = ready.split()[1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _line(self, timeout: float) -> str:
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(f"a node process exited ({self.proc.poll()})")
        return line

    def cmd(self, op: str, arg: Any = None, timeout: float = 120) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "arg": arg}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self._line(timeout))
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.log.close()


def _free_ports(count: int) -> list[int]:
    from bench.workers import _free_ports as free

    return free(count)


def run_system(options: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Start three node processes, find the leader, run the load in it; stop them all."""
    processes: list[_Process] = []
    try:
        if options["system"] == "pykka_raft":
            keys = workdir / "keys"
            if not options.get("insecure"):
                from pykka_raft.net import generate_keypair

                for node_id in (1, 2, 3):
                    if not (keys / f"node-{node_id}.key").exists():
                        generate_keypair(keys, node_id)
            for node_id in (1, 2, 3):
                processes.append(
                    _Process(
                        {**options, "id": node_id, "keys": str(keys)}, workdir / f"n{node_id}.log"
                    )
                )
            book = {str(i + 1): p.address for i, p in enumerate(processes)}
            for p in processes:
                p.cmd("init", book)
        else:
            addresses = [f"127.0.0.1:{port}" for port in _free_ports(3)]
            for i, address in enumerate(addresses):
                processes.append(
                    _Process(
                        {**options, "address": address, "all": addresses},
                        workdir / f"p{i}.log",
                    )
                )
        deadline = time.monotonic() + 30
        leader: _Process | None = None
        while leader is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no leader within 30 s")
            for p in processes:
                if p.cmd("state")["leader"]:
                    leader = p
                    break
            else:
                time.sleep(0.1)  # waiting for the election of the system under test
        start = [p.cmd("state") for p in processes]
        t0 = time.monotonic()
        result: dict[str, Any] = leader.cmd("run")
        wall = time.monotonic() - t0
        end = [p.cmd("state") for p in processes]
        result["leader_changes"] = max(e["term"] for e in end) - max(s["term"] for s in start)
        # CPU of each process over the whole run (throughput and sequential phases), as a
        # share of one core: the leader's near 1.0 means its interpreter lock bounds it.
        result["cpu_share_of_a_core"] = {
            ("leader" if p is leader else f"follower {i}"): round(
                (e["cpu_s"] - s["cpu_s"]) / wall, 2
            )
            for i, (p, s, e) in enumerate(zip(processes, start, end, strict=True))
        }
        result["network"] = leader.cmd("net")
        if options.get("profile"):
            for p in processes:
                p.cmd("dump_profile")
            result["profiles"] = {
                ("leader" if p is leader else f"follower{i}"): str(p.profile)
                for i, p in enumerate(processes)
            }
        return result
    finally:
        for p in processes:
            p.stop()


def run(quick: bool = False, skip_pysyncobj: bool = False) -> dict[str, dict[str, Any]]:
    """Every system of the TCP group, one after the other; results by key."""
    if quick:
        os.environ["PYKKA_RAFT_BENCH_QUICK"] = "1"
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-tcp-") as tmp:
        for key, label, options in SYSTEMS:
            if skip_pysyncobj and options["system"] == "pysyncobj":
                continue
            print(f"[tcp] {label} ...", end=" ", flush=True)
            t0 = time.monotonic()
            results[key] = {"label": label, **run_system(options, Path(tmp))}
            print(f"done in {time.monotonic() - t0:.0f}s", flush=True)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    """A markdown table of the TCP group, and the ratios it tracks."""
    rows = [
        f"| system (3 processes, loopback TCP) | writes/s ({INFLIGHT} in flight) | "
        "sequential p50 / p99 ms | failed writes | leader changes |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results.values():
        seq = r["sequential"]
        rows.append(
            f"| {r['label']} | {r['throughput_10B_per_s']:,.0f} | {seq['p50_ms']:.2f} / "
            f"{seq['p99_ms']:.2f} | {r['failed_writes']} | {r['leader_changes']} |"
        )
    lines = ["", "| ratio | value | target |", "|---|---:|---|"]
    raft = results.get("tcp_raft_secure")
    insecure = results.get("tcp_raft_insecure")
    if raft and insecure:
        value = raft["throughput_10B_per_s"] / insecure["throughput_10B_per_s"]
        lines.append(f"| TCP writes/s with CURVE / without | {value:.2f} | (the cost of CURVE) |")
    for key, name in (("tcp_pso", "defaults"), ("tcp_pso_tuned", "tuned")):
        pso = results.get(key)
        if raft and pso:
            value = raft["throughput_10B_per_s"] / pso["throughput_10B_per_s"]
            met = "met" if value > 2 else "NOT met"
            lines.append(
                f"| pykka_raft TCP+CURVE writes/s / PySyncObj {name} | {value:.2f} | > 2 {met} |"
            )
            value = pso["sequential"]["p50_ms"] / raft["sequential"]["p50_ms"]
            met = "met" if value >= 1 else "NOT met"
            lines.append(
                f"| PySyncObj {name} sequential p50 / pykka_raft TCP+CURVE | {value:.2f} "
                f"| >= 1 {met} |"
            )
    return "\n".join(rows + lines)


def _profile_threads(path: str) -> Callable[[], None]:
    """Profile every thread of this process (cProfile is per thread); the returned
    function writes the combined statistics to ``path``."""
    import cProfile
    import pstats

    profiles: list[cProfile.Profile] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main_profile = cProfile.Profile()
    profiles.append(main_profile)
    main_profile.enable()

    def dump() -> None:
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            with contextlib.suppress(TypeError):  # a profile that saw nothing
                stats.add(profile)
        stats.dump_stats(path)

    return dump


def main(argv: list[str]) -> int:
    if argv and argv[0] == "node":
        options = json.loads(argv[1])
        profile = os.environ.get("PYKKA_RAFT_BENCH_PROFILE")
        if profile:
            global _DUMP_PROFILE
            _DUMP_PROFILE = _profile_threads(profile)
        node_main(options)
        return 0
    if "--profile" in argv:
        return profile_raft(quick="--quick" in argv)
    quick = "--quick" in argv
    results = run(quick, skip_pysyncobj="--skip-pysyncobj" in argv)
    print(table(results))
    print(json.dumps(results))
    return 0


def profile_raft(quick: bool) -> int:
    """``python -m bench.tcp --profile``: the pykka_raft (CURVE) system once more under
    cProfile (every thread of every process); prints each process's busiest functions.
    The profiler slows Python code down several times: read shares, not times."""
    import pstats

    if quick:
        os.environ["PYKKA_RAFT_BENCH_QUICK"] = "1"
    with tempfile.TemporaryDirectory(prefix="pykka-raft-bench-tcp-") as tmp:
        result = run_system({"system": "pykka_raft", "profile": True}, Path(tmp))
        print(
            f"throughput {result['throughput_10B_per_s']:,.0f} writes/s under the profiler; "
            f"CPU share of a core: {result['cpu_share_of_a_core']}"
        )
        for name, path in result["profiles"].items():
            print(f"\n===== {name}")
            pstats.Stats(path).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
