"""The key-value endpoints: ``GET``/``PUT``/``DELETE /v1/kv/<key>`` and compare-and-set.

Values are JSON; they are stored as canonical JSON text (:mod:`pykka_raft.kv.store`).
Writes go through the leader's log and are answered once applied; reads go through
:meth:`~pykka_raft.kv.gateway.RaftGateway.read` (the ``consistency`` parameter).
"""

from __future__ import annotations

from typing import Any

from pykka_raft import CasResult, CompareAndSet, Delete, Get, Put
from pykka_raft.kv.gateway import RaftGateway
from pykka_raft.kv.store import decode_value
from pykka_raft.kv.wsgi import HttpError, Request, check_key, json_object, json_value


class KvApi:
    """The key-value handlers of one node."""

    def __init__(self, gateway: RaftGateway) -> None:
        self.gateway = gateway

    def kv(self, request: Request) -> tuple[int, Any]:
        """``GET``/``PUT``/``DELETE /v1/kv/<key>``."""
        key = check_key(request.params["key"], writing=request.method != "GET")
        if request.method == "GET":
            consistency = request.query.get("consistency", "linearizable")
            data, index = self.gateway.read(request, Get(key), consistency)
            if data is None:
                raise HttpError("key_not_found", f"no key {key!r}", key=key)
            return 200, {"key": key, "value": decode_value(data), "index": index}
        if request.method == "PUT":
            body = json_object(request.json(), {"value"}, {"value"})
            text = json_value(body["value"], "value")
            response = self.gateway.submit(request, Put(key, text))
            return 200, {
                "key": key,
                "index": response.index,
                "previous": decode_value(response.data),
                "existed": response.data is not None,
            }
        response = self.gateway.submit(request, Delete(key))
        if response.data is None:
            raise HttpError("key_not_found", f"no key {key!r}", key=key, index=response.index)
        return 200, {"key": key, "index": response.index, "previous": decode_value(response.data)}

    def cas(self, request: Request) -> tuple[int, Any]:
        """``POST /v1/kv/<key>/cas`` with ``{"expected": v, "new": v}``; leaving out
        ``expected`` means "only if the key does not exist"."""
        key = check_key(request.params["key"], writing=True)
        body = json_object(request.json(), {"expected", "new"}, {"new"})
        expected = json_value(body["expected"], "expected") if "expected" in body else None
        new = json_value(body["new"], "new")
        response = self.gateway.submit(request, CompareAndSet(key, expected, new))
        result = response.data
        if not isinstance(result, CasResult):
            raise HttpError("internal", f"unexpected state machine answer {result!r}", status=500)
        if not result.swapped:
            raise HttpError(
                "cas_failed",
                "the key does not hold the expected value; nothing was written",
                key=key,
                current=decode_value(result.previous),
                exists=result.previous is not None,
                index=response.index,
            )
        return 200, {
            "key": key,
            "index": response.index,
            "swapped": True,
            "previous": decode_value(result.previous),
            "existed": result.previous is not None,
        }
