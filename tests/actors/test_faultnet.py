"""FaultNetwork: each fault on fake nodes, deterministically; then real clusters under faults."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from pykka_raft import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ClientPayload,
    Config,
    ForwardToLeader,
    InitWithConfig,
    Isolate,
    LinkFaults,
    MemStore,
    Put,
    Raft,
    Register,
    ResponseMode,
    Restore,
    SetLinkFaults,
    State,
    UnknownNode,
    Unreachable,
)
from pykka_raft.calls import Call
from pykka_raft.messages import Entry, EntryNormal
from pykka_raft.network.router import Unregister
from pykka_raft.storage.memory import DumpStorage
from pykka_raft.testing import MetricsHub, wait_until
from pykka_raft.testing.faultnet import (
    ClearLinkRule,
    Cut,
    Direction,
    FaultNetwork,
    GetHeld,
    GetTrace,
    Heal,
    LinkRule,
    Partition,
    Release,
    ReplayOld,
    SetDefaultRule,
    SetLinkRule,
    SetSeed,
    Uncut,
)

WAIT = 5.0  # deadline of every wait on fake nodes


class Log:
    """A thread-safe list that tests can wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def wait_len(self, n: int, timeout: float = WAIT) -> list[Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= n, timeout):
                raise TimeoutError(f"waited for {n} items, have {self.items}")
            return list(self.items)


class Answers:
    """A Reply that records every answer (value or error) it gets."""

    def __init__(self) -> None:
        self.log = Log()

    def set(self, value: Any = None) -> None:
        self.log.add(value)

    def set_exception(self, error: BaseException) -> None:
        self.log.add(error)


class FakeNode(pykka.ThreadingActor):
    """Records the requests it receives and answers each with a successful response."""

    def __init__(self, node_id: int, received: Log, answer: bool) -> None:
        super().__init__()
        self.node_id = node_id
        self.received = received
        self.answer = answer

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Call):
            self.received.add(message.message)
            if self.answer:
                message.reply.set(AppendEntriesResponse(message.message.term, True))
        return None


FENCE = 10**6
"""The sequence number (``prev_log_index``) of the request :meth:`Net.fence` sends."""


def req(src: int, dst: int, seq: int = 0, term: int = 1) -> AppendEntriesRequest:
    """An AppendEntries from ``src`` to ``dst``; ``seq`` (as prev_log_index) tells them apart."""
    return AppendEntriesRequest(dst, term, src, seq, 0, (), 0)


class Net:
    """A FaultNetwork with fake nodes registered on it."""

    def __init__(self, nodes: tuple[int, ...], seed: int, answer: bool) -> None:
        self.ref = FaultNetwork.start(seed=seed)
        self.received = {n: Log() for n in nodes}
        self.nodes = {n: FakeNode.start(n, self.received[n], answer) for n in nodes}
        for n, ref in self.nodes.items():
            self.ref.ask(Register(n, ref))

    def send(self, src: int, dst: int, seq: int = 0) -> Answers:
        answers = Answers()
        self.ref.tell(Call(req(src, dst, seq), answers))
        return answers

    def seqs(self, node: int) -> list[int]:
        return [r.prev_log_index for r in self.received[node].items]

    def trace(self, *events: str) -> list[tuple[str, int, int, str]]:
        """The trace as (event, src, dst, summary), keeping only ``events`` if given."""
        return [
            (e.event, e.src, e.dst, e.summary)
            for e in self.ref.ask(GetTrace())
            if not events or e.event in events
        ]

    def fence(self, src: int, dst: int) -> None:
        """Wait until a fresh request from ``src`` reached ``dst``: everything the network
        handed ``dst`` before it has been received (mailboxes are FIFO)."""
        self.ref.ask(ClearLinkRule(src, dst))
        before = len(self.received[dst].items)
        self.send(src, dst, seq=FENCE)
        self.received[dst].wait_len(before + 1)


@pytest.fixture
def make_net() -> Iterator[Callable[..., Net]]:
    def make(nodes: tuple[int, ...] = (1, 2, 3), seed: int = 1, answer: bool = True) -> Net:
        return Net(nodes, seed, answer)

    yield make
    pykka.ActorRegistry.stop_all()


# --- one fault at a time ------------------------------------------------------------------


