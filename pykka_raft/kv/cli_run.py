"""The ``pykka-raft-kv`` commands that run nodes: ``serve`` (one node per process),
``local-cluster`` (three ``serve`` processes on this machine), ``dev-cluster`` (several
in-memory nodes in one process), ``demo`` and ``keygen``.

``cli.py`` adds :data:`COMMANDS` to the ``pykka-raft-kv`` group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from pykka_raft import Config, RaftError
from pykka_raft.kv.config import (
    DURABILITIES,
    NETWORKS,
    STORAGES,
    HttpSettings,
    KvConfigError,
    build_config,
    parse_peer,
)
from pykka_raft.kv.config_file import load_file
from pykka_raft.kv.errors import EXIT_NODE_STOPPED, EXIT_USAGE
from pykka_raft.messages import MAX_NODE_ID

logger = logging.getLogger("pykka_raft.kv")


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def wait_for_signal(parent: int | None = None, stopped: Callable[[], bool] | None = None) -> bool:
    """Block until SIGTERM or SIGINT (or, with ``parent``, until that process is gone:
    this one was reparented); False at once when ``stopped()`` says the node stopped on
    its own (checked every 0.2 s), True otherwise."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(0.2):
        if parent is not None and os.getppid() != parent:
            logger.warning("the parent process %d is gone: stopping", parent)
            return True
        if stopped is not None and stopped():
            return False
    return True


