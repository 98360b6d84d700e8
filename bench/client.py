"""The client process of the TCP benchmark: ``python -m bench.client``.

One process, one thread, the same for every system: it keeps a fixed number of writes in
flight to the leader's gateway (:class:`bench.node.Gateway`), sending new writes in one
frame as answers come back (as a pipelining client does), and times each write from the
moment its frame is sent to the moment its answer arrives. Keys cycle through 1000 names;
values are ``value_bytes`` long.

Commands, one JSON line each on stdin (answers one JSON line each on stdout):

- ``{"op": "phase", "arg": {gateway, inflight, value_bytes, warmup, duration}}``: a load
  phase; answers throughput (writes answered with success per second in the measured
  part), the latency of those writes, every write sent and answered, failures by error.
- ``{"op": "failover", "arg": {leader, others, inflight, before}}``: load on the leader
  for ``before`` s, then the line ``{"event": "kill"}`` (the coordinator kills the leader
  on reading it) and from then on one probe write at a time to each other node until one
  is answered with success; answers that moment (``time.monotonic``, the clock every
  process of the machine shares).
"""

from __future__ import annotations

import collections
import json
import sys
import time
from typing import Any

import msgpack
import zmq

from bench.common import latency_summary, received

STALL_S = 15.0  # a write unanswered this long counts as failed


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Client:
    def __init__(self) -> None:
        self.context = zmq.Context.instance()
        self.sockets: dict[str, zmq.Socket[bytes]] = {}
        self.next_id = 0

    def socket(self, gateway: str) -> zmq.Socket[bytes]:
        if gateway not in self.sockets:
            s = self.context.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, 0)
            s.setsockopt(zmq.RCVHWM, 0)
            s.connect(f"tcp://{gateway}")
            self.sockets[gateway] = s
        return self.sockets[gateway]

    def send(self, sock: zmq.Socket[bytes], sent: dict[int, float], count: int, value: str) -> None:
        first = self.next_id
        self.next_id += count
        now = time.perf_counter()
        batch = [(i, f"k{i % 1000}", value) for i in range(first, first + count)]
        for i in range(first, first + count):
            sent[i] = now
        sock.send(msgpack.packb(batch))

    def phase(
        self, gateway: str, inflight: int, value_bytes: int, warmup: float, duration: float
    ) -> dict[str, Any]:
        sock = self.socket(gateway)
        value = "x" * value_bytes
        sent: dict[int, float] = {}
        latencies: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        answered = measured = 0
        cpu0 = time.process_time()
        start = time.perf_counter()
        measure_from, end = start + warmup, start + warmup + duration
        last_answer = start
        gap = 0.0  # the longest time without an answer (a stall shows here)
        self.send(sock, sent, inflight, value)
        while sent:
            if not sock.poll(100):
                if time.perf_counter() - last_answer > STALL_S:
                    errors["unanswered"] += len(sent)
                    break
                continue
            for frame in received(sock):
                now = time.perf_counter()
                gap = max(gap, now - last_answer)
                last_answer = now
                counted = measure_from <= now < end
                for write_id, error in msgpack.unpackb(frame):
                    t = sent.pop(write_id, None)
                    if t is None:
                        errors["unknown answer"] += 1
                        continue
                    answered += 1
                    if error is not None:
                        errors[error] += 1
                    elif counted:
                        measured += 1
                        latencies.append(now - t)
            if len(sent) < inflight and time.perf_counter() < end:
                self.send(sock, sent, inflight - len(sent), value)
        return {
            "inflight": inflight,
            "value_bytes": value_bytes,
            "throughput_per_s": measured / duration,
            "latency": latency_summary(latencies),
            "answered": answered,
            "sent": self.next_id,
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "client_cpu_s": time.process_time() - cpu0,
            "longest_gap_ms": gap * 1000,
        }

    def failover(
        self, leader: str, others: list[str], inflight: int, before: float
    ) -> dict[str, Any]:
        sock = self.socket(leader)
        value = "x" * 10
        sent: dict[int, float] = {}
        failed = answered = 0
        end = time.perf_counter() + before
        self.send(sock, sent, inflight, value)
        while time.perf_counter() < end:
            if not sock.poll(100):
                continue
            for frame in received(sock):
                for write_id, error in msgpack.unpackb(frame):
                    if sent.pop(write_id, None) is not None:
                        answered += 1
                        failed += error is not None
            self.send(sock, sent, inflight - len(sent), value)
        emit({"event": "kill"})
        # The leader is being killed: its writes in flight may or may not commit; from
        # now on, probe the others until one commits a write.
        poller = zmq.Poller()
        probes = [self.socket(g) for g in others]
        for p in probes:
            poller.register(p, zmq.POLLIN)
        outstanding: dict[Any, int] = {}
        next_try = {p: 0.0 for p in probes}
        refusals: collections.Counter[str] = collections.Counter()
        deadline = time.monotonic() + 20
        first_commit = None
        while first_commit is None and time.monotonic() < deadline:
            now = time.monotonic()
            for p in probes:
                if p not in outstanding and now >= next_try[p]:
                    write_id = self.next_id
                    self.next_id += 1
                    outstanding[p] = write_id
                    p.send(msgpack.packb([(write_id, "failover", value)]))
            for p, _ in poller.poll(2):
                for write_id, error in msgpack.unpackb(p.recv()):
                    if outstanding.get(p) != write_id:
                        continue  # an answer to a probe given up on
                    del outstanding[p]
                    if error is None:
                        first_commit = time.monotonic()
                    else:
                        refusals[error] += 1
                        next_try[p] = time.monotonic() + 0.002  # ask again shortly
        return {
            "answered_before_kill": answered,
            "failed_before_kill": failed,
            "first_commit_t": first_commit,
            "probe_refusals": dict(refusals),
        }


def main() -> None:
    client = Client()
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        try:
            method = {"phase": client.phase, "failover": client.failover}[command["op"]]
            emit({"ok": method(**command["arg"])})
        except Exception as exc:
            emit({"error": repr(exc)})


if __name__ == "__main__":
    main()
