"""Logger names and rate-limited logging.

pykka_raft logs under these names (``docs/operations.md`` lists what each says):

* ``pykka_raft.node``: a node's role, term, known leader, membership and snapshots at
  INFO; per-RPC failures at DEBUG; a node that stops on an error at ERROR;
* ``pykka_raft.storage``: storage actors (stray messages, failures);
* ``pykka_raft.network``: the in-process router (stray messages);
* ``pykka_raft.net``: the TCP network (connections, refusals, malformed frames).

Payload contents are never logged at INFO or above.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

NODE = "pykka_raft.node"
STORAGE = "pykka_raft.storage"
NETWORK = "pykka_raft.network"


class RateLimited:
    """Logs a kind of event at most once per ``interval`` seconds, counting the rest.

    Stray or malformed input can arrive in floods; one line per kind and interval (with
    how many were suppressed since) keeps the log readable and cheap.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: Any) -> None:
        """Log ``message % args`` unless ``kind`` was logged within the interval."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d more like it suppressed)"
            args = (*args, suppressed)
        self.logger.log(level, message, *args)
