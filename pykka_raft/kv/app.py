"""The HTTP JSON API as a plain WSGI application.

Routing is a small table of (methods, pattern, handler). Every answer is JSON (the status
page and ``/metrics`` aside); every error is ``{"error": {"code", "message", ...}}`` with a
stable code from :data:`pykka_raft.kv.errors.CODES`. A node with a token file lets a
request through only with one of its tokens (:mod:`~pykka_raft.kv.auth`), whatever the
route. The handlers live by concern:
:mod:`~pykka_raft.kv.kv_api` (keys), :mod:`~pykka_raft.kv.admin_api` (membership,
snapshots, transfer), and the status endpoints here; every call to Raft goes through
:mod:`~pykka_raft.kv.gateway`.
"""

from __future__ import annotations

import functools
import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pykka_raft.kv.admin_api import AdminApi
from pykka_raft.kv.auth import BearerCheck, load_tokens
from pykka_raft.kv.config import http_url
from pykka_raft.kv.gateway import CONSISTENCY_LEVELS, RaftGateway
from pykka_raft.kv.kv_api import KvApi
from pykka_raft.kv.metrics import make_registry
from pykka_raft.kv.node import KvNode
from pykka_raft.kv.status import gather, node_status
from pykka_raft.kv.wsgi import (
    MAX_KEY_BYTES,
    SESSION_FIELDS_BYTES,
    HttpError,
    RawBody,
    Request,
    dump,
    request_path,
)

logger = logging.getLogger("pykka_raft.kv.http")

__all__ = ["CONSISTENCY_LEVELS", "MAX_KEY_BYTES", "HttpError", "KvApp", "RawBody", "Request"]

Handler = Callable[[Request], tuple[int, Any]]

