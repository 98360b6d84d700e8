"""The HTTP JSON API as a plain WSGI application.

Routing is a small table of (methods, pattern, handler). Every answer is JSON (the status
page and ``/metrics`` aside); every error is ``{"error": {"code", "message", ...}}`` with a
stable code from :data:`pykka_raft.kv.errors.CODES`. A request a node cannot serve because
it does not lead is redirected to the leader (307, ``Location`` on the leader's HTTP API,
the leader's id in the body), or answered 503 when no leader or no address is known.
Nothing here blocks a Raft actor: the WSGI threads ``ask`` the Raft node and wait.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

import pykka
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pykka_raft import (
    ApplicationError,
    Busy,
    CasResult,
    CatchUpTimeout,
    ChangeInProgress,
    ClientError,
    ClientPayload,
    ClientPayloadResponse,
    CompareAndSet,
    ConfigChangeError,
    ConfigChangeResponse,
    Delete,
    ForwardToLeader,
    Get,
    InitWithConfig,
    InitWithConfigError,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
    ProposeConfigChange,
    Put,
    RaftError,
    ResponseMode,
    ShuttingDown,
    SnapshotMeta,
    SnapshotsUnsupported,
    State,
    TriggerSnapshot,
)
from pykka_raft.kv.config import http_url, parse_address
from pykka_raft.kv.errors import CODES
from pykka_raft.kv.metrics import make_registry
from pykka_raft.kv.node import KvNode
from pykka_raft.kv.status import gather, node_status
from pykka_raft.kv.store import (
    RESERVED_PREFIX,
    decode_value,
    encode_value,
    node_key,
)

logger = logging.getLogger("pykka_raft.kv.http")

MAX_KEY_BYTES = 1024
CONSISTENCY_LEVELS = ("linearizable", "lease", "stale")


class HttpError(Exception):
    """An error answer: raised by handlers, turned into the JSON error body."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        **details: Any,
    ) -> None:
        self.code = code
        self.status = status if status is not None else CODES[code][0]
        self.message = message
        self.headers = list(headers)
        self.details = details
        super().__init__(message)


