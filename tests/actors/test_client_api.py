"""The client API: forwarding, response modes, typed errors, shutdown."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    CasResult,
    ClientPayload,
    CompareAndSet,
    Config,
    Delete,
    ForwardToLeader,
    Get,
    InitWithConfig,
    Isolate,
    MemStore,
    OutcomeUnknown,
    Put,
    Raft,
    RaftRouter,
    Register,
    ResponseMode,
    Restore,
    ShuttingDown,
    State,
    StorageError,
    UnknownMessage,
)
from pykka_raft.testing import MetricsHub


def test_follower_answers_forward_to_leader_with_the_payload(formed):
    leader = formed.leader()
    follower = next(n for n in formed.nodes if n != leader)
    payload = ClientPayload.new(Put("k", "v"), ResponseMode.APPLIED)
    with pytest.raises(ForwardToLeader) as info:
        formed.nodes[follower].ask(payload, timeout=5)
    assert info.value.leader_id == leader
    assert info.value.payload == payload
    assert f"node {leader}" in str(info.value)


def test_pristine_node_forwards_with_no_leader_known(make_cluster):
    cluster = make_cluster([1])
    cluster.wait_started()
    with pytest.raises(ForwardToLeader) as info:
        cluster.nodes[1].ask(ClientPayload.new(Put("k", "v")), timeout=5)
    assert info.value.leader_id is None
    assert "no leader is known" in str(info.value)


def test_committed_and_applied_modes_and_kv_responses(formed):
    committed = formed.write(Put("k", 1), ResponseMode.COMMITTED)
    assert committed.response_mode is ResponseMode.COMMITTED
    assert committed.data is None
    assert formed.write(Get("k")).data == 1
    assert formed.write(CompareAndSet("k", 1, 2)).data == CasResult(True, 1)
    assert formed.write(CompareAndSet("k", 1, 3)).data == CasResult(False, 2)
    assert formed.write(Delete("k")).data == 2
    assert formed.write(Get("k")).data is None


def test_application_rejection_is_a_typed_error_and_the_node_keeps_serving(formed):
    leader = formed.nodes[formed.leader()]
    with pytest.raises(ApplicationError) as info:
        leader.ask(ClientPayload.new("not a command", ResponseMode.APPLIED), timeout=10)
    assert "Put, Get, Delete or CompareAndSet" in str(info.value.error)
    response = formed.write(Put("k", "after"))
    formed.wait_applied(response.index)
    for node_id in formed.nodes:
        assert formed.dump(node_id).state_machine == {"k": "after"}


def test_unknown_message_is_a_typed_error(formed):
    leader = formed.nodes[formed.leader()]
    with pytest.raises(UnknownMessage, match="does not handle messages of type str"):
        leader.ask("hello", timeout=5)
    assert formed.write(Put("k", "v")).index > 0


def _answered(future: Any) -> bool:
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True
    return True


def test_stopping_a_node_answers_pending_writes_unknown_and_later_calls_not_accepted(formed):
    """A write the node appended may still commit elsewhere: its outcome is unknown. A
    call made after the node stopped was never accepted: definitely not carried out."""
    while True:  # under load the leader may change before the write reaches it: try again
        leader = formed.leader()
        before = formed.hub.get(leader).last_log_index
        for node_id in formed.nodes:
            if node_id != leader:
                formed.router.ask(Isolate(node_id))  # the leader can no longer commit
        future = formed.nodes[leader].ask(ClientPayload.new(Put("k", "v")), block=False)
        appended = formed.hub.wait_for(
            lambda m, n=leader, b=before, f=future: m[n].last_log_index > b or _answered(f),
            10,
            "the write appended on the leader (or refused)",
        )
        if appended and not _answered(future):
            break  # appended, and it cannot commit: pending
        for node_id in formed.nodes:
            formed.router.ask(Restore(node_id))
    ref = formed.nodes[leader]
    formed.stop_node(leader)
    with pytest.raises(OutcomeUnknown, match="the node stopped"):
        future.get(timeout=10)
    with pytest.raises(ShuttingDown, match="did not accept the call"):
        ref.ask(ClientPayload.new(Put("k", "v")), timeout=5)
    with pytest.raises(ShuttingDown):
        ref.tell(ClientPayload.new(Put("k", "v")))


def test_unknown_node_in_the_membership_does_not_stop_the_cluster(make_cluster):
    cluster = make_cluster([1, 2, 3])
    cluster.initialize([1, 2, 3, 9])  # node 9 has no route: RPCs to it fail with UnknownNode
    response = cluster.write(Put("k", "v"))
    cluster.wait_applied(response.index)
    assert all(ref.is_alive() for ref in cluster.nodes.values())


class _FailingStore(MemStore):
    """Fails every append once ``failing`` is set."""

    failing = False

    def append_entry_to_log(self, entries: Any) -> Any:
        if _FailingStore.failing:
            raise RuntimeError("disk full")
        return super().append_entry_to_log(entries)


class _PausingRaft(Raft):
    """Holds its thread right after a fatal error, before Pykka stops the actor."""

    in_window = threading.Event()
    resume = threading.Event()

    def _fatal(self, error: BaseException) -> None:
        super()._fatal(error)
        _PausingRaft.in_window.set()
        _PausingRaft.resume.wait(10)


def test_write_sent_while_a_failed_node_stops_is_answered() -> None:
    """A node that failed is still alive until Pykka stops it: a write queued in that
    moment gets ShuttingDown (not accepted), not silence; the write whose append failed
    gets OutcomeUnknown, caused by the StorageError."""
    router = RaftRouter.start()
    store = _FailingStore.start()
    hub = MetricsHub()
    config = Config(election_timeout_min=150, election_timeout_max=300, heartbeat_interval=30)
    node = _PausingRaft.start(1, config, router, store, hub)
    try:
        router.ask(Register(1, node))
        hub.wait_for(lambda m: 1 in m, 10, "the node to start")
        node.ask(InitWithConfig([1]), timeout=10)
        hub.wait_for(lambda m: m[1].state is State.LEADER, 10, "it to lead")
        assert node.ask(ClientPayload.new(Put("a", 1)), timeout=10).index > 0
        _FailingStore.failing = True
        failing = node.ask(ClientPayload.new(Put("b", 2)), block=False)
        assert _PausingRaft.in_window.wait(10)
        late = node.ask(ClientPayload.new(Put("c", 3)), block=False)
        _PausingRaft.resume.set()
        with pytest.raises(OutcomeUnknown, match="disk full") as pending:
            failing.get(timeout=10)
        assert isinstance(pending.value.__cause__, StorageError)
        with pytest.raises(ShuttingDown):
            late.get(timeout=10)
    finally:
        _PausingRaft.resume.set()
        _FailingStore.failing = False
        for ref in (node, store, router):
            ref.stop()
