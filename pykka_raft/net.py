"""``pykka_raft.net``: Raft between processes and machines (``pip install pykka_raft[net]``).

The public names of the TCP network (:mod:`pykka_raft.network.tcp`) and its keys
(:mod:`pykka_raft.network.keys`), and the ``keygen`` command::

    python -m pykka_raft.net keygen KEYDIR --node 1

writes ``KEYDIR/node-1.key`` (the public key: copy it to every node) and
``KEYDIR/node-1.key_secret`` (the key pair: it stays on node 1), and prints the public key.
See ``docs/network.md``.
"""

from __future__ import annotations

import argparse
import sys

try:
    import msgpack  # type: ignore[import-untyped]  # noqa: F401
    import zmq  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "pykka_raft.net needs the [net] extra (pyzmq and msgpack): pip install 'pykka_raft[net]'"
    ) from exc

from pykka_raft.network.keys import (
    CurveKeyError,
    CurveKeys,
    generate_keypair,
    load_keypair,
    load_public_keys,
    public_key_path,
    read_public_keys,
    secret_key_path,
)
from pykka_raft.network.router import Isolate, Register, Restore, Unregister
from pykka_raft.network.tcp import (
    GetNetworkMetrics,
    NetworkMetrics,
    PeerMetrics,
    TcpBindError,
    TcpNetwork,
    TcpNetworkRef,
    TrustKey,
)

__all__ = [
    "CurveKeyError",
    "CurveKeys",
    "GetNetworkMetrics",
    "Isolate",
    "NetworkMetrics",
    "PeerMetrics",
    "Register",
    "Restore",
    "TcpBindError",
    "TcpNetwork",
    "TcpNetworkRef",
    "TrustKey",
    "Unregister",
    "generate_keypair",
    "load_keypair",
    "load_public_keys",
    "main",
    "public_key_path",
    "read_public_keys",
    "secret_key_path",
]


def main(argv: list[str] | None = None) -> int:
    """The command line: ``keygen``."""
    parser = argparse.ArgumentParser(
        prog="python -m pykka_raft.net", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    keygen = commands.add_parser("keygen", help="write a CURVE key pair for one node")
    keygen.add_argument("directory", help="the key directory (created if missing)")
    keygen.add_argument("--node", type=int, required=True, help="the node id the keys are for")
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    args = parser.parse_args(argv)
    try:
        public_path, secret_path = generate_keypair(args.directory, args.node, args.force)
    except (FileExistsError, CurveKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        why = exc.strerror or exc
        print(f"error: cannot write a key pair into {args.directory}: {why}", file=sys.stderr)
        return 1
    public, _ = load_keypair(secret_path)
    print(f"wrote {public_path} (copy it to every node)")
    print(f"wrote {secret_path} (keep it on node {args.node} only)")
    print(f"public key of node {args.node}: {public.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
