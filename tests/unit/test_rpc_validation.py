"""A decoded RPC holds only what a node could have sent (``check_rpc``): terms and indexes
within MAX_RPC_NUMBER, entries that follow on from ``prev_log_index`` as a leader's log
does, snapshot chunks within the snapshot. Anything else is refused when decoded, so a
frame that carries it is a ``decode_error`` and never reaches a node (a term of 2**64 - 1
stopped every election for good; entries out of order stopped a follower, or moved its
commit index past its log; a last chunk short of the snapshot's size stopped the node
installing it). The messages a node builds itself are not checked (the hot path)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from pykka_raft.codec import from_primitive, to_primitive
from pykka_raft.errors import DecodeError
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
    RpcResponse,
    SnapshotMeta,
    VoteRequest,
    VoteResponse,
    check_rpc,
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
    for request in (_append((2, 3), (2, 4), (3, 5), (5, 6)), _append((0, 0), (1, 1))):
        check_rpc(request)
        assert from_primitive(to_primitive(request, RpcRequest), RpcRequest) == request
    check_rpc(_append((5, 9)))  # a heartbeat


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
    request = _append(prev, *ids)
    with pytest.raises(ValueError, match="must follow on from prev_log_index"):
        check_rpc(request)
    with pytest.raises(DecodeError, match="must follow on from prev_log_index"):
        from_primitive(to_primitive(request, RpcRequest), RpcRequest)


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
    messages = [
        _append((0, 0), term=number),
        AppendEntriesRequest(2, 5, 1, 0, 0, (), number),
        AppendEntriesResponse(number, True),
        AppendEntriesResponse(5, False, ConflictOpt(1, number)),
        VoteRequest(2, number, 1, 0, 0),
        VoteRequest(2, 5, 1, number, 0),
        VoteResponse(number, False),
        InstallSnapshotRequest(
            2, 5, 1, attrs.evolve(meta, last_included=LogId(1, number)), 0, b"", True
        ),
        InstallSnapshotRequest(2, 5, 1, attrs.evolve(meta, size=number), 0, b"", False),
        InstallSnapshotRequest(2, number, 1, meta, 0, b"", True),
        InstallSnapshotResponse(5, False, number),
        ReadIndexResponse(5, number),
    ]
    for message in messages:
        union = RpcRequest if type(message).__name__.endswith("Request") else RpcResponse
        with pytest.raises(ValueError, match="2\\*\\*62"):
            check_rpc(message)
        with pytest.raises(DecodeError, match="2\\*\\*62"):
            from_primitive(to_primitive(message, union), union)
    assert "term" in _refused_on_the_wire(_append((0, 0)), term=number).detail


def test_the_largest_numbers_are_taken() -> None:
    top = MAX_RPC_NUMBER
    for message in (VoteRequest(2, top, 1, top, top), ReadIndexResponse(top, None)):
        check_rpc(message)


def test_snapshot_chunks_lie_within_the_snapshot_and_the_last_ends_it() -> None:
    meta = SnapshotMeta(LogId(1, 7), MembershipConfig([1]), "s", 10)
    check_rpc(InstallSnapshotRequest(2, 5, 1, meta, 4, b"abcdef", True))
    check_rpc(InstallSnapshotRequest(2, 5, 1, meta, 0, b"abcd", False))
    for offset, data, done in ((8, b"abc", False), (0, b"abcd", True), (11, b"", False)):
        with pytest.raises(ValueError, match="chunk ends at byte"):
            check_rpc(InstallSnapshotRequest(2, 5, 1, meta, offset, data, done))


@pytest.mark.parametrize("digest", ["", "ab" * 31, "AB" * 32, "g" * 64, "ab" * 33])
def test_a_snapshot_digest_that_is_not_a_sha256_in_hex_is_refused(digest: str) -> None:
    meta = SnapshotMeta(LogId(1, 7), MembershipConfig([1]), "s", 4, digest)
    message = InstallSnapshotRequest(2, 5, 1, meta, 0, b"abcd", True)
    with pytest.raises(ValueError, match=r"meta\.digest must be a SHA-256"):
        check_rpc(message)
    with pytest.raises(DecodeError, match=r"meta\.digest"):
        from_primitive(to_primitive(message, RpcRequest), RpcRequest)
    check_rpc(attrs.evolve(message, meta=attrs.evolve(meta, digest="0f" * 32)))
    check_rpc(attrs.evolve(message, meta=attrs.evolve(meta, digest=None)))
