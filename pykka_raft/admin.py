"""Admin messages: forming a cluster (and, later, changing its membership)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from pykka_raft.types import NodeId


def _ids(ids: Iterable[NodeId]) -> tuple[NodeId, ...]:
    seen: dict[NodeId, None] = {}
    for node_id in ids:
        seen.setdefault(int(node_id), None)
    return tuple(seen)


@attrs.frozen
class InitWithConfig:
    """Form a new cluster from pristine nodes.

    Send it to **every** node of the new cluster, each with the full member list (sending in
    parallel is safe). It is allowed only on a pristine node: one that has finished
    starting and has an empty log and no membership (a term learned from a leader that
    reached it first does not count). Duplicates are dropped and the
    receiving node's own id is added if missing. A single-member config makes the node
    leader at once; otherwise it starts an election. The reply (``None``) comes as soon as
    the configuration is durable, before any election finishes; a node that is not
    pristine raises :class:`~pykka_raft.errors.NotAllowed`.
    """

    members: tuple[NodeId, ...] = attrs.field(converter=_ids)
