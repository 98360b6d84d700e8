"""``pykka_raft.kv.Client``: a small Python client for the key-value service.

It takes the base URLs of some nodes, finds the leader (following 307 redirects and the
``leader_url`` of 503 answers, trying the other URLs when a node is down or does not
know the leader), and raises typed exceptions (:mod:`pykka_raft.kv.errors`) for error
answers. Reads and definite refusals are retried within the deadline. Writes are sent in
client sessions (:mod:`pykka_raft.kv.writes`): a write whose answer was lost is resent
under the same sequence until the deadline and applied exactly once; only when no attempt
gave a definite answer before the deadline does it raise
:class:`~pykka_raft.kv.errors.UnknownOutcome`.

Each request uses its own connection, so one ``Client`` can be shared by threads.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pykka_raft.kv.errors import (
    BadRequest,
    ClusterUnreachable,
    KvError,
    NotAKvNode,
    RestoreIncomplete,
    ServerError,
    Unauthorized,
    Unavailable,
    UnknownOutcome,
)
from pykka_raft.kv.status import gather
from pykka_raft.kv.transport import base_url, compact, error_of, fetch_json, send, value_of
from pykka_raft.kv.values import check_body, check_settings, key_path, node_body
from pykka_raft.kv.writes import Outcome, SessionPool, WriteResult

_DOWN_FOR = 1.0
"""Seconds a node that did not answer counts as down: a redirect to it is not followed
(the redirecting node has not noticed that its leader died) until then."""

_RETRY_CODES = {
    "no_leader",
    "not_leader",
    "busy",
    "starting",
    "shutting_down",
    "node_stopped",
    "read_timeout",
}


class Client:
    """A client of the key-value service.

    Args:
        urls: base URLs of one or more nodes (``http://host:port``; ``host:port`` works
            too). Any node will do: the client finds the leader.
        timeout: seconds to wait for one node's answer.
        deadline: seconds one call may spend in total, finding the leader and retrying
            definite refusals (no leader, busy, starting) included.
        max_redirects: redirects followed in a row before giving up.
        sessions: send writes in client sessions, resent safely until ``deadline``
            (``False``: a write whose answer was lost raises ``UnknownOutcome`` at once).
        token: a bearer token, sent as ``Authorization: Bearer <token>`` with every
            request (nodes with a token file require one of theirs).

    Every method raises a :class:`~pykka_raft.kv.errors.KvError` subclass on failure:
    ``KeyNotFound``, ``CasFailed``, ``BadRequest`` (``bad_value`` before anything is sent
    for a value JSON does not carry exactly: :mod:`pykka_raft.kv.values`), ``Conflict``,
    ``Unavailable`` (no leader before the deadline), ``UnknownOutcome`` (a write that may
    have been applied), ``ClusterUnreachable`` (no node answered), ``Unauthorized`` (a node
    requires a token and this one has none or a wrong one), ``NotAKvNode`` (a URL where
    another server answers), ... Invalid arguments raise ``KvConfigError`` (a
    ``ValueError``) here.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        timeout: float = 10.0,
        deadline: float = 15.0,
        max_redirects: int = 5,
        sessions: bool = True,
        token: str | None = None,
    ) -> None:
        self.urls = check_settings(urls, timeout, deadline, max_redirects, token)
        self.token = token
        self.timeout = timeout
        self.deadline = deadline
        self.max_redirects = max_redirects
        self.leader_url: str | None = None
        self.sessions = SessionPool(self) if sessions else None

    # --- key-value ----------------------------------------------------------------------

    def get(self, key: str, consistency: str = "linearizable") -> Any:
        """The value of ``key`` (raises ``KeyNotFound``)."""
        query = "" if consistency == "linearizable" else f"?consistency={consistency}"
        return value_of(self.call("GET", key_path(key) + query, idempotent=True), self.leader_url)

    def put(self, key: str, value: Any) -> dict[str, Any]:
        """Set ``key`` to the JSON value ``value``; returns ``{"index", "previous",
        "existed"}``."""
        result: dict[str, Any] = self._write("PUT", key_path(key), {"value": value})
        return result

    def delete(self, key: str) -> dict[str, Any]:
        """Remove ``key``; returns ``{"index", "previous"}`` (raises ``KeyNotFound``)."""
        result: dict[str, Any] = self._write("DELETE", key_path(key), {})
        return result

    _ABSENT: Any = object()

    def cas(self, key: str, expected: Any = _ABSENT, new: Any = None) -> dict[str, Any]:
        """Set ``key`` to ``new`` if it holds ``expected`` (leave ``expected`` out: only if
        the key does not exist). Raises ``CasFailed`` (with ``current``) otherwise."""
        body: dict[str, Any] = {"new": new}
        if expected is not Client._ABSENT:
            body["expected"] = expected
        result: dict[str, Any] = self._write("POST", key_path(key) + "/cas", body)
        return result

    def write(
        self, method: str, path: str, body: dict[str, Any], deadline: float | None = None
    ) -> WriteResult:
        """Send one write (``PUT``/``DELETE /v1/kv/<key>``, ``POST /v1/kv/<key>/cas``)
        in a session and say what became of it: applied, not applied, or unknown after
        ``deadline`` seconds (default: the client's). Never raises for the cluster's
        answers: the :class:`~pykka_raft.kv.writes.WriteResult` holds them."""
        if self.sessions is None:
            raise ValueError("write() needs a client made with sessions=True")
        try:
            check_body(body)  # before a session is opened
        except BadRequest as exc:
            return WriteResult(Outcome.NOT_APPLIED, error=exc)
        until = time.monotonic() + (self.deadline if deadline is None else deadline)
        return self.sessions.write(method, path, body, until)

    def close(self) -> None:
        """Close this client's idle sessions (best effort; they expire otherwise)."""
        if self.sessions is not None:
            self.sessions.close(min(self.timeout, 2.0))

    def _write(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if self.sessions is None:
            return self.call(method, path, body or None)
        return self.write(method, path, body).unwrap()

    # --- admin --------------------------------------------------------------------------

    def init(self, members: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Form a cluster: send init to every URL this client was given.

        Each node is first asked for its id and addresses, and every node gets them all
        (``nodes``), so nodes started without peers (or on ports the system chose) can
        form a cluster. Without ``members``, each node proposes itself, its configured
        peers and the nodes given here.
        """
        nodes: dict[str, dict[str, str]] = {}
        for url in self.urls:
            status = self.call("GET", "/v1/status", target=url, follow=False)
            node_id = str(status["node_id"])
            record = (status.get("nodes") or {}).get(node_id) or {}
            nodes[node_id] = {k: v for k, v in record.items() if k in ("raft", "http") and v}
        body: dict[str, Any] = {"nodes": nodes}
        if members is not None:
            body["members"] = list(members)
        return [
            self.call("POST", "/v1/admin/init", body, target=url, follow=False) for url in self.urls
        ]

    def add_voter(self, node_id: int, http_address: str, raft_address: str | None = None) -> Any:
        """Add a node as a voter; returns the new membership."""
        return self.call(
            "POST", "/v1/admin/voters", node_body(node_id, http_address, raft_address), admin=True
        )

    def add_learner(self, node_id: int, http_address: str, raft_address: str | None = None) -> Any:
        """Add a node as a learner; returns the new membership."""
        return self.call(
            "POST", "/v1/admin/learners", node_body(node_id, http_address, raft_address), admin=True
        )

    def move(self, node_id: int, http_address: str | None, raft_address: str | None = None) -> Any:
        """Record a member's new addresses (``raft_address`` required on a TCP network;
        ``None`` keeps the recorded one); returns the membership."""
        body: dict[str, Any] = {"id": node_id}
        for field, value in (("http_address", http_address), ("raft_address", raft_address)):
            if value is not None:
                body[field] = value
        return self.call("POST", "/v1/admin/move", body, admin=True)

    def promote(self, node_id: int) -> Any:
        """Make a learner a voter."""
        return self.call("POST", "/v1/admin/promote", {"id": node_id}, admin=True)

    def remove(self, *node_ids: int) -> Any:
        """Remove nodes from the cluster."""
        return self.call("POST", "/v1/admin/remove", {"ids": list(node_ids)}, admin=True)

    def snapshot(self, url: str | None = None) -> Any:
        """Compact one node's log now (default: the first URL)."""
        return self.call(
            "POST", "/v1/admin/snapshot", None, target=base_url(url or self.urls[0]), follow=False
        )

    def transfer_leader(self, node_id: int | None = None) -> Any:
        """Hand leadership to ``node_id`` (``None``: the most up-to-date voter); returns
        ``{"leader_id", "term", "leader_url"}`` once it leads. Raises ``Conflict``
        (``transfer_failed``) if it did not take over within an election timeout."""
        body = {} if node_id is None else {"id": node_id}
        result = self.call("POST", "/v1/admin/transfer-leader", body, admin=True)
        if isinstance(result, dict) and result.get("leader_url"):
            self.leader_url = base_url(result["leader_url"])
        return result

    def backup(self) -> dict[str, Any]:
        """Every key and value of the cluster, from the leader: ``{"node_id", "index",
        "count", "items": {key: value}}`` (``docs/kv-service.md``, Backup and restore)."""
        result: dict[str, Any] = self.call("GET", "/v1/admin/backup", idempotent=True)
        return result

    def restore(self, items: dict[str, Any], threads: int = 8) -> int:
        """Write every ``key: value`` of a backup's ``items`` (existing keys are
        overwritten); the number written. Every key is tried: if some fail,
        :class:`RestoreIncomplete` names each with its error."""
        keys = sorted(items)
        if any(not isinstance(k, str) or not k for k in keys):
            raise ValueError("a backup's keys are non-empty strings")
        failed: dict[str, KvError] = {}
        with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
            writes = {pool.submit(self.put, key, items[key]): key for key in keys}
            for done in concurrent.futures.as_completed(writes):
                error = done.exception()
                if isinstance(error, KvError):
                    failed[writes[done]] = error
                elif error is not None:
                    raise error
        if failed:
            raise RestoreIncomplete(failed, len(keys))
        return len(keys)

    def status(self, url: str | None = None) -> Any:
        """One node's own view (``GET /v1/status``; default: the first URL)."""
        return self.call("GET", "/v1/status", target=base_url(url or self.urls[0]), follow=False)

    def cluster_status(self) -> dict[str, Any]:
        """The whole cluster's view, gathered from every node this client can find: the
        given URLs and the members they know of."""
        seeds: dict[str, Any] = {}
        strangers: list[NotAKvNode] = []
        for url in self.urls:
            try:
                seeds[url] = self._status_of(url)
            except Unauthorized:
                raise  # not a node that is down: every node will say the same
            except (OSError, KvError) as exc:
                seeds[url] = f"{type(exc).__name__}: {exc}"
                strangers += [exc] if isinstance(exc, NotAKvNode) else []
        if len(strangers) == len(seeds):
            raise strangers[0]  # no URL is a node's: a mistake, not nodes that are down
        if all(isinstance(v, str) for v in seeds.values()):
            raise ClusterUnreachable(
                "", "no node answered: " + "; ".join(f"{u}: {e}" for u, e in seeds.items())
            )
        return gather(seeds, self._status_of)

    def _status_of(self, url: str) -> Any:
        return fetch_json(url + "/v1/status", min(self.timeout, 3.0), self.token)

    # --- the request loop ---------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool = False,
        admin: bool = False,
        target: str | None = None,
        follow: bool = True,
        until: float | None = None,
    ) -> Any:
        """Send a request, following redirects to the leader; return the JSON answer.

        Args:
            idempotent: safe to resend after a broken connection (reads).
            admin: a membership change: waits longer for the answer.
            target: the node to ask first (default: the known leader, else the first URL).
            follow: False: ask ``target`` only, whatever it answers.
            until: the deadline (``time.monotonic()``) instead of ``deadline`` from now.
        """
        check_body(body)
        payload = None if body is None else compact(body)
        timeout = max(self.timeout, 65.0) if admin else self.timeout
        deadline = time.monotonic() + self.deadline + (timeout if admin else 0)
        if until is not None:
            deadline = until
        order = [u for u in [target or self.leader_url] if u] + self.urls
        queue = list(dict.fromkeys(order))
        current = queue[0]
        redirects = 0
        down: dict[str, str] = {}
        down_at: dict[str, float] = {}  # when each node of ``down`` failed to answer
        strangers: set[str] = set()  # URLs where another server answers: never asked again
        last: KvError | None = None
        pause = 0.05
        while True:
            try:
                response, _ = send(current, method, path, payload, timeout, self.token)
            except OSError as exc:
                if getattr(exc, "sent", False) and not idempotent and method != "GET":
                    raise UnknownOutcome(
                        "outcome_unknown",
                        f"the connection to {current} broke after the request was sent "
                        f"({exc}); it may have been applied: read it back before retrying",
                    ) from exc
                down[current] = f"{type(exc).__name__}: {exc}"
                down_at[current] = time.monotonic()
                redirects = 0  # a node that is down ends a run of redirects
                if current == self.leader_url:
                    self.leader_url = None
                if not follow:
                    raise ClusterUnreachable("", f"{current} did not answer: {exc}") from exc
                nxt = next((u for u in self.urls if u not in down and u not in strangers), None)
                if nxt is None:
                    if last is not None and time.monotonic() < deadline:
                        down.clear()  # some node answered before: try them all again
                        time.sleep(pause)
                        pause = min(pause * 2, 0.5)
                        current = next((u for u in self.urls if u not in strangers), current)
                        continue
                    raise ClusterUnreachable(
                        "",
                        "no node answered: " + "; ".join(f"{u}: {e}" for u, e in down.items()),
                    ) from exc
                current = nxt
                continue
            if 200 <= response.status < 300 and response.text is None:
                if follow and not path.startswith("/v1/admin/snapshot"):
                    self.leader_url = current
                return response.body
            error = error_of(response, current)
            if isinstance(error, NotAKvNode):  # not retried; the other URLs may be nodes
                strangers.add(current)
                if current == self.leader_url:
                    self.leader_url = None
                nxt = next((u for u in self.urls if u not in down and u not in strangers), None)
                if not follow or nxt is None:
                    raise error
                current = nxt
                continue
            if not follow:
                if error.code == "starting" and time.monotonic() < deadline:
                    time.sleep(pause)  # the node is loading its state: ask it again
                    pause = min(pause * 2, 0.5)
                    continue
                raise error
            if response.status == 307 and "location" in response.headers:
                target = base_url(response.headers["location"])
                if time.monotonic() - down_at.get(target, -math.inf) < _DOWN_FOR:
                    # The leader it names did not answer just now: it died and this node
                    # has not noticed yet. Ask the others, after a pause, until one knows
                    # the new leader (within the deadline).
                    last = Unavailable(
                        "not_leader", f"{current} redirects to {target}, which is down", 503
                    )
                    if time.monotonic() >= deadline:
                        raise last
                    redirects = 0
                    current = _after(self.urls, current, down_at)
                    time.sleep(pause)
                    pause = min(pause * 2, 0.5)
                    continue
                redirects += 1
                if redirects > self.max_redirects:
                    raise Unavailable(
                        "not_leader", f"more than {self.max_redirects} redirects in a row", 503
                    )
                current = target
                self.leader_url = current
                continue
            if isinstance(error, Unavailable) and error.code in _RETRY_CODES:
                last = error
                if time.monotonic() >= deadline:
                    raise error
                redirects = 0
                if error.leader_url and base_url(error.leader_url) != current:
                    current = base_url(error.leader_url)
                    continue
                # No usable leader hint: ask the next node after a short pause.
                idx = self.urls.index(current) if current in self.urls else -1
                current = self.urls[(idx + 1) % len(self.urls)]
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
                continue
            if isinstance(error, ServerError) and not error.code:
                raise ServerError("internal", error.message, response.status, error.details)
            raise error


def _after(urls: list[str], current: str, down_at: dict[str, float]) -> str:
    """The next of ``urls`` after ``current`` that has not failed to answer within
    :data:`_DOWN_FOR` (``current`` itself if every other one has)."""
    start = urls.index(current) + 1 if current in urls else 0
    now = time.monotonic()
    for url in urls[start:] + urls[:start]:
        if now - down_at.get(url, -math.inf) >= _DOWN_FOR:
            return url
    return current