def write_ready_file(path: str, report: dict[str, Any]) -> None:
    """Write ``report`` as JSON to ``path`` atomically (readers never see half of it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(report, fh)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@click.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A TOML file.")
@click.option("--id", "node_id", type=int, help="This node's id (positive).")
@click.option("--http", "http_address", help="HTTP API address, host:port (port 0: any).")
@click.option("--raft", "raft_address", help="Raft address, host:port (port 0: any).")
@click.option("--data-dir", help="The node's data directory (sqlite storage).")
@click.option("--keys-dir", help="The CURVE key directory (tcp network).")
@click.option("--peer", "peers", multiple=True, metavar="ID=RAFT,HTTP", help="A peer (repeat).")
@click.option("--storage", type=click.Choice(STORAGES), help="sqlite (default) or memory.")
@click.option("--network", type=click.Choice(NETWORKS), help="tcp (default) or local.")
@click.option("--durability", type=click.Choice(DURABILITIES), help="fsync (default) or os.")
@click.option(
    "--session-timeout",
    type=float,
    help="Seconds of log time before an idle client session expires (default 3600).",
)
@click.option(
    "--max-sessions",
    type=int,
    help="The most client sessions kept; one more ends the idlest (default 10000).",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="TCP without keys: no authentication, no encryption. Experiments only.",
)
@click.option(
    "--token-file",
    help="Require a bearer token of this file (one per line, mode 600) on every request.",
)
@click.option("--ready-file", type=click.Path(dir_okay=False), help="Write the addresses here.")
@click.option("--exit-with-parent", is_flag=True, hidden=True)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def serve(
    config_file: str | None,
    node_id: int | None,
    http_address: str | None,
    raft_address: str | None,
    data_dir: str | None,
    keys_dir: str | None,
    peers: tuple[str, ...],
    storage: str | None,
    network: str | None,
    durability: str | None,
    session_timeout: float | None,
    max_sessions: int | None,
    insecure: bool | None,
    token_file: str | None,
    ready_file: str | None,
    exit_with_parent: bool,
    log_level: str,
) -> None:
    """Run one node (a Raft node and its HTTP API) until SIGTERM or Ctrl-C."""
    from pykka_raft.kv.logs import log_to_stderr
    from pykka_raft.kv.server import KvServer

    parent = os.getppid() if exit_with_parent else None
    try:
        doc: dict[str, Any] = dict(load_file(config_file)) if config_file else {}
        flags = {
            "node_id": node_id,
            "http_address": http_address,
            "raft_address": raft_address,
            "data_dir": data_dir,
            "keys_dir": keys_dir,
            "storage": storage,
            "network": network,
            "durability": durability,
            "session_timeout": session_timeout,
            "max_sessions": max_sessions,
            "insecure": insecure,
        }
        doc.update({k: v for k, v in flags.items() if v is not None})
        if peers:
            doc["peers"] = {p.node_id: p for p in map(parse_peer, peers)}
        if token_file is not None and isinstance(doc.get("http") or {}, dict):
            doc["http"] = {**(doc.get("http") or {}), "token_file": token_file}
        config = build_config(doc)
        server = KvServer(config)
    except (KvConfigError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    log_to_stderr(server.node.view, getattr(logging, log_level.upper()))
    try:
        server.begin()
    except (RaftError, OSError) as exc:  # a bad key directory, a locked or damaged data dir
        fail(f"cannot start node {config.node_id}: {exc}", EXIT_USAGE)
    raft = server.node.raft_address
    try:
        if ready_file:
            report = {
                "node_id": config.node_id,
                "pid": os.getpid(),
                "url": server.url,
                "http": server.http.address,
                "raft": raft,
            }
            try:
                write_ready_file(ready_file, report)
            except OSError as exc:  # the node stops (finally) before the process exits
                why = exc.strerror or str(exc)  # not the temporary file's name
                fail(f"--ready-file: cannot write {ready_file}: {why}", EXIT_USAGE)
        click.echo(
            f"node {config.node_id} serving {server.url}" + (f" raft {raft}" if raft else "")
        )
        sys.stdout.flush()
        asked = wait_for_signal(parent, lambda: server.node.stopped_on_its_own)
    finally:
        server.stop()
    if not asked:
        fail(
            f"node {config.node_id}: the Raft node stopped on its own (the log above says "
            "why); exiting so that a supervisor restarts it",
            EXIT_NODE_STOPPED,
        )


@click.command("dev-cluster")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--base-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Node N gets base+N-1 (0: any).",
)
def dev_cluster(nodes: int, host: str, base_port: int) -> None:
    """Run NODES nodes in this one process (in memory, in-process network), formed into a
    cluster, until Ctrl-C. For trying the API and the CLI; not a deployment."""
    from pykka_raft.kv.local import LocalCluster

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    ports = {n: (base_port + n - 1 if base_port else 0) for n in range(1, nodes + 1)}
    try:
        cluster = LocalCluster(
            range(1, nodes + 1), raft=Config(), host=host, ports=ports, http=HttpSettings()
        )
    except OSError as exc:
        fail(f"cannot bind: {exc}", EXIT_USAGE)
    except (KvConfigError, ValueError) as exc:  # an address the nodes cannot serve on
        fail(f"cannot start the nodes: {exc}", EXIT_USAGE)
    try:
        cluster.init()
        for node_id, server in sorted(cluster.servers.items()):
            click.echo(f"node {node_id} serving {server.url}")
        click.echo(f"try: pykka-raft-kv --url {cluster.url(1)} status")
        sys.stdout.flush()
        wait_for_signal()
    finally:
        cluster.close()


@click.command("local-cluster")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    help="Keep keys, data and logs here (default: a temporary directory, removed at the end).",
)
@click.option("--insecure", is_flag=True, help="No CURVE keys (experiments only).")
@click.option(
    "--token",
    "use_token",
    is_flag=True,
    help="Make DIR/token (once) and require it on every HTTP request (--token-file).",
)
def local_cluster(nodes: int, workdir: str | None, insecure: bool, use_token: bool) -> None:
    """Start NODES `serve` processes on this machine (TCP with CURVE keys, SqliteStore),
    form them into a cluster, and leave them running until Ctrl-C."""
    from pykka_raft.kv.auth import make_token_file
    from pykka_raft.kv.launcher import ProcessCluster

    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pykka-raft-kv-"))
    token_file = root / "token"
    http: dict[str, Any] = {}
    try:
        if use_token:
            root.mkdir(parents=True, exist_ok=True)
            make_token_file(token_file)  # kept if an earlier run made it
            http["token_file"] = str(token_file)
        cluster = ProcessCluster(root, secure=not insecure, http=http)
    except (KvConfigError, OSError) as exc:  # DIR/token made unusable since, DIR not ours
        fail(f"local-cluster: {exc}", EXIT_USAGE)
    earlier = cluster.earlier_nodes()
    reported: set[int] = set()
    try:
        if earlier:  # --dir of an earlier run: the same cluster again, where it was
            listed = ", ".join(map(str, earlier))
            click.echo(f"starting nodes {listed} again in {root}, on their addresses ...")
            leader = cluster.resume(earlier)
        else:
            click.echo(f"starting {nodes} nodes in {root} ...")
            leader = cluster.form(list(range(1, nodes + 1)))
        urls = ",".join(cluster.urls())
        click.echo(f"node {leader} leads. Nodes (logs in {root}/node-N.log):")
        for node_id in cluster.running():
            node = cluster.nodes[node_id]
            click.echo(f"  node {node_id}: {node.url}  raft {node.raft}  pid {node.pid}")
        leader_url = cluster.nodes[leader].url
        click.echo(
            "\nIn another terminal:\n"
            f"  export PYKKA_RAFT_KV_URL={urls}\n"
            + (f"  export PYKKA_RAFT_KV_TOKEN_FILE={token_file}\n" if use_token else "")
            + "  .venv/bin/pykka-raft-kv put greeting '\"hello\"'\n"
            "  .venv/bin/pykka-raft-kv get greeting\n"
            "  .venv/bin/pykka-raft-kv status\n"
            f"  kill -9 {cluster.nodes[leader].pid}    # the leader; watch `status`\n"
            + (
                f'  curl -H "Authorization: Bearer $(cat {token_file})" {leader_url}/v1/status\n'
                f"Every HTTP request needs the token of {token_file} (a browser cannot send "
                "it: the status page answers 401).\n"
                if use_token
                else f"Status page: {leader_url}/\n"
            )
            + (
                "Ctrl-C stops every node and removes the directory."
                if workdir is None
                else f"Ctrl-C stops every node; {root} keeps their data, and the same "
                "command starts them again."
            )
        )
        sys.stdout.flush()
        wait_for_signal(stopped=lambda: _report_exits(cluster, root, reported))
        click.echo("stopping ...")
        for node_id in cluster.running():
            cluster.kill(node_id, signal.SIGTERM)
    except (RaftError, OSError, TimeoutError, RuntimeError) as exc:
        fail(f"the cluster did not start: {exc}", 1)
    finally:
        cluster.close()
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _report_exits(cluster: Any, root: Path, reported: set[int]) -> bool:
    """Say once that a node's process ended (and reap it); the others go on. False: keep
    waiting for Ctrl-C."""
    for node_id, node in sorted(cluster.nodes.items()):
        if node_id in reported or node.alive() or node.proc is None:
            continue
        reported.add(node_id)
        code = node.proc.returncode
        how = f"with status {code}"
        if code < 0:
            with contextlib.suppress(ValueError):
                how = f"killed by {signal.Signals(-code).name}"
        click.echo(f"node {node_id} exited {how}; its log: {root}/node-{node_id}.log")
        sys.stdout.flush()
    return False


def _seconds(value: float) -> float:
    if not 0 < value <= 86400:  # NaN too, which click.FloatRange lets through
        raise click.BadParameter(f"{value} is not a number of seconds in (0, 86400]")
    return value


@click.command()
@click.option("--clients", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option(
    "--seconds",
    default=4.0,
    show_default=True,
    callback=lambda _ctx, _param, value: _seconds(value),
    help="Load before and after the kill (more than 0, at most 86400).",
)
@click.option("--keep", type=click.Path(file_okay=False), help="Keep keys, data and logs here.")
def demo(clients: int, seconds: float, keep: str | None) -> None:
    """Three local node processes (TCP with CURVE, SqliteStore) take writes, lose their
    leader to SIGKILL, elect a new one, add a node and remove one; then a summary."""
    from pykka_raft.kv.demo import run_demo

    sys.exit(run_demo(clients=clients, seconds=seconds, keep=keep))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--node", "node_id", required=True, type=click.IntRange(1, MAX_NODE_ID))
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def keygen(directory: str, node_id: int, force: bool) -> None:
    """Write node NODE's CURVE key pair into DIRECTORY (node-N.key goes to every node,
    node-N.key_secret stays on node N)."""
    from pykka_raft.net import generate_keypair, load_keypair

    try:
        public, secret = generate_keypair(directory, node_id, force)
    except FileExistsError as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write a key pair into {directory}: {exc.strerror or exc}", EXIT_USAGE)
    click.echo(f"wrote {public} (copy it to every node)")
    click.echo(f"wrote {secret} (keep it on node {node_id} only)")
    click.echo(f"public key of node {node_id}: {load_keypair(secret)[0].decode()}")


COMMANDS = (serve, dev_cluster, local_cluster, demo, keygen)
