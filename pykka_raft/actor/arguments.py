"""The arguments of :meth:`~pykka_raft.actor.raft.Raft.start`, checked in the caller's
thread before any actor starts: a node started with a wrong one would fail on its own
thread, where no caller sees why."""

from __future__ import annotations

import random
from typing import Any

from pykka_raft.config import Config
from pykka_raft.messages import check_node_id


def check_arguments(
    node_id: Any, config: Any, network: Any, storage: Any, metrics: Any, rng: Any
) -> None:
    """Raise ``TypeError`` (or ``ValueError`` for a negative node id) for an argument a
    node cannot run with."""
    check_node_id(node_id, "node_id")
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, got {type(config).__name__} {config!r}")
    refs = (("network", network), ("storage", storage), ("metrics", metrics))
    for name, ref in refs:
        if (ref is not None or name != "metrics") and not callable(getattr(ref, "tell", None)):
            raise TypeError(
                f"{name} must be an actor ref (anything with a tell method), "
                f"got {type(ref).__name__} {ref!r}"
            )
    if rng is not None and not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random or None, got {type(rng).__name__} {rng!r}")
