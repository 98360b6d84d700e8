"""The exception hierarchy: one root, :class:`RaftError`.

Recoverable API errors are raised into the caller's future (``ref.ask(...)`` raises them).
Rejections inside the protocol (a vote not granted, an append rejected) are data in the
response messages, never exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pykka_raft.messages import ClientPayload
    from pykka_raft.types import LogIndex, NodeId


class RaftError(Exception):
    """Root of every error raised by pykka_raft."""


def _not_leader(leader_id: NodeId | None, why: str | None = None) -> str:
    hint = (
        f"send it to node {leader_id}"
        if leader_id is not None
        else why or "no leader is known yet: retry after an election timeout"
    )
    return f"this node is not the leader; {hint}"


class ConfigError(RaftError, ValueError):
    """A :class:`~pykka_raft.config.Config` field or combination of fields is invalid (or
    an argument of another settings holder, ``owner``, such as ``TcpNetwork``).

    The message names the field and the rule it broke.
    """

    def __init__(self, field: str, rule: str, owner: str = "Config") -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"invalid {owner}.{field}: {rule}")


class ClientError(RaftError):
    """Base of the errors a client write (:class:`~pykka_raft.messages.ClientPayload`) can get."""


class ForwardToLeader(ClientError):
    """This node is not the leader; send the payload to ``leader_id`` instead.

    The write was definitely not committed through this node. The original payload is
    handed back so the application can forward it, buffer it until a leader is known, or
    fail its own client. ``leader_id`` is ``None`` while no leader is known (an election is
    under way): retry after a short pause. ``why`` replaces that advice when the node knows
    better (it was removed from the cluster: ask a member instead).
    """

    def __init__(
        self, payload: ClientPayload | None, leader_id: NodeId | None, why: str | None = None
    ) -> None:
        self.payload = payload
        self.leader_id = leader_id
        self.why = why
        super().__init__(_not_leader(leader_id, why))


class ApplicationError(ClientError):
    """The application refused a write or a read.

    ``error`` is the application's own exception, passed through unchanged. For a write:
    the storage refused the entry in ``AppendEntryToLog`` (application validation; the
    entry was not committed, its log slot holds a blank entry instead), the leader refused
    a value the codec cannot carry (never appended), or the state machine refused the
    committed entry at apply time (applied as a no-op on every replica). For a
    ``ClientRead``: the state machine refused the query (``what`` is ``"query"``).
    """

    def __init__(self, error: BaseException, what: str = "entry") -> None:
        self.error = error
        super().__init__(f"the application rejected the {what}: {error!r}")


class Busy(ClientError):
    """The leader already holds ``Config.max_pending_writes`` writes that are not answered
    yet; this one was refused, definitely not committed.

    Retry after a short pause (the payload is handed back), or raise the limit if the
    machine has the memory and the clients can wait longer.
    """

    def __init__(
        self, payload: ClientPayload | None, limit: int, detail: str | None = None
    ) -> None:
        self.payload = payload
        super().__init__(
            f"the leader is busy: {detail}"
            if detail
            else f"the leader is busy: {limit} writes wait for an answer "
            "(Config.max_pending_writes); retry after a short pause"
        )


class InternalError(ClientError):
    """An internal failure (e.g. the storage failed and the node stopped).

    Whether the write committed is unknown; the node that raised it has stopped.
    """


class ShuttingDown(ClientError):
    """The node is shutting down (or has stopped) and did not take this call.

    For a client write it means *not accepted*: the write was never appended, so it is
    definitely not committed; send it to another node of the cluster. A write the node had
    already taken when it stopped is answered otherwise: ``OutcomeUnknown`` once its entry
    was appended and still undecided (it may commit through the rest of the cluster),
    ``ForwardToLeader`` while it was still queued (never appended, not committed). Other
    calls still waiting when the node stops (reads, for instance) get ``ShuttingDown``
    too: no answer will come from this node.
    """

    def __init__(self, detail: str = "the Raft node is shutting down") -> None:
        super().__init__(f"{detail}; send the call to another node of the cluster")


class InitWithConfigError(RaftError):
    """``InitWithConfig`` is not allowed: the node is not pristine (or still initializing)."""


class NotAllowed(InitWithConfigError):
    """Mirror of actix-raft's ``InitWithConfigError::NotAllowed``."""


