"""The messages of the Raft protocol and of the client API.

Every message is a frozen attrs class holding tuples (never lists), so it can be shared
between actor threads without copying, and every message round-trips through the one
cattrs converter in :mod:`pykka_raft.codec`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import attrs

from pykka_raft.types import LogId, LogIndex, NodeId, Term


def check_node_id(value: Any, field: str) -> NodeId:
    """``value`` if it is a node id (a non-negative ``int``, not a ``bool``); else raise.

    Raises:
        TypeError: ``value`` is not an ``int`` (a ``str``, ``float`` or ``bool`` is never
            converted), naming ``field``.
        ValueError: ``value`` is negative, naming ``field``.
    """
    if type(value) is not int:
        raise TypeError(
            f"{field} must be a node id (a non-negative int), got {type(value).__name__} {value!r}"
        )
    if value < 0:
        raise ValueError(f"{field} must be a node id (a non-negative int), got {value}")
    return value


def check_node_ids(ids: Any, field: str) -> list[NodeId]:
    """The node ids of a collection (a tuple, list, set, ...), each checked.

    Raises:
        TypeError: ``ids`` is not a collection (a bare ``int``, a ``str``, a mapping), or
            one of its items is not an ``int``; the message names ``field``.
        ValueError: a node id is negative.
    """
    if isinstance(ids, (str, bytes, bytearray, Mapping)) or not isinstance(ids, Iterable):
        raise TypeError(
            f"{field} must be a collection of node ids, got {type(ids).__name__} {ids!r}"
        )
    return [check_node_id(node_id, f"{field} item") for node_id in ids]


def _node_set(ids: Any, field: str) -> tuple[NodeId, ...]:
    return tuple(sorted(set(check_node_ids(ids, field))))


def _opt_node_set(ids: Any, field: str) -> tuple[NodeId, ...] | None:
    return None if ids is None else _node_set(ids, field)


def check_address(address: Any, field: str) -> str:
    """``address`` if it is a ``"host:port"`` string (port 1 to 65535); else raise."""
    if type(address) is not str:
        raise TypeError(
            f"{field} must be a 'host:port' str, got {type(address).__name__} {address!r}"
        )
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not port.isascii():
        raise ValueError(f"{field} must be 'host:port', got {address!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"{field} has port {port}, outside 1 to 65535: {address!r}")
    return address


def _address_pairs(addresses: Any, field: str) -> tuple[tuple[NodeId, str], ...]:
    """Checked ``(node id, "host:port")`` pairs, sorted by id, from a mapping or pairs."""
    if isinstance(addresses, Mapping):
        items: Iterable[Any] = addresses.items()
    elif isinstance(addresses, (str, bytes, bytearray)) or not isinstance(addresses, Iterable):
        raise TypeError(
            f"{field} must map node ids to 'host:port' (a mapping or (id, address) "
            f"pairs), got {type(addresses).__name__} {addresses!r}"
        )
    else:
        items = addresses
    book: dict[NodeId, str] = {}
    for item in items:
        if isinstance(item, (str, bytes)) or not isinstance(item, (tuple, list)):
            raise TypeError(f"{field} must hold (node id, address) pairs, got {item!r}")
        if len(item) != 2:
            raise ValueError(f"{field} must hold (node id, address) pairs, got {item!r}")
        node_id = check_node_id(item[0], f"{field} node id")
        address = check_address(item[1], f"{field}[{node_id}]")
        if book.setdefault(node_id, address) != address:
            raise ValueError(
                f"{field} gives node {node_id} two addresses: {book[node_id]!r}, {address!r}"
            )
    return tuple(sorted(book.items()))


def _instance_of(kind: type, hint: str = "") -> Callable[[Any, Any, Any], None]:
    """An attrs validator that raises TypeError naming ``Class.field`` (no conversion)."""

    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, kind):
            raise TypeError(
                f"{type(instance).__name__}.{attribute.name} must be a {kind.__name__}, "
                f"got {type(value).__name__} {value!r}{hint}"
            )

    return validate


def _non_negative_int(instance: Any, attribute: Any, value: Any) -> None:
    where = f"{type(instance).__name__}.{attribute.name}"
    if type(value) is not int:
        raise TypeError(f"{where} must be an int, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{where} must be 0 or more, got {value}")


def _optional_node_id(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_node_id(value, f"{type(instance).__name__}.{attribute.name}")


def _members(ids: Any) -> tuple[NodeId, ...]:
    return _node_set(ids, "MembershipConfig.members")


def _members_after_consensus(ids: Any) -> tuple[NodeId, ...] | None:
    return _opt_node_set(ids, "MembershipConfig.members_after_consensus")


def _non_voters(ids: Any) -> tuple[NodeId, ...]:
    return _node_set(ids, "MembershipConfig.non_voters")


def _membership_addresses(ids: Any) -> tuple[tuple[NodeId, str], ...]:
    return _address_pairs(ids, "MembershipConfig.addresses")


@attrs.frozen
class MembershipConfig:
    """The cluster's membership: who votes, who only replicates.

    Attributes:
        members: the voters (``C_old`` while a joint configuration is in effect).
        members_after_consensus: ``C_new`` during joint consensus (§6), else ``None``.
            While set, elections and commits need a majority of ``members`` **and** a
            majority of ``members_after_consensus``.
        non_voters: nodes that receive the log but never vote or count toward a majority
            (new nodes catching up, or permanent learners). While joint, a member of
            ``members`` that the change demotes is listed here already: it still votes in
            ``C_old`` and is a non-voter of the final configuration.
        addresses: where nodes of this configuration can be reached, as ``(node id,
            "host:port")`` pairs sorted by id (a mapping is accepted too). A network that
            carries RPCs between machines learns the addresses from here, so they travel
            with the configuration to every node and survive restarts (the way openraft's
            membership carries node information). Empty for in-process clusters.

    actix-raft kept ``{members, non_voters, removing, is_in_joint_consensus}``; the joint
    configuration is represented here by its two voter sets instead, which is what the
    quorum rules need (see ``docs/differences.md``). Node sets are stored sorted and
    without duplicates.

    Every field is checked when the object is built (and so when it is decoded): node ids
    are non-negative ``int`` (never converted from ``str``, ``float`` or ``bool``), node
    sets are collections of them (a bare ``int`` or a ``str`` is refused), addresses are
    ``"host:port"`` strings. A ``TypeError`` or ``ValueError`` names the field.
    """

    members: tuple[NodeId, ...] = attrs.field(default=(), converter=_members)
    members_after_consensus: tuple[NodeId, ...] | None = attrs.field(
        default=None,
        converter=_members_after_consensus,
    )
    non_voters: tuple[NodeId, ...] = attrs.field(default=(), converter=_non_voters)
    addresses: tuple[tuple[NodeId, str], ...] = attrs.field(
        default=(), converter=_membership_addresses
    )

    @property
    def is_in_joint_consensus(self) -> bool:
        """True while the configuration is joint (``C_old,new``)."""
        return self.members_after_consensus is not None

    def voter_sets(self) -> tuple[tuple[NodeId, ...], ...]:
        """The voter sets that each need a majority: one, or two while joint."""
        if self.members_after_consensus is None:
            return (self.members,)
        return (self.members, self.members_after_consensus)

    def voters(self) -> frozenset[NodeId]:
        """Every node that votes in at least one of the voter sets."""
        out = set(self.members)
        out.update(self.members_after_consensus or ())
        return frozenset(out)

    def all_nodes(self) -> frozenset[NodeId]:
        """Voters and non-voters."""
        return self.voters() | frozenset(self.non_voters)

    def contains(self, node_id: NodeId) -> bool:
        """True if the node is a voter or a non-voter of this configuration."""
        return node_id in self.all_nodes()

    def is_voter(self, node_id: NodeId) -> bool:
        """True if the node votes in this configuration."""
        return node_id in self.voters()

    def address_of(self, node_id: NodeId) -> str | None:
        """The address recorded for ``node_id``, if any."""
        for node, address in self.addresses:
            if node == node_id:
                return address
        return None

    def address_book(self) -> dict[NodeId, str]:
        """The recorded addresses as a dict."""
        return dict(self.addresses)


# --- log entries ------------------------------------------------------------------------


@attrs.frozen
class EntryBlank:
    """The empty entry a new leader commits to establish its term (§8)."""


@attrs.frozen
class EntryNormal:
    """Application data, applied to the state machine once committed.

    ``data`` must be an application value the codec carries without loss
    (``docs/codec.md``), built of exactly these types:

    - ``None``, ``bool``, ``str`` (valid UTF-8), ``bytes``;
    - ``int`` of any size, ``float`` including NaN, ``-0.0`` and the infinities;
    - ``tuple`` and ``list`` (kept distinct), ``dict`` with keys of any of these hashable
      types (``{1: "x"}`` stays an int key);
    - attrs classes registered with :func:`pykka_raft.codec.register_app_type`, whose
      fields hold such values;

    nested at most :data:`pykka_raft.codec.MAX_DEPTH` deep. Subclasses (an ``IntEnum``, a
    ``str`` subclass, a ``defaultdict``), sets and unregistered classes are refused. The
    leader checks each client payload before appending it: a refused value, or one whose
    encoded size exceeds ``Config.max_entry_bytes``, gets
    :class:`~pykka_raft.errors.ApplicationError` and nothing is appended. An accepted value
    reaches every node (through the log, a snapshot or a network) equal, with the same
    types.
    """

    data: Any


@attrs.frozen
class EntryConfigChange:
    """A membership configuration; a node uses the latest one in its log (§6)."""

    membership: MembershipConfig


@attrs.frozen
class EntrySnapshotPointer:
    """actix-raft's marker for entries compacted into a snapshot, kept for parity.

    pykka_raft never writes it: the snapshot point is recorded in
    :class:`SnapshotMeta`, and the log simply starts after it.
    """

    snapshot_id: str


EntryPayload = Union[EntryBlank, EntryNormal, EntryConfigChange, EntrySnapshotPointer]
"""The four kinds of entry payload."""


@attrs.frozen
class Entry:
    """One log entry: the term it was created in, its index, and its payload."""

    term: Term
    index: LogIndex
    payload: EntryPayload

    @property
    def log_id(self) -> LogId:
        """This entry's position."""
        return LogId(self.term, self.index)


