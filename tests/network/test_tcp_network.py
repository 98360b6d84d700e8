"""TcpNetwork with real sockets in one process: delivery, timeouts, refusals, control.

Peers are other TcpNetworks, or raw ZeroMQ sockets playing a misbehaving peer.
"""

from __future__ import annotations

import errno
import logging
import pickle
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pykka
import pytest
import zmq
from tcp_samples import requests

from pykka_raft import (
    AppendEntriesRequest,
    AppendEntriesResponse,
    Call,
    Config,
    ConfigError,
    Entry,
    EntryNormal,
    FutureReply,
    InstallSnapshotResponse,
    MembershipConfig,
    Put,
    RaftError,
    RequestTooLarge,
    RpcError,
    UnknownMessage,
    UnknownNode,
    Unreachable,
    VoteRequest,
    VoteResponse,
)
from pykka_raft.codec import check_app_value, to_primitive
from pykka_raft.messages import (
    ReadIndexRequest,
    ReadIndexResponse,
    RpcRequest,
    TimeoutNowRequest,
    TimeoutNowResponse,
)
from pykka_raft.net import (
    CurveKeys,
    GetNetworkMetrics,
    Isolate,
    NetworkMetrics,
    Register,
    Restore,
    TcpBindError,
    TcpNetwork,
    TcpNetworkRef,
    TrustKey,
    Unregister,
    generate_keypair,
    load_keypair,
)
from pykka_raft.network import frames
from pykka_raft.network.contract import MembershipChanged
from pykka_raft.testing import wait_until

CONFIG = Config(election_timeout_min=300, election_timeout_max=600, heartbeat_interval=50)
SMALL_ENTRIES = attrs.evolve(CONFIG, max_entry_bytes=512, snapshot_max_chunk_size=512)
FAST = 200  # ms: the rpc timeout of these tests


class Echo(pykka.ThreadingActor):
    """A stand-in Raft node: records every call and answers it (or not, if ``silent``)."""

    def __init__(self, silent: bool = False) -> None:
        super().__init__()
        self.calls: list[Any] = []
        self.silent = silent

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Call):
            self.calls.append(message.message)
            if not self.silent:
                message.reply.set(_answer(message.message))
        elif message == "calls":
            return list(self.calls)
        return None


def _answer(request: Any) -> Any:
    if isinstance(request, VoteRequest):
        return VoteResponse(request.term, True)
    if type(request).__name__ == "AppendEntriesRequest":
        return AppendEntriesResponse(request.term, True)
    if isinstance(request, TimeoutNowRequest):
        return TimeoutNowResponse(request.term, True)
    if isinstance(request, ReadIndexRequest):
        return ReadIndexResponse(request.term, 5)
    return InstallSnapshotResponse(request.term)


def vote(target: int, source: int, term: int = 1) -> VoteRequest:
    return VoteRequest(target, term, source, 0, 0)


def call(net: TcpNetworkRef, request: Any, timeout: float = 5.0) -> Any:
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    net.tell(Call(request, FutureReply(future)))
    return future.get(timeout=timeout)


