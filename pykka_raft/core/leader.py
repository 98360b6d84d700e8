"""``LeaderState``: everything only a leader has, born on election and dropped on step-down.

Keeping it in one object that exists only while the node leads means no leader field can
outlive leadership: a node that steps down drops the object, and the next leadership
starts from a fresh one (§5.3: ``nextIndex`` is reinitialized after election).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from pykka_raft.core.progress import Progress
from pykka_raft.core.quorum import has_quorum, joint_quorum_index
from pykka_raft.core.state import NodeState
from pykka_raft.messages import ClientPayload, EntryPayload, MembershipConfig
from pykka_raft.types import LogIndex, NodeId

DEPARTED_SILENCE = 10
"""A removed node that has not answered for this many ``election_timeout_max`` once its
removal committed is no longer sent to (:meth:`LeaderState.forget_silent_departed`)."""


@attrs.define
class Proposal:
    """A payload waiting to be given an index by the leader (``token`` for client writes)."""

    payload: EntryPayload
    token: int | None = None
    client_payload: ClientPayload | None = None


@attrs.define
class MembershipChange:
    """A ``ProposeConfigChange`` the leader is carrying out, step by step, to ``target``."""

    token: int
    target: MembershipConfig
    started_at: int


@attrs.define
class Transfer:
    """A leadership transfer under way (dissertation §3.10): ``token`` is the caller to
    answer (``None`` for a removed leader handing over on its own). It outlives the
    leadership: the caller is answered once ``target`` is seen leading."""

    target: NodeId
    started_at: int
    token: int | None
    timeout_sent: bool = False


@attrs.define
class LeaderState:
    """A leader's replication and proposal state.

    Attributes:
        progress: every other node of the latest configuration (and departing nodes).
        proposals: payloads waiting for an index, flushed one storage append at a time.
        appends_in_flight: the leader's own storage appends not yet durable.
        departing: nodes removed by the latest configuration, still sent to until they
            hold the entry removing them (and know it committed), so they go quiet, or
            until they stay silent for ``DEPARTED_SILENCE`` election timeouts after it
            committed; the value is that entry's index.
        change: the membership change being carried out.
        config_queued: the next configuration entry is queued in ``proposals``.
        heartbeat_elapsed: milliseconds since the last heartbeat round.
        quorum_check_elapsed: milliseconds since the last check-quorum.
        round: the current heartbeat round; every AppendEntries carries it (§6.4).
        read_round: the latest round started for reads.
        round_sent_at: the clock when each round that may still matter started.
        lease_given_up: a TimeoutNow was sent in this term; its target may be elected
            by voters that still hear from us, so no read is served from the lease.
    """

    progress: dict[NodeId, Progress] = attrs.field(factory=dict)
    proposals: list[Proposal] = attrs.field(factory=list)
    appends_in_flight: int = 0
    departing: dict[NodeId, LogIndex] = attrs.field(factory=dict)
    change: MembershipChange | None = None
    config_queued: bool = False
    heartbeat_elapsed: int = 0
    quorum_check_elapsed: int = 0
    round: int = 0
    read_round: int = 0
    round_sent_at: dict[int, float] = attrs.field(factory=dict)
    lease_given_up: bool = False

    def sync_progress(self, node: NodeState) -> None:
        """Replicate to every node of the latest configuration.

        Nodes no longer in it are sent to until they hold the entry that removed them, so
        they learn it and go quiet. A removed node added again starts from a fresh
        progress: it may have been wiped and started pristine, so what it held before is
        not known, and no answer to a request of an earlier round counts.
        """
        nodes = node.membership.all_nodes() - {node.id}
        for other in nodes:
            again = self.departing.pop(other, None) is not None
            if again or other not in self.progress:
                self.progress[other] = Progress(
                    next_index=node.log.last_index + 1,
                    last_heard=node.now,
                    relearning=again,
                    answers_from_round=self.round if again else 0,
                )
        for other in self.progress.keys() - nodes:
            self.departing.setdefault(other, node.log.config_index)

    def commit_candidate(self, node: NodeState) -> LogIndex:
        """The highest index a majority of every voter set holds (§5.3, §6: joint)."""

        def match(voter: NodeId) -> int:
            if voter == node.id:
                return node.flushed_index
            pr = self.progress.get(voter)
            return pr.match_index if pr else 0

        return joint_quorum_index(node.membership.voter_sets(), match)

    def heard_from_quorum(self, node: NodeState, window: int) -> bool:
        """Check-quorum: a majority of every voter set answered within ``window`` ms.

        Not in the Raft paper's Figure 2; the dissertation (§6.2) has a leader step down
        when it cannot reach a majority, so clients go elsewhere instead of waiting.
        """
        recent = {node.id} | {
            peer for peer, pr in self.progress.items() if node.now - pr.last_heard <= window
        }
        return has_quorum(node.membership.voter_sets(), recent)

    def caught_up(self, peer: NodeId, node: NodeState) -> bool:
        """It holds the latest (committed) configuration and lags by at most the limit."""
        pr = self.progress.get(peer)
        return (
            pr is not None
            and pr.match_index >= node.log.config_index
            and pr.match_index + node.config.catch_up_lag >= node.log.last_index
        )

    def forget_if_departed(self, peer: NodeId, committed: LogIndex) -> bool:
        """A removed node that holds the configuration removing it, and knows it committed
        (``committed``: how far it now knows the log is committed), goes quiet: stop sending
        to it. Until it knows, it may still campaign (dissertation §4.2.2)."""
        pr = self.progress.get(peer)
        index = self.departing.get(peer)
        if pr is not None and index is not None and pr.match_index >= index <= committed:
            del self.departing[peer]
            del self.progress[peer]
            return True
        return False

    def forget_silent_departed(self, node: NodeState, window: int) -> None:
        """Stop sending to removed nodes that have not answered for ``DEPARTED_SILENCE``
        times ``window`` ms (an election timeout) once the configuration removing them
        committed: down for good, or never started (a node
        added, then removed after it failed to catch up). Otherwise they would be sent to,
        and reported as lagging, for as long as this leader leads. One that comes back
        without knowing its removal cannot disrupt the cluster: voters refuse the votes of
        nodes outside their configuration."""
        silence = DEPARTED_SILENCE * window
        for peer, index in list(self.departing.items()):
            pr = self.progress.get(peer)
            if index <= node.commit_index and (pr is None or node.now - pr.last_heard >= silence):
                del self.departing[peer]
                self.progress.pop(peer, None)

    def drop_departed(self, peer: NodeId) -> bool:
        """A removed node answered with a newer term: it campaigned on its own, and its term
        says nothing about this cluster. Stop sending to it (``False``: not departing)."""
        if peer not in self.departing:
            return False
        del self.departing[peer]
        self.progress.pop(peer, None)
        return True

    def client_proposals(self) -> Iterable[tuple[int, ClientPayload]]:
        """The client writes among the proposals (token, payload)."""
        for proposal in self.proposals:
            if proposal.token is not None and proposal.client_payload is not None:
                yield proposal.token, proposal.client_payload

    def most_caught_up_voter(self, node: NodeState) -> NodeId | None:
        """The other voter whose log matches ours furthest (lowest id on ties)."""
        voters = [n for n in sorted(node.membership.voters()) if n in self.progress]
        return max(voters, key=lambda n: self.progress[n].match_index, default=None)

    def sending_snapshot(self) -> bool:
        """A snapshot transfer to some node is in progress."""
        return any(pr.snapshot is not None for pr in self.progress.values())