# --- RPCs -------------------------------------------------------------------------------


@attrs.frozen
class ConflictOpt:
    """A rejected append's hint: where the follower's log may last match the leader's.

    ``index`` is the highest index at or below the request's ``prev_log_index`` whose term
    on the follower is at most the request's ``prev_log_term`` (or the follower's last
    index when its log is shorter); ``term`` is the follower's term there. The leader
    resumes at the highest index of its own log at or below ``index`` whose term is at
    most ``term``, skipping whole conflicting terms in one round trip (§5.3).
    """

    term: Term
    index: LogIndex


@attrs.frozen
class AppendEntriesRequest:
    """AppendEntries RPC (§5.3), also the heartbeat when ``entries`` is empty.

    ``target`` names the receiving node, for the network to route on. ``round`` is the
    leader's heartbeat round when it sent the request: the leader matches answers to
    rounds to confirm that it still leads (ReadIndex and leases, dissertation §6.4); the
    follower ignores it.
    """

    target: NodeId
    term: Term
    leader_id: NodeId
    prev_log_index: LogIndex
    prev_log_term: Term
    entries: tuple[Entry, ...]
    leader_commit: LogIndex
    round: int = 0

    @property
    def last_index(self) -> LogIndex:
        """The index of the last entry this request covers."""
        return self.prev_log_index + len(self.entries)