def call_when_connected(net: TcpNetworkRef, request: Any, timeout: float = 10.0) -> Any:
    """The first requests are refused until the connection is up (no queue for a peer
    that is not connected): retry those."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(net, request)
        except Unreachable as exc:
            retry = "not connected" in str(exc) or "refused" in str(exc)
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # the handshake is under way


def metrics(net: TcpNetworkRef) -> NetworkMetrics:
    result: NetworkMetrics = net.ask(GetNetworkMetrics())
    return result


@pytest.fixture(autouse=True)
def tcp_stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def tcp_keys(tmp_path: Path) -> Path:
    for node_id in (1, 2, 3):
        generate_keypair(tmp_path, node_id)
    return tmp_path


def secure_pair(keys: Path, **options: Any) -> tuple[TcpNetworkRef, TcpNetworkRef, Any]:
    """Node 1 (serving an Echo) and node 2 (knowing node 1's address), with CURVE. Their
    rpc timeout is 3 s unless told (the config's 300 ms expired once on a loaded machine
    before a delivered request's answer came back); tests of the timeout pass ``FAST``."""
    config = options.pop("config", CONFIG)
    options.setdefault("rpc_timeout_ms", 3000)
    one = TcpNetwork.start(1, config=config, keys=CurveKeys.from_dir(keys, 1), **options)
    two = TcpNetwork.start(
        2,
        config=config,
        addresses={1: one.address},
        keys=CurveKeys.from_dir(keys, 2),
        **options,
    )
    echo = Echo.start()
    one.ask(Register(1, echo))
    return one, two, echo


# --- starting ---------------------------------------------------------------------------


def test_keys_are_required_unless_insecure() -> None:
    with pytest.raises(ConfigError, match=r"^invalid TcpNetwork\.keys: .*CURVE keys"):
        TcpNetwork.start(1)
    with pytest.raises(ConfigError, match=r"^invalid TcpNetwork\.max_frame_bytes: "):
        TcpNetwork.start(1, insecure=True, max_frame_bytes=0)


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ({"node_id": "1"}, "node_id", "got str '1'"),
        ({"node_id": -1}, "node_id", "non-negative"),
        ({"bind": "127.0.0.1:99999"}, "bind", "outside 0 to 65535"),
        ({"bind": "tcp://127.0.0.1:0"}, "bind", "must be 'host:port'"),
        ({"bind": 7001}, "bind", "got int 7001"),
        ({"addresses": {2: "nonsense"}}, "addresses", "'host:port'"),
        ({"addresses": {2: "127.0.0.1:0"}}, "addresses", "outside 1 to 65535"),
        ({"addresses": {"2": "127.0.0.1:7002"}}, "addresses", "node id"),
        ({"config": {}}, "config", "must be a Config"),
        ({"rpc_timeout_ms": 0}, "rpc_timeout_ms", "positive int"),
        ({"rpc_timeout_ms": 0.5}, "rpc_timeout_ms", "positive int"),
        ({"rpc_timeout_ms": "x"}, "rpc_timeout_ms", "positive int"),
        ({"max_frame_bytes": 2**63}, "max_frame_bytes", r"at most 2\*\*40"),
        ({"insecure": "yes"}, "insecure", "must be a bool"),
    ],
)
def test_each_bad_argument_is_refused_by_name(options: Any, field: str, says: str) -> None:
    arguments = {"node_id": 1, "insecure": True, **options}
    with pytest.raises(ConfigError, match=rf"^invalid TcpNetwork\.{field}: .*{says}"):
        TcpNetwork.start(**arguments)


def test_another_nodes_key_pair_is_refused(tcp_keys: Path) -> None:
    with pytest.raises(ConfigError, match=r"keys: this key pair is node 1's, not node 2's"):
        TcpNetwork.start(2, keys=CurveKeys.from_dir(tcp_keys, 1))
    with pytest.raises(ConfigError, match=r"keys: must be CurveKeys"):
        TcpNetwork.start(2, keys=str(tcp_keys))


def test_the_largest_accepted_write_always_fits_in_a_frame() -> None:
    # A cap below one entry of max_entry_bytes: a write the leader accepts could never be
    # sent, and every later write would wait behind it.
    config = Config(max_entry_bytes=100_000, snapshot_max_chunk_size=50_000)
    with pytest.raises(ConfigError, match=r"plus 4 KiB \(104096\)"):
        TcpNetwork.start(1, insecure=True, config=config, max_frame_bytes=100_000)
    TcpNetwork.start(1, insecure=True, config=config, max_frame_bytes=104_096).stop()
    chunks = Config(max_entry_bytes=1000, snapshot_max_chunk_size=50_000)
    with pytest.raises(ConfigError, match=r"plus 4 KiB \(54096\)"):  # a chunk must fit too
        TcpNetwork.start(1, insecure=True, config=chunks, max_frame_bytes=10_000)


def test_an_entry_of_the_largest_accepted_size_is_sent_with_the_default_cap(
    tcp_keys: Path,
) -> None:
    # The default cap was the snapshot chunk plus 1 MiB (4 MiB), and so was max_entry_bytes:
    # the AppendEntries carrying the largest write a leader accepts did not fit.
    config = CONFIG
    value = "x" * (config.max_entry_bytes - 64)
    assert check_app_value(Put("k", value), config.max_entry_bytes) <= config.max_entry_bytes
    entry = Entry(1, 1, EntryNormal(Put("k", value)))
    request = AppendEntriesRequest(1, 1, 2, 0, 0, (entry,), 0)
    _, two, _ = secure_pair(tcp_keys)
    assert call_when_connected(two, request, timeout=20) == AppendEntriesResponse(1, True)