def test_drop_all_is_silent(make_net):
    net = make_net()
    net.ref.ask(SetDefaultRule(LinkRule(drop=1.0)))
    answers = [net.send(1, 2, seq=i) for i in range(5)]
    assert [e[:3] for e in net.trace()] == [("drop", 1, 2)] * 5
    net.ref.ask(SetDefaultRule(LinkRule()))
    net.fence(1, 2)
    assert net.seqs(2) == [FENCE]
    assert all(a.log.items == [] for a in answers)


def test_block_and_unknown_node_answer_errors(make_net):
    net = make_net()
    net.ref.ask(SetLinkRule(1, 2, LinkRule(block=True, direction=Direction.REQUESTS)))
    assert isinstance(net.send(1, 2).log.wait_len(1)[0], Unreachable)
    # Only node 1's requests are blocked: its answers to node 2 still pass.
    assert net.send(2, 1).log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert isinstance(net.send(1, 9).log.wait_len(1)[0], UnknownNode)
    assert [e[0] for e in net.trace("cut", "unknown")] == ["cut", "unknown"]


def test_router_control_messages_still_work(make_net):
    net = make_net()
    net.ref.ask(Isolate(2))
    assert isinstance(net.send(1, 2).log.wait_len(1)[0], Unreachable)
    assert isinstance(net.send(2, 3).log.wait_len(1)[0], Unreachable)
    net.ref.ask(Restore(2))
    assert net.send(1, 2).log.wait_len(1) == [AppendEntriesResponse(1, True)]
    net.ref.ask(SetLinkFaults(LinkFaults(drop=1.0, seed=3)))
    net.send(1, 3)
    assert [e[:3] for e in net.trace("drop")] == [("drop", 1, 3)]
    net.ref.ask(SetLinkFaults(LinkFaults()))
    net.ref.ask(Unregister(3))
    assert isinstance(net.send(1, 3).log.wait_len(1)[0], UnknownNode)


def test_one_way_cut_affects_one_direction(make_net):
    net = make_net()
    net.ref.ask(Cut(1, 2))
    assert isinstance(net.send(1, 2).log.wait_len(1)[0], Unreachable)
    # 2 -> 1 works, but node 1's answer travels on the cut link 1 -> 2 and is lost.
    lost = net.send(2, 1, seq=7)
    net.received[1].wait_len(1)
    cuts = wait_until(lambda: len(net.trace("cut")) == 2 and net.trace("cut"), WAIT, "2 cuts")
    assert [e[:3] for e in cuts] == [("cut", 1, 2)] * 2
    assert cuts[1][3].startswith("AppendEntriesResponse")
    assert net.seqs(1) == [7]
    assert lost.log.items == []
    net.ref.ask(Uncut(1, 2))
    assert net.send(1, 2).log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert net.send(2, 1).log.wait_len(1) == [AppendEntriesResponse(1, True)]


def test_partition_only_links_inside_a_group_work(make_net):
    net = make_net(nodes=(1, 2, 3, 4, 5, 6))
    net.ref.ask(Partition(groups=((1, 2), (3, 4, 5))))  # 6 is in no group: cut off
    works = [(1, 2), (2, 1), (3, 5), (5, 4)]
    cut = [(1, 3), (4, 2), (6, 1), (3, 6)]
    for src, dst in works:
        assert net.send(src, dst).log.wait_len(1) == [AppendEntriesResponse(1, True)]
    for src, dst in cut:
        assert isinstance(net.send(src, dst).log.wait_len(1)[0], Unreachable), (src, dst)
    with pytest.raises(ValueError, match="disjoint"):
        Partition(groups=((1, 2), (2, 3)))
    net.ref.ask(Heal())
    for src, dst in cut:
        assert net.send(src, dst).log.wait_len(1) == [AppendEntriesResponse(1, True)]


def test_hold_then_release_in_order(make_net):
    net = make_net()
    net.ref.ask(SetLinkRule(1, 2, LinkRule(hold=True, direction=Direction.REQUESTS)))
    answers = [net.send(1, 2, seq=i) for i in range(5)]
    held = net.ref.ask(GetHeld())
    assert [(h.src, h.dst, h.kind) for h in held] == [(1, 2, "request")] * 5
    net.fence(3, 2)  # other links to 2 are not held
    assert net.seqs(2) == [FENCE]
    assert net.ref.ask(Release(src=1, dst=2)) == 5
    net.received[2].wait_len(6)
    assert net.seqs(2) == [FENCE, 0, 1, 2, 3, 4]
    for a in answers:  # the responses were not held
        assert a.log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert net.ref.ask(GetHeld()) == ()


