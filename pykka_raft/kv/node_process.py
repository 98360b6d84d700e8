"""One ``pykka-raft-kv serve`` child process, for :mod:`pykka_raft.kv.launcher`: starting
it on its addresses, waiting until it serves, signals, its log (the WARNING lines of its
current run included), and the small helpers the launcher shares (a TOML table, waiting
on other processes with a deadline).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


def toml_table(name: str | None, values: Mapping[str, Any]) -> str:
    """A TOML table of simple values (strings, numbers, booleans)."""
    lines = [f"[{name}]"] if name else []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = json.dumps(str(value))  # a JSON string is a TOML basic string
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def wait(predicate: Callable[[], T | None], timeout: float, what: str, poll: float = 0.05) -> T:
    """Poll ``predicate`` (the state of other processes) until it is truthy, with a
    deadline; raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


class NodeProcess:
    """One ``serve`` process (it may be started again after it stopped or was killed).

    Args:
        node_id: the node's id.
        config_file: its TOML configuration (node id, storage, keys, timeouts).
        ready_file: where the child reports its addresses once it serves.
        log_file: its stdout and stderr (appended across restarts).
    """

    def __init__(self, node_id: int, config_file: Path, ready_file: Path, log_file: Path) -> None:
        self.node_id = node_id
        self.config_file = config_file
        self.ready_file = ready_file
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: str | None = None
        self.raft: str | None = None
        self.starts = 0
        self.log_start = 0
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The HTTP API's base URL (known once the node first reported ready)."""
        if self.http is None:
            raise RuntimeError(f"node {self.node_id} has not reported its address yet")
        return f"http://{self.http}"

    @property
    def pid(self) -> int | None:
        """The running child's process id."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """True while the child runs."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the child (on its previous addresses, if it had any) and wait until it
        serves."""
        self.spawn()
        self.wait_serving(timeout)

    def spawn(self) -> None:
        """Start the child (on its previous addresses, if it had any) without waiting:
        :meth:`wait_serving` waits for it."""
        if self.alive():
            raise RuntimeError(f"node {self.node_id} is running already")
        self.ready_file.unlink(missing_ok=True)
        http = self.http or "127.0.0.1:0"
        raft = self.raft or "127.0.0.1:0"
        command = [
            sys.executable,
            "-m",
            "pykka_raft.kv",
            "serve",
            "--config",
            str(self.config_file),
            "--http",
            http,
            "--raft",
            raft,
            "--ready-file",
            str(self.ready_file),
            "--exit-with-parent",
        ]
        self._close_log()
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in reap()
        self.log_start = self._log.tell()  # where this run's lines begin
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env
        )
        self.starts += 1

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Wait until the child :meth:`spawn` started serves, and record its addresses."""
        proc = self.proc
        if proc is None:
            raise RuntimeError(f"node {self.node_id} was never started")

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"node {self.node_id} exited with {proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            try:
                report: dict[str, Any] = json.loads(self.ready_file.read_text())
                return report
            except (OSError, ValueError):
                return None

        report = wait(ready, timeout, f"node {self.node_id} to serve")
        self.http, self.raft = report["http"], report["raft"]

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the running child."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
        """Send ``sig`` (SIGKILL by default), reap the child and return its exit status
        (``-9`` when SIGKILL ended it; 0 after a clean stop on SIGTERM)."""
        if self.proc is None:
            raise RuntimeError(f"node {self.node_id} was never started")
        self.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout)
        self._close_log()
        return code

    def reap(self) -> None:
        """Kill the child if it still runs, and close its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def warnings(self, most: int = 3) -> list[str]:
        """The last ``most`` WARNING (or worse) lines of the child's current run."""
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(self.log_start)
                text = fh.read().decode(errors="replace")
        except OSError:
            return []
        marks = (" WARNING ", " ERROR ", " CRITICAL ")
        return [line for line in text.splitlines() if any(m in line for m in marks)][-most:]

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the node's log."""
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
