"""RPCs hold only what a node could have sent: terms and indexes within MAX_RPC_NUMBER,
entries that follow on from ``prev_log_index`` as a leader's log does, snapshot chunks
within the snapshot. Anything else is refused when built, so a frame that carries it is a
``decode_error`` and never reaches a node (a term of 2**64 - 1 stopped every election for
good; entries out of order stopped a follower, or moved its commit index past its log; a
last chunk short of the snapshot's size stopped the node installing it)."""

from __future__ import annotations

from typing import Any

import pytest

from pykka_raft.codec import to_primitive
from pykka_raft.messages import (
    MAX_RPC_NUMBER,
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
    EntryBlank,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    ReadIndexResponse,
    RpcRequest,
    SnapshotMeta,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.network import frames
from pykka_raft.network.frames import FrameError
from pykka_raft.types import LogId

CAP = 1 << 20


def _entries(*ids: tuple[int, int]) -> tuple[Entry, ...]:
    """Blank entries at ``(term, index)``."""
    return tuple(Entry(term, index, EntryBlank()) for term, index in ids)


def _append(prev: tuple[int, int], *ids: tuple[int, int], term: int = 5) -> AppendEntriesRequest:
    return AppendEntriesRequest(2, term, 1, prev[1], prev[0], _entries(*ids), 0)


def test_entries_that_follow_on_as_a_log_does_are_taken() -> None:
    assert _append((2, 3), (2, 4), (3, 5), (5, 6)).last_index == 6
    assert _append((0, 0), (1, 1)).last_index == 1
    assert _append((5, 9)).entries == ()  # a heartbeat


@pytest.mark.parametrize(
    ("prev", "ids"),
    [
        ((2, 3), [(2, 5)]),  # a gap after prev_log_index
        ((2, 3), [(2, 4), (2, 6)]),  # a gap inside
        ((2, 3), [(2, 4), (2, 4)]),  # an index twice
        ((2, 3), [(2, 3)]),  # not past prev_log_index
        ((2, 3), [(3, 4), (2, 5)]),  # a term going down
        ((3, 3), [(2, 4)]),  # a term below prev_log_term
        ((2, 3), [(6, 4)]),  # a term above the request's
    ],
)
def test_entries_that_do_not_follow_on_are_refused(prev: Any, ids: Any) -> None:
    with pytest.raises(ValueError, match="must follow on from prev_log_index"):
        _append(prev, *ids)


def _refused_on_the_wire(good: AppendEntriesRequest, **changes: Any) -> FrameError:
    primitive = to_primitive(good, RpcRequest)
    primitive.update(changes)
    with pytest.raises(FrameError) as refused:
        frames.decode_request(frames.pack(primitive), CAP)
    assert refused.value.kind == frames.DECODE_ERROR
    return refused.value


def test_a_frame_with_entries_out_of_order_is_a_decode_error() -> None:
    good = _append((2, 3), (2, 4), (2, 5))
    gap = to_primitive(good, RpcRequest)["entries"]
    gap[1]["index"] = 6
    assert "follow on" in _refused_on_the_wire(good, entries=gap).detail
    assert "follow on" in _refused_on_the_wire(good, prev_log_index=1).detail


@pytest.mark.parametrize("number", [-1, MAX_RPC_NUMBER + 1, 2**64 - 1])
def test_terms_and_indexes_past_the_bound_are_refused(number: int) -> None:
    meta = SnapshotMeta(LogId(1, 1), MembershipConfig([1]), "s", 0)
    builds = [
        lambda: _append((0, 0), term=number),
        lambda: AppendEntriesRequest(2, 5, 1, 0, 0, (), number),
        lambda: AppendEntriesResponse(number, True),
        lambda: ConflictOpt(1, number),
        lambda: VoteRequest(2, number, 1, 0, 0),
        lambda: VoteRequest(2, 5, 1, number, 0),
        lambda: VoteResponse(number, False),
        lambda: SnapshotMeta(LogId(1, number), MembershipConfig([1]), "s", 0),
        lambda: SnapshotMeta(LogId(1, 1), MembershipConfig([1]), "s", number),
        lambda: InstallSnapshotRequest(2, number, 1, meta, 0, b"", True),
        lambda: InstallSnapshotResponse(5, False, number),
        lambda: ReadIndexResponse(5, number),
    ]
    for build in builds:
        with pytest.raises(ValueError, match="2\\*\\*62"):
            build()
    assert "term" in _refused_on_the_wire(_append((0, 0)), term=number).detail


def test_the_largest_numbers_are_taken() -> None:
    top = MAX_RPC_NUMBER
    assert VoteRequest(2, top, 1, top, top).term == top
    assert ReadIndexResponse(top, None).index is None


def test_snapshot_chunks_lie_within_the_snapshot_and_the_last_ends_it() -> None:
    meta = SnapshotMeta(LogId(1, 7), MembershipConfig([1]), "s", 10)
    assert InstallSnapshotRequest(2, 5, 1, meta, 4, b"abcdef", True).done
    assert not InstallSnapshotRequest(2, 5, 1, meta, 0, b"abcd", False).done
    for offset, data, done in ((8, b"abc", False), (0, b"abcd", True), (11, b"", False)):
        with pytest.raises(ValueError, match="chunk ends at byte"):
            InstallSnapshotRequest(2, 5, 1, meta, offset, data, done)