_WRITE_OPS = {("kv", "PUT"): "put", ("kv", "DELETE"): "delete", ("cas", "POST"): "cas"}


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""Request methods the request counter names; any other is counted as ``other``."""

ALWAYS_SERVED = frozenset({"page", "metrics", "status"})
"""Routes that never wait on Raft or on other nodes. With ``HttpSettings.threads`` above 1
at most ``threads - 1`` other requests are handled at once, so one thread stays free for
these: a node whose writes hang (its cluster lost its quorum) still answers its health
checks and metrics at once."""

SLOT_PATIENCE = 0.2
"""Seconds a request waits for one of the ``threads - 1`` slots before ``503 busy``; it is
refused at once when every slot has been held that long already (the requests holding
them are stuck, not just busy)."""


class KvApp:
    """The WSGI application of one node.

    Args:
        node: the node it serves (started or about to be).
        fetch_status: gets another node's ``/v1/status`` from its base URL, for
            ``/v1/cluster``; raises on failure. By default it sends this node's first
            token, so nodes that share a token file see each other.
        tokens: the bearer tokens every request must carry one of (``None``: those of
            ``[http] token_file``, read now; none without one: the API is open).
    """

    def __init__(
        self,
        node: KvNode,
        fetch_status: Callable[[str], dict[str, Any]] | None = None,
        tokens: Sequence[str] | None = None,
    ) -> None:
        self.node = node
        self.settings = node.config.http
        if tokens is None:
            token_file = self.settings.token_file
            tokens = load_tokens(token_file) if token_file is not None else ()
        self.auth = BearerCheck(tokens)
        self.gateway = RaftGateway(node)
        self.registry, self.metrics = make_registry(node)
        own = tokens[0] if tokens else None
        self.fetch_status = fetch_status or functools.partial(_fetch_status, token=own)
        self._page = resources.files("pykka_raft.kv").joinpath("static/status.html").read_bytes()
        self._inflight = 0
        self._idle = threading.Condition()
        self._slots = threading.BoundedSemaphore(max(1, self.settings.threads - 1))
        self._slot_holders: dict[int, float] = {}  # thread id -> when it took its slot
        self._holders_lock = threading.Lock()
        self.draining = False
        kv, admin = KvApi(self.gateway), AdminApi(self.gateway)
        post = frozenset({"POST"})
        get = frozenset({"GET"})
        self.routes: list[tuple[str, frozenset[str], re.Pattern[str], Handler]] = [
            ("page", get, re.compile(r"/"), self.page),
            ("metrics", get, re.compile(r"/metrics"), self.prometheus),
            ("status", get, re.compile(r"/v1/status"), self.status),
            ("cluster", get, re.compile(r"/v1/cluster"), self.cluster),
            # re.S: a key may hold any character, a newline (%0A) included.
            ("cas", post, re.compile(r"/v1/kv/(?P<key>.+)/cas", re.S), kv.cas),
            (
                "kv",
                frozenset({"GET", "PUT", "DELETE"}),
                re.compile(r"/v1/kv/(?P<key>.+)", re.S),
                kv.kv,
            ),
            ("sessions", post, re.compile(r"/v1/sessions"), kv.register),
            (
                "session",
                frozenset({"DELETE"}),
                re.compile(r"/v1/sessions/(?P<client_id>[^/]+)"),
                kv.close,
            ),
            ("init", post, re.compile(r"/v1/admin/init"), admin.init),
            ("add_voter", post, re.compile(r"/v1/admin/voters"), admin.add_voter),
            ("add_learner", post, re.compile(r"/v1/admin/learners"), admin.add_learner),
            ("promote", post, re.compile(r"/v1/admin/promote"), admin.promote),
            ("remove", post, re.compile(r"/v1/admin/remove"), admin.remove),
            ("move", post, re.compile(r"/v1/admin/move"), admin.move),
            ("snapshot", post, re.compile(r"/v1/admin/snapshot"), admin.snapshot),
            ("backup", get, re.compile(r"/v1/admin/backup"), admin.backup),
            (
                "transfer_leader",
                post,
                re.compile(r"/v1/admin/transfer-leader"),
                admin.transfer_leader,
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
        # HEAD is GET without the body: served by the GET handler, wherever GET is allowed.
        head = environ.get("REQUEST_METHOD") == "HEAD"
        if head:
            environ = {**environ, "REQUEST_METHOD": "GET"}
        try:
            self.auth.check(environ)  # first: nothing is told to a request without a token
            if self.draining:
                raise HttpError(
                    "shutting_down",
                    "this node is shutting down; send the request to another node",
                )
            route_name, handler, params = self._route(environ)
            limit = self.settings.max_body_bytes + SESSION_FIELDS_BYTES
            request = Request(environ, params, limit)
            status, body = self._handle(route_name, handler, request)
            if isinstance(body, RawBody):
                payload, headers = body.data, [("Content-Type", body.content_type)]
            else:
                payload = dump(body)
                headers = [("Content-Type", "application/json; charset=utf-8")]
            op = _WRITE_OPS.get((route_name, environ["REQUEST_METHOD"]))
            if op is not None and status == 200:
                self.metrics.writes.labels(op).observe(time.perf_counter() - started)
        except HttpError as exc:
            status = exc.status
            error = {"code": exc.code, "message": exc.message, **exc.details}
            payload = dump({"error": error})
            headers = [("Content-Type", "application/json; charset=utf-8"), *exc.headers]
        except Exception:
            logger.exception("unexpected failure serving %s", environ.get("PATH_INFO"))
            status = 500
            payload = dump(
                {"error": {"code": "internal", "message": "unexpected failure; see the node's log"}}
            )
            headers = [("Content-Type", "application/json; charset=utf-8")]
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()
        method = "HEAD" if head else environ.get("REQUEST_METHOD", "?")
        method = method if method in _METHODS else "other"  # a client cannot add series
        self.metrics.requests.labels(method, route_name, status).inc()
        headers += [("Content-Length", str(len(payload))), ("Cache-Control", "no-store")]
        start_response(f"{status} {http.client.responses.get(status, '')}", headers)
        return [b""] if head else [payload]  # HEAD: the GET's headers, never a body

    def _handle(self, route_name: str, handler: Handler, request: Request) -> tuple[int, Any]:
        """Run ``handler``; a request that may wait first takes one of the waiting slots."""
        if route_name in ALWAYS_SERVED:
            return handler(request)
        if not self._take_slot():
            raise HttpError(
                "busy",
                f"this node's other {self.settings.threads - 1} request threads are all "
                "waiting on the cluster (the last one is kept for status and metrics); "
                "retry shortly",
                headers=[("Retry-After", "1")],
            )
        me = threading.get_ident()
        with self._holders_lock:
            self._slot_holders[me] = time.monotonic()
        try:
            return handler(request)
        finally:
            self._slots.release()  # first: a thread seeing only old holders then finds it free
            with self._holders_lock:
                del self._slot_holders[me]

    def _take_slot(self) -> bool:
        """One of the slots of requests that may wait: at once, or within
        :data:`SLOT_PATIENCE` unless every holder has already held its slot that long."""
        if self._slots.acquire(blocking=False):
            return True
        with self._holders_lock:
            youngest = max(self._slot_holders.values(), default=None)
        if youngest is not None and time.monotonic() - youngest >= SLOT_PATIENCE:
            return self._slots.acquire(blocking=False)  # freed meanwhile, or stuck
        return self._slots.acquire(timeout=SLOT_PATIENCE)

    def _route(self, environ: dict[str, Any]) -> tuple[str, Handler, dict[str, str]]:
        path = request_path(environ)
        method = environ["REQUEST_METHOD"]
        allowed: set[str] = set()
        for name, methods, pattern, fn in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method in methods:
                return name, fn, match.groupdict()
            allowed |= methods | ({"HEAD"} if "GET" in methods else set())
        if allowed:
            raise HttpError(
                "method_not_allowed",
                f"{method} is not allowed on {path}; allowed: " + ", ".join(sorted(allowed)),
                headers=[("Allow", ", ".join(sorted(allowed)))],
                allowed=sorted(allowed),
            )
        raise HttpError("not_found", f"no route {path}; see docs/kv-service.md")

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


def _fetch_status(url: str, timeout: float = 1.0, token: str | None = None) -> dict[str, Any]:
    """GET ``url``/v1/status (for ``/v1/cluster``), with this node's token if it has one."""
    from pykka_raft.kv.transport import fetch_json

    result: dict[str, Any] = fetch_json(http_url(url) + "/v1/status", timeout, token)
    return result
