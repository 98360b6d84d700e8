"""RaftClient against real clusters: leaders, refusals, deadlines, sessions and threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    CasResult,
    ClientPayloadResponse,
    CompareAndSet,
    DeadlineExceeded,
    EntryTooLarge,
    ForwardToLeader,
    Get,
    KeyValueStateMachine,
    MemStore,
    Outcome,
    OutcomeUnknown,
    Put,
    RaftClient,
    RegisterClient,
    ResponseMode,
    WriteResult,
)
from pykka_raft.storage.memory import MemStoreData
from pykka_raft.testing import Cluster, wait_until


def test_a_write_is_applied_and_answered_with_the_response(formed: Cluster) -> None:
    client = RaftClient(formed.nodes)
    first = client.write(Put("k", "a"))
    assert first.outcome is Outcome.APPLIED and first.applied
    assert first.response is None and first.unwrap() is None
    second = client.write(CompareAndSet("k", "a", "b"))
    assert second.response == CasResult(True, "a")
    assert (second.client_id, second.sequence) == (first.client_id, 2)  # one session, reused
    assert second.index is not None and second.index > first.index  # type: ignore[operator]
    assert client.stats.registrations == 1
    assert client.leader == formed.leader()
    formed.wait_applied(second.index)
    for node_id in formed.nodes:
        applied = formed.data[node_id].state_machine.applied  # type: ignore[attr-defined]
        index, entry = applied[-1]
        assert index == second.index
        assert (entry.client_id, entry.sequence, entry.command) == (
            first.client_id,
            2,
            CompareAndSet("k", "a", "b"),
        )
        assert abs(entry.time - time.time()) < 60  # stamped with the leader's clock


def test_the_client_finds_the_leader_from_any_node(formed: Cluster) -> None:
    leader = formed.leader()
    follower = next(n for n in formed.nodes if n != leader)
    client = RaftClient({follower: formed.nodes[follower], leader: formed.nodes[leader]})
    client._leader = follower  # a stale belief: the follower forwards to the leader
    assert client.write(Put("k", 1)).applied
    assert client.leader == leader


def test_a_refused_command_is_not_applied_and_not_resent(formed: Cluster) -> None:
    client = RaftClient(formed.nodes)
    result = client.write("not a key-value command")
    assert result.outcome is Outcome.NOT_APPLIED
    assert isinstance(result.error, ApplicationError)
    assert "got str" in str(result.error.error)
    assert result.attempts == 1
    with pytest.raises(ApplicationError):
        result.unwrap()


def test_without_a_leader_the_client_backs_off_until_its_deadline(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster([1, 2, 3])  # never initialized: nobody leads, ever
    cluster.wait_started()
    client = RaftClient(cluster.nodes, backoff=(0.01, 0.1))
    started = time.monotonic()
    result = client.write(Put("k", 1), timeout=1.0)
    # The behaviour under test: it keeps trying until its deadline, not giving up before.
    # (How soon after the deadline it returns depends on the machine's load.)
    assert time.monotonic() - started >= 1.0
    assert result.outcome is Outcome.NOT_APPLIED
    assert isinstance(result.error, DeadlineExceeded)
    assert 3 <= client.stats.attempts < 100  # pauses between attempts, not a busy loop


def test_a_session_that_expired_is_replaced_and_the_write_applied(
    make_cluster: Callable[..., Cluster],
) -> None:
    machines: dict[int, KeyValueStateMachine] = {}

    def storage(node_id: int, data: MemStoreData) -> Any:
        if node_id not in machines:
            machines[node_id] = KeyValueStateMachine(keep_history=True, session_timeout=1.0)
            data.state_machine = machines[node_id]
        return MemStore.start(data=data)

    cluster = make_cluster([1, 2, 3], storage=storage)
    cluster.initialize()
    cluster.leader()
    idle, busy = RaftClient(cluster.nodes), RaftClient(cluster.nodes)
    old = idle.write(Put("k", 1))
    assert old.applied
    time.sleep(1.5)  # the scenario: more than the session timeout of leader time passes
    moved = busy.write(Put("other", 1))  # its entry moves the log's clock: idle's expires
    cluster.wait_applied(moved.index)  # type: ignore[arg-type]
    assert all(m.sessions.get(old.client_id) is None for m in machines.values())  # type: ignore[arg-type]
    again = idle.write(Put("k", 2))
    assert again.applied and again.response == 1
    assert again.client_id != old.client_id and again.sequence == 1
    assert (idle.stats.expired, idle.stats.registrations) == (1, 2)


def test_threads_share_a_client_each_with_a_session_of_its_own(formed: Cluster) -> None:
    client = RaftClient(formed.nodes)
    results: list[WriteResult] = []
    lock = threading.Lock()

    def run(worker: int) -> None:
        for i in range(15):
            result = client.write(Put(f"w{worker}", i))
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 90 and all(r.applied for r in results)
    assert client.stats.registrations <= 6
    pairs = {(r.client_id, r.sequence) for r in results}
    assert len(pairs) == 90  # no two writes shared a (session, sequence)
    check = client.write(Get("w3"))
    assert check.response == 14


def test_a_client_without_sessions_works_with_any_state_machine(formed: Cluster) -> None:
    client = RaftClient(formed.nodes, sessions=False)
    result = client.write(Put("plain", 1))
    assert result.applied and result.client_id is None
    assert client.stats.registrations == 0


def test_closing_removes_the_idle_sessions(formed: Cluster) -> None:
    client = RaftClient(formed.nodes)
    result = client.write(Put("k", 1))
    leader = formed.leader()
    machine = formed.data[leader].state_machine
    assert machine.sessions.get(result.client_id) is not None  # type: ignore[attr-defined]
    client.close()
    wait_until(
        lambda: all(
            formed.data[n].state_machine.sessions.get(result.client_id) is None  # type: ignore[attr-defined]
            for n in formed.nodes
        ),
        10,
        "the session to be closed everywhere",
    )
    assert client.write(Put("k", 2)).client_id != result.client_id  # a new one


def test_hints_that_lead_nowhere_are_followed_with_pauses(formed: Cluster) -> None:
    leader = formed.leader()
    followers = {n: ref for n, ref in formed.nodes.items() if n != leader}
    client = RaftClient(followers, backoff=(0.01, 0.1))  # the leader is not in its mapping
    result = client.write(Put("k", 1), timeout=1.0)
    assert result.outcome is Outcome.NOT_APPLIED
    assert isinstance(result.error, DeadlineExceeded)
    assert isinstance(result.error.__cause__, ForwardToLeader)
    assert result.error.__cause__.leader_id == leader
    assert client.stats.attempts < 60  # a pause between hints, not a spin


class _LostThenTooLarge:
    """A stand-in for a Raft ref: opens sessions; the first write's answer is lost (it may
    have been applied), and its resend meets a node whose own ``max_entry_bytes`` is
    smaller than the one that took the first copy."""

    def __init__(self) -> None:
        self.writes = 0

    def ask(self, message: Any, timeout: float | None = None) -> ClientPayloadResponse:
        if isinstance(message.entry.data, RegisterClient):
            return ClientPayloadResponse(1, ResponseMode.APPLIED, 7)
        self.writes += 1
        if self.writes == 1:
            raise pykka.Timeout("the answer was lost")
        raise ApplicationError(EntryTooLarge(400, 300))


def test_a_resend_refused_by_a_node_s_own_size_limit_leaves_the_outcome_unknown() -> None:
    """A leader's ``EntryTooLarge`` depends on its own limit, not on the write: after a copy
    whose answer was lost, it says nothing of that copy (reporting not applied here would
    be wrong if the first copy went through)."""
    ref = _LostThenTooLarge()
    client = RaftClient({1: ref}, timeout=10, attempt_timeout=1)
    result = client.write(Put("k", "v" * 400))
    assert ref.writes == 2, "the resend did not meet the smaller limit"
    assert result.outcome is Outcome.UNKNOWN, result
    assert isinstance(result.error, OutcomeUnknown)
