"""RaftClient against nodes that answer at once with an unknown outcome (a node whose disk
fails answers ``InternalError``/``StorageError`` immediately): the client resends, but
paced by its back-off, so the attempts within a deadline are bounded instead of as many
as the node can answer."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from pykka_raft import (
    ClientPayloadResponse,
    DeadlineExceeded,
    ForwardToLeader,
    InternalError,
    Outcome,
    Put,
    RaftClient,
    ResponseMode,
    StorageError,
)
from pykka_raft.sessions import RegisterClient

# backoff (0.02, 0.5) with jitter in [0.5, 1]: the pauses are at least 0.01, 0.02, 0.04,
# 0.08, 0.16, 0.25, 0.25, ... s, so at most 9 attempts fit in one second (a loaded machine
# only makes fewer). Without pauses a fake answering at once is asked thousands of times.
BACKOFF = (0.02, 0.5)
TIMEOUT = 1.0
MOST = 12


class FastFailingRef:
    """A stand-in for a Raft ref: answers every write at once with ``error``; answers
    session registrations (``RegisterClient``) with a client id if ``registers``."""

    def __init__(self, error: BaseException, registers: bool = False) -> None:
        self.error = error
        self.registers = registers
        self.asked = 0
        self._lock = threading.Lock()

    def ask(self, message: Any, timeout: float | None = None) -> ClientPayloadResponse:
        with self._lock:
            self.asked += 1
        if self.registers and isinstance(message.entry.data, RegisterClient):
            return ClientPayloadResponse(1, ResponseMode.APPLIED, 7)
        raise self.error


def make_client(nodes: dict[int, Any]) -> RaftClient:
    return RaftClient(nodes, timeout=TIMEOUT, backoff=BACKOFF, rng=random.Random(1))


def test_a_registration_answered_at_once_with_an_internal_error_is_paced() -> None:
    ref = FastFailingRef(InternalError("the node failed"))
    client = make_client({1: ref})
    started = time.monotonic()
    result = client.write(Put("k", 1))
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.NOT_APPLIED  # no session could be opened: never sent
    assert isinstance(result.error, DeadlineExceeded)
    assert isinstance(result.error.__cause__, InternalError)
    assert 3 <= ref.asked <= MOST, ref.asked  # it kept trying, with pauses
    assert client.stats.attempts == ref.asked
    assert elapsed < TIMEOUT + 0.5


def test_a_write_answered_at_once_with_a_storage_error_is_resent_with_pauses() -> None:
    ref = FastFailingRef(StorageError("disk I/O error"), registers=True)
    client = make_client({1: ref})
    started = time.monotonic()
    result = client.write(Put("k", 1))
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.UNKNOWN  # the first attempt's fate is open
    assert result.client_id == 7 and result.sequence == 1  # every resend in one sequence
    assert isinstance(result.error.__cause__, StorageError)  # type: ignore[union-attr]
    assert 3 <= result.attempts <= MOST, result.attempts
    assert client.stats.resends == result.attempts - 1
    assert ref.asked == result.attempts + 1  # and the one registration
    assert elapsed < TIMEOUT + 0.5


def test_hints_back_to_a_node_failing_at_once_do_not_undo_the_pauses() -> None:
    # Node 1 leads but fails every write at once; the others point back to it.
    broken = FastFailingRef(InternalError("the node failed"), registers=True)
    hinting = FastFailingRef(ForwardToLeader(None, 1))
    client = make_client({1: broken, 2: hinting, 3: hinting})
    result = client.write(Put("k", 1))
    assert result.outcome is Outcome.UNKNOWN
    assert 2 <= broken.asked <= MOST + 1, broken.asked  # + the registration
    assert hinting.asked <= 2 * MOST, hinting.asked
