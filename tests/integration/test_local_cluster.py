"""``make cluster`` (``pykka-raft-kv local-cluster``) as a user runs it: three ``serve``
processes start and form a cluster, the printed addresses take a write and a read through
``pykka_raft.kv.Client``, and Ctrl-C (SIGINT to the terminal's process group) stops every
node. With ``--dir`` the keys, data and logs stay there; without, the temporary directory
is removed. With ``--token`` the nodes require the token it writes to ``DIR/token``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pykka_raft.kv import Client, Unauthorized
from pykka_raft.kv.auth import load_tokens
from pykka_raft.kv.launcher import wait

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NODE_LINE = re.compile(r"^\s+node (\d+): (http://\S+)\s+raft \S+\s+pid (\d+)$")


def catches_sigterm(pid: int) -> bool:
    """True once ``pid`` has its own SIGTERM handler (``local-cluster`` installs its
    SIGTERM and SIGINT handlers together, when it starts waiting for Ctrl-C; before that a
    SIGINT would be Python's KeyboardInterrupt). Where ``/proc`` is missing: True."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    match = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)
    return match is None or bool(int(match.group(1), 16) >> (signal.SIGTERM - 1) & 1)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("keep", "token"),
    [(True, False), (False, False), (True, True)],
    ids=["dir", "temporary", "token"],
)
def test_local_cluster_serves_until_ctrl_c(tmp_path: Path, keep: bool, token: bool) -> None:
    root = tmp_path / "cluster"
    temp = tmp_path / "tmp"  # mkdtemp's directory when there is no --dir
    temp.mkdir()
    command = [sys.executable, "-m", "pykka_raft.kv", "local-cluster", "--insecure"]
    command += ["--nodes", "3"] + (["--dir", str(root)] if keep else [])
    command += ["--token"] if token else []
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temp))
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )
    pgid = proc.pid
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def output() -> str:
        return "\n".join(lines)

    def started() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"local-cluster exited with {proc.returncode}:\n{output()}")
        return any(line.startswith("Ctrl-C stops every node") for line in lines)

    try:
        wait(started, 180, "local-cluster to report its nodes", poll=0.1)
        text = output()
        leads = re.search(r"^node (\d+) leads\. Nodes \(logs in (\S+)/node-N\.log\):$", text, re.M)
        assert leads is not None, text
        where = Path(leads.group(2))
        assert (where == root) if keep else (where.parent == temp), (where, text)
        nodes = {int(m[1]): (m[2], int(m[3])) for m in map(NODE_LINE.match, lines) if m}
        assert sorted(nodes) == [1, 2, 3], text
        pids = [pid for _, pid in nodes.values()]
        assert all(not gone(pid) for pid in pids), text
        assert f"export PYKKA_RAFT_KV_URL={','.join(u for u, _ in nodes.values())}" in text

        urls = [url for url, _ in nodes.values()]
        secret = None
        if token:
            assert f"export PYKKA_RAFT_KV_TOKEN_FILE={root / 'token'}" in text
            assert (root / "token").stat().st_mode & 0o777 == 0o600
            (secret,) = load_tokens(str(root / "token"))
            with pytest.raises(Unauthorized):
                Client(urls, deadline=10.0).get("greeting")

        # What the printed instructions tell the user to do, through the Python client.
        client = Client(urls, deadline=60.0, token=secret)
        try:
            assert client.put("greeting", "hello")["existed"] is False
            assert client.get("greeting") == "hello"
            view = client.cluster_status()
            assert [m["id"] for m in view["members"]] == [1, 2, 3]
            assert view["leader_id"] in nodes
        finally:
            client.close()

        # A node killed, as the printed instructions suggest, is reported; the rest go on.
        victim = sorted(nodes)[-1]
        os.kill(nodes[victim][1], signal.SIGKILL)
        died = f"node {victim} exited killed by SIGKILL; its log: {where}/node-{victim}.log"
        wait(lambda: died in lines, 30, "local-cluster to report the killed node", poll=0.1)

        # Ctrl-C: the terminal sends SIGINT to the whole foreground group.
        wait(lambda: catches_sigterm(proc.pid), 30, "local-cluster to wait for Ctrl-C")
        os.killpg(pgid, signal.SIGINT)
        assert proc.wait(120) == 0, output()
        reader.join(10)
        assert "stopping ..." in output()
        wait(lambda: all(gone(pid) for pid in pids), 30, "every node process to be gone")
        wait(lambda: group_gone(pgid), 30, "the whole process group to be gone")
        if keep:  # --dir: data and logs stay
            for node_id in (1, 2, 3):
                assert (root / f"node-{node_id}").is_dir()
                log = (root / f"node-{node_id}.log").read_text()
                assert "serving the HTTP API" in log
                assert secret is None or secret not in log
            assert not (root / "keys").exists()  # --insecure: no keys were made
        else:  # the temporary directory is removed
            assert not where.exists()
            assert list(temp.iterdir()) == []
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)  # any node left behind
        reader.join(10)
