"""The RPCs nodes exchange through a network (§5.2, §5.3, §7, dissertation §3.10, §6.4).

Each request names its ``target`` node, for the network to route on.
"""

from __future__ import annotations

from typing import Union

import attrs

from pykka_raft.messages.entries import Entry
from pykka_raft.messages.membership import MembershipConfig
from pykka_raft.types import LogId, LogIndex, NodeId, Term


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

    ``transfer``: the election was asked for by the leader (``TimeoutNow`` of a leadership
    transfer): voters grant it even while they hear from a leader (leader stickiness,
    §4.2.3, would refuse it otherwise). ``TriggerElection`` does not set it: a forced
    election could let a leader's lease outlive its leadership.
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
        snapshot_id: names this snapshot's data, never reused by any node of the cluster;
            a transfer in progress is tied to it (and to the other fields).
        size: the length of the snapshot's data in bytes.
        digest: the SHA-256 of the snapshot's data, in lowercase hex, as the storage that
            made it computed it; a node receiving the snapshot checks the bytes it got
            against it before it stores the last chunk, and refuses them if they differ.
            ``None`` (a storage that does not compute it): not checked.
    """

    last_included: LogId
    membership: MembershipConfig
    snapshot_id: str
    size: int
    digest: str | None = None


@attrs.frozen
class InstallSnapshotRequest:
    """InstallSnapshot RPC (§7): one chunk of the leader's snapshot, at byte ``offset``.

    A leader sends it to a node whose next entry was compacted away. Chunks are at most
    ``Config.snapshot_max_chunk_size`` bytes and are sent one at a time, in order;
    ``done`` marks the last one, which ends at ``meta.size``.
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
    of the same snapshot (an equal ``meta``), e.g. from a transfer an earlier
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

RESPONSE_FOR: dict[type, type] = {
    AppendEntriesRequest: AppendEntriesResponse,
    VoteRequest: VoteResponse,
    InstallSnapshotRequest: InstallSnapshotResponse,
    TimeoutNowRequest: TimeoutNowResponse,
    ReadIndexRequest: ReadIndexResponse,
}
"""The response type that answers each request type: every RPC a node sends."""