class UnknownMessage(RaftError, TypeError):
    """A Raft, storage or network actor received a message type it does not handle."""

    def __init__(self, actor: str, message: Any) -> None:
        super().__init__(
            f"{actor} does not handle messages of type {type(message).__name__}; "
            "see pykka_raft.__all__ for the public messages"
        )


class RpcError(RaftError):
    """A network failure delivering an RPC (unreachable, unknown node, dropped, timed out).

    Not fatal: the Raft node retries on its own schedule.
    """


class UnknownNode(RpcError):
    """The network has no route to the target node id."""

    def __init__(self, node_id: NodeId) -> None:
        self.node_id = node_id
        super().__init__(
            f"no route to node {node_id}: register it with the network before sending to it"
        )


class Unreachable(RpcError):
    """The target node is partitioned away or stopped."""


class RequestTooLarge(RpcError):
    """The network cannot carry this request whole: it encodes to more than ``limit``
    bytes. Nothing was sent.

    Attributes:
        size: the bytes counted when the network gave up (at least ``limit + 1``; it stops
            encoding there).
        limit: the largest request body the network sends.
        fits: how many of an AppendEntries' entries fit under ``limit`` (0 when not even
            the first one does); the leader sends that follower at most that many (at
            least one) per request until it has caught up.
    """

    def __init__(self, size: int, limit: int, fits: int) -> None:
        self.size = size
        self.limit = limit
        self.fits = fits
        super().__init__(
            f"request too large: it encodes to more than {limit:,} bytes ({size:,} counted); "
            f"{fits} of its entries fit"
        )


class StorageError(InternalError):
    """The storage failed an operation; the node stopped to protect safety.

    Callers waiting on that node get this error; whether their write committed elsewhere
    is unknown.
    """


class UnsupportedRpc(RpcError):
    """The network or the receiving node does not carry this kind of RPC (for use by
    custom networks; every RPC of the protocol is supported by the Raft node)."""


class SafetyViolation(InternalError):
    """A rule of Raft would be broken (e.g. a committed entry would be overwritten).

    Raised inside the node, which stops rather than continue in an unsafe state.
    """


class DecodeError(RaftError, ValueError):
    """A frame or structure could not be decoded into a message (malformed or oversized)."""


class EncodeError(RaftError, TypeError):
    """An application value holds something the codec does not carry (``docs/codec.md``).

    ``path`` locates it inside the value (``data.value[3]["k"]``: field ``value`` of the
    entry's data, item 3, key ``"k"``), ``reason`` says what is wrong. A leader refuses
    such a write with :class:`ApplicationError` wrapping this error, before appending
    anything: it was definitely not applied.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot encode {path}: {reason}")


class EntryTooLarge(RaftError, ValueError):
    """An application value encodes to more than ``Config.max_entry_bytes``.

    ``size`` is its encoded size in bytes (msgpack form, see ``docs/codec.md``), ``limit``
    the configured maximum. A leader refuses such a write with :class:`ApplicationError`
    wrapping this error, before appending anything: it was definitely not applied.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the entry's data encodes to {size:,} bytes, more than Config.max_entry_bytes "
            f"({limit:,} bytes): split it into smaller writes or raise the limit"
        )


class ConfigChangeError(RaftError):
    """Base of the errors a :class:`~pykka_raft.admin.ProposeConfigChange` can get.

    :class:`NodeNotLeader`, :class:`Noop`, :class:`InoperableConfig` and
    :class:`ChangeInProgress` mean the call changed nothing. After :class:`CatchUpTimeout`
    the new nodes stay as non-voters; after :class:`LeadershipLost` the outcome is open.
    """


