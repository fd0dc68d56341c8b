"""A real HTTP server on loopback that records every request a pager sends: method, path, headers and body.

Answers are scripted: a status per request in order (then 200), and an optional hold that keeps an answer back until
the test releases it (at most HOLD_LIMIT seconds, so no thread waits for ever).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_LIMIT = 60.0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def everything(self) -> str:
        """Path, every header and the body as one text: where a leak would show."""
        heads = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}\n{heads}\n\n{self.body.decode('utf-8', 'replace')}"


class WebhookRecorder:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.statuses: deque[int] = deque()  # answers for the next requests, in order; then 200
        self.hold: threading.Event | None = None  # set: answers wait until it is set
        self.arrived = threading.Event()  # set when any request is in
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._lock:
                    recorder.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body))
                    status = recorder.statuses.popleft() if recorder.statuses else 200
                    hold = recorder.hold
                recorder.arrived.set()
                if hold is not None:
                    hold.wait(HOLD_LIMIT)
                answer = b'{"ok":true}' if status < 300 else b'{"error":"busy"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def received(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def recording() -> Iterator[WebhookRecorder]:
    server = WebhookRecorder()
    server.start()
    try:
        yield server
    finally:
        server.stop()
