"""Every library error a Raft node can raise maps to its documented HTTP answer, and an
unexpected exception is a JSON 500, never a traceback (the WSGI app alone, no sockets)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any
from wsgiref.util import setup_testing_defaults

import pykka
import pytest

from pykka_raft import (
    ApplicationError,
    Busy,
    CatchUpTimeout,
    ChangeInProgress,
    ForwardToLeader,
    InoperableConfig,
    InternalError,
    LeadershipLost,
    MembershipConfig,
    NodeNotLeader,
    Noop,
    NotAllowed,
    OutcomeUnknown,
    RaftMetrics,
    SessionExpired,
    ShuttingDown,
    SnapshotsUnsupported,
    StaleSequence,
    State,
    StorageError,
    TransferFailed,
)
from pykka_raft.kv import NodeConfig, PeerConfig
from pykka_raft.kv.app import KvApp
from pykka_raft.kv.errors import CODES, EXIT_UNAVAILABLE, Unavailable, error_for
from pykka_raft.kv.node import KvNode


class StubRaft:
    """Answers every ask by raising ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.alive = True

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        raise self.error

    def is_alive(self) -> bool:
        return self.alive


def make_app(
    error: BaseException,
    state: State = State.LEADER,
    membership: MembershipConfig | None = None,
) -> KvApp:
    config = NodeConfig(
        1,
        "127.0.0.1:8001",
        peers=(PeerConfig(2, "127.0.0.1:8002"),),
        storage="memory",
        network="local",
    )
    node = KvNode(config)
    node.view.tell(
        RaftMetrics(
            1,
            state,
            3,
            10,
            10,
            10,
            1 if state is State.LEADER else 2,
            membership or MembershipConfig(members=(1, 2, 3), non_voters=(4,)),
        )
    )
    node._raft = StubRaft(error)  # type: ignore[assignment]
    return KvApp(node)


def call(app: KvApp, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    data = b"" if body is None else json.dumps(body).encode()
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
    }
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = int(status.split()[0])
        seen["headers"] = {k.lower(): v for k, v in headers}

    payload = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], json.loads(payload)


WRITE_ERRORS = [
    (ForwardToLeader(None, None), 503, "no_leader"),
    (ForwardToLeader(None, 2), 307, "not_leader"),
    (ForwardToLeader(None, 7), 503, "not_leader"),  # leader's address unknown
    (Busy(None, 10), 503, "busy"),
    (ApplicationError(ValueError("no")), 400, "bad_request"),
    (ApplicationError(SessionExpired(5, 3)), 409, "session_expired"),
    (ApplicationError(StaleSequence(5, 1, 3)), 409, "stale_sequence"),
    (ShuttingDown("the Raft node has stopped and did not accept the call"), 503, "shutting_down"),
    (pykka.ActorDeadError("gone"), 503, "shutting_down"),
    (OutcomeUnknown("replaced by a snapshot"), 504, "outcome_unknown"),
    (InternalError("boom"), 504, "outcome_unknown"),
    (StorageError("disk"), 504, "outcome_unknown"),
    (pykka.Timeout("late"), 504, "outcome_unknown"),
]


@pytest.mark.parametrize(("error", "status", "code"), WRITE_ERRORS)
def test_write_errors(error: BaseException, status: int, code: str) -> None:
    got, headers, body = call(make_app(error), "PUT", "/v1/kv/k", {"value": 1})
    assert (got, body["error"]["code"]) == (status, code)
    assert CODES[code][0] == status or (status == 307 and code == "not_leader")
    if status == 307:
        assert headers["location"] == "http://127.0.0.1:8002/v1/kv/k"
        assert body["error"]["leader_id"] == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/kv/k", {"value": 1}),
        ("POST", "/v1/sessions", None),
        ("GET", "/v1/kv/k", None),
        ("POST", "/v1/admin/snapshot", None),
    ],
)
def test_a_node_whose_raft_node_stopped_on_its_own_takes_nothing(
    method: str, path: str, body: Any
) -> None:
    # A fatal storage error stopped the Raft node: every call is refused, definitely (503),
    # not answered outcome_unknown as if it might have been applied.
    app = make_app(ShuttingDown("the Raft node has stopped and did not accept the call"))
    app.node.raft.alive = False  # type: ignore[attr-defined]
    status, _, body = call(app, method, path, body)
    assert (status, body["error"]["code"]) == (503, "node_stopped"), body
    # A write the node took before it failed is still unknown.
    app.node.raft.error = StorageError("disk I/O error")  # type: ignore[attr-defined]
    app.node.raft.alive = True  # type: ignore[attr-defined]
    status, _, body = call(app, "PUT", "/v1/kv/k", {"value": 1})
    assert (status, body["error"]["code"]) == (504, "outcome_unknown")


