"""From HTTP to the Raft node and back: every call the API makes to Raft, and how each
library error becomes an HTTP answer.

The HTTP worker threads ``ask`` the node's Raft ref and wait (with a deadline); no Raft
actor ever waits on them. A request a node cannot serve because it does not lead is
redirected to the leader (307, ``Location`` on the leader's HTTP API, the leader's id in
the body), or answered 503 when no leader or no address is known.

Reads live in one place, :meth:`RaftGateway.read`, and write nothing to the log
(``docs/reads.md``): a linearizable read is ``ClientRead(Get(key), ReadPolicy.READ_INDEX)``
served by the node asked (a follower asks the leader for the read index), a lease read is
``ReadPolicy.LEASE`` on the leader (others redirect, like writes), and a stale read is this
node's state machine as it is.
"""

from __future__ import annotations

from typing import Any

import pykka

from pykka_raft import (
    ApplicationError,
    Busy,
    CatchUpTimeout,
    ChangeInProgress,
    ClientError,
    ClientPayload,
    ClientPayloadResponse,
    ClientRead,
    ClientReadResponse,
    ConfigChangeError,
    ConfigChangeResponse,
    ForwardToLeader,
    Get,
    InoperableConfig,
    LeadershipLost,
    NodeNotLeader,
    Noop,
    ProposeConfigChange,
    RaftMetrics,
    ReadPolicy,
    ResponseMode,
    SessionExpired,
    ShuttingDown,
    StaleSequence,
    State,
)
from pykka_raft.kv.node import KvNode
from pykka_raft.kv.wsgi import HttpError, Request

CONSISTENCY_LEVELS = ("linearizable", "lease", "stale")
"""The values of a read's ``consistency`` parameter (``docs/kv-service.md``)."""


