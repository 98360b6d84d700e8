"""What a node persists (its hard state) and what its storage reports at start."""

from __future__ import annotations

import attrs

from pykka_raft.messages.checks import _instance_of, _non_negative_int, _optional_node_id
from pykka_raft.messages.membership import MembershipConfig
from pykka_raft.messages.rpc import SnapshotMeta
from pykka_raft.types import LogId, LogIndex, NodeId, Term


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
