"""A URL where another HTTP server answers (a wrong port): the client and the commands say
so at once, with their own error and exit code, and never take it for a node's answer."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from pykka_raft.kv import BodyTooLarge, Client, NotAKvNode, ServerError, UnknownOutcome
from pykka_raft.kv.cli import main
from pykka_raft.kv.errors import EXIT_NOT_A_NODE, EXIT_REFUSED
from pykka_raft.kv.local import LocalCluster
from tests.kv.conftest import Served

pytestmark = pytest.mark.timeout(120)

HTML = b"<!DOCTYPE HTML>\n<html><body><h1>Error response</h1>\n<p>Nope.</p></body></html>\n"


class Stranger:
    """An HTTP server on loopback that is no node: it answers every request with
    ``status``, ``content_type`` and ``body``, and counts the requests."""

    def __init__(self) -> None:
        self.status = 404
        self.content_type = "text/html;charset=utf-8"
        self.body = HTML
        self.requests: list[tuple[str, str]] = []
        stranger = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stranger.requests.append((self.command, self.path))
                self.send_response(stranger.status)
                self.send_header("Content-Type", stranger.content_type)
                self.send_header("Content-Length", str(len(stranger.body)))
                self.end_headers()
                self.wfile.write(stranger.body)

            do_GET = do_PUT = do_POST = do_DELETE = answer

        self.served = Served(Handler)
        self.url = self.served.url

    def close(self) -> None:
        self.served.close()


@pytest.fixture
def stranger() -> Iterator[Stranger]:
    made = Stranger()
    try:
        yield made
    finally:
        made.close()


def test_an_html_error_page_is_not_a_node_and_is_not_retried(stranger: Stranger) -> None:
    client = Client([stranger.url], timeout=5, deadline=30)
    with pytest.raises(NotAKvNode) as missing:
        client.get("k")
    error = missing.value
    assert error.exit_code == EXIT_NOT_A_NODE != EXIT_REFUSED
    assert error.code == "not_a_node" and error.status == 404 and error.url == stranger.url
    assert str(error) == (
        f"not_a_node: {stranger.url} answered 404 with text/html, not the key-value API: is "
        "this a pykka-raft-kv node?"
    )
    assert stranger.requests == [("GET", "/v1/kv/k")]
    stranger.status = 501  # what python -m http.server answers a POST
    started = time.monotonic()
    for write in (lambda: client.put("k", 1), lambda: client.delete("k")):
        with pytest.raises(NotAKvNode) as refused:
            write()
        assert refused.value.status == 501
    assert time.monotonic() - started < 10  # not retried until the 30 s deadline
    assert stranger.requests[1:] == [("POST", "/v1/sessions")] * 2  # asked once each
    with pytest.raises(NotAKvNode):
        Client([stranger.url], sessions=False).put("k", 1)
    for call in (client.init, client.status, client.cluster_status):
        with pytest.raises(NotAKvNode):
            call()


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, "application/json", b'{"detail": "Not Found"}'),  # another JSON API
        (404, "application/json", b'{"error": "no such thing"}'),
        (400, "text/plain", b"Bad Request"),
        (200, "text/html", HTML),  # a web site that answers everything
        (200, "application/json", b'{"hello": "world"}'),
        (301, "text/html", HTML),
    ],
    ids=lambda x: str(x)[:20],
)
def test_answers_not_in_the_service_format_are_not_a_node(
    stranger: Stranger, status: int, content_type: str, body: bytes
) -> None:
    stranger.status, stranger.content_type, stranger.body = status, content_type, body
    with pytest.raises(NotAKvNode) as exc:
        Client([stranger.url], deadline=30).get("k")
    said = "without a value" if body.startswith(b'{"hello"') else f"with {content_type}"
    assert exc.value.status == status and said in str(exc.value)
    assert str(exc.value).endswith("not the key-value API: is this a pykka-raft-kv node?")


def test_gateway_errors_of_a_proxy_keep_their_meaning(stranger: Stranger) -> None:
    # A proxy in front of a node answers 502-504 for it: not a stranger's answer.
    client = Client([stranger.url], deadline=0.5, sessions=False)
    stranger.status = 502
    with pytest.raises(ServerError):
        client.get("k")
    stranger.status = 504
    with pytest.raises(UnknownOutcome):
        client.put("k", 1)


def test_the_other_urls_are_tried_after_a_stranger(kv3: LocalCluster, stranger: Stranger) -> None:
    client = Client([stranger.url, *kv3.urls], deadline=30)
    client.put("stranger/k", 1)
    assert client.get("stranger/k") == 1
    assert len(stranger.requests) == 1  # the session's registration; not asked again
    assert client.cluster_status()["leader_id"] is not None


def test_a_nodes_own_plain_text_refusal_is_still_the_nodes(kv3: LocalCluster) -> None:
    # Over twice max_body_bytes, waitress refuses the body itself, in plain text: with the
    # node's Server header, so it is a 413 (body_too_large), not another server.
    limit = kv3.http.max_body_bytes
    with pytest.raises(BodyTooLarge):
        kv3.client().put("stranger/big", "x" * (3 * limit))


def test_the_commands_exit_9_not_4(stranger: Stranger) -> None:
    def run(*args: str) -> Any:
        return CliRunner().invoke(main, [f"--url={stranger.url}", "--deadline=30", *args])

    got = run("get", "k")
    assert got.exit_code == EXIT_NOT_A_NODE == 9, got.output
    assert got.stderr == (
        f"error: not_a_node: {stranger.url} answered 404 with text/html, not the key-value "
        "API: is this a pykka-raft-kv node?\n"
    )
    stranger.status = 501
    started = time.monotonic()
    for args in (("put", "k", "1"), ("delete", "k"), ("cas", "k", "--new", "1")):
        result = run(*args)
        assert result.exit_code == 9 and "not the key-value API" in result.stderr, result.output
        assert "<html>" not in result.output
    assert time.monotonic() - started < 10
    assert run("status").exit_code == 9