def test_hold_then_release_shuffled(make_net):
    net = make_net(seed=5)
    net.ref.ask(SetLinkRule(1, 2, LinkRule(hold=True)))
    for i in range(10):
        net.send(1, 2, seq=i)
    assert net.ref.ask(Release(shuffle=True)) == 10
    net.received[2].wait_len(10)
    order = net.seqs(2)
    assert sorted(order) == list(range(10))
    assert order != list(range(10))
    expected = list(range(10))
    random.Random(5).shuffle(expected)  # the only random draw so far: seeded, reproducible
    assert order == expected
    # The held link holds responses too; Heal releases them and lifts the hold.
    net.send(1, 2, seq=10)
    net.ref.ask(ClearLinkRule(1, 2, Direction.REQUESTS))
    assert net.ref.ask(Heal()) == 1  # the request held on the response-holding link
    assert net.send(1, 2, seq=11).log.wait_len(1) == [AppendEntriesResponse(1, True)]


def test_duplicate_delivers_twice(make_net):
    net = make_net()
    net.ref.ask(SetDefaultRule(LinkRule(duplicate=1.0, direction=Direction.REQUESTS)))
    answers = net.send(1, 2, seq=3)
    net.received[2].wait_len(2)
    assert net.seqs(2) == [3, 3]
    assert answers.log.wait_len(2) == [AppendEntriesResponse(1, True)] * 2
    events = [e[0] for e in net.trace()]
    assert events[0] == "duplicate"
    assert events.count("deliver") == 4  # two requests, two responses


def test_response_only_drop_on_one_link(make_net):
    net = make_net()
    # Link 2 -> 1 carries node 2's answers to node 1's requests.
    net.ref.ask(SetLinkRule(2, 1, LinkRule(drop=1.0, direction=Direction.RESPONSES)))
    lost = net.send(1, 2, seq=4)
    net.received[2].wait_len(1)
    wait_until(lambda: net.trace("drop"), WAIT, "the response drop")
    assert net.seqs(2) == [4]
    assert net.trace("drop")[0][:3] == ("drop", 2, 1)
    assert "AppendEntriesResponse" in net.trace("drop")[0][3]
    assert net.send(1, 3).log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert net.send(2, 1).log.wait_len(1) == [AppendEntriesResponse(1, True)]  # requests pass
    assert lost.log.items == []


def test_delays_run_on_the_timer_thread_and_stop_cleanly(make_net):
    net = make_net()
    net.ref.ask(SetDefaultRule(LinkRule(delay_ms=(20, 40))))
    answers = [net.send(1, 2, seq=i) for i in range(5)]
    for a in answers:
        assert a.log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert len(net.trace("delay")) == 10  # 5 requests and 5 responses
    net.ref.ask(SetDefaultRule(LinkRule(delay_ms=(5000, 5000))))
    net.send(1, 2)  # still pending on the timer when the network stops
    timers = [t for t in threading.enumerate() if t.name == "FaultNetwork-delayer"]
    assert timers
    net.ref.stop()
    assert not any(t.is_alive() for t in timers)


def test_replay_old_redelivers_an_old_request(make_net):
    net = make_net()
    answers = net.send(1, 2, seq=8)
    assert answers.log.wait_len(1) == [AppendEntriesResponse(1, True)]
    assert net.ref.ask(ReplayOld(count=5, min_age_ms=60_000)) == 0  # nothing that old
    assert net.ref.ask(ReplayOld(count=5, min_age_ms=0)) == 1  # only the request
    net.received[2].wait_len(2)
    assert net.seqs(2) == [8, 8]
    assert answers.log.wait_len(2) == [AppendEntriesResponse(1, True)] * 2  # answered again
    assert net.trace("replay")[0][:3] == ("replay", 1, 2)
    # Replays across a cut are refused.
    net.ref.ask(Cut(1, 2))
    net.ref.ask(Cut(2, 1))
    assert net.ref.ask(ReplayOld(count=10, responses=True)) == 0
    assert len(net.trace("cut")) == 3
    net.ref.ask(Uncut(1, 2))
    net.ref.ask(Uncut(2, 1))
    # With responses: the request and both delivered answers are candidates. The answers
    # reach the caller again, and the request makes node 2 answer once more.
    assert net.ref.ask(ReplayOld(count=10, responses=True)) == 3
    assert answers.log.wait_len(5) == [AppendEntriesResponse(1, True)] * 5


