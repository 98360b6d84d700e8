"""What an RPC may hold: only what a node could have sent. A network checks every RPC it
decodes (the converter does it for the ``RpcRequest`` and ``RpcResponse`` unions); the
messages a node builds itself are not checked again, on the hot path."""

from __future__ import annotations

from typing import Any

from pykka_raft.messages.rpc import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)

MAX_RPC_NUMBER = 2**62
"""The largest term, log index, offset or size an RPC may carry. No cluster gets near it
(a term per election, an index per entry), and it is far below where the 64-bit integers
of msgpack and SQLite end, so every node can store and send any term it takes up. A
decoded RPC with a larger or negative one is refused (a network drops such a frame as a
``decode_error``). A node whose term is this one never campaigns (it could not ask for a
higher term)."""

_NUMBERS: dict[type, tuple[str, ...]] = {
    AppendEntriesRequest: ("term", "prev_log_index", "prev_log_term", "leader_commit"),
    AppendEntriesResponse: ("term",),
    VoteRequest: ("term", "last_log_index", "last_log_term"),
    VoteResponse: ("term",),
    InstallSnapshotRequest: ("term", "offset"),
    InstallSnapshotResponse: ("term",),
    TimeoutNowRequest: ("term",),
    TimeoutNowResponse: ("term",),
    ReadIndexRequest: ("term",),
    ReadIndexResponse: ("term",),
}
"""The fields of each RPC that hold an RPC number (optional ones are checked apart)."""


def _number(owner: str, field: str, value: Any) -> None:
    if not 0 <= value <= MAX_RPC_NUMBER:
        raise ValueError(f"{owner}.{field} must be from 0 to 2**62, got {value}")


def check_rpc(message: Any) -> None:
    """Raise ``ValueError`` (naming the field) if ``message`` holds what no node could have
    sent: a term, index, offset or size negative or past :data:`MAX_RPC_NUMBER`;
    AppendEntries entries that do not follow on from ``prev_log_index`` with terms from
    ``prev_log_term`` up to the request's, never going down (what any leader's log holds
    there); a snapshot chunk that ends past the snapshot's size, or a last one that ends
    short of it; a snapshot digest that is not a SHA-256 in hex. Anything else (not an
    RPC) passes."""
    kind = type(message)
    name = kind.__name__
    for field in _NUMBERS.get(kind, ()):
        _number(name, field, getattr(message, field))
    if kind is AppendEntriesRequest:
        _following_entries(message)
    elif kind is AppendEntriesResponse and message.conflict_opt is not None:
        _number(name, "conflict_opt.term", message.conflict_opt.term)
        _number(name, "conflict_opt.index", message.conflict_opt.index)
    elif kind is InstallSnapshotRequest:
        meta = message.meta
        _number(name, "meta.last_included.index", meta.last_included.index)
        _number(name, "meta.last_included.term", meta.last_included.term)
        _number(name, "meta.size", meta.size)
        if meta.digest is not None and not _is_sha256_hex(meta.digest):
            raise ValueError(f"{name}.meta.digest must be a SHA-256 in lowercase hex")
        end = message.offset + len(message.data)
        if end > meta.size or (message.done and end != meta.size):
            raise ValueError(
                f"{name}'s chunk ends at byte {end} of a snapshot of {meta.size} bytes"
                + (", and it is the last one" if message.done and end < meta.size else "")
            )
    elif kind is InstallSnapshotResponse and message.next_offset is not None:
        _number(name, "next_offset", message.next_offset)
    elif kind is ReadIndexResponse and message.index is not None:
        _number(name, "index", message.index)


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _following_entries(request: AppendEntriesRequest) -> None:
    index, term = request.prev_log_index, request.prev_log_term
    for entry in request.entries:
        index += 1
        if entry.index != index or not term <= entry.term <= request.term:
            raise ValueError(
                f"AppendEntriesRequest.entries must follow on from prev_log_index "
                f"{request.prev_log_index} (term {request.prev_log_term}) with terms up to "
                f"{request.term} never going down: entry {entry.index} of term {entry.term} "
                f"where {index} of term {term} to {request.term} was due"
            )
        term = entry.term
