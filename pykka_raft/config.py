"""Runtime configuration of a Raft node, validated when it is built."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import attrs

from pykka_raft.errors import ConfigError

DEFAULT_ELECTION_TIMEOUT_MIN = 200
DEFAULT_ELECTION_TIMEOUT_MAX = 300
DEFAULT_HEARTBEAT_INTERVAL = 50
DEFAULT_MAX_PAYLOAD_ENTRIES = 300
DEFAULT_MAX_INFLIGHT = 8
DEFAULT_METRICS_RATE = 5000
DEFAULT_LOGS_SINCE_LAST = 5000
DEFAULT_SNAPSHOT_CHUNKSIZE = 3 * 1024 * 1024
DEFAULT_CATCH_UP_LAG = 100
DEFAULT_CATCH_UP_TIMEOUT = 30_000
DEFAULT_MIN_VOTERS = 1
DEFAULT_MAX_PENDING_WRITES = 50_000
DEFAULT_MAX_ENTRY_BYTES = 4 * 1024 * 1024
DEFAULT_STORAGE_TIMEOUT = 30_000
DEFAULT_MAX_CLOCK_DRIFT = 0.05

MAX_DURATION = 86_400_000
"""The longest duration a :class:`Config` takes, in milliseconds (a day): longer ones are
mistakes, and overflow the clocks the node's timers are built on."""

_DURATIONS = frozenset(
    {
        "election_timeout_min",
        "election_timeout_max",
        "heartbeat_interval",
        "catch_up_timeout",
        "storage_timeout",
    }
)


@attrs.frozen
class SnapshotPolicy:
    """When a node compacts its log into a snapshot.

    ``logs_since_last=None`` disables snapshots (actix-raft's ``Disabled``); otherwise a
    snapshot is due once the log has grown that many entries past the last one
    (``LogsSinceLast(n)``). Build it with :meth:`disabled` or :meth:`every`.
    """

    logs_since_last: int | None = DEFAULT_LOGS_SINCE_LAST

    def __attrs_post_init__(self) -> None:
        since = self.logs_since_last
        if since is not None and (
            isinstance(since, bool) or not isinstance(since, int) or since <= 0
        ):
            raise ConfigError(
                "logs_since_last",
                f"must be a positive int or None (disabled), got {since!r}",
                owner="SnapshotPolicy",
            )

    @classmethod
    def disabled(cls) -> SnapshotPolicy:
        """Never take snapshots."""
        return cls(None)

    @classmethod
    def every(cls, entries: int) -> SnapshotPolicy:
        """Snapshot once the log has grown ``entries`` past the last snapshot."""
        return cls(entries)

    @property
    def is_disabled(self) -> bool:
        """True when snapshots are disabled."""
        return self.logs_since_last is None


