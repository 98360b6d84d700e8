"""NodeDriver on its own: the storage deadline and the durable barrier (a core driven with
recording ports that leave every storage command pending; nothing runs but the test)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pykka_raft.config import Config
from pykka_raft.core import RaftCore, Role
from pykka_raft.core import commands as cmd
from pykka_raft.driver import NodeDriver, Ports
from pykka_raft.errors import StorageError
from pykka_raft.messages import HardState, InitialState, MembershipConfig
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


def test_a_lone_voter_leads_once_its_new_term_is_written() -> None:
    """The only voter wins without a vote request, so the driver holds its leadership
    (``LeadWhenDurable``) until the SaveHardState of the new term completed: nothing is
    sent and no entry appended before, and the storage answering makes it lead."""
    driver, ports = _booting(timeout=10_000)
    [(seq, _)] = ports.storage_commands
    formed = HardState(1, 1, MembershipConfig(members=(1,)))
    driver.storage_done(seq, InitialState(LogId(0, 0), 0, formed))
    [*_, (seq, load)] = ports.storage_commands
    assert isinstance(load, cmd.LoadLog)
    driver.storage_done(seq, [])
    driver.advance(CONFIG.election_timeout_max + CONFIG.tick_interval)
    (seq, save), *rest = [(s, c) for s, c in ports.storage_commands if s > seq]
    assert isinstance(save, cmd.SaveHardState) and save.hard_state.current_term == 2
    assert rest == [] and ports.sent == []
    assert driver.core.role is Role.CANDIDATE
    driver.storage_done(seq)
    assert driver.core.role is Role.LEADER and driver.core.current_term == 2
    assert isinstance(ports.storage_commands[-1][1], cmd.WriteLog)
