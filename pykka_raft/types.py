"""Scalar identifiers of the Raft paper and the ordered log position."""

from __future__ import annotations

import attrs

NodeId = int
"""A node's id in the cluster (actix-raft's ``NodeId = u64``)."""

Term = int
"""A Raft term number (§5.1); 0 before any election."""

LogIndex = int
"""A 1-based log index; 0 means "before the first entry"."""


@attrs.frozen(order=True)
class LogId:
    """The position of an entry: its term, then its index.

    Ordering compares the term first and the index second, which is exactly the §5.4.1
    "at least as up-to-date" rule for logs: ``LogId(t1, i1) >= LogId(t2, i2)``.
    """

    term: Term = 0
    index: LogIndex = 0
