"""NodeDriver on its own: the storage deadline (a core driven with recording ports that
leave every storage command pending; nothing runs but the test)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pykka_raft.config import Config
from pykka_raft.core import RaftCore
from pykka_raft.core import commands as cmd
from pykka_raft.driver import NodeDriver, Ports
from pykka_raft.errors import StorageError
from pykka_raft.messages import HardState, InitialState
from pykka_raft.types import LogId
from tests.paper.paper_helpers import CONFIG


class _Recording(Ports):
    """Ports that keep every storage command pending until the test completes it."""

    def __init__(self) -> None:
        self.storage_commands: list[tuple[int, cmd.Command]] = []
        self.sent: list[Any] = []
        self.replies: list[tuple[Any, Any, BaseException | None]] = []

    def storage(self, seq: int, command: cmd.Command) -> None:
        self.storage_commands.append((seq, command))

    def send(self, request: Any) -> None:
        self.sent.append(request)

    def reply(self, handle: Any, value: Any, error: BaseException | None) -> None:
        self.replies.append((handle, value, error))


def _booting(timeout: int) -> tuple[NodeDriver, _Recording]:
    config = Config(
        election_timeout_min=CONFIG.election_timeout_min,
        election_timeout_max=CONFIG.election_timeout_max,
        heartbeat_interval=CONFIG.heartbeat_interval,
        storage_timeout=timeout,
    )
    ports = _Recording()
    driver = NodeDriver(RaftCore(1, config, random.Random(0)), ports, pauses=False)
    driver.boot(0)
    return driver, ports


def test_the_storage_deadline_fires_just_after_storage_timeout_and_not_before() -> None:
    driver, ports = _booting(timeout=1000)
    [(_, first)] = ports.storage_commands
    assert isinstance(first, cmd.LoadInitialState)
    for now in range(50, 1001, 50):  # outstanding for exactly storage_timeout: still fine
        driver.advance(now)
    assert not driver.stopped and driver.outstanding_storage == 1
    with pytest.raises(StorageError, match="storage_timeout"):
        driver.advance(1001)


def test_a_completed_command_no_longer_counts_for_the_deadline() -> None:
    driver, ports = _booting(timeout=1000)
    [(seq, _)] = ports.storage_commands
    driver.advance(900)
    driver.storage_done(seq, InitialState(LogId(0, 0), 0, HardState()))
    [*_, (later, _)] = ports.storage_commands  # LoadLog, issued at 900
    assert later > seq
    driver.advance(1800)  # 900 ms after the LoadLog: within the deadline
    assert not driver.stopped
