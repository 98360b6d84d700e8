"""Log entries and their four kinds of payload."""

from __future__ import annotations

from typing import Any, Union

import attrs

from pykka_raft.messages.membership import MembershipConfig
from pykka_raft.types import LogId, LogIndex, Term


@attrs.frozen
class EntryBlank:
    """The empty entry a new leader commits to establish its term (§8)."""


@attrs.frozen
class EntryNormal:
    """Application data, applied to the state machine once committed.

    ``data`` must be an application value the codec carries without loss
    (``docs/codec.md``), built of exactly these types:

    - ``None``, ``bool``, ``str`` (valid UTF-8), ``bytes``;
    - ``int`` of any size, ``float`` including NaN, ``-0.0`` and the infinities;
    - ``tuple`` and ``list`` (kept distinct), ``dict`` with keys of any of these hashable
      types (``{1: "x"}`` stays an int key);
    - attrs classes registered with :func:`pykka_raft.codec.register_app_type`, whose
      fields hold such values;

    nested at most :data:`pykka_raft.codec.MAX_DEPTH` deep. Subclasses (an ``IntEnum``, a
    ``str`` subclass, a ``defaultdict``), sets and unregistered classes are refused. The
    leader checks each client payload before appending it: a refused value, or one whose
    encoded size exceeds ``Config.max_entry_bytes``, gets
    :class:`~pykka_raft.errors.ApplicationError` and nothing is appended. An accepted value
    reaches every node (through the log, a snapshot or a network) equal, with the same
    types.
    """

    data: Any


@attrs.frozen
class EntryConfigChange:
    """A membership configuration; a node uses the latest one in its log (§6)."""

    membership: MembershipConfig


@attrs.frozen
class EntrySnapshotPointer:
    """actix-raft's marker for entries compacted into a snapshot, kept for parity.

    pykka_raft never writes it: the snapshot point is recorded in
    :class:`SnapshotMeta`, and the log simply starts after it.
    """

    snapshot_id: str


EntryPayload = Union[EntryBlank, EntryNormal, EntryConfigChange, EntrySnapshotPointer]
"""The four kinds of entry payload."""


@attrs.frozen
class Entry:
    """One log entry: the term it was created in, its index, and its payload."""

    term: Term
    index: LogIndex
    payload: EntryPayload

    @property
    def log_id(self) -> LogId:
        """This entry's position."""
        return LogId(self.term, self.index)