class NodeNotLeader(ConfigChangeError):
    """Membership changes are made by the leader; send the change to ``leader_id``.

    ``leader_id`` is ``None`` while no leader is known: retry after an election timeout.
    """

    def __init__(self, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        super().__init__(_not_leader(leader_id))


class Noop(ConfigChangeError):
    """The proposed change leaves the membership as it is (every add is already there,
    every remove already gone)."""


class InoperableConfig(ConfigChangeError):
    """The change would leave a cluster that cannot work: no voters, fewer voters than
    now and than ``Config.min_voters``, or a node that is both added and removed."""


class ChangeInProgress(ConfigChangeError):
    """Another membership change has not finished yet (one change at a time), or the
    leader is handing its leadership over.

    The earlier change answers its caller when it finishes (or fails); a change left
    joint by an earlier leader is finished by the current one. Retry after that (after a
    hand-over, on the new leader).
    """


class LeadershipLost(ConfigChangeError):
    """This node stopped being leader before the change finished.

    The outcome is open: a new leader that inherits a joint configuration finishes it, and
    new nodes already added as non-voters stay non-voters. Read the membership from the
    new leader's metrics (``leader_id`` if known) and propose again if it is not the one
    you want.
    """

    def __init__(self, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        super().__init__(
            "leadership was lost before the membership change finished; read the membership "
            "from the current leader's metrics"
            + (f" (node {leader_id})" if leader_id is not None else "")
            + " and propose again if needed"
        )


class CatchUpTimeout(ConfigChangeError):
    """New voters did not catch up with the leader's log within ``Config.catch_up_timeout``.

    They stay in the membership as non-voters. Check that they run and are reachable, then
    propose the change again to promote them, or remove them.
    """

    def __init__(self, nodes: tuple[NodeId, ...], timeout_ms: int) -> None:
        self.nodes = nodes
        names = ", ".join(str(n) for n in nodes)
        super().__init__(
            f"node(s) {names} did not catch up with the leader's log within {timeout_ms} ms "
            "and stay non-voters; check that they run and are reachable, then propose the "
            "change again to promote them, or remove them"
        )


class TransferFailed(RaftError):
    """A leadership transfer did not complete: refused (the target is no voter, another
    transfer or a membership change is under way), or the target did not become leader
    within an election timeout (it is down, behind, or lost the election). ``leader_id`` is
    the leader known now (the old leader, which takes writes again, or another node)."""

    def __init__(self, detail: str, leader_id: NodeId | None) -> None:
        self.leader_id = leader_id
        super().__init__(f"leadership transfer failed: {detail}")


class OutcomeUnknown(ClientError):
    """This node cannot tell whether the write was applied (e.g. it stopped, was removed,
    or a snapshot from the leader replaced its log before it knew whether the write
    committed; a write it knew committed is never answered so).

    Read the value back, or retry the write idempotently.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the outcome of the write is unknown: {detail}; read it back or retry it idempotently"
        )


class SnapshotsUnsupported(RaftError, NotImplementedError):
    """The storage does not implement snapshots.

    The node keeps running without compaction; ``TriggerSnapshot`` gets this error.
    """

    def __init__(self, storage: str) -> None:
        super().__init__(
            f"{storage} does not implement snapshots: implement its snapshot methods "
            "(docs/snapshots.md) or set Config.snapshot_policy = SnapshotPolicy.disabled()"
        )


class ResultUnavailable(ClientError):
    """The write committed (at ``index``): it is in the log of a majority and will be
    applied on every node, but this node cannot tell its result. The state machine either
    applied it or refused it (``ApplicationError``), the same on every node; which, and
    its response, are gone here: a snapshot folded the entry away before this node
    applied it, or the node stopped while it was being applied (``why`` says which).
    Read the state back if you need to know; a resend in the write's client session gets
    the cached answer; a resend without one may apply it twice.
    """

    def __init__(self, index: LogIndex, why: str | None = None) -> None:
        self.index = index
        self.why = why or "its result was folded into a snapshot before this node applied it"
        super().__init__(
            f"the write committed at index {index}, but whether the state machine applied "
            f"or refused it is gone here: {self.why}; read the state back instead of "
            "retrying the write"
        )
