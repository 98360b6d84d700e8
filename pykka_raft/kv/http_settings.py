"""The ``[http]`` settings of a node: how its HTTP server (waitress) and API behave."""

from __future__ import annotations

import math

import attrs

from pykka_raft.kv.errors import KvConfigError

MAX_THREADS = 512
"""The most ``threads`` a node takes: each is an OS thread waiting on the cluster."""

MAX_CONNECTION_LIMIT = 100_000
"""The most ``connection_limit`` a node takes."""


@attrs.frozen
class HttpSettings:
    """How the HTTP layer behaves.

    Attributes:
        threads: waitress worker threads; each request waiting on Raft holds one, and one
            is kept for status and metrics (docs/kv-service.md, "Busy threads").
        max_body_bytes: the largest request body taken, plus 128 bytes for the
            ``client_id`` and ``sequence`` of a write in a session (so a value taken
            without one is taken in one); larger ones get 413.
        request_timeout: seconds a key-value request waits for Raft before 504.
        admin_timeout: seconds a membership change waits (longer than
            ``Config.catch_up_timeout``, as a new voter has to catch up first).
        shutdown_grace: seconds a stopping node lets requests in flight finish before it
            stops Raft (the rest are answered ``outcome_unknown``).
        connection_limit: the most connections open at once (waitress's
            ``connection_limit``); while that many are open the node accepts no more (new
            ones wait in the listen queue) until one closes.
        channel_timeout: whole seconds after which a connection with no request in
            progress and no traffic is closed (waitress's ``channel_timeout``), so that
            idle or stalled clients cannot hold every connection.
        token_file: a file of bearer tokens, one per line; when given, every request
            must carry ``Authorization: Bearer <token>`` with one of them, or is
            answered 401 (``docs/kv-service.md``, "Authentication and TLS"). ``None``
            (the default): the API is open to anyone who reaches it. The file is read and
            checked when the node starts (:func:`pykka_raft.kv.auth.load_tokens`).
    """

    threads: int = 8
    max_body_bytes: int = 1 << 20
    request_timeout: float = 5.0
    admin_timeout: float = 60.0
    shutdown_grace: float = 5.0
    connection_limit: int = 500
    channel_timeout: int = 30
    token_file: str | None = None

    def __attrs_post_init__(self) -> None:
        for name, least, most in (
            ("threads", 1, MAX_THREADS),
            ("max_body_bytes", 64, None),
            ("connection_limit", 4, MAX_CONNECTION_LIMIT),
            ("channel_timeout", 1, None),
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise KvConfigError(f"http.{name}: must be an int, got {value!r}")
            if value < least:
                raise KvConfigError(f"http.{name}: must be at least {least}")
            if most is not None and value > most:
                raise KvConfigError(f"http.{name}: must be at most {most}, got {value}")
        for name in ("request_timeout", "admin_timeout", "shutdown_grace"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise KvConfigError(f"http.{name}: must be a number of seconds, got {value!r}")
            if not 0 < value < math.inf:
                raise KvConfigError(f"http.{name}: must be positive and finite")
        if self.token_file is not None and (
            not isinstance(self.token_file, str) or not self.token_file.strip()
        ):
            raise KvConfigError(
                f"http.token_file: must be the path of a file of tokens, got {self.token_file!r}"
            )