def test_a_taken_port_fails_the_start_with_a_typed_error(tcp_keys: Path) -> None:
    first = TcpNetwork.start(1, insecure=True)
    try:
        with pytest.raises(TcpBindError) as exc:
            TcpNetwork.start(2, first.address, insecure=True)
    finally:
        first.stop()
    error = exc.value
    assert str(error) == f"TcpNetwork cannot listen on {first.address}: Address already in use"
    assert (error.address, error.reason) == (first.address, "Address already in use")
    assert error.errno == errno.EADDRINUSE
    # A library error, and still the raw ZeroMQ error for code that catches that.
    assert isinstance(error, RaftError) and isinstance(error, zmq.ZMQError)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_host_not_of_this_machine_fails_the_start_with_a_typed_error() -> None:
    with pytest.raises(TcpBindError, match=r"cannot listen on 192\.0\.2\.1:0: "):
        TcpNetwork.start(2, "192.0.2.1:0", insecure=True)  # TEST-NET-1: nobody's address


def test_insecure_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pykka_raft.net"):
        net = TcpNetwork.start(5, insecure=True)
    assert any(
        r.levelno == logging.WARNING and "WITHOUT authentication" in r.getMessage()
        for r in caplog.records
    )
    assert metrics(net).secure is False


# --- delivery ---------------------------------------------------------------------------


@pytest.mark.parametrize("request_", requests(target=1, source=2), ids=lambda r: type(r).__name__)
def test_each_rpc_reaches_the_target_and_its_answer_comes_back(
    tcp_keys: Path, request_: Any
) -> None:
    one, two, echo = secure_pair(tcp_keys)
    assert call_when_connected(two, request_) == _answer(request_)
    assert echo.ask("calls") == [request_]
    sent = metrics(two).peer(1)
    assert sent is not None and sent.state == "connected"
    assert sent.requests_sent == sent.responses_received == 1
    assert sent.bytes_sent > 0 and sent.bytes_received > 0
    assert sent.rtt_ms_p50 is not None and sent.rtt_samples == 1
    received = metrics(one).peer(2)
    assert received is not None
    assert received.requests_received == received.responses_sent == 1
    assert metrics(one).errors == () and metrics(two).errors == ()


def test_a_node_not_in_the_address_book_is_unknown(tcp_keys: Path) -> None:
    _, two, _ = secure_pair(tcp_keys)
    with pytest.raises(UnknownNode):
        call(two, vote(target=3, source=2))


def test_a_request_without_an_answer_times_out_as_unreachable(tcp_keys: Path) -> None:
    one, two, _ = secure_pair(tcp_keys, rpc_timeout_ms=FAST)
    one.ask(Register(1, Echo.start(silent=True)))
    started = time.monotonic()
    with pytest.raises(Unreachable, match="did not answer within 200 ms"):
        call_when_connected(two, vote(1, 2))
    assert time.monotonic() - started >= FAST / 1000
    peer = metrics(two).peer(1)
    assert peer is not None and peer.timeouts == 1 and metrics(two).pending == 0


def test_a_node_that_is_not_registered_answers_unreachable(tcp_keys: Path) -> None:
    one, two, _ = secure_pair(tcp_keys)
    one.ask(Unregister(1))
    with pytest.raises(Unreachable, match=r"node 1 answered Unreachable.*not running"):
        call_when_connected(two, vote(1, 2))


def test_stopping_answers_every_waiting_request(tcp_keys: Path) -> None:
    one, two, _ = secure_pair(tcp_keys)
    call_when_connected(two, vote(1, 2))
    one.ask(Register(1, Echo.start(silent=True)))
    futures = []
    for term in range(5):
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        two.tell(Call(vote(1, 2, term), FutureReply(future)))
        futures.append(future)
    wait_until(lambda: metrics(two).pending == 5, 5, "five waiting requests")
    two.stop()
    for future in futures:
        with pytest.raises(Unreachable, match="stopped"):
            future.get(timeout=5)


def test_a_request_over_the_size_cap_is_refused_at_once(tcp_keys: Path) -> None:
    _, two, _ = secure_pair(tcp_keys, config=SMALL_ENTRIES, max_frame_bytes=5000)
    big = requests(target=1, source=2)[3]
    big = type(big)(1, 3, 2, attrs.evolve(big.meta, size=6000), 0, b"x" * 6000, True)
    with pytest.raises(RpcError, match="too large"):
        call(two, big)
    assert metrics(two).error_count("request_too_large") == 1


