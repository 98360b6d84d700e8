"""docs/kv-service.md: its Python examples run as written, and it documents every error
code, command and metric the service has."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pykka_raft.kv import Client, KvServer, NodeConfig
from pykka_raft.kv.cli import main
from pykka_raft.kv.errors import CODES
from pykka_raft.kv.local import LocalCluster
from tests.kv.conftest import leader_of, request

DOC = (Path(__file__).resolve().parents[2] / "docs" / "kv-service.md").read_text()

pytestmark = pytest.mark.timeout(120)


def test_the_client_example_runs(kv3: LocalCluster) -> None:
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOC, re.S) if "Client(urls)" in b]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "kv-service.md", "exec"), {"urls": kv3.urls})
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["counter holds 2", "greeting is gone"]
    assert lines[2] == f"leader: {leader_of(kv3)} [1, 2, 3]"
    assert lines[3] == "APPLIED True"
    out = io.StringIO()  # a second run works too (it failed on the keys the first left)
    with contextlib.redirect_stdout(out):
        exec(compile(code, "kv-service.md", "exec"), {"urls": kv3.urls})
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["counter holds 2", "greeting is gone"]
    assert lines[3].startswith("NOT_APPLIED cas_failed")


def test_every_error_code_is_in_the_table() -> None:
    for code, (status, _) in CODES.items():
        assert f"| {status} | `{code}` |" in DOC, code
    assert "| 307 | `not_leader` |" in DOC
    assert "| 503 | `not_initialized` |" in DOC  # sent with its status by the gateway


def test_every_command_is_documented() -> None:
    for name in main.list_commands(None):  # type: ignore[arg-type]
        assert f"| `{name}" in DOC, name


def documented(text: str) -> None:
    for family in text_string_to_metric_families(text):
        if family.name.startswith("pykka_raft") and not family.name.endswith("_created"):
            documented = family.name + ("_total" if family.type == "counter" else "")
            assert f"`{documented}`" in DOC, documented


def test_every_metric_is_documented(kv3: LocalCluster) -> None:
    url = kv3.url(leader_of(kv3))
    request(url, "PUT", "/v1/kv/doc-metric", {"value": 1})
    documented(request(url, "GET", "/metrics").data.decode())


def test_every_metric_of_a_tcp_node_is_documented() -> None:
    config = NodeConfig(
        1, "127.0.0.1:0", raft_address="127.0.0.1:0", insecure=True, storage="memory"
    )
    server = KvServer.start(config)
    try:
        Client([server.url]).init()
        text = request(server.url, "GET", "/metrics").data.decode()
        assert "pykka_raft_net_errors" in text
        documented(text)
    finally:
        server.stop()


def test_the_example_of_nodes_in_a_python_program_runs() -> None:
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", DOC, re.S) if "LocalNetwork()" in b]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "kv-service.md", "exec"), {})
    assert out.getvalue().splitlines() == [
        "data_dir: required with storage = 'sqlite'",
        "RuntimeUnavailable True",
        "hello",
    ]
