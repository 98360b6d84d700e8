"""Sample RPCs and a seeded generator of bad frames, for the TCP network's tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pykka_raft  # noqa: F401  (registers the key-value command types)
from pykka_raft.codec import to_primitive
from pykka_raft.messages import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    ConflictOpt,
    Entry,
    EntryBlank,
    EntryConfigChange,
    EntryNormal,
    InstallSnapshotRequest,
    InstallSnapshotResponse,
    MembershipConfig,
    ReadIndexRequest,
    ReadIndexResponse,
    RpcRequest,
    SnapshotMeta,
    TimeoutNowRequest,
    TimeoutNowResponse,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.network import frames
from pykka_raft.statemachine import CompareAndSet, Put
from pykka_raft.types import LogId


def requests(target: int = 2, source: int = 1) -> list[Any]:
    """One request of each kind, with entries of each payload kind."""
    membership = MembershipConfig((1, 2, 3), addresses={1: "127.0.0.1:1", 2: "127.0.0.1:2"})
    entries = (
        Entry(3, 5, EntryBlank()),
        Entry(3, 6, EntryNormal(Put("k", "v"))),
        Entry(3, 7, EntryNormal(CompareAndSet("k", None, (1, 2.5, b"\x00raw", True)))),
        Entry(3, 8, EntryConfigChange(membership)),
    )
    return [
        AppendEntriesRequest(target, 3, source, 4, 2, entries, 4),
        AppendEntriesRequest(target, 3, source, 8, 3, (), 8),
        VoteRequest(target, 4, source, 8, 3),
        InstallSnapshotRequest(
            target,
            3,
            source,
            SnapshotMeta(LogId(3, 8), membership, "snap-1", 10),
            0,
            b"\x00\x01snapshot",
            True,
        ),
        TimeoutNowRequest(target, 3, source),
        ReadIndexRequest(target, 3, source),
    ]


RESPONSES = [
    AppendEntriesResponse(3, True),
    AppendEntriesResponse(3, False, ConflictOpt(2, 4)),
    VoteResponse(4, True),
    VoteResponse(4, False, is_candidate_unknown=True),
    InstallSnapshotResponse(3),
    InstallSnapshotResponse(3, False, 4096),
    TimeoutNowResponse(4, True),
    ReadIndexResponse(3, 17),
    ReadIndexResponse(3, None),
]

_ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63 - 1,
    -(2**63),
    1.5,
    float("nan"),
    "",
    "x" * 300,
    b"\xff\x00",
    [],
    [1, [2, [3]]],
    {},
    {"type": "Nope"},
    {"__type__": "Nope"},
    {"__type__": "Put", "key": 1},
    {"__tuple__": 5},
]


def _mutate_primitive(value: Any, rng: random.Random, depth: int = 0) -> Any:
    """Replace, drop or add one field somewhere in a primitive structure."""
    if isinstance(value, dict) and value and depth < 6:
        value = dict(value)
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.15:
            del value[key]
        elif roll < 0.25:
            value[rng.choice(["extra", "type", "__type__", 7])] = rng.choice(_ODD_VALUES)
        elif roll < 0.6:
            value[key] = rng.choice(_ODD_VALUES)
        else:
            value[key] = _mutate_primitive(value[key], rng, depth + 1)
        return value
    if isinstance(value, list) and value and depth < 6:
        value = list(value)
        i = rng.randrange(len(value))
        value[i] = _mutate_primitive(value[i], rng, depth + 1)
        return value
    return rng.choice(_ODD_VALUES)


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


_HUGE_HEADERS = [
    b"\xdd\xff\xff\xff\xff",  # array of 2**32 - 1 elements
    b"\xdf\xff\xff\xff\xff",  # map of 2**32 - 1 pairs
    b"\xdb\xff\xff\xff\xff",  # str of 4 GiB
    b"\xc6\xff\xff\xff\xff",  # bin of 4 GiB
    b"\xc9\xff\xff\xff\xff\x05",  # ext of 4 GiB
    b"\x91" * 5000 + b"\xc0",  # nesting far deeper than any message
]


def bad_frames(seed: int, target: int, source: int, max_bytes: int) -> Iterator[list[bytes]]:
    """An endless, seeded stream of bad multipart messages for node ``target``'s ROUTER.

    Random bytes, bit flips, truncations and extensions of valid frames, fields of the
    wrong type, unknown message types, huge declared lengths, wrong headers and frame
    counts, requests for another node, responses where requests belong, and a few bodies
    over the size cap. Valid requests are sent as node ``source``, so that a peer
    authenticated as another node never gets one accepted.
    """
    rng = random.Random(seed)
    templates = requests(target, source)
    valid = [
        (frames.encode_header(frames.REQUEST, i), frames.pack(to_primitive(r, RpcRequest)))
        for i, r in enumerate(templates)
    ]
    while True:
        header, body = rng.choice(valid)
        roll = rng.random()
        if roll < 0.12:
            yield [header, rng.randbytes(rng.randrange(0, 400))]
        elif roll < 0.2:
            yield [rng.randbytes(rng.randrange(0, 20)) for _ in range(rng.randint(1, 4))]
        elif roll < 0.38:
            yield [header, _flip_bits(body, rng)]
        elif roll < 0.48:
            yield [header, body[: rng.randrange(len(body))]]
        elif roll < 0.53:
            yield [header, body + rng.randbytes(rng.randint(1, 30))]
        elif roll < 0.7:
            primitive = to_primitive(rng.choice(templates), RpcRequest)
            yield [header, frames.pack(_mutate_primitive(primitive, rng))]
        elif roll < 0.76:
            yield [header, rng.choice(_HUGE_HEADERS) + rng.randbytes(rng.randrange(0, 16))]
        elif roll < 0.82:
            yield [_flip_bits(header, rng), body]
        elif roll < 0.86:
            kind = rng.choice([frames.RESPONSE, frames.ERROR])
            yield [frames.encode_header(kind, rng.randrange(1 << 64)), body]
        elif roll < 0.9:
            other = rng.choice([t for t in (1, 2, 3, 42) if t != target])
            wrong = rng.choice(requests(other, source))
            yield [header, frames.pack(to_primitive(wrong, RpcRequest))]
        elif roll < 0.94:
            yield [header, frames.pack({"type": rng.choice(["Hello", "", 5, None])})]
        elif roll < 0.96:
            yield [header]  # one frame short
        elif roll < 0.98:
            yield [header, body, body]  # one frame too many
        elif roll < 0.999:
            yield [header, frames.pack(to_primitive(rng.choice(RESPONSES)))]
        else:  # just over the cap (libzmq itself cuts off a peer at twice the cap)
            yield [header, b"\x00" * (max_bytes + rng.randint(1, 1024))]