def test_an_append_over_the_size_cap_says_how_many_of_its_entries_fit(tcp_keys: Path) -> None:
    _, two, _ = secure_pair(tcp_keys, config=SMALL_ENTRIES, max_frame_bytes=5000)
    entries = tuple(Entry(1, i, EntryNormal(b"x" * 1000)) for i in range(1, 11))
    append = AppendEntriesRequest(1, 1, 2, 0, 0, entries, 0)
    with pytest.raises(RequestTooLarge) as caught:
        call(two, append)
    # Each entry takes a little over 1000 bytes: four fit in 5000, the fifth does not.
    assert (caught.value.fits, caught.value.limit) == (4, 5000)
    assert 5000 < caught.value.size < 6000  # it stopped at the fifth, not after all ten
    assert metrics(two).error_count("request_too_large") == 1
    within = frames.encode_request(
        7, attrs.evolve(append, entries=entries[:4]), frames.EntryCache(), 5000
    )
    assert within == frames.encode_request(7, attrs.evolve(append, entries=entries[:4]))


# --- membership, keys, isolation --------------------------------------------------------


def test_addresses_are_learned_from_the_membership(tcp_keys: Path, caplog: Any) -> None:
    one = TcpNetwork.start(1, config=CONFIG, keys=CurveKeys.from_dir(tcp_keys, 1))
    one.ask(Register(1, Echo.start()))
    two = TcpNetwork.start(2, config=CONFIG, keys=CurveKeys.from_dir(tcp_keys, 2))
    with pytest.raises(UnknownNode):
        call(two, vote(1, 2))
    with caplog.at_level(logging.INFO, logger="pykka_raft.net"):
        two.ask(MembershipChanged(2, MembershipConfig((1, 2), addresses={1: one.address})))
    assert call_when_connected(two, vote(1, 2)) == VoteResponse(1, True)
    assert f"node 1 is at {one.address} (from the membership)" in caplog.text


def test_a_key_dropped_into_the_key_directory_is_accepted(tmp_path: Path) -> None:
    for node_id in (1, 2):
        generate_keypair(tmp_path, node_id)
    one = TcpNetwork.start(1, config=CONFIG, keys=CurveKeys.from_dir(tmp_path, 1))
    one.ask(Register(1, Echo.start()))
    generate_keypair(tmp_path, 3)  # node 3 joins later
    three = TcpNetwork.start(
        3, config=CONFIG, addresses={1: one.address}, keys=CurveKeys.from_dir(tmp_path, 3)
    )
    assert call_when_connected(three, vote(1, 3)) == VoteResponse(1, True)


def test_trust_key_accepts_a_new_node(tmp_path: Path) -> None:
    keys_one, keys_two = tmp_path / "one", tmp_path / "two"
    generate_keypair(keys_one, 1)
    generate_keypair(keys_two, 2)
    public1, secret1 = load_keypair(keys_one / "node-1.key_secret")
    public2, secret2 = load_keypair(keys_two / "node-2.key_secret")
    one = TcpNetwork.start(1, config=CONFIG, keys=CurveKeys(public1, secret1))
    one.ask(Register(1, Echo.start()))
    two = TcpNetwork.start(
        2,
        config=CONFIG,
        addresses={1: one.address},
        keys=CurveKeys(public2, secret2, {1: public1}),
        rpc_timeout_ms=FAST,
    )
    with pytest.raises(Unreachable):
        call(two, vote(1, 2))
    wait_until(lambda: metrics(one).error_count("auth_refused") > 0, 10, "a refusal")
    one.ask(TrustKey(2, public2))
    assert call_when_connected(two, vote(1, 2)) == VoteResponse(1, True)


def test_a_replaced_key_is_refused_on_the_connection_it_opened(tmp_path: Path) -> None:
    """TrustKey replacing node 2's key ends the old key's access at once, also on the
    connection it had already opened (the handshake is not the only check)."""
    for node_id in (1, 2):
        generate_keypair(tmp_path, node_id)
    generate_keypair(tmp_path / "new", 2)
    one, old_two, echo = secure_pair(tmp_path, rpc_timeout_ms=FAST)
    assert call_when_connected(old_two, vote(1, 2)) == VoteResponse(1, True)
    public2, secret2 = load_keypair(tmp_path / "new" / "node-2.key_secret")
    one.ask(TrustKey(2, public2))
    refused = metrics(one).error_count("auth_refused")
    frames_before = metrics(one).frames_received
    with pytest.raises(Unreachable):  # the same connection, the old key: no answer
        call(old_two, vote(1, 2, term=2))
    assert metrics(one).error_count("auth_refused") == refused + 1
    assert metrics(one).frames_received == frames_before + 1  # counted like any other
    assert vote(1, 2, term=2) not in echo.ask("calls")
    new_two = TcpNetwork.start(
        2,
        config=CONFIG,
        addresses={1: one.address},
        keys=CurveKeys(public2, secret2, CurveKeys.from_dir(tmp_path, 2).peers),
    )
    assert call_when_connected(new_two, vote(1, 2, term=3)) == VoteResponse(3, True)