READ_ERRORS = [
    (ForwardToLeader(None, None), 503, "no_leader"),
    (ForwardToLeader(None, 2), 307, "not_leader"),  # the leader did not confirm: go there
    (ForwardToLeader(None, 7), 503, "not_leader"),
    (ApplicationError(ValueError("no query")), 500, "internal"),
    (ShuttingDown(), 503, "shutting_down"),
    (InternalError("boom"), 503, "shutting_down"),
    (pykka.Timeout("late"), 504, "read_timeout"),
]


@pytest.mark.parametrize("consistency", ["linearizable", "lease"])
@pytest.mark.parametrize(("error", "status", "code"), READ_ERRORS)
def test_read_errors(error: BaseException, status: int, code: str, consistency: str) -> None:
    """A read changes nothing: every failure is a definite 5xx, none ``outcome_unknown``."""
    path = f"/v1/kv/k?consistency={consistency}"
    got, headers, body = call(make_app(error), "GET", path)
    assert (got, body["error"]["code"]) == (status, code)
    assert CODES[code][0] == status or (status == 307 and code == "not_leader")
    if status == 307:
        assert headers["location"] == "http://127.0.0.1:8002" + path


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("PUT", "/v1/kv/k", {"value": 1}, ForwardToLeader(None, None)),
        ("GET", "/v1/kv/k", None, ForwardToLeader(None, None)),
        ("POST", "/v1/admin/remove", {"ids": [3]}, NodeNotLeader(None)),
    ],
)
def test_a_node_without_membership_says_it_is_not_initialized(
    method: str, path: str, body: Any, error: BaseException
) -> None:
    """No leader because the node was never formed into a cluster, not an election: a 503
    of its own (which a client reads as ``Unavailable``), naming the command to run."""
    app = make_app(error, state=State.FOLLOWER, membership=MembershipConfig())
    app.node.view.tell(RaftMetrics(1, State.FOLLOWER, 0, 0, 0, 0, None, MembershipConfig()))
    status, _, answer = call(app, method, path, body)
    assert (status, answer["error"]["code"]) == (503, "not_initialized"), answer
    assert "pykka-raft-kv" in answer["error"]["message"] and "init" in answer["error"]["message"]
    got = error_for(status, "not_initialized", "m", {})
    assert isinstance(got, Unavailable) and got.exit_code == EXIT_UNAVAILABLE
    # A member that lost its leader (an election under way) still says no_leader.
    app = make_app(error, state=State.FOLLOWER)
    members = MembershipConfig(members=(1, 2, 3))
    app.node.view.tell(RaftMetrics(1, State.CANDIDATE, 4, 9, 9, 9, None, members))
    status, _, answer = call(app, method, path, body)
    assert (status, answer["error"]["code"]) == (503, "no_leader")