@attrs.frozen
class AppendEntriesResponse:
    """Reply to :class:`AppendEntriesRequest`; ``conflict_opt`` is set only on rejection."""

    term: Term
    success: bool
    conflict_opt: ConflictOpt | None = None


@attrs.frozen
class VoteRequest:
    """RequestVote RPC (§5.2).

    ``pre_vote``: a PreVote (dissertation §9.6): "would you vote for me in ``term``?". The
    asker has not raised its own term, and the voter changes nothing (no term, no vote);
    only a candidate that a majority would elect starts a real election, so a node that
    was cut off cannot disrupt the cluster with a higher term when it comes back.

    ``transfer``: the election was asked for (``TimeoutNow`` of a leadership transfer, or
    ``TriggerElection``): voters grant it even while they hear from a leader (leader
    stickiness, §4.2.3, would refuse it otherwise).
    """

    target: NodeId
    term: Term
    candidate_id: NodeId
    last_log_index: LogIndex
    last_log_term: Term
    pre_vote: bool = False
    transfer: bool = False


@attrs.frozen
class VoteResponse:
    """Reply to :class:`VoteRequest`.

    ``is_candidate_unknown`` is true when the candidate is not in the responder's
    membership: a removed node learns from it that it should go quiet.
    """

    term: Term
    vote_granted: bool
    is_candidate_unknown: bool = False