def test_a_server_with_another_key_than_expected_is_refused(tmp_path: Path) -> None:
    for node_id in (1, 2, 9):
        generate_keypair(tmp_path, node_id)
    public1, _ = load_keypair(tmp_path / "node-1.key_secret")
    public9, secret9 = load_keypair(tmp_path / "node-9.key_secret")
    # An impostor listens where node 1 should be, with a key node 2 does not expect.
    others = [(n, key) for n, key in CurveKeys.from_dir(tmp_path, 2).peers if n != 9]
    impostor = TcpNetwork.start(1, config=CONFIG, keys=CurveKeys(public9, secret9, others))
    impostor.ask(Register(1, Echo.start()))
    two = TcpNetwork.start(
        2, config=CONFIG, addresses={1: impostor.address}, keys=CurveKeys.from_dir(tmp_path, 2)
    )
    assert CurveKeys.from_dir(tmp_path, 2).peer_book()[1] == public1

    def refused() -> bool:
        with pytest.raises(Unreachable):
            call(two, vote(1, 2), timeout=5)
        peer = metrics(two).peer(1)
        return peer is not None and peer.state == "refused"

    wait_until(refused, 15, "node 2 to refuse the impostor")
    assert metrics(two).error_count("handshake_failed") >= 1


def test_isolation_cuts_both_ways_and_restore_heals(tcp_keys: Path) -> None:
    one, two, echo = secure_pair(tcp_keys, rpc_timeout_ms=FAST)
    call_when_connected(two, vote(1, 2))
    two.ask(Isolate(2))
    with pytest.raises(Unreachable, match="cut off"):
        call(two, vote(1, 2))
    two.ask(Restore(2))
    call(two, vote(1, 2))
    one.ask(Isolate(1))  # the target drops incoming requests: the sender times out
    with pytest.raises(Unreachable, match="did not answer"):
        call(two, vote(1, 2, term=9))
    assert metrics(one).isolated and metrics(one).error_count("dropped_isolated") >= 1
    one.ask(Restore(1))
    two.ask(Isolate(1))  # one link only
    assert metrics(two).isolated_peers == (1,)
    with pytest.raises(Unreachable, match="cut off"):
        call(two, vote(1, 2))
    two.ask(Restore(1))
    assert call(two, vote(1, 2)) == VoteResponse(1, True)
    assert vote(1, 2, term=9) not in echo.ask("calls")


# --- the actor --------------------------------------------------------------------------


