"""``RaftClient``: writes applied exactly once, from any thread of the process.

It does what every careful client of a Raft cluster must do, in one place:

* finds the leader and follows ``ForwardToLeader`` hints;
* backs off while there is no leader (or the leader is ``Busy``);
* sends each write inside a client session (:mod:`pykka_raft.sessions`) and resends it,
  under the same sequence, whenever an attempt's outcome is unknown (a timeout, a node
  that stopped or lost track of it): the state machine applies it at most once and
  answers every resend from its cache;
* gives every call one of three results (:class:`Outcome`): **applied** (with the state
  machine's response), **not applied** (definitely: nothing will ever apply it), or
  **unknown** once the caller's deadline passed while some attempt's fate is open.

The state machine must understand sessions: ``KeyValueStateMachine`` and
``SqliteKeyValueStateMachine`` do, any other one does inside
:class:`~pykka_raft.sessions.SessionStateMachine`. With ``sessions=False`` the client
works with any state machine but cannot resend safely: the first unknown outcome ends
the call. See ``docs/clients.md``.

The result types are in :mod:`~pykka_raft.client.outcomes`, the retry loop in
:mod:`~pykka_raft.client.raft_client`; import the names from here.
"""

from __future__ import annotations

# ClientStats is reachable as RaftClient.stats's type, not part of __all__.
from pykka_raft.client.outcomes import ClientStats as ClientStats
from pykka_raft.client.outcomes import DeadlineExceeded, Outcome, WriteResult
from pykka_raft.client.raft_client import RaftClient

__all__ = ["DeadlineExceeded", "Outcome", "RaftClient", "WriteResult"]
