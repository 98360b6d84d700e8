"""The key-value service's session settings are the cluster's: carried in the log under
``.kv/settings``, so nodes configured differently still end and expire the same sessions.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pykka_raft import ApplicationError, Entry, EntryNormal, Put
from pykka_raft.kv.local import LocalCluster
from pykka_raft.kv.store import SETTINGS_KEY, KvStateMachine, settings_record
from pykka_raft.sessions import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_TIMEOUT,
    RegisterClient,
    SessionCommand,
)
from pykka_raft.testing import wait_until
from tests.kv.conftest import leader_of, request


def _run(machine: KvStateMachine, datas: list[Any]) -> list[Any]:
    """Apply ``datas`` as entries 1, 2, ... of term 1; the answer or the refusal of each."""
    out: list[Any] = []
    for index, data in enumerate(datas, start=1):
        try:
            out.append(machine.apply(Entry(1, index, EntryNormal(data))))
        except ApplicationError as exc:  # a refusal: the same on every node, or not
            out.append(type(exc.error).__name__)
    return out


def _registrations_then_writes(n: int) -> list[Any]:
    """``n`` registrations (client ids 1..n), then a write in each of those sessions."""
    return [RegisterClient(float(i)) for i in range(n)] + [
        SessionCommand(i, 1, Put(f"k{i}", "1"), float(n)) for i in range(1, n + 1)
    ]


def test_without_a_record_differently_configured_nodes_diverge() -> None:
    # The fault the record prevents: each node bounds the table with its own setting.
    small, large = KvStateMachine(max_sessions=2), KvStateMachine(max_sessions=10)
    entries = _registrations_then_writes(3)
    assert _run(small, entries) != _run(large, entries)
    assert small.data != large.data


def test_with_a_record_every_node_applies_the_cluster_settings() -> None:
    small, large = KvStateMachine(max_sessions=2), KvStateMachine(max_sessions=10)
    entries = [Put(SETTINGS_KEY, settings_record(3600, 2)), *_registrations_then_writes(3)]
    answers = _run(small, entries)
    assert answers == _run(large, entries)
    assert answers[-3] == "SessionExpired"  # the first session ended at the third
    assert small.data == large.data and small.sessions.dump() == large.sessions.dump()
    assert small.session_settings() == large.session_settings() == (3600.0, 2)


def test_the_session_timeout_follows_the_record() -> None:
    short, long = KvStateMachine(session_timeout=5), KvStateMachine()
    entries = [
        Put(SETTINGS_KEY, settings_record(5, 100)),
        RegisterClient(0.0),
        SessionCommand(2, 1, Put("k", "1"), 10.0),  # idle for 10 s: past 5 s
    ]
    assert _run(short, entries)[-1] == _run(long, entries)[-1] == "SessionExpired"


@pytest.mark.parametrize(
    "record",
    [
        '{"max_sessions":0,"session_timeout":60.0}',
        '{"max_sessions":5,"session_timeout":-1}',
        '{"max_sessions":5.5,"session_timeout":60}',
        '{"max_sessions":5}',
        "[1,2]",
        "not json",
        '{"max_sessions":5,"session_timeout":1' + "0" * 400 + "}",  # OverflowError
    ],
)
def test_a_record_that_is_not_valid_settings_is_ignored(record: str) -> None:
    machine = KvStateMachine(session_timeout=60, max_sessions=7)
    _run(machine, [Put(SETTINGS_KEY, settings_record(30, 3)), Put(SETTINGS_KEY, record)])
    assert machine.session_settings() == (60.0, 7)  # the configured ones, every node alike


def test_a_restored_snapshot_brings_its_settings_or_none() -> None:
    source = KvStateMachine()
    _run(source, [Put(SETTINGS_KEY, settings_record(30, 3))])
    with_record = source.snapshot()()
    machine = KvStateMachine(session_timeout=60, max_sessions=7)
    machine.restore(with_record)
    assert machine.session_settings() == (30.0, 3)
    machine.restore(KvStateMachine().snapshot()())  # a snapshot from before any record
    assert machine.session_settings() == (60.0, 7)


def test_before_any_record_every_node_applies_the_library_defaults(cluster_factory: Any) -> None:
    """Until the log holds a record, a node's own configuration must not count: with
    ``max_sessions`` 1 here and 2 there, the second registration would end a session on
    some nodes only, and the replicas would split (the first entries of a new cluster)."""
    options = {n: {"max_sessions": n, "session_timeout": 10.0 * n} for n in (1, 2, 3)}
    cluster: LocalCluster = cluster_factory([1, 2, 3], init=False, node_options=options)
    machines = [s.node.state_machine for s in cluster.servers.values()]
    assert [m.session_settings() for m in machines] == [
        (DEFAULT_SESSION_TIMEOUT, DEFAULT_MAX_SESSIONS)
    ] * 3
    answers = [_run(m, _registrations_then_writes(3)) for m in machines]
    assert answers[0] == answers[1] == answers[2]
    assert machines[0].data == machines[1].data == machines[2].data


def test_a_cluster_applies_its_leaders_settings_on_every_node(
    cluster_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pykka_raft.kv")
    options = {n: {"max_sessions": 2 + n} for n in (1, 2, 3)}  # 3, 4 and 5: all differ
    cluster: LocalCluster = cluster_factory([1, 2, 3], node_options=options)
    leader = leader_of(cluster)
    wanted = (3600.0, 2 + leader)

    def agreed() -> bool:
        return all(
            s.node.state_machine.session_settings() == wanted for s in cluster.servers.values()
        )

    wait_until(agreed, 15, "every node to apply the leader's session settings")
    url = cluster.url(leader)
    ids = [request(url, "POST", "/v1/sessions").json["client_id"] for _ in range(wanted[1] + 1)]
    ended = request(url, "PUT", "/v1/kv/a", {"value": 1, "client_id": ids[0], "sequence": 1})
    assert ended.status == 409 and ended.code == "session_expired", ended.data
    last = request(url, "GET", "/v1/status").json["last_applied"]

    def applied() -> bool:
        views = [s.node.view.latest() for s in cluster.servers.values()]
        return all(m is not None and m.last_applied >= last for m in views)

    wait_until(applied, 15, "every node to apply the registrations")
    dumps = [s.node.state_machine.sessions.dump() for s in cluster.servers.values()]
    assert dumps[0] == dumps[1] == dumps[2] and ids[0] not in dumps[0]
    follower = next(n for n in cluster.servers if n != leader)
    status = request(cluster.url(follower), "GET", "/v1/status").json["sessions"]
    assert status == {
        "session_timeout": 3600.0,
        "max_sessions": wanted[1],
        "configured": {"session_timeout": 3600.0, "max_sessions": 2 + follower},
    }
    assert any("recorded the cluster's session settings" in r.getMessage() for r in caplog.records)


def test_a_new_leader_with_other_settings_records_them_and_warns(
    cluster_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    options = {n: {"max_sessions": 2 + n} for n in (1, 2, 3)}
    cluster: LocalCluster = cluster_factory([1, 2, 3], node_options=options)
    first = leader_of(cluster)

    def applies(n: int) -> bool:
        return all(
            s.node.state_machine.session_settings()[1] == 2 + n for s in cluster.servers.values()
        )

    wait_until(lambda: applies(first), 15, "the first leader's settings everywhere")
    caplog.set_level(logging.WARNING, logger="pykka_raft.kv")
    cluster.stop_node(first)
    second = leader_of(cluster)
    assert second != first
    wait_until(lambda: applies(second), 15, "the second leader's settings everywhere")
    assert any(
        "the cluster's session settings are" in r.getMessage()
        and f'"max_sessions":{2 + first}' in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