def test_unknown_messages_raise_on_ask_and_are_dropped_on_tell(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = TcpNetwork.start(1, insecure=True)
    with pytest.raises(UnknownMessage):
        net.ask("hello")
    with pytest.raises(ValueError, match="carries one node"):
        net.ask(Register(2, Echo.start()))
    with caplog.at_level(logging.WARNING, logger="pykka_raft.net"):
        for _ in range(3):
            net.tell("stray")
        net.tell(Register(2, Echo.start()))
        assert net.ask(GetNetworkMetrics()).error_count("stray_message") == 4
    assert net.is_alive()
    lines = [r for r in caplog.records if "sent with tell" in r.getMessage()]
    assert len(lines) == 2  # rate-limited: one line per kind of message in the burst


# --- bad input from a raw peer ----------------------------------------------------------


class RawPeer:
    """An insecure DEALER that sends whatever frames it is given to a network."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://{address}")

    def send(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    def recv(self, timeout_ms: int) -> list[bytes] | None:
        if self.sock.poll(timeout_ms):
            return self.sock.recv_multipart()
        return None

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def request_frames(request: Any, rid: int = 1) -> list[bytes]:
    return frames.encode_request(rid, request)


def test_each_kind_of_bad_request_is_dropped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = TcpNetwork.start(2, insecure=True, config=SMALL_ENTRIES, max_frame_bytes=5000)
    echo = Echo.start()
    net.ask(Register(2, echo))
    good_header, good_body = request_frames(vote(2, 1))
    primitive = to_primitive(vote(2, 1), RpcRequest)
    cases = {
        "malformed_frame": [good_header],
        "bad_version": [b"\x07" + good_header[1:], good_body],
        "unknown_kind": [good_header[:1] + b"\x09" + good_header[2:], good_body],
        "oversized": [good_header, b"\x00" * 6000],
        "malformed_msgpack": [good_header, good_body[:-2]],
        "unknown_type": [good_header, frames.pack({**primitive, "type": "Reboot"})],
        "decode_error": [good_header, frames.pack({**primitive, "term": "one"})],
        "wrong_target": request_frames(vote(3, 1)),
        "unexpected_kind": [frames.encode_header(frames.RESPONSE, 1), good_body],
    }
    peer = RawPeer(net.address)
    try:
        with caplog.at_level(logging.WARNING, logger="pykka_raft.net"):
            for parts in cases.values():
                peer.send(parts)
                peer.send(parts)  # twice: counted twice, logged once
            peer.send(request_frames(vote(2, 1), rid=77))  # and one good request
            answer = peer.recv(5000)
            assert answer is not None
            assert frames.decode_header(answer[0]) == (frames.RESPONSE, 77)

            def counted() -> NetworkMetrics | None:
                m = metrics(net)
                return m if all(m.error_count(k) == 2 for k in cases) else None

            m = wait_until(counted, 5, "every refusal counted")
        assert echo.ask("calls") == [vote(2, 1)]  # only the good one reached the node
        for kind in cases:
            lines = [r for r in caplog.records if f"[{kind}]" in r.getMessage()]
            assert len(lines) == 1, (kind, [r.getMessage() for r in lines])
        assert m.frames_received == 2 * len(cases) + 1
        assert net.is_alive()
    finally:
        peer.close()


def test_a_secure_peer_may_only_speak_as_itself(tcp_keys: Path) -> None:
    one, two, echo = secure_pair(tcp_keys, rpc_timeout_ms=FAST)
    call_when_connected(two, vote(1, 2))
    with pytest.raises(Unreachable, match="did not answer"):
        call(two, vote(1, 3))  # node 2's key, node 3's name
    assert metrics(one).error_count("wrong_source") == 1
    assert vote(1, 3) not in echo.ask("calls")


class RawServer:
    """An insecure ROUTER playing a peer that answers with whatever it is told to."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT).removeprefix("tcp://")

    def next_request(self, timeout_ms: int = 5000) -> tuple[bytes, int]:
        assert self.sock.poll(timeout_ms), "no request arrived"
        routing_id, header, _ = self.sock.recv_multipart()
        return routing_id, frames.decode_header(header)[1]

    def send(self, routing_id: bytes, parts: list[bytes]) -> None:
        self.sock.send_multipart([routing_id, *parts])

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def test_bad_responses_are_dropped_and_only_the_right_one_answers() -> None:
    server = RawServer()
    net = TcpNetwork.start(2, insecure=True, addresses={1: server.address}, rpc_timeout_ms=3000)
    try:
        wait_until(
            lambda: _sent_one(net),
            10,
            "the connection to the raw server",
        )
        routing_id, _ = server.next_request()  # the probe _sent_one made; never answered
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        net.tell(Call(vote(1, 2, term=4), FutureReply(future)))
        routing_id, rid = server.next_request()
        right = frames.encode_response(rid, VoteResponse(4, True))
        for parts in (
            [frames.encode_header(frames.REQUEST, rid), right[1]],  # a request back
            [frames.encode_header(frames.RESPONSE, rid + 1000), right[1]],  # no such request
            [right[0], right[1][:-1]],  # truncated
            [right[0], frames.pack({"type": "VoteResponse", "term": "4"})],  # wrong type
            frames.encode_response(rid, AppendEntriesResponse(4, True)),  # wrong answer kind
            right,
            right,  # a duplicate
        ):
            server.send(routing_id, parts)
        assert future.get(timeout=5) == VoteResponse(4, True)
        expected = {
            "unexpected_kind": 1,
            "unexpected_response": 1,
            "malformed_msgpack": 1,
            "decode_error": 2,
            "duplicate_response": 1,
        }
        wait_until(
            lambda: all(metrics(net).error_count(k) == n for k, n in expected.items()),
            5,
            f"the refusals {expected}",
        )
        peer = metrics(net).peer(1)
        assert peer is not None and peer.responses_received == 1
    finally:
        net.stop()
        server.close()


def _sent_one(net: TcpNetworkRef, target: int = 1) -> bool:
    """Send one vote: True once it was sent (connected). The raw server never answers, so
    a sent vote is counted in the peer's ``requests_sent`` and waits for the network's own
    rpc timeout (not waited for); one that was not sent is refused "not connected" (waited
    for, however slow the network actor is)."""

    def sent() -> int:
        peer = metrics(net).peer(target)
        return peer.requests_sent if peer is not None else 0

    before = sent()
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    net.tell(Call(vote(target, 2), FutureReply(future)))
    deadline = time.monotonic() + 10
    while True:
        try:
            future.get(timeout=0.02)
        except Unreachable as exc:
            return "not connected" not in str(exc)
        except pykka.Timeout:
            if sent() > before or time.monotonic() > deadline:
                return True
            continue
        return True


def test_a_late_response_is_counted_not_delivered() -> None:
    server = RawServer()
    net = TcpNetwork.start(2, insecure=True, addresses={1: server.address}, rpc_timeout_ms=FAST)
    try:
        wait_until(lambda: _sent_one(net), 10, "the connection to the raw server")
        server.next_request()
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        net.tell(Call(vote(1, 2, term=5), FutureReply(future)))
        routing_id, rid = server.next_request()
        with pytest.raises(Unreachable, match="did not answer"):
            future.get(timeout=5)
        server.send(routing_id, frames.encode_response(rid, VoteResponse(5, True)))
        wait_until(lambda: metrics(net).error_count("late_response") == 1, 5, "the late one")
    finally:
        net.stop()
        server.close()


def test_many_threads_may_send_at_once(tcp_keys: Path) -> None:
    # A generous RPC deadline: this is about concurrent senders, not about timeouts, and a
    # loaded machine may hold an answer past the default.
    _, two, _ = secure_pair(tcp_keys, rpc_timeout_ms=10_000)
    call_when_connected(two, vote(1, 2))
    answers: list[Any] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        for term in range(offset, offset + 50):
            answer = call(two, vote(1, 2, term))
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, args=(i * 100,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(a.term for a in answers) == sorted(
        t for i in range(4) for t in range(i * 100, i * 100 + 50)
    )


# --- the I/O thread's own failures, closing, and what the metrics say ---------------------


def test_an_answer_after_stop_writes_nothing_to_a_reused_descriptor() -> None:
    from pykka_raft.network.tcp_requests import _WireReply

    net = TcpNetwork.start(1, insecure=True)
    io = net._io
    reply = _WireReply(io, b"rid", 1, 2)  # an incoming request's reply, held by the node
    net.stop()
    files = []
    try:
        while not files or files[-1].fileno() < io.wake_w:  # the lowest free one comes first
            files.append(tempfile.TemporaryFile())  # noqa: SIM115 (closed below)
        reused = next(f for f in files if f.fileno() == io.wake_w)
        reply.set(VoteResponse(1, True))  # the node answers late, as it does when it stops
        reused.seek(0)
        assert reused.read() == b""
    finally:
        for f in files:
            f.close()


def test_a_request_the_io_thread_fails_to_send_is_still_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pykka_raft.network import tcp_io

    def no_sockets_left(*args: Any) -> None:
        raise zmq.ZMQError(24, "Too many open files")

    net = TcpNetwork.start(2, insecure=True, addresses={1: "127.0.0.1:1"}, config=CONFIG)
    monkeypatch.setattr(tcp_io.IoLoop, "_send_request", no_sockets_left)
    with pytest.raises(RpcError, match=r"could not send it: .*Too many open files"):
        call(net, vote(1, 2))
    assert metrics(net).error_count("internal_error") == 1


def test_an_unreadable_key_directory_refuses_the_request_instead_of_losing_it(
    tcp_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pykka_raft.network import tcp_auth

    def unreadable(directory: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(directory))

    net = TcpNetwork.start(
        2, config=CONFIG, keys=CurveKeys.from_dir(tcp_keys, 2), addresses={9: "127.0.0.1:1"}
    )
    monkeypatch.setattr(tcp_auth, "read_public_keys", unreadable)
    with pytest.raises(Unreachable, match="no CURVE public key is known for node 9"):
        call(net, vote(9, 2))


def test_idle_connections_to_nodes_outside_the_membership_are_closed(
    tcp_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pykka_raft.network import tcp_peers

    monkeypatch.setattr(tcp_peers, "OUTSIDER_IDLE", 0.0)  # unused for 0 s: closed
    _, two, _ = secure_pair(tcp_keys)
    call_when_connected(two, vote(1, 2))
    assert metrics(two).peer(1).state == "connected"
    two.ask(MembershipChanged(2, MembershipConfig((1, 2))))
    assert two._io.peers[1].socket is not None  # a member: kept
    two.ask(MembershipChanged(2, MembershipConfig((2,), addresses={2: two.address})))
    wait_until(lambda: two._io.peers[1].socket is None, 5, "node 1's connection to close")
    assert metrics(two).peer(1).state == "idle"
    assert call_when_connected(two, vote(1, 2, term=2)) == VoteResponse(2, True)  # reopened


def test_a_request_failed_by_isolation_counts_as_timed_out() -> None:
    one = TcpNetwork.start(1, insecure=True, config=CONFIG)
    one.ask(Register(1, Echo.start()))
    two = TcpNetwork.start(2, insecure=True, addresses={1: one.address}, config=CONFIG)
    call_when_connected(two, vote(1, 2))
    one.ask(Register(1, Echo.start(silent=True)))  # from now on nothing is answered
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    two.tell(Call(vote(1, 2, term=2), FutureReply(future)))
    wait_until(lambda: metrics(two).pending == 1, 5, "the request to wait for its answer")
    two.ask(Isolate(1))
    with pytest.raises(Unreachable, match="cut off"):
        future.get(timeout=5)
    assert metrics(two).peer(1).timeouts == 1


def test_a_membership_the_network_cannot_take_is_logged_and_it_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pykka_raft.network import tcp_io

    def busy(*args: Any) -> None:
        raise TimeoutError("the addresses could not be taken")

    net = TcpNetwork.start(2, insecure=True, config=CONFIG)
    monkeypatch.setattr(tcp_io.IoLoop, "membership_changed", busy)
    news = MembershipChanged(2, MembershipConfig((1, 2), addresses={1: "127.0.0.1:1"}))
    with caplog.at_level(logging.WARNING):
        net.tell(news)  # as the Raft node tells it: handled on the I/O thread
        wait_until(lambda: metrics(net).error_count("internal_error") == 1, 5, "the failure")
    assert "network I/O step failed: TimeoutError('the addresses could not be taken')" in (
        caplog.text
    )
    with pytest.raises(TimeoutError, match="could not be taken"):
        net.ask(news)  # asked: the caller gets the error
    assert metrics(net).node_id == 2  # still answering: it did not stop


def test_a_request_told_after_a_membership_finds_the_addresses_it_carries(
    tcp_keys: Path,
) -> None:
    """The Raft node tells its network a new membership before it sends to a new member
    (the ref hands both to the I/O thread in order): the first request to it goes out."""
    _, two, _ = secure_pair(tcp_keys)
    three = TcpNetwork.start(3, config=CONFIG, keys=CurveKeys.from_dir(tcp_keys, 3))
    three.ask(Register(3, Echo.start()))
    members = MembershipConfig((1, 2, 3), addresses={3: three.address})
    two.tell(MembershipChanged(2, members))
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
    two.tell(Call(vote(3, 2), FutureReply(future)))
    try:
        future.get(timeout=5)
    except UnknownNode:
        raise AssertionError("the request went out before the membership") from None
    except Unreachable:
        pass  # sent before the connection was up (no queue for a peer not connected)
    assert call_when_connected(two, vote(3, 2, term=2)) == VoteResponse(2, True)


def test_a_response_from_a_peer_that_was_not_asked_is_refused() -> None:
    """Node 3 answers with the id of a vote that went to node 1: a peer answers only what
    was asked of it, so that response is refused and node 1's own answer is delivered."""
    one, three = RawServer(), RawServer()
    net = TcpNetwork.start(
        2, insecure=True, addresses={1: one.address, 3: three.address}, rpc_timeout_ms=3000
    )
    try:
        wait_until(lambda: _sent_one(net), 10, "the connection to node 1")
        one.next_request()  # the probe _sent_one made; never answered
        wait_until(lambda: _sent_one(net, target=3), 10, "the connection to node 3")
        routing_three, _ = three.next_request()
        future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
        net.tell(Call(vote(1, 2, term=4), FutureReply(future)))
        routing_one, rid = one.next_request()
        three.send(routing_three, frames.encode_response(rid, VoteResponse(4, False)))
        wait_until(lambda: metrics(net).error_count("unexpected_response") == 1, 5, "the refusal")
        one.send(routing_one, frames.encode_response(rid, VoteResponse(4, True)))
        assert future.get(timeout=5) == VoteResponse(4, True)
    finally:
        net.stop()
        one.close()
        three.close()


def test_a_control_call_its_caller_gave_up_on_never_runs() -> None:
    """The I/O thread is busy past the caller's timeout: the caller is told the call
    failed, so the call must not take effect later (a Register reported failed would
    otherwise route to the node after all)."""
    net = TcpNetwork.start(1, insecure=True)
    try:
        io = net._io
        busy, release, ran = threading.Event(), threading.Event(), []

        def hold() -> None:
            busy.set()
            release.wait(10)

        io.submit(("post", hold))
        assert busy.wait(10), "the I/O thread never got busy"
        with pytest.raises(TimeoutError):
            io.call(lambda: ran.append(True), timeout=0.1)
        release.set()
        assert io.call(lambda: "after", timeout=10) == "after"  # the thread went past it
        assert ran == []
    finally:
        net.stop()