def test_trace_records_every_decision_with_short_summaries(make_net):
    net = make_net(answer=False)
    net.ref.ask(SetLinkRule(1, 2, LinkRule(hold=True)))
    net.ref.ask(SetLinkRule(1, 3, LinkRule(drop=1.0)))
    net.ref.ask(SetLinkRule(2, 3, LinkRule(duplicate=1.0, delay_ms=(1, 2))))
    net.ref.ask(Cut(3, 1))
    big = AppendEntriesRequest(
        2, 4, 1, 10, 3, tuple(Entry(4, 11 + i, EntryNormal("x" * 100)) for i in range(500)), 9
    )
    net.ref.tell(Call(big, Answers()))
    net.send(1, 3)
    net.send(2, 3)
    net.send(3, 1)
    net.send(3, 9)
    net.ref.ask(Release())
    net.received[3].wait_len(2)
    net.received[2].wait_len(1)
    net.ref.ask(ReplayOld(count=1))
    trace = net.ref.ask(GetTrace(clear=True))
    events = [e.event for e in trace]
    for event in ("hold", "drop", "duplicate", "delay", "cut", "unknown", "release", "replay"):
        assert event in events
    assert events.count("deliver") == 3
    assert all(isinstance(e, tuple) and len(e) == 5 for e in trace)
    assert [e.time for e in trace] == sorted(e.time for e in trace)
    hold = next(e for e in trace if e.event == "hold")
    assert hold.summary == "AppendEntriesRequest term=4 prev=10/t3 entries=500 commit=9"
    assert max(len(e.summary) for e in trace) < 100
    assert net.ref.ask(GetTrace()) == ()


def test_same_seed_same_decisions(make_net):
    def decisions(seed: int, reseed: int | None = None) -> list[tuple[str, int, int, str]]:
        net = make_net(seed=seed, answer=False)
        if reseed is not None:
            net.ref.ask(SetSeed(reseed))
        rule = LinkRule(drop=0.3, duplicate=0.3, delay_ms=(0, 3), direction=Direction.REQUESTS)
        net.ref.ask(SetDefaultRule(rule))
        for i in range(60):
            net.send(1 + i % 3, 1 + (i + 1) % 3, seq=i)
        out = net.trace("drop", "duplicate", "delay")
        net.ref.stop()
        return out

    first = decisions(42)
    assert {e[0] for e in first} == {"drop", "duplicate", "delay"}
    assert decisions(42) == first
    assert decisions(7, reseed=42) == first
    assert decisions(43) != first


def test_rules_are_validated():
    with pytest.raises(ValueError, match="probability"):
        LinkRule(drop=1.5)
    with pytest.raises(ValueError, match="delay_ms"):
        LinkRule(delay_ms=(10, 5))


# --- real clusters --------------------------------------------------------------------------

CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)


class RaftCluster:
    """Raft nodes on MemStore behind one FaultNetwork, built by hand."""

    def __init__(self, seed: int, nodes: tuple[int, ...] = (1, 2, 3)) -> None:
        self.net = FaultNetwork.start(seed=seed)
        self.hub = MetricsHub()
        self.storages = {n: MemStore.start() for n in nodes}
        self.nodes = {
            n: Raft.start(n, CONFIG, self.net, self.storages[n], self.hub, random.Random(seed + n))
            for n in nodes
        }
        for n, ref in self.nodes.items():
            self.net.ask(Register(n, ref))
        self.hub.wait_for(lambda m: len(m) == len(nodes), 10, "every node to start")
        for future in [
            ref.ask(InitWithConfig(list(nodes)), block=False) for ref in self.nodes.values()
        ]:
            future.get(timeout=10)

    def leader(self, among: tuple[int, ...] | None = None, timeout: float = 15) -> int:
        """Wait until the nodes ``among`` (default: all) agree on one leader among them."""
        ids = among or tuple(self.nodes)

        def agreed(latest: dict[int, Any]) -> int | None:
            live = [latest[n] for n in ids if n in latest]
            leaders = [m for m in live if m.state is State.LEADER]
            if len(live) != len(ids) or len(leaders) != 1:
                return None
            lead = leaders[0]
            same = all(
                m.current_leader == lead.id and m.current_term == lead.current_term for m in live
            )
            return lead.id if same else None

        leader: int = self.hub.wait_for(agreed, timeout, f"a leader agreed by {ids}")
        return leader

    def write(self, data: Any, among: tuple[int, ...] | None = None, timeout: float = 30) -> int:
        """Write through the leader (following ForwardToLeader); return the entry's index."""
        target = self.leader(among, timeout)
        for _ in range(20):
            try:
                reply = self.nodes[target].ask(
                    ClientPayload.new(data, ResponseMode.APPLIED), timeout=timeout
                )
                index: int = reply.index
                return index
            except ForwardToLeader as exc:
                target = exc.leader_id if exc.leader_id is not None else self.leader(among)
        raise AssertionError(f"write of {data!r} kept being forwarded")

    def wait_applied(self, index: int, timeout: float = 20) -> None:
        self.hub.wait_for(
            lambda m: all(n in m and m[n].last_applied >= index for n in self.nodes),
            timeout,
            f"every node to apply {index}",
        )

    def assert_identical(self) -> None:
        dumps = [s.ask(DumpStorage()) for s in self.storages.values()]
        assert all(d.state_machine == dumps[0].state_machine for d in dumps)
        assert all(d.log == dumps[0].log for d in dumps)
        for term, leaders in self.hub.leaders_by_term().items():
            assert len(leaders) == 1, f"term {term} had leaders {leaders}"


