"""The leader's wall-clock time stamped into writes that ask for it (client sessions).

Sessions expire by the log's clock, never a node's own (``docs/clients.md``): the leader
puts its time into each write whose data has a ``with_leader_time(now)`` method, before
the write reaches the core, so every node applies the same time.
"""

from __future__ import annotations

import time
from typing import Any

from pykka_raft.calls import Reply, deliver_error
from pykka_raft.errors import ApplicationError
from pykka_raft.messages import ClientPayload, EntryNormal


def stamped(
    leader: bool, writes: list[tuple[ClientPayload, Reply]]
) -> list[tuple[ClientPayload, Reply]]:
    """On the leader (``leader``), let each write's data take the leader's wall-clock time
    through its ``with_leader_time`` method, if it has one; a method that raises refuses
    its own write only (``ApplicationError``)."""
    if not leader:
        return writes
    now: float | None = None
    out: list[tuple[ClientPayload, Reply]] = []
    # Each type's method (or None), looked up once per batch. Keyed by id: a client's type
    # need not be hashable, and every type here stays alive (its instance is in ``writes``).
    methods: dict[int, Any] = {}
    for payload, reply in writes:
        data = payload.entry.data
        cls = type(data)
        try:
            stamp = methods[id(cls)]
        except KeyError:
            stamp = methods[id(cls)] = getattr(cls, "with_leader_time", None)
        if stamp is not None:
            if now is None:
                now = time.time()
            try:
                payload = ClientPayload(EntryNormal(stamp(data, now)), payload.response_mode)
            except Exception as exc:  # the application's method: refuse this write only
                deliver_error(reply, ApplicationError(exc))
                continue
        out.append((payload, reply))
    return out