def _fspath(value: Any) -> Any:
    """A path-like object as its ``str`` (``pathlib.Path`` included); anything else as it
    is, for the check that refuses it."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


@attrs.frozen
class Config:
    """The configuration of one Raft node. All durations are in milliseconds.

    Every field is checked when the object is built; an invalid value or combination raises
    :class:`~pykka_raft.errors.ConfigError` naming the field and the rule. Change a field
    with ``attrs.evolve(config, field=value)``, which validates again.

    Attributes:
        election_timeout_min: lower bound of the randomized election timeout. A fresh
            timeout is drawn uniformly from ``[min, max]`` for every election (§5.2).
        election_timeout_max: upper bound of the election timeout; must exceed the minimum.
        heartbeat_interval: how often a leader sends AppendEntries to an idle follower.
            Must be well below the election timeout (at most a third of the minimum), so
            that one lost heartbeat does not start an election (§5.6:
            broadcastTime << electionTimeout).
        max_payload_entries: the most entries one AppendEntries (and one storage append)
            carries; bounds batch sizes and catch-up steps (a follower that does not answer
            a batch within ``rpc_timeout`` gets smaller ones until it does).
        max_inflight: the most AppendEntries with entries in flight to one follower at a
            time (pipelining), once that follower's log is known to match.
        metrics_rate: the interval of the periodic :class:`~pykka_raft.metrics.RaftMetrics`
            push (changes of state, term, leader or membership, and a snapshot transfer
            to a peer starting or ending, are pushed at once).
        snapshot_policy: when to compact the log (see :class:`SnapshotPolicy`).
        snapshot_max_chunk_size: the most bytes of snapshot data per InstallSnapshot chunk.
        snapshot_dir: where a file-backed storage may keep snapshots; created if missing.
            ``None`` for storages that keep snapshots elsewhere (e.g. in memory).
        catch_up_lag: a node being added as a voter is promoted (the joint configuration
            is entered) only once its log is at most this many entries behind the leader's.
        catch_up_timeout: how long a membership change waits for new voters to catch up
            before it fails with :class:`~pykka_raft.errors.CatchUpTimeout` (they stay
            non-voters).
        min_voters: the fewest voters a membership change may shrink the cluster to: a
            change that would leave fewer voters than now and fewer than this fails with
            :class:`~pykka_raft.errors.InoperableConfig` (a change that does not reduce
            the voters is taken). Set it to 3 to refuse shrinking a cluster below fault
            tolerance by accident.
        max_pending_writes: backpressure: the most client writes a leader holds that are
            queued or waiting to commit; more are refused at once with
            :class:`~pykka_raft.errors.Busy` instead of queueing without bound.
        max_entry_bytes: the largest application value a leader accepts in one client
            write, in bytes of its encoded (msgpack) form (``docs/codec.md``); a larger one
            is refused at once with :class:`~pykka_raft.errors.ApplicationError` wrapping
            :class:`~pykka_raft.errors.EntryTooLarge`, before anything is appended. It
            keeps single entries well below what storages, snapshots and networks carry
            comfortably.
        storage_timeout: the longest a storage command (a write, a read, an apply) may
            stay unanswered. A storage that misses it is taken as stuck or dead and the
            node stops (the fatal path), so the rest of the cluster elects another leader
            instead of following one that can no longer commit. Snapshot builds, which run
            in the background, are exempt. Generous by default: raise it for a state
            machine whose applies may take longer.
        pre_vote: a node whose election timer fires first asks the voters whether they
            would vote for it (PreVote, dissertation §9.6) and raises its term only if a
            majority would: a node back from a partition cannot depose a healthy leader.
        leader_stickiness: a node that heard from a current leader within
            ``election_timeout_min`` refuses votes and pre-votes (and does not take up the
            term of such a request), dissertation §4.2.3; check-quorum still makes a
            leader that lost its majority step down. Leadership transfers and
            ``TriggerElection`` are granted all the same. Lease reads need it.
        max_clock_drift: how much the rates of the nodes' monotonic clocks may differ (a
            fraction: 0.05 is 5%). It sets how much shorter than ``election_timeout_min``
            a leader's read lease is (``docs/reads.md``).
    """

    election_timeout_min: int = DEFAULT_ELECTION_TIMEOUT_MIN
    election_timeout_max: int = DEFAULT_ELECTION_TIMEOUT_MAX
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    max_payload_entries: int = DEFAULT_MAX_PAYLOAD_ENTRIES
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    metrics_rate: int = DEFAULT_METRICS_RATE
    snapshot_policy: SnapshotPolicy = attrs.field(factory=SnapshotPolicy)
    snapshot_max_chunk_size: int = DEFAULT_SNAPSHOT_CHUNKSIZE
    snapshot_dir: str | None = attrs.field(default=None, converter=_fspath)
    catch_up_lag: int = DEFAULT_CATCH_UP_LAG
    catch_up_timeout: int = DEFAULT_CATCH_UP_TIMEOUT
    min_voters: int = DEFAULT_MIN_VOTERS
    max_pending_writes: int = DEFAULT_MAX_PENDING_WRITES
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    storage_timeout: int = DEFAULT_STORAGE_TIMEOUT
    pre_vote: bool = True
    leader_stickiness: bool = True
    max_clock_drift: float = DEFAULT_MAX_CLOCK_DRIFT

    def __attrs_post_init__(self) -> None:
        for name in (
            "election_timeout_min",
            "election_timeout_max",
            "heartbeat_interval",
            "max_payload_entries",
            "max_inflight",
            "metrics_rate",
            "snapshot_max_chunk_size",
            "catch_up_lag",
            "catch_up_timeout",
            "min_voters",
            "max_pending_writes",
            "max_entry_bytes",
            "storage_timeout",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(name, f"must be an int, got {value!r}")
            if value < 0 or (value == 0 and name != "catch_up_lag"):
                bound = "0 or more" if name == "catch_up_lag" else "greater than 0"
                raise ConfigError(name, f"must be {bound}, got {value}")
            if name in _DURATIONS and value > MAX_DURATION:
                raise ConfigError(name, f"must be at most {MAX_DURATION} ms (a day), got {value}")
        for flag in ("pre_vote", "leader_stickiness"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(flag, f"must be a bool, got {getattr(self, flag)!r}")
        drift = self.max_clock_drift
        if isinstance(drift, bool) or not isinstance(drift, (int, float)) or not 0 <= drift < 0.5:
            raise ConfigError("max_clock_drift", f"must be a number in [0, 0.5), got {drift!r}")
        if self.election_timeout_min >= self.election_timeout_max:
            raise ConfigError(
                "election_timeout_min",
                f"must be less than election_timeout_max "
                f"({self.election_timeout_min} >= {self.election_timeout_max})",
            )
        if self.heartbeat_interval * 3 > self.election_timeout_min:
            raise ConfigError(
                "heartbeat_interval",
                f"must be at most a third of election_timeout_min "
                f"({self.heartbeat_interval} ms > {self.election_timeout_min} ms / 3); "
                "lower it or raise the election timeout",
            )
        if not isinstance(self.snapshot_policy, SnapshotPolicy):
            raise ConfigError("snapshot_policy", "must be a SnapshotPolicy")
        if self.snapshot_dir is not None:
            if not isinstance(self.snapshot_dir, str):
                raise ConfigError(
                    "snapshot_dir",
                    f"must be a path (str or os.PathLike) or None, got {self.snapshot_dir!r}",
                )
            _check_dir(self.snapshot_dir)

    @property
    def tick_interval(self) -> int:
        """The period of the node's ticker in milliseconds (a fifth of the heartbeat)."""
        return max(1, self.heartbeat_interval // 5)

    @property
    def rpc_timeout(self) -> int:
        """How long a leader waits for an AppendEntries reply before it resends."""
        return self.election_timeout_min


def _check_dir(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            "snapshot_dir", f"{path!r} is not a writable directory ({exc.strerror})"
        ) from exc
