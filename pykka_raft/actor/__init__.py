"""The Raft actor: the thin shell that runs the driver on Pykka (see ``docs/architecture.md``).

- :mod:`~pykka_raft.actor.raft`: the ``Raft`` actor and its ports.
- :mod:`~pykka_raft.actor.ref`: ``RaftRef`` and the batched client-write path.
- :mod:`~pykka_raft.actor.ticker`: the ticker thread.
"""

from pykka_raft.actor.raft import Raft
from pykka_raft.actor.ref import RaftRef

__all__ = ["Raft", "RaftRef"]