class Request:
    """The parts of a WSGI request a handler reads."""

    def __init__(self, environ: dict[str, Any], params: dict[str, str], max_body: int) -> None:
        self.environ = environ
        self.method: str = environ["REQUEST_METHOD"]
        self.params = params
        self.max_body = max_body
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), True).items()}

    @property
    def path_and_query(self) -> str:
        """The request's path and query string, re-quoted, for a ``Location``."""
        path = quote(_path(self.environ), safe="/:@!$&'()*+,;=-._~")
        qs = self.environ.get("QUERY_STRING", "")
        return f"{path}?{qs}" if qs else path

    def json(self) -> Any:
        """The body parsed as JSON; the size limit is checked before anything is read.

        Raises:
            HttpError: ``body_too_large`` (413), ``bad_json`` (400).
        """
        length_text = self.environ.get("CONTENT_LENGTH") or ""
        stream = self.environ["wsgi.input"]
        if length_text:
            if not length_text.isdigit():
                raise HttpError("bad_request", "Content-Length is not a number")
            length = int(length_text)
            if length > self.max_body:
                raise _too_large(self.max_body)
            body = stream.read(length) if length else b""
        else:
            body = stream.read(self.max_body + 1)
            if len(body) > self.max_body:
                raise _too_large(self.max_body)
        if not body.strip():
            raise HttpError("bad_json", "the request needs a JSON body")
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError as exc:
            raise HttpError("bad_json", f"the body is not UTF-8: {exc.reason}") from None
        except RecursionError:
            raise HttpError("bad_json", "the JSON body is nested too deeply") from None
        except ValueError as exc:
            raise HttpError("bad_json", f"the body is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _too_large(limit: int) -> HttpError:
    return HttpError(
        "body_too_large",
        f"the request body is over this node's limit of {limit} bytes",
        limit=limit,
    )


def _path(environ: dict[str, Any]) -> str:
    # WSGI hands the percent-decoded path as latin-1 text; keys are UTF-8.
    raw: str = environ.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _object(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise HttpError("bad_request", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HttpError("bad_request", f"unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise HttpError("bad_request", f"missing field(s): {', '.join(missing)}")
    return body


def _node_id(value: Any, field: str = "id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HttpError("bad_request", f"{field} must be a positive integer, got {value!r}")
    return value


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise HttpError("bad_request", f"{field} must be a string host:port")
    try:
        _host, port = parse_address(value, field)
    except ValueError as exc:
        raise HttpError("bad_request", str(exc)) from None
    if port == 0:
        raise HttpError("bad_request", f"{field} needs a real port, not 0")
    return value.strip()


def _check_key(key: str, writing: bool) -> str:
    if not key:
        raise HttpError("bad_key", "the key is empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise HttpError("bad_key", f"the key is over {MAX_KEY_BYTES} bytes")
    if writing and key.startswith(RESERVED_PREFIX):
        raise HttpError(
            "reserved_key",
            f"keys starting with {RESERVED_PREFIX!r} belong to the service (the node "
            "directory); they can be read but not written",
        )
    return key


def _json_value(value: Any, field: str) -> str:
    try:
        return encode_value(value)
    except ValueError as exc:
        raise HttpError("bad_request", f"{field}: {exc}") from None


Handler = Callable[[Request], tuple[int, Any]]


class KvApp:
    """The WSGI application of one node.

    Args:
        node: the node it serves (started or about to be).
        fetch_status: gets another node's ``/v1/status`` from its base URL, for
            ``/v1/cluster``; raises on failure.
    """

    def __init__(
        self, node: KvNode, fetch_status: Callable[[str], dict[str, Any]] | None = None
    ) -> None:
        self.node = node
        self.settings = node.config.http
        self.registry, self.metrics = make_registry(node.view)
        self.fetch_status = fetch_status or _fetch_status
        self._page = resources.files("pykka_raft.kv").joinpath("static/status.html").read_bytes()
        self._inflight = 0
        self._idle = threading.Condition()
        self.draining = False
        self.routes: list[tuple[str, frozenset[str], re.Pattern[str], Handler]] = [
            ("page", frozenset({"GET"}), re.compile(r"/"), self.page),
            ("metrics", frozenset({"GET"}), re.compile(r"/metrics"), self.prometheus),
            ("status", frozenset({"GET"}), re.compile(r"/v1/status"), self.status),
            ("cluster", frozenset({"GET"}), re.compile(r"/v1/cluster"), self.cluster),
            ("cas", frozenset({"POST"}), re.compile(r"/v1/kv/(?P<key>.+)/cas"), self.cas),
            (
                "kv",
                frozenset({"GET", "PUT", "DELETE"}),
                re.compile(r"/v1/kv/(?P<key>.+)"),
                self.kv,
            ),
            ("init", frozenset({"POST"}), re.compile(r"/v1/admin/init"), self.init),
            ("add_voter", frozenset({"POST"}), re.compile(r"/v1/admin/voters"), self.add_voter),
            (
                "add_learner",
                frozenset({"POST"}),
                re.compile(r"/v1/admin/learners"),
                self.add_learner,
            ),
            ("promote", frozenset({"POST"}), re.compile(r"/v1/admin/promote"), self.promote),
            ("remove", frozenset({"POST"}), re.compile(r"/v1/admin/remove"), self.remove),
            ("snapshot", frozenset({"POST"}), re.compile(r"/v1/admin/snapshot"), self.snapshot),
            (
                "transfer_leader",
                frozenset({"POST"}),
                re.compile(r"/v1/admin/transfer-leader"),
                self.transfer_leader,
            ),
        ]

    # --- WSGI -------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with self._idle:
            self._inflight += 1
        started = time.perf_counter()
        route_name = "unknown"
        headers: list[tuple[str, str]] = []
        try:
            if self.draining:
                raise HttpError(
                    "shutting_down",
                    "this node is shutting down; send the request to another node",
                )
            path = _path(environ)
            method = environ["REQUEST_METHOD"]
            allowed: set[str] = set()
            handler: Handler | None = None
            params: dict[str, str] = {}
            for name, methods, pattern, fn in self.routes:
                match = pattern.fullmatch(path)
                if match is None:
                    continue
                if method in methods:
                    route_name, handler, params = name, fn, match.groupdict()
                    break
                allowed |= methods
            if handler is None:
                if allowed:
                    raise HttpError(
                        "method_not_allowed",
                        f"{method} is not allowed on {path}; allowed: "
                        + ", ".join(sorted(allowed)),
                        headers=[("Allow", ", ".join(sorted(allowed)))],
                        allowed=sorted(allowed),
                    )
                raise HttpError("not_found", f"no route {path}; see docs/kv-service.md")
            request = Request(environ, params, self.settings.max_body_bytes)
            status, body = handler(request)
            if isinstance(body, RawBody):
                payload, headers = body.data, [("Content-Type", body.content_type)]
            else:
                payload = _dump(body)
                headers = [("Content-Type", "application/json; charset=utf-8")]
            op = _WRITE_OPS.get((route_name, method))
            if op is not None and status == 200:
                self.metrics.writes.labels(op).observe(time.perf_counter() - started)
        except HttpError as exc:
            status = exc.status
            error = {"code": exc.code, "message": exc.message, **exc.details}
            payload = _dump({"error": error})
            headers = [("Content-Type", "application/json; charset=utf-8"), *exc.headers]
        except Exception:
            logger.exception("unexpected failure serving %s", environ.get("PATH_INFO"))
            status = 500
            payload = _dump(
                {"error": {"code": "internal", "message": "unexpected failure; see the node's log"}}
            )
            headers = [("Content-Type", "application/json; charset=utf-8")]
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()
        self.metrics.requests.labels(environ.get("REQUEST_METHOD", "?"), route_name, status).inc()
        headers += [("Content-Length", str(len(payload))), ("Cache-Control", "no-store")]
        start_response(f"{status} {http.client.responses.get(status, '')}", headers)
        return [payload]

    def drain(self) -> None:
        """Answer every new request ``503 shutting_down`` from now on."""
        self.draining = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # --- Raft calls ---------------------------------------------------------------------

    def _redirect(self, request: Request, leader_id: int | None) -> HttpError:
        if leader_id is None:
            return HttpError(
                "no_leader",
                "no leader is known (an election is under way); retry shortly",
                headers=[("Retry-After", "1")],
                leader_id=None,
                leader_url=None,
            )
        url = self.node.directory.http_url(leader_id)
        if url is None or leader_id == self.node.node_id:
            return HttpError(
                "not_leader",
                f"node {leader_id} leads but its HTTP address is not known here; "
                "send the request to it",
                headers=[("Retry-After", "1")],
                leader_id=leader_id,
                leader_url=None,
            )
        return HttpError(
            "not_leader",
            f"node {leader_id} leads; the request is redirected to it",
            status=307,
            headers=[("Location", url + request.path_and_query)],
            leader_id=leader_id,
            leader_url=url,
        )

    def _started(self) -> None:
        # A node loads its state in milliseconds: wait that long rather than refuse.
        wait = min(self.settings.request_timeout, 2.0) if self.node.has_raft else 0.0
        if self.node.view.wait_for(lambda m: m is not None, timeout=wait) is None:
            raise HttpError(
                "starting",
                "this node is still starting; retry shortly",
                headers=[("Retry-After", "1")],
            )

    def _submit(self, request: Request, command: Any) -> ClientPayloadResponse:
        self._started()
        timeout = self.settings.request_timeout
        is_read = isinstance(command, Get)
        try:
            response: ClientPayloadResponse = self.node.raft.ask(
                ClientPayload.new(command, ResponseMode.APPLIED), timeout=timeout
            )
            return response
        except ForwardToLeader as exc:
            raise self._redirect(request, exc.leader_id) from None
        except Busy:
            raise HttpError(
                "busy",
                "the leader has too many writes in flight; retry shortly",
                headers=[("Retry-After", "1")],
            ) from None
        except ApplicationError as exc:
            raise HttpError("bad_request", f"the state machine refused it: {exc.error}") from None
        except ShuttingDown as exc:
            if is_read:
                raise HttpError("shutting_down", str(exc)) from None
            raise HttpError(
                "outcome_unknown",
                f"the node stopped before answering; the write may have been applied: {exc}",
            ) from None
        except ClientError as exc:  # OutcomeUnknown, InternalError, StorageError
            raise HttpError("outcome_unknown", str(exc)) from None
        except pykka.Timeout:
            what = "read" if is_read else "write; it may still be applied"
            raise HttpError(
                "outcome_unknown", f"no answer within {timeout:g} s for this {what}"
            ) from None

    def _change(self, request: Request, change: ProposeConfigChange) -> ConfigChangeResponse:
        self._started()
        timeout = self.settings.admin_timeout
        try:
            response: ConfigChangeResponse = self.node.raft.ask(change, timeout=timeout)
            return response
        except NodeNotLeader as exc:
            raise self._redirect(request, exc.leader_id) from None
        except Noop:
            raise HttpError("noop", "the membership already is as asked; nothing changed") from None
        except InoperableConfig as exc:
            raise HttpError("inoperable_config", str(exc)) from None
        except ChangeInProgress as exc:
            raise HttpError("change_in_progress", str(exc)) from None
        except CatchUpTimeout as exc:
            raise HttpError("catch_up_timeout", str(exc), nodes=list(exc.nodes)) from None
        except LeadershipLost as exc:
            raise HttpError("outcome_unknown", str(exc)) from None
        except (ConfigChangeError, ClientError) as exc:
            raise HttpError("outcome_unknown", str(exc)) from None
        except pykka.Timeout:
            raise HttpError(
                "outcome_unknown",
                f"no answer within {timeout:g} s; read the membership (GET /v1/status on "
                "the leader) before proposing again",
            ) from None

    def _leader_membership_check(self, request: Request) -> Any:
        """Membership as the leader sees it; redirects when this node does not lead."""
        self._started()
        m = self.node.view.latest()
        assert m is not None
        if m.state is not State.LEADER:
            raise self._redirect(request, m.current_leader)
        return m

    # --- key-value ----------------------------------------------------------------------

    def kv(self, request: Request) -> tuple[int, Any]:
        """``GET``/``PUT``/``DELETE /v1/kv/<key>``."""
        key = _check_key(request.params["key"], writing=request.method != "GET")
        if request.method == "GET":
            consistency = request.query.get("consistency", "linearizable")
            if consistency not in CONSISTENCY_LEVELS:
                raise HttpError(
                    "bad_consistency",
                    f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}; "
                    f"got {consistency!r}",
                )
            if consistency != "linearizable":
                raise HttpError(
                    "consistency_unavailable",
                    f"consistency={consistency} arrives with ReadIndex and lease reads; "
                    "today every read goes through the log (consistency=linearizable)",
                )
            response = self._submit(request, Get(key))
            if response.data is None:
                raise HttpError("key_not_found", f"no key {key!r}", key=key)
            return 200, {"key": key, "value": decode_value(response.data), "index": response.index}
        if request.method == "PUT":
            body = _object(request.json(), {"value"}, {"value"})
            text = _json_value(body["value"], "value")
            response = self._submit(request, Put(key, text))
            return 200, {
                "key": key,
                "index": response.index,
                "previous": decode_value(response.data),
                "existed": response.data is not None,
            }
        response = self._submit(request, Delete(key))
        if response.data is None:
            raise HttpError("key_not_found", f"no key {key!r}", key=key, index=response.index)
        return 200, {"key": key, "index": response.index, "previous": decode_value(response.data)}

    def cas(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/kv/<key>/cas`` with ``{"expected": v, "new": v}``; leaving out
        ``expected`` means "only if the key does not exist"."""
        key = _check_key(request.params["key"], writing=True)
        body = _object(request.json(), {"expected", "new"}, {"new"})
        expected = _json_value(body["expected"], "expected") if "expected" in body else None
        new = _json_value(body["new"], "new")
        response = self._submit(request, CompareAndSet(key, expected, new))
        result = response.data
        if not isinstance(result, CasResult):
            raise HttpError("internal", f"unexpected state machine answer {result!r}", status=500)
        if not result.swapped:
            raise HttpError(
                "cas_failed",
                "the key does not hold the expected value; nothing was written",
                key=key,
                current=decode_value(result.previous),
                exists=result.previous is not None,
                index=response.index,
            )
        return 200, {
            "key": key,
            "index": response.index,
            "swapped": True,
            "previous": decode_value(result.previous),
            "existed": result.previous is not None,
        }

    # --- status -------------------------------------------------------------------------

    def page(self, request: Request) -> tuple[int, Any]:
        """``GET /``: the status page."""
        return 200, RawBody(self._page, "text/html; charset=utf-8")

    def prometheus(self, request: Request) -> tuple[int, Any]:
        """``GET /metrics``."""
        return 200, RawBody(generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def status(self, request: Request) -> tuple[int, Any]:
        """``GET /v1/status``: this node's own view."""
        return 200, node_status(self.node)

    def cluster(self, request: Request) -> tuple[int, Any]:
        """``GET /v1/cluster``: every member's status, fetched by this node."""
        me = node_status(self.node)
        return 200, gather({me["url"]: me}, self.fetch_status)

    # --- admin --------------------------------------------------------------------------

    def init(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/init``: form a cluster from pristine nodes (send it to each)."""
        self._started()
        raw = _read_optional(request)
        body = _object(raw, {"members"}, set())
        members = body.get("members", list(self.node.directory.configured()))
        if not isinstance(members, list) or not members:
            raise HttpError("bad_request", "members must be a non-empty list of node ids")
        ids = [_node_id(n, "members[]") for n in members]
        addresses = {n: a for n, a in self.node.config.raft_addresses().items() if n in ids}
        try:
            self.node.raft.ask(
                InitWithConfig(ids, addresses), timeout=self.settings.request_timeout
            )
        except InitWithConfigError:
            raise HttpError(
                "not_pristine",
                "this node already belongs to a cluster (or another membership); init only "
                "forms a new cluster from pristine nodes",
            ) from None
        except ShuttingDown as exc:
            raise HttpError("shutting_down", str(exc)) from None
        except pykka.Timeout:
            raise HttpError("outcome_unknown", "no answer to InitWithConfig in time") from None
        return 200, {"node_id": self.node.node_id, "members": sorted(set(ids))}

    def _add(self, request: Request, learner: bool) -> tuple[int, Any]:
        body = _object(
            request.json(), {"id", "http_address", "raft_address"}, {"id", "http_address"}
        )
        node_id = _node_id(body["id"])
        http = _address(body["http_address"], "http_address")
        raft = body.get("raft_address")
        if raft is not None:
            raft = _address(raft, "raft_address")
        elif self.node.config.network == "tcp":
            raise HttpError("bad_request", "raft_address is required on a TCP network")
        self._leader_membership_check(request)
        record = encode_value({"http": http, "raft": raft})
        if self.node.state_machine.local_get(node_key(node_id)) != record:
            self._submit(request, Put(node_key(node_id), record))
        addresses = {node_id: raft} if raft else {}
        change = (
            ProposeConfigChange(add_non_voters=[node_id], addresses=addresses)
            if learner
            else ProposeConfigChange(add_members=[node_id], addresses=addresses)
        )
        return 200, _membership(self._change(request, change))

    def add_voter(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/voters``: add a node as a voter (it catches up first)."""
        return self._add(request, learner=False)

    def add_learner(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/learners``: add a node as a learner (never votes)."""
        return self._add(request, learner=True)

    def promote(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/promote``: make a learner a voter."""
        body = _object(request.json(), {"id"}, {"id"})
        node_id = _node_id(body["id"])
        m = self._leader_membership_check(request)
        if node_id not in m.non_voters:
            raise HttpError(
                "not_a_learner",
                f"node {node_id} is not a learner of this cluster; add it with "
                "POST /v1/admin/voters instead",
            )
        return 200, _membership(self._change(request, ProposeConfigChange(add_members=[node_id])))

    def remove(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/remove`` with ``{"ids": [...]}``: remove nodes."""
        body = _object(request.json(), {"ids"}, {"ids"})
        ids = body["ids"]
        if not isinstance(ids, list) or not ids:
            raise HttpError("bad_request", "ids must be a non-empty list of node ids")
        change = ProposeConfigChange(remove_members=[_node_id(n, "ids[]") for n in ids])
        self._leader_membership_check(request)
        return 200, _membership(self._change(request, change))

    def snapshot(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/snapshot``: compact this node's log now."""
        self._started()
        try:
            meta: SnapshotMeta | None = self.node.raft.ask(
                TriggerSnapshot(), timeout=self.settings.admin_timeout
            )
        except SnapshotsUnsupported as exc:
            raise HttpError("snapshots_unsupported", str(exc)) from None
        except ShuttingDown as exc:
            raise HttpError("shutting_down", str(exc)) from None
        except (RaftError, pykka.Timeout) as exc:
            raise HttpError("outcome_unknown", f"the snapshot did not finish: {exc}") from None
        out: dict[str, Any] = {"node_id": self.node.node_id, "snapshot": None}
        if meta is not None:
            out["snapshot"] = {
                "id": meta.snapshot_id,
                "index": meta.last_included.index,
                "term": meta.last_included.term,
                "size": meta.size,
            }
        return 200, out

    def transfer_leader(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/admin/transfer-leader``: not in this version."""
        raise HttpError(
            "not_implemented",
            "leadership transfer arrives with the library's TransferLeader (linearizable "
            "reads, PreVote and transfer); meanwhile removing or demoting the leader costs "
            "one election timeout",
        )


class RawBody:
    """A non-JSON answer (the page, the metrics)."""

    def __init__(self, data: bytes, content_type: str) -> None:
        self.data = data
        self.content_type = content_type


_WRITE_OPS = {("kv", "PUT"): "put", ("kv", "DELETE"): "delete", ("cas", "POST"): "cas"}


def _read_optional(request: Request) -> Any:
    length = request.environ.get("CONTENT_LENGTH") or ""
    if length in ("", "0"):
        return {}
    return request.json()


def _membership(response: ConfigChangeResponse) -> dict[str, Any]:
    config = response.membership
    voters = set(config.members) | set(config.members_after_consensus or ())
    return {
        "index": response.index,
        "voters": sorted(voters),
        "learners": sorted(set(config.non_voters) - voters),
    }


def _dump(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fetch_status(url: str, timeout: float = 1.0) -> dict[str, Any]:
    """GET ``url``/v1/status (for ``/v1/cluster``)."""
    from pykka_raft.kv.client import fetch_json

    result: dict[str, Any] = fetch_json(http_url(url) + "/v1/status", timeout)
    return result
