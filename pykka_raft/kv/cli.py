"""``pykka-raft-kv``: talk to a cluster from the shell (the commands that run nodes are in
:mod:`pykka_raft.kv.cli_run`).

Exit codes (``docs/kv-service.md``): 0 ok, 1 unexpected failure, 2 usage or configuration
error, 3 no node reachable, 4 refused (a 4xx answer: nothing changed), 5 outcome unknown
(a 504, or a write whose answer was lost), 6 unavailable (no leader before the deadline,
busy, starting or shutting down), 8 unauthorized (a node requires a token: ``--token-file``),
9 not a node (a URL where another server answers).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from pykka_raft.kv import cli_run
from pykka_raft.kv.auth import load_tokens
from pykka_raft.kv.client import Client
from pykka_raft.kv.errors import EXIT_UNAVAILABLE, EXIT_USAGE, KvConfigError, KvError
from pykka_raft.kv.gateway import CONSISTENCY_LEVELS
from pykka_raft.kv.status import status_table
from pykka_raft.kv.store import parse_json
from pykka_raft.messages import MAX_NODE_ID

NODE_ID = click.IntRange(min=1, max=MAX_NODE_ID)
"""A node id argument: 1 to 2**63 - 1."""

T = TypeVar("T")

URL_ENV = "PYKKA_RAFT_KV_URL"
TOKEN_FILE_ENV = "PYKKA_RAFT_KV_TOKEN_FILE"


SECONDS = click.FloatRange(min=0, min_open=True, max=86400)
"""A positive number of seconds, at most a day."""


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _client(ctx: click.Context) -> Client:
    obj = ctx.obj
    urls = list(obj["urls"])
    if not urls:
        env = os.environ.get(URL_ENV, "")
        urls = [u for u in env.replace(",", " ").split() if u]
    if not urls:
        _fail(f"give the nodes with --url (or {URL_ENV})", EXIT_USAGE)
    token = None
    if obj["token_file"]:
        try:  # checked as a node checks its own: a secret in a file only its owner reads
            token = load_tokens(obj["token_file"], "--token-file")[0]
        except KvConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
    try:
        return Client(urls, timeout=obj["timeout"], deadline=obj["deadline"], token=token)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)


def _run(ctx: click.Context, action: Callable[[Client], T]) -> T:
    client = _client(ctx)
    try:
        return action(client)
    except KvError as exc:
        _fail(str(exc), exc.exit_code)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        client.close()  # the session a write opened (best effort; it expires otherwise)


def _print(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=True))


STDIN = "-"
"""A VALUE (or ``--new``, ``--expected``) given as ``-`` is read from standard input."""


def _value(text: str, as_string: bool, what: str) -> Any:
    if text == STDIN:
        try:
            text = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.BadParameter(
                f"standard input is not UTF-8 ({exc})", param_hint=what
            ) from None
    if as_string:
        return text
    try:
        return parse_json(text)
    except ValueError as exc:
        shown = repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"
        raise click.BadParameter(
            f"{shown} is not JSON ({exc}); quote strings ('\"text\"') or use --string",
            param_hint=what,
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help=f"A node's HTTP API (repeat for several; default: ${URL_ENV}, comma-separated).",
)
@click.option(
    "--timeout", default=10.0, show_default=True, type=SECONDS, help="Seconds to wait for a node."
)
@click.option(
    "--deadline",
    default=15.0,
    show_default=True,
    type=SECONDS,
    help="Seconds a command may spend finding the leader and retrying.",
)
@click.option(
    "--token-file",
    envvar=TOKEN_FILE_ENV,
    metavar="FILE",
    help=f"Send the first token of FILE as a bearer token (default: ${TOKEN_FILE_ENV}).",
)
@click.pass_context
def main(
    ctx: click.Context,
    urls: tuple[str, ...],
    timeout: float,
    deadline: float,
    token_file: str | None,
) -> None:
    """The pykka_raft key-value service: run a node, read and write keys, manage the
    cluster. See docs/kv-service.md."""
    ctx.obj = {"urls": urls, "timeout": timeout, "deadline": deadline, "token_file": token_file}


# --- key-value ------------------------------------------------------------------------


@main.command()
@click.argument("key")
@click.option(
    "--consistency",
    type=click.Choice(CONSISTENCY_LEVELS),
    default="linearizable",
    show_default=True,
    help="linearizable (no log entry; any node serves it after asking the leader for the "
    "read index), lease (the leader, without a round trip, under a clock assumption), "
    "stale (the node asked, as it is).",
)
@click.pass_context
def get(ctx: click.Context, key: str, consistency: str) -> None:
    """Print the JSON value of KEY (exit 4 if it does not exist)."""
    _print(_run(ctx, lambda c: c.get(key, consistency)))


@main.command()
@click.argument("key")
@click.argument("value")
@click.option("--string", "-s", "as_string", is_flag=True, help="VALUE is a plain string.")
@click.pass_context
def put(ctx: click.Context, key: str, value: str, as_string: bool) -> None:
    """Set KEY to VALUE (JSON: 42, '"text"', '{"a": 1}'; - reads it from standard input,
    as it is); print the answer."""
    parsed = _value(value, as_string, "VALUE")
    _print(_run(ctx, lambda c: c.put(key, parsed)))


@main.command()
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, key: str) -> None:
    """Remove KEY (exit 4 if it does not exist)."""
    _print(_run(ctx, lambda c: c.delete(key)))


@main.command()
@click.argument("key")
@click.option(
    "--expected", metavar="JSON", help="The value KEY must hold (-: stdin); leave out: absent."
)
@click.option("--new", "new", required=True, metavar="JSON", help="The value to set (-: stdin).")
@click.option("--string", "-s", "as_string", is_flag=True, help="Both values are strings.")
@click.pass_context
def cas(ctx: click.Context, key: str, expected: str | None, new: str, as_string: bool) -> None:
    """Set KEY to --new only if it holds --expected (exit 4 with cas_failed otherwise)."""
    if new == expected == STDIN:
        raise click.UsageError("only one of --new and --expected can be read from stdin (-)")
    new_value = _value(new, as_string, "--new")
    if expected is None:
        _print(_run(ctx, lambda c: c.cas(key, new=new_value)))
    else:
        expected_value = _value(expected, as_string, "--expected")
        _print(_run(ctx, lambda c: c.cas(key, expected_value, new_value)))


# --- admin ----------------------------------------------------------------------------


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected node ids like 1,2,3") from None
    if not ids or min(ids) < 1:
        raise click.BadParameter(f"{text!r}: expected positive node ids")
    return ids


@main.command()
@click.option(
    "--members",
    help="Node ids of the new cluster (default: the --url nodes and their configured peers).",
)
@click.pass_context
def init(ctx: click.Context, members: str | None) -> None:
    """Form a new cluster from pristine nodes: asks every --url node for its id and
    addresses, then sends init with all of them to each."""
    ids = _ids(members) if members is not None else None
    for answer in _run(ctx, lambda c: c.init(ids)):
        _print(answer)


@main.command("add-voter")
@click.argument("node_id", type=NODE_ID)
@click.option("--http-address", required=True, help="The new node's HTTP API, host:port.")
@click.option("--raft-address", help="The new node's Raft address (TCP network), host:port.")
@click.pass_context
def add_voter(
    ctx: click.Context, node_id: int, http_address: str, raft_address: str | None
) -> None:
    """Add a running, pristine node as a voter (it catches up first)."""
    _print(_run(ctx, lambda c: c.add_voter(node_id, http_address, raft_address)))


@main.command("add-learner")
@click.argument("node_id", type=NODE_ID)
@click.option("--http-address", required=True, help="The new node's HTTP API, host:port.")
@click.option("--raft-address", help="The new node's Raft address (TCP network), host:port.")
@click.pass_context
def add_learner(
    ctx: click.Context, node_id: int, http_address: str, raft_address: str | None
) -> None:
    """Add a running, pristine node as a learner (it replicates, never votes)."""
    _print(_run(ctx, lambda c: c.add_learner(node_id, http_address, raft_address)))


@main.command()
@click.option("--id", "node_id", required=True, type=NODE_ID, help="The member to move.")
@click.option("--http", "--http-address", "http_address", help="Its new HTTP API, host:port.")
@click.option(
    "--raft",
    "--raft-address",
    "raft_address",
    help="Its new Raft address, host:port (required on a TCP network).",
)
@click.pass_context
def move(
    ctx: click.Context, node_id: int, http_address: str | None, raft_address: str | None
) -> None:
    """Record the new addresses of member --id (restarted on other ports or another
    machine, with its data): the other nodes reach it there from then on."""
    if http_address is None and raft_address is None:
        raise click.UsageError("give --http, --raft or both")
    _print(_run(ctx, lambda c: c.move(node_id, http_address, raft_address)))


@main.command()
@click.argument("node_id", type=NODE_ID)
@click.pass_context
def promote(ctx: click.Context, node_id: int) -> None:
    """Make learner NODE_ID a voter."""
    _print(_run(ctx, lambda c: c.promote(node_id)))


@main.command()
@click.argument("node_ids", nargs=-1, required=True, type=NODE_ID)
@click.pass_context
def remove(ctx: click.Context, node_ids: tuple[int, ...]) -> None:
    """Remove NODE_IDS from the cluster (then stop those nodes)."""
    _print(_run(ctx, lambda c: c.remove(*node_ids)))


@main.command()
@click.pass_context
def snapshot(ctx: click.Context) -> None:
    """Compact the log of every --url node into a snapshot now."""

    def each(c: Client) -> list[Any]:
        return [c.snapshot(url) for url in c.urls]

    for answer in _run(ctx, each):
        _print(answer)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def backup(ctx: click.Context, file: str) -> None:
    """Write every key and value of the cluster to FILE as JSON (- for stdout), read from
    the leader after every write acknowledged before it."""
    document = _run(ctx, lambda c: c.backup())
    text = json.dumps(document, ensure_ascii=False, sort_keys=True)
    if file == "-":
        click.echo(text)
        return
    try:
        with open(file, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as exc:
        _fail(f"cannot write {file}: {exc}", EXIT_USAGE)
    click.echo(f"{document['count']} keys (through index {document['index']}) written to {file}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
def restore(ctx: click.Context, file: str) -> None:
    """Write every key and value of a backup FILE into the cluster (- for stdin); keys
    that exist are overwritten."""
    try:
        with click.open_file(file, encoding="utf-8") as fh:
            document = json.load(fh)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", EXIT_USAGE)
    except ValueError as exc:
        _fail(f"{file} is not a backup made by the backup command: not JSON ({exc})", EXIT_USAGE)
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, dict):
        _fail(
            f'{file} is not a backup made by the backup command: no "items" object',
            EXIT_USAGE,
        )
    count = _run(ctx, lambda c: c.restore(items))
    click.echo(f"{count} keys restored")


@main.command("transfer-leader")
@click.option(
    "--to",
    "node_id",
    type=NODE_ID,
    help="The voter to hand over to (default: the most up-to-date one).",
)
@click.pass_context
def transfer_leader(ctx: click.Context, node_id: int | None) -> None:
    """Make another voter the leader; prints the new leader once it leads (exit 4 with
    transfer_failed if it did not take over within an election timeout)."""
    _print(_run(ctx, lambda c: c.transfer_leader(node_id)))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the gathered view as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Print every member's role, term, indexes and lag, asking each node (exit 6 when no
    node knows a leader)."""
    view = _run(ctx, lambda c: c.cluster_status())
    click.echo(json.dumps(view, indent=2, sort_keys=True) if as_json else status_table(view))
    if view.get("leader_id") is None:
        sys.exit(EXIT_UNAVAILABLE)  # printed, but the cluster cannot serve writes now


for _command in cli_run.COMMANDS:
    main.add_command(_command)