@pytest.fixture
def raft_cluster() -> Iterator[Callable[[int], RaftCluster]]:
    def make(seed: int) -> RaftCluster:
        return RaftCluster(seed)

    yield make
    pykka.ActorRegistry.stop_all()


def test_cluster_commits_under_drops_duplicates_delays_and_replays(raft_cluster):
    cluster = raft_cluster(11)
    cluster.leader()
    net = cluster.net
    net.ask(SetDefaultRule(LinkRule(drop=0.05, duplicate=0.1, delay_ms=(0, 15))))
    last = 0
    for i in range(60):
        last = cluster.write(Put(f"k{i % 5}", i))
        if i % 10 == 9:
            net.tell(ReplayOld(count=10, min_age_ms=100, responses=True))
    net.ask(Heal())
    cluster.wait_applied(last)
    cluster.assert_identical()
    assert cluster.storages[1].ask(DumpStorage()).state_machine == {
        f"k{j}": 55 + j for j in range(5)
    }
    events = {e.event for e in net.ask(GetTrace())}
    assert {"drop", "duplicate", "delay", "replay", "deliver"} <= events


def test_partition_majority_elects_a_leader_and_heals(raft_cluster):
    cluster = raft_cluster(12)
    old = cluster.leader()
    first = cluster.write(Put("before", 1))
    rest = tuple(n for n in cluster.nodes if n != old)
    cluster.net.ask(Partition(groups=((old,), rest)))  # (1) | (2, 3) with the leader alone
    new = cluster.leader(among=rest)
    assert new != old
    cluster.hub.wait_for(lambda m: m[old].state is not State.LEADER, 10, "old leader to step down")
    during = cluster.write(Put("during", 2), among=rest)
    assert during > first
    assert cluster.hub.get(old).last_applied < during
    cluster.net.ask(Heal())
    cluster.leader()
    cluster.wait_applied(cluster.write(Put("after", 3)))
    cluster.assert_identical()
    assert cluster.storages[old].ask(DumpStorage()).state_machine == {
        "before": 1,
        "during": 2,
        "after": 3,
    }


def test_held_follower_link_released_shuffled_catches_up(raft_cluster):
    cluster = raft_cluster(13)
    leader = cluster.leader()
    slow = next(n for n in cluster.nodes if n != leader)
    others = [n for n in cluster.nodes if n != slow]
    for n in others:  # every message to and from the slow node waits
        cluster.net.ask(SetLinkRule(n, slow, LinkRule(hold=True)))
        cluster.net.ask(SetLinkRule(slow, n, LinkRule(hold=True)))
    indexes = [cluster.write(Put("k", i), among=tuple(others)) for i in range(10)]
    # The writes may commit before the leader sends the slow node anything new (a request
    # of its still in flight); its next heartbeat or resend is held.
    wait_until(lambda: len(cluster.net.ask(GetHeld())) > 0, WAIT, "a held message")
    assert cluster.hub.get(slow).last_applied < indexes[-1]
    for n in others:
        cluster.net.ask(ClearLinkRule(n, slow))
        cluster.net.ask(ClearLinkRule(slow, n))
    # Heartbeats, entries and maybe the slow node's vote requests, all out of order.
    cluster.net.ask(Release(shuffle=True))
    cluster.wait_applied(indexes[-1])
    cluster.assert_identical()
