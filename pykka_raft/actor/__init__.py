"""The Raft actor: the thin shell around the protocol core (see ``docs/architecture.md``)."""

from pykka_raft.actor.raft import Raft, RaftRef

__all__ = ["Raft", "RaftRef"]
