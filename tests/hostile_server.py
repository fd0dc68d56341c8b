"""A hostile agent server on loopback: listing pages and answers a test scripts, word for word, and what it was asked.

Built on the fault proxy (tests/servers.py) with no upstream: every request is answered from the script. `/v1/info`
announces long-poll and claims; each `GET /v1/items` takes the next scripted page (the last one repeats); decisions
are answered `applied`, claims granted. Nothing here follows the protocol unless the test says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import Fault, FaultyProxy

EMPTY = b'{"items":[],"removed":[],"cursor":"c0","has_more":false}'


def page(items: list[Any] | None = None, cursor: str | None = "c1", *, removed: list[Any] | None = None) -> bytes:
    body: dict[str, Any] = {"items": items or [], "removed": removed or [], "has_more": False}
    if cursor is not None:
        body["cursor"] = cursor
    return json.dumps(body).encode()


class HostileServer(FaultyProxy):
    def __init__(self, *pages: bytes | Fault) -> None:
        super().__init__()
        self.pages: deque[bytes | Fault] = deque(pages)
        self.last: bytes | Fault = EMPTY
        self.listings: list[tuple[float, dict[str, str]]] = []  # (monotonic time, query) of each listing
        self.paths: list[tuple[str, str]] = []  # (method, path) of everything else but /v1/info
        self._script_lock = threading.Lock()
        self._local = threading.local()  # the method of the request this handler thread is answering

    def script(self, *pages: bytes | Fault) -> None:
        with self._script_lock:
            self.pages.extend(pages)

    def _handle(self, handler: Any, method: str) -> None:
        self._local.method = method
        super()._handle(handler, method)

    def _next_fault(self, path: str) -> Fault | None:
        split = urlsplit(path)
        with self._script_lock:
            self.requests.append(path)
            if split.path == "/v1/info":
                info = {"protocol": "approval-console/1", "features": {"long_poll": True, "claims": True}}
                return Fault(200, json.dumps(info).encode())
            if split.path == "/v1/items":
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                self.listings.append((time.monotonic(), query))
                if self.pages:
                    self.last = self.pages.popleft()
                answer = self.last
                return answer if isinstance(answer, Fault) else Fault(200, answer)
            self.paths.append((self._local.method, split.path))
            if split.path.endswith("/claim"):
                return Fault(200, b'{"claimed_by": "alice", "lease_id": "l1"}')
            return Fault(200, json.dumps({"outcome": "applied", "item_id": "?", "decision_id": "?"}).encode())