@attrs.frozen
class SnapshotMeta:
    """What a snapshot covers: every entry through ``last_included``, compacted.

    Attributes:
        last_included: the index and term of the last entry the snapshot includes.
        membership: the latest configuration at or before that entry (§7: the snapshot
            keeps it, since the configuration entries it replaces are gone).
        snapshot_id: names this snapshot's data, unique per storage; a transfer in
            progress is tied to it.
        size: the length of the snapshot's data in bytes.
    """

    last_included: LogId
    membership: MembershipConfig
    snapshot_id: str
    size: int


@attrs.frozen
class InstallSnapshotRequest:
    """InstallSnapshot RPC (§7): one chunk of the leader's snapshot, at byte ``offset``.

    A leader sends it to a node whose next entry was compacted away. Chunks are at most
    ``Config.snapshot_max_chunk_size`` bytes and are sent one at a time, in order;
    ``done`` marks the last one.
    """

    target: NodeId
    term: Term
    leader_id: NodeId
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@attrs.frozen
class InstallSnapshotResponse:
    """Reply to :class:`InstallSnapshotRequest`.

    ``success`` is ``False`` when the chunk's offset is not the one the receiver expects.
    ``next_offset`` then says where it can resume: it holds the bytes before that offset
    of the same snapshot (the same ``snapshot_id``), e.g. from a transfer an earlier
    leader started, so the sender goes on from there. ``None``: start over from 0.
    """

    term: Term
    success: bool = True
    next_offset: int | None = None


@attrs.frozen
class TimeoutNowRequest:
    """A leader handing over leadership tells ``target`` (caught up with its log) to start
    an election at once (dissertation §3.10)."""

    target: NodeId
    term: Term
    leader_id: NodeId


@attrs.frozen
class TimeoutNowResponse:
    """Reply to :class:`TimeoutNowRequest`: ``success`` if the target started an election."""

    term: Term
    success: bool


@attrs.frozen
class ReadIndexRequest:
    """A follower asks the leader for a read index (dissertation §6.4.1): the leader
    confirms that it still leads and answers its commit index; the follower serves the
    read once it has applied that far."""

    target: NodeId
    term: Term
    follower_id: NodeId


@attrs.frozen
class ReadIndexResponse:
    """Reply to :class:`ReadIndexRequest`: ``index`` to read at, or ``None`` when the
    receiver is not (or no longer) the leader of ``term``'s cluster."""

    term: Term
    index: LogIndex | None


RpcRequest = Union[
    AppendEntriesRequest, VoteRequest, InstallSnapshotRequest, TimeoutNowRequest, ReadIndexRequest
]
RpcResponse = Union[
    AppendEntriesResponse,
    VoteResponse,
    InstallSnapshotResponse,
    TimeoutNowResponse,
    ReadIndexResponse,
]


# --- client API -------------------------------------------------------------------------