def test_a_lease_read_on_a_follower_redirects_before_asking() -> None:
    app = make_app(AssertionError("must not be asked"), state=State.FOLLOWER)
    status, headers, body = call(app, "GET", "/v1/kv/k?consistency=lease")
    assert (status, body["error"]["code"]) == (307, "not_leader")
    assert headers["location"] == "http://127.0.0.1:8002/v1/kv/k?consistency=lease"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NodeNotLeader(None), 503, "no_leader"),
        (NodeNotLeader(2), 307, "not_leader"),
        (Noop(), 409, "noop"),
        (InoperableConfig("none left"), 409, "inoperable_config"),
        (ChangeInProgress(), 409, "change_in_progress"),
        (CatchUpTimeout((4,), 100), 409, "catch_up_timeout"),
        (LeadershipLost(2), 504, "outcome_unknown"),
        (ShuttingDown(), 504, "outcome_unknown"),
        (pykka.Timeout("late"), 504, "outcome_unknown"),
    ],
)
def test_membership_errors(error: BaseException, status: int, code: str) -> None:
    got, _, body = call(make_app(error), "POST", "/v1/admin/promote", {"id": 4})
    assert (got, body["error"]["code"]) == (status, code)


def test_admin_on_a_follower_redirects_before_asking() -> None:
    app = make_app(AssertionError("must not be asked"), state=State.FOLLOWER)
    status, headers, _ = call(app, "POST", "/v1/admin/remove", {"ids": [3]})
    assert status == 307 and headers["location"] == "http://127.0.0.1:8002/v1/admin/remove"


@pytest.mark.parametrize(
    ("path", "error", "status", "code"),
    [
        ("/v1/admin/init", NotAllowed("not pristine"), 409, "not_pristine"),
        ("/v1/admin/snapshot", SnapshotsUnsupported("Store"), 409, "snapshots_unsupported"),
        ("/v1/admin/snapshot", ShuttingDown(), 503, "shutting_down"),
    ],
)
def test_other_admin_errors(path: str, error: BaseException, status: int, code: str) -> None:
    got, _, body = call(make_app(error), "POST", path)
    assert (got, body["error"]["code"]) == (status, code)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (TransferFailed("node 3 did not become leader", 1), 409, "transfer_failed"),
        (NodeNotLeader(2), 307, "not_leader"),
        (ShuttingDown(), 504, "outcome_unknown"),
        (pykka.Timeout("late"), 504, "outcome_unknown"),
    ],
)
def test_transfer_errors(error: BaseException, status: int, code: str) -> None:
    got, _, body = call(make_app(error), "POST", "/v1/admin/transfer-leader", {"id": 3})
    assert (got, body["error"]["code"]) == (status, code)
    if code == "transfer_failed":
        assert body["error"]["leader_id"] == 1


def test_init_on_a_tcp_node_needs_every_raft_address() -> None:
    config = NodeConfig(
        1, "127.0.0.1:8001", raft_address="127.0.0.1:9001", storage="memory", insecure=True
    )
    node = KvNode(config)
    node.view.tell(RaftMetrics(1, State.NON_VOTER, 0, 0, 0, 0, None, MembershipConfig((1,))))
    node._raft = StubRaft(AssertionError("must not be asked"))  # type: ignore[assignment]
    status, _, body = call(KvApp(node), "POST", "/v1/admin/init", {"members": [1, 2]})
    assert status == 400 and "[2]" in body["error"]["message"]


def test_an_unexpected_exception_is_a_logged_json_500(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(ZeroDivisionError("bug"))
    with caplog.at_level(logging.ERROR, logger="pykka_raft.kv.http"):
        status, headers, body = call(app, "PUT", "/v1/kv/k", {"value": 1})
    assert status == 500 and body == {
        "error": {"code": "internal", "message": "unexpected failure; see the node's log"}
    }
    assert headers["content-type"].startswith("application/json")
    assert "ZeroDivisionError" in caplog.text  # the traceback goes to the log, not the client


def test_a_starting_node_says_so() -> None:
    node = KvNode(NodeConfig(1, "127.0.0.1:8001", storage="memory", network="local"))
    status, headers, body = call(KvApp(node), "PUT", "/v1/kv/k", {"value": 1})
    assert (status, body["error"]["code"]) == (503, "starting")
    assert headers["retry-after"] == "1"
    status, _, body = call(KvApp(node), "GET", "/v1/status")
    assert status == 200 and body["state"] == "starting"


def test_every_documented_code_has_a_status() -> None:
    assert all(400 <= status <= 599 for status, _ in CODES.values())