class RaftGateway:
    """The Raft calls of one node's HTTP API.

    Args:
        node: the node (started, or about to be).
    """

    def __init__(self, node: KvNode) -> None:
        self.node = node
        self.settings = node.config.http

    def redirect(
        self, request: Request, leader_id: int | None, why: str | None = None
    ) -> HttpError:
        """The answer for a request this node cannot serve because ``leader_id`` leads
        (``why``: the node's own reason when it knows no leader; a node that was never
        formed into a cluster says so: ``not_initialized``)."""
        if leader_id is None and why is None and self.not_initialized():
            return _not_initialized(self.node.node_id)
        if leader_id is None:
            return HttpError(
                "no_leader",
                why or "no leader is known (an election is under way); retry shortly",
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

    def not_initialized(self) -> bool:
        """True while this node has no membership at all: it was never sent ``init`` and
        no leader has added it (a node added by ``add-learner`` has one as soon as the
        leader's first entries reach it)."""
        m = self.node.view.latest()
        if m is None:
            return False
        config = m.membership_config
        return not (config.members or config.non_voters or config.members_after_consensus)

    def started(self) -> RaftMetrics:
        """The node's latest metrics, once it has loaded its state.

        Raises:
            HttpError: ``starting`` (503) if it has not within a short wait;
                ``node_stopped`` (503) if its Raft node has stopped on its own.
        """
        if self.node.stopped_on_its_own:
            raise _node_stopped()
        # A node loads its state in milliseconds: wait that long rather than refuse.
        wait = min(self.settings.request_timeout, 2.0) if self.node.has_raft else 0.0
        metrics = self.node.view.wait_for(lambda m: m, timeout=wait)
        if metrics is None:
            raise HttpError(
                "starting",
                "this node is still starting; retry shortly",
                headers=[("Retry-After", "1")],
            )
        return metrics

    def leader_metrics(self, request: Request) -> RaftMetrics:
        """The node's metrics if it leads; a redirect to the leader otherwise."""
        m = self.started()
        if m.state is not State.LEADER:
            raise self.redirect(request, m.current_leader)
        return m

    # --- writes ------------------------------------------------------------------------

    def submit(self, request: Request, command: Any) -> ClientPayloadResponse:
        """Send ``command`` through the log; the answer once the entry is applied."""
        self.started()
        timeout = self.settings.request_timeout
        is_read = isinstance(command, Get)
        try:
            response: ClientPayloadResponse = self.node.raft.ask(
                ClientPayload.new(command, ResponseMode.APPLIED), timeout=timeout
            )
            return response
        except ForwardToLeader as exc:
            raise self.redirect(request, exc.leader_id, exc.why) from None
        except Busy:
            raise HttpError(
                "busy",
                "the leader takes no writes now (too many in flight, or it is handing "
                "leadership over); retry shortly",
                headers=[("Retry-After", "1")],
            ) from None
        except ApplicationError as exc:
            raise _refusal(exc.error) from None
        except (ShuttingDown, pykka.ActorDeadError) as exc:
            # The node never took the call (a write it took and then stopped on is
            # answered OutcomeUnknown or StorageError, below): definitely not applied.
            if self.node.stopped_on_its_own:
                raise _node_stopped() from None
            raise HttpError(
                "shutting_down", f"the node is stopping and did not take this call: {exc}"
            ) from None
        except ClientError as exc:  # OutcomeUnknown, InternalError, StorageError
            raise HttpError("outcome_unknown", str(exc)) from None
        except pykka.Timeout:
            if is_read:
                raise _read_timeout(timeout) from None
            raise HttpError(
                "outcome_unknown",
                f"no answer within {timeout:g} s for this write; it may still be applied",
            ) from None

    # --- reads: the one place ----------------------------------------------------------

    def read(self, request: Request, query: Get, consistency: str) -> tuple[Any, int]:
        """Answer a read: ``(stored value or None, index)``.

        ``linearizable`` is a ``READ_INDEX`` read served here, whatever this node's role;
        ``lease`` is a ``LEASE`` read, served by the leader only (a follower redirects it,
        as it does writes: it has no lease); ``stale`` reads this node's state machine as
        it is (any node, no round trip; the index is a lower bound of what it had
        applied).

        Raises:
            HttpError: ``bad_consistency``, a redirect, or what :meth:`_client_read`
                raises.
        """
        if consistency not in CONSISTENCY_LEVELS:
            raise HttpError(
                "bad_consistency",
                f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}; got {consistency!r}",
            )
        if consistency == "stale":
            index = self.started().last_applied
            return self.node.state_machine.local_get(query.key), index
        if consistency == "lease":
            self.leader_metrics(request)  # a follower redirects a lease read to the leader
        else:
            self.started()
        policy = ReadPolicy.LEASE if consistency == "lease" else ReadPolicy.READ_INDEX
        return self._client_read(request, query, policy)

    def _client_read(self, request: Request, query: Get, policy: ReadPolicy) -> tuple[Any, int]:
        """``ClientRead``: a read that writes nothing to the log (``docs/reads.md``).

        A read changes nothing, so every failure is a definite one: 503 when this node
        cannot serve it now (no leader, the leader's read index not confirmed: the
        redirect names the leader when known; stopping), 504 ``read_timeout`` when no
        answer came in time.
        """
        timeout = self.settings.request_timeout
        try:
            response: ClientReadResponse = self.node.raft.ask(
                ClientRead(query, policy), timeout=timeout
            )
        except ForwardToLeader as exc:
            raise self.redirect(request, exc.leader_id, exc.why) from None
        except ApplicationError as exc:
            raise HttpError(
                "internal", f"the state machine could not answer the read: {exc.error}", status=500
            ) from None
        except (ClientError, pykka.ActorDeadError) as exc:  # ShuttingDown, InternalError
            raise HttpError("shutting_down", f"the node stopped serving reads: {exc}") from None
        except pykka.Timeout:
            raise _read_timeout(timeout) from None
        return response.data, response.index

    # --- membership --------------------------------------------------------------------

    def change(self, request: Request, change: ProposeConfigChange) -> ConfigChangeResponse:
        """Propose a membership change; the answer once the final configuration commits."""
        self.started()
        timeout = self.settings.admin_timeout
        try:
            response: ConfigChangeResponse = self.node.raft.ask(change, timeout=timeout)
            return response
        except NodeNotLeader as exc:
            raise self.redirect(request, exc.leader_id) from None
        except Noop as exc:  # says what the membership is (a node to remove is not in it)
            raise HttpError("noop", str(exc) or "the membership already is as asked") from None
        except InoperableConfig as exc:
            raise HttpError("inoperable_config", str(exc)) from None
        except ChangeInProgress as exc:
            raise HttpError("change_in_progress", str(exc)) from None
        except CatchUpTimeout as exc:
            raise HttpError("catch_up_timeout", str(exc), nodes=list(exc.nodes)) from None
        except LeadershipLost as exc:
            raise HttpError("outcome_unknown", str(exc)) from None
        except (ConfigChangeError, ClientError, ShuttingDown, pykka.ActorDeadError) as exc:
            raise HttpError("outcome_unknown", str(exc)) from None
        except pykka.Timeout:
            raise HttpError(
                "outcome_unknown",
                f"no answer within {timeout:g} s; read the membership (GET /v1/status on "
                "the leader) before proposing again",
            ) from None


def _not_initialized(node_id: int) -> HttpError:
    # The status is given explicitly: a client that does not know the code still reads a
    # 503 as "unavailable, nothing was done".
    return HttpError(
        "not_initialized",
        f"node {node_id} is not part of a cluster yet (it has no membership; no election "
        "will start): form the cluster with `pykka-raft-kv --url URL... init`, or add this "
        "node to a running cluster with `pykka-raft-kv add-learner` (or add-voter)",
        status=503,
    )


def _node_stopped() -> HttpError:
    return HttpError(
        "node_stopped",
        "this node's Raft node has stopped after a fatal failure (see its log) and did not "
        "take the request: nothing was done; send it to another node",
    )


def _read_timeout(timeout: float) -> HttpError:
    return HttpError(
        "read_timeout",
        f"no answer within {timeout:g} s for this read (nothing was changed); send it "
        "again, or to another node",
    )


def _refusal(error: BaseException) -> HttpError:
    """The answer to a write the leader or the state machine refused (nothing applied)."""
    if isinstance(error, StaleSequence):
        return HttpError(
            "stale_sequence",
            str(error),
            client_id=error.client_id,
            sequence=error.sequence,
            latest=error.latest,
        )
    if isinstance(error, SessionExpired):
        return HttpError(
            "session_expired", str(error), client_id=error.client_id, sequence=error.sequence
        )
    return HttpError("bad_request", f"the state machine refused it: {error}")