class ReadPolicy(enum.Enum):
    """How a :class:`ClientRead` is made linearizable (``docs/reads.md``)."""

    READ_INDEX = "read_index"
    """The leader confirms with one heartbeat round that it still leads, then reads once it
    has applied its commit index (dissertation §6.4). A follower asks the leader for the
    index and reads locally. Linearizable, with no clock assumption."""
    LEASE = "lease"
    """The leader reads without a round trip while its lease holds (heartbeats a majority
    acknowledged, less than ``election_timeout_min`` ago minus the drift margin).
    Linearizable if the nodes' clocks drift less than ``Config.max_clock_drift``; needs
    ``Config.leader_stickiness``."""
    STALE = "stale"
    """Read this node's state machine as it is: fast, possibly stale, any node."""


class ResponseMode(enum.Enum):
    """When the leader answers a :class:`ClientPayload`."""

    COMMITTED = "committed"
    """Once the entry is committed (replicated to a majority), before it is applied."""
    APPLIED = "applied"
    """Once the state machine applied the entry; the answer carries its response."""


@attrs.frozen
class ClientPayload:
    """A client write, sent to the leader with ``ask``.

    The reply is a :class:`ClientPayloadResponse`; a failure raises a
    :class:`~pykka_raft.errors.ClientError` (e.g. ``ForwardToLeader`` from a follower).
    ``response_mode`` must be a :class:`ResponseMode` (the string ``"applied"`` raises
    ``TypeError``: it is never read as a mode).
    """

    entry: EntryNormal = attrs.field(
        validator=_instance_of(EntryNormal, "; build a payload with ClientPayload.new(data)")
    )
    response_mode: ResponseMode = attrs.field(
        default=ResponseMode.COMMITTED, validator=_instance_of(ResponseMode)
    )

    @classmethod
    def new(cls, data: Any, response_mode: ResponseMode = ResponseMode.COMMITTED) -> ClientPayload:
        """Wrap application data into a payload."""
        return cls(EntryNormal(data), response_mode)


@attrs.frozen
class ClientRead:
    """A read-only ``query`` of the state machine that is never written to the log
    (``docs/reads.md``); send it to any node. The reply is a :class:`ClientReadResponse`;
    errors are :class:`~pykka_raft.errors.ClientError` (``ForwardToLeader`` when no leader
    is known or leadership was lost: retry; a read has no side effects)."""

    query: Any
    policy: ReadPolicy = attrs.field(
        default=ReadPolicy.READ_INDEX, validator=_instance_of(ReadPolicy)
    )


@attrs.frozen
class ClientReadResponse:
    """The answer to :class:`ClientRead`: the state machine's answer ``data``, read after
    applying every entry through ``index``."""

    index: LogIndex
    data: Any = None


@attrs.frozen
class ClientPayloadResponse:
    """The answer to a :class:`ClientPayload`.

    ``index`` is the entry's log index. With ``ResponseMode.APPLIED``, ``data`` holds the
    state machine's response to the entry; with ``COMMITTED`` it is ``None``.
    """

    index: LogIndex
    response_mode: ResponseMode = attrs.field(validator=_instance_of(ResponseMode))
    data: Any = None


@attrs.frozen
class HardState:
    """What a node must persist before answering any RPC that depends on it (Figure 2).

    ``membership`` is the configuration a node was formed with by ``InitWithConfig``; once
    the log holds a configuration entry, the latest such entry takes precedence (§6).
    """

    current_term: Term = attrs.field(default=0, validator=_non_negative_int)
    voted_for: NodeId | None = attrs.field(default=None, validator=_optional_node_id)
    membership: MembershipConfig = attrs.field(
        factory=MembershipConfig, validator=_instance_of(MembershipConfig)
    )


@attrs.frozen
class InitialState:
    """What a storage reports when a node starts (reply to ``GetInitialState``).

    ``last_applied`` is the index of the last entry the state machine has applied;
    ``snapshot`` describes the current snapshot (``None`` if there is none): the log
    holds the entries after it.
    """

    last_log_id: LogId
    last_applied: LogIndex
    hard_state: HardState
    snapshot: SnapshotMeta | None = None


@attrs.frozen
class GetMetrics:
    """Ask a Raft node for its current :class:`~pykka_raft.metrics.RaftMetrics` now."""
