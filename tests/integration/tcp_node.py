"""One Raft node in its own process, over the TCP network, driven through stdin.

    python tests/integration/tcp_node.py --id 1 --keys KEYDIR [--bind 127.0.0.1:0]
        [--insecure] [--peer 2=127.0.0.1:7002 ...] [--snapshot-every N]

The node runs on MemStore with the key-value state machine. Once its network is bound it
prints ``READY <host:port>`` on stdout; then it reads one JSON command per line on stdin
and answers each with one JSON line on stdout: ``{"ok": ...}`` or ``{"error": "<class>",
"message": "...", "leader": <id or null>}``. Commands (``op``):

- ``init`` ``{"members": [...], "addresses": {"1": "host:port", ...}}``: InitWithConfig;
- ``put`` ``{"key", "value"}`` / ``get`` ``{"key"}``: a write (or a linearizable read
  through the log) on this node, answered once applied; a follower answers
  ``ForwardToLeader`` with the leader's id;
- ``change`` ``{"add": [...], "remove": [...], "addresses": {...}}``: ProposeConfigChange;
- ``metrics``: this node's RaftMetrics; ``net``: its NetworkMetrics; ``data``: its
  key-value data;
- ``isolate`` / ``restore`` ``{"node": id}``: the network drops all traffic of this node
  (its own id) or with one peer;
- ``snapshot``: TriggerSnapshot; ``quit``: stop cleanly.

Logs (the ``pykka_raft.net`` logger included) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import attrs

from pykka_raft import (
    ClientPayload,
    Config,
    ForwardToLeader,
    Get,
    GetMetrics,
    InitWithConfig,
    KeyValueStateMachine,
    MemStore,
    NodeNotLeader,
    ProposeConfigChange,
    Put,
    Raft,
    ResponseMode,
    SnapshotPolicy,
    TriggerSnapshot,
)
from pykka_raft.net import (
    CurveKeys,
    GetNetworkMetrics,
    Isolate,
    Register,
    Restore,
    TcpNetwork,
)

TIMEOUT = 10.0


def jsonable(value: Any) -> Any:
    """attrs classes, enums and tuples as JSON values."""
    if attrs.has(type(value)):
        return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and type(value).__module__.startswith("pykka_raft"):
        return value.value  # an enum
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        policy = (
            SnapshotPolicy.every(args.snapshot_every)
            if args.snapshot_every
            else SnapshotPolicy.disabled()
        )
        self.config = Config(
            election_timeout_min=300,
            election_timeout_max=600,
            heartbeat_interval=50,
            snapshot_policy=policy,
        )
        peers = dict(_peer(p) for p in args.peer)
        keys = None if args.insecure else CurveKeys.from_dir(args.keys, args.id)
        self.network = TcpNetwork.start(
            args.id,
            args.bind,
            config=self.config,
            addresses=peers,
            keys=keys,
            insecure=args.insecure,
        )
        self.state_machine = KeyValueStateMachine(keep_history=False)
        self.storage = _KvMemStore.start(self.state_machine)
        self.raft = Raft.start(args.id, self.config, self.network, self.storage)
        self.network.ask(Register(args.id, self.raft))
        self.raft.ask(GetMetrics(), timeout=TIMEOUT)  # answered once the node has started
        self.id = args.id

    def handle(self, command: dict[str, Any]) -> Any:
        op = command["op"]
        if op == "init":
            addresses = {int(k): v for k, v in command.get("addresses", {}).items()}
            return self.raft.ask(InitWithConfig(command["members"], addresses), timeout=TIMEOUT)
        if op == "put":
            payload = ClientPayload.new(Put(command["key"], command["value"]), ResponseMode.APPLIED)
            return self.raft.ask(payload, timeout=TIMEOUT)
        if op == "get":
            payload = ClientPayload.new(Get(command["key"]), ResponseMode.APPLIED)
            return self.raft.ask(payload, timeout=TIMEOUT).data
        if op == "change":
            addresses = {int(k): v for k, v in command.get("addresses", {}).items()}
            change = ProposeConfigChange(
                command.get("add", ()), command.get("remove", ()), addresses=addresses
            )
            return self.raft.ask(change, timeout=3 * TIMEOUT)
        if op == "metrics":
            return self.raft.ask(GetMetrics(), timeout=TIMEOUT)
        if op == "net":
            return self.network.ask(GetNetworkMetrics(), timeout=TIMEOUT)
        if op == "data":
            return self.storage.ask(_ReadData(), timeout=TIMEOUT)
        if op == "isolate":
            return self.network.ask(Isolate(command["node"]), timeout=TIMEOUT)
        if op == "restore":
            return self.network.ask(Restore(command["node"]), timeout=TIMEOUT)
        if op == "snapshot":
            return self.raft.ask(TriggerSnapshot(), timeout=TIMEOUT)
        raise ValueError(f"unknown op {op!r}")

    def stop(self) -> None:
        for ref in (self.raft, self.storage, self.network):
            ref.stop()


@attrs.frozen
class _ReadData:
    """Ask the storage for a copy of the key-value data."""


class _KvMemStore(MemStore):
    """MemStore that also answers ``_ReadData`` (on its own thread: no race with applies)."""

    def handle_other(self, message: Any) -> Any:
        if isinstance(message, _ReadData):
            return dict(self.state_machine.data)
        return super().handle_other(message)


def _peer(text: str) -> tuple[int, str]:
    node, _, address = text.partition("=")
    return int(node), address


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1:0")
    parser.add_argument("--keys", help="the key directory (node-<id>.key_secret, node-*.key)")
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--peer", action="append", default=[], help="ID=HOST:PORT")
    parser.add_argument("--snapshot-every", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s node{args.id} %(name)s %(levelname)s %(message)s",
    )
    node = Node(args)
    print(f"READY {node.network.address}", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            if command["op"] == "quit":
                break
            answer: dict[str, Any] = {"ok": jsonable(node.handle(command))}
        except (ForwardToLeader, NodeNotLeader) as exc:
            answer = {"error": type(exc).__name__, "message": str(exc), "leader": exc.leader_id}
        except Exception as exc:
            answer = {"error": type(exc).__name__, "message": str(exc), "leader": None}
        print(json.dumps(answer), flush=True)
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
