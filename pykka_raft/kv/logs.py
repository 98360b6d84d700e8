"""Log lines that say which node wrote them, in which role and term."""

from __future__ import annotations

import logging
import sys

from pykka_raft.kv.metrics_view import MetricsView

FORMAT = (
    "%(asctime)s %(levelname)s node=%(kv_node)s role=%(kv_role)s term=%(kv_term)s "
    "%(name)s: %(message)s"
)


class NodeContextFilter(logging.Filter):
    """Adds ``kv_node``, ``kv_role`` and ``kv_term`` to every record, from the node's
    latest metrics (``starting`` and ``-`` until it has published any)."""

    def __init__(self, view: MetricsView) -> None:
        super().__init__()
        self.view = view

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record (never drops it)."""
        m = self.view.latest()
        record.kv_node = self.view.node_id
        record.kv_role = m.state.value if m is not None else "starting"
        record.kv_term = m.current_term if m is not None else "-"
        return True


class QuietFilter(logging.Filter):
    """Drops what repeats without telling anything new: waitress's "Task queue depth"
    warning, which fires whenever a request waits for a worker thread (normal under load:
    every request waiting for Raft holds one; ``pykka_raft_kv_write_seconds`` shows the
    cost). Role changes come from the library (``pykka_raft.node``), once per change."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the records to drop."""
        return not (record.name == "waitress.queue" and record.levelno < logging.ERROR)


def log_to_stderr(view: MetricsView, level: int = logging.INFO) -> logging.Handler:
    """Send the process's log records to stderr, each with the node's id, role and term."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(QuietFilter())
    handler.addFilter(NodeContextFilter(view))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
