"""The messages of the Raft protocol and of the client API.

Every message is a frozen attrs class holding tuples (never lists), so it can be shared
between actor threads without copying, and every message round-trips through the one
cattrs converter in :mod:`pykka_raft.codec`.

One module per concept, all re-exported here (``from pykka_raft.messages import X`` is the
import to use):

- :mod:`~pykka_raft.messages.checks`: the field checks every message shares;
- :mod:`~pykka_raft.messages.membership`: :class:`MembershipConfig`;
- :mod:`~pykka_raft.messages.entries`: log entries and their payloads;
- :mod:`~pykka_raft.messages.rpc`: the RPCs between nodes and :class:`SnapshotMeta`;
- :mod:`~pykka_raft.messages.client`: client writes and reads, their answers, ``GetMetrics``;
- :mod:`~pykka_raft.messages.state`: :class:`HardState` and :class:`InitialState`.
"""

from __future__ import annotations

from pykka_raft.messages.checks import (
    MAX_NODE_ID,
    _address_pairs,
    _instance_of,
    _node_set,
    _non_negative_int,
    _opt_node_set,
    _optional_node_id,
    check_address,
    check_node_id,
    check_node_ids,
)
from pykka_raft.messages.client import (
    ClientPayload,
    ClientPayloadResponse,
    ClientRead,
    ClientReadResponse,
    GetMetrics,
    ReadPolicy,
    ResponseMode,
)
from pykka_raft.messages.entries import (
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    EntryPayload,
    EntrySnapshotPointer,
)
from pykka_raft.messages.membership import MembershipConfig
from pykka_raft.messages.rpc import (
    RESPONSE_FOR,
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    RpcRequest,
    RpcResponse,
    SnapshotMeta,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.messages.rpc_checks import MAX_RPC_NUMBER, check_rpc
from pykka_raft.messages.state import HardState, InitialState

__all__ = [
    "MAX_NODE_ID",
    "MAX_RPC_NUMBER",
    "RESPONSE_FOR",
    "AppendEntriesRequest",
    "AppendEntriesResponse",
    "ClientPayload",
    "ClientPayloadResponse",
    "ClientRead",
    "ClientReadResponse",
    "ConflictOpt",
    "Entry",
    "EntryBlank",
    "EntryConfigChange",
    "EntryNormal",
    "EntryPayload",
    "EntrySnapshotPointer",
    "GetMetrics",
    "HardState",
    "InitialState",
    "InstallSnapshotRequest",
    "InstallSnapshotResponse",
    "MembershipConfig",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ReadPolicy",
    "ResponseMode",
    "RpcRequest",
    "RpcResponse",
    "SnapshotMeta",
    "TimeoutNowRequest",
    "TimeoutNowResponse",
    "VoteRequest",
    "VoteResponse",
    "_address_pairs",
    "_instance_of",
    "_node_set",
    "_non_negative_int",
    "_opt_node_set",
    "_optional_node_id",
    "check_address",
    "check_node_id",
    "check_node_ids",
    "check_rpc",
]
