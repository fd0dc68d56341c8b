"""Small real HTTP servers on loopback for faults the demo fleet does not produce: garbage, silence, back-pressure.

`FaultyProxy` forwards to an upstream (the fleet) except for the faults it is told to inject, one per request, in order.
Besides status codes and bodies it breaks the transport itself: connection resets, truncated bodies, slow drips.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOLD_LIMIT = 60.0  # a held answer goes out after this even if the test never released it: no thread waits for ever


@dataclass
class Fault:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path_prefix: str = ""  # only requests whose path starts with this take the fault
    forward: bool = False  # pass the request upstream anyway, then answer with this fault: a lost answer
    reset: bool = False  # drop the connection with a TCP reset instead of answering
    truncate: bool = False  # announce the whole body, send half of it, close
    drip: float = 0.0  # seconds between bytes of the body: a slow drip
    filler: int = 0  # after the body, this many spaces, streamed (a huge answer the proxy never holds in memory)
    # Answer only once the test sets `hold` (after forwarding, if `forward`): a network that takes as long as the test
    # wants, so tests assert what happened meanwhile instead of timing it. `arrived` is set when the request is in.
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return  # a connection the proxy reset on purpose is not news


class FaultyProxy:
    def __init__(self, upstream: str | None = None, *, latency: float = 0.0) -> None:
        self.upstream = upstream
        self.latency = latency  # added to every forwarded answer, after the upstream acted: widens "applied, unheard"
        self.faults: deque[Fault] = deque()
        self.default: Fault | None = None if upstream else Fault(404, b'{"error":"not_found"}')
        self.requests: list[str] = []
        self.answered: list[str] = []  # paths of forwarded requests whose answer went back to the client
        self.on_request: Callable[[str], None] | None = None  # called with each request's path as it comes in
        self.sent: list[int] = []  # body bytes actually written, per faulted answer with filler
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

            def do_DELETE(self) -> None:
                proxy._handle(self, "DELETE")

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def _next_fault(self, path: str) -> Fault | None:
        if self.on_request is not None:
            self.on_request(path)
        with self._lock:
            self.requests.append(path)
            for fault in list(self.faults):
                if path.startswith(fault.path_prefix):
                    self.faults.remove(fault)
                    return fault
            return self.default

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault = self._next_fault(handler.path)
        if fault is not None and fault.forward:
            self._forward(handler, method, body)  # the upstream acts on it; its answer is lost on the way back
        if fault is not None:
            fault.arrived.set()
            if fault.hold is not None:
                fault.hold.wait(HOLD_LIMIT)
            time.sleep(fault.delay)
            if fault.reset:
                self._reset(handler)
                return
            handler.send_response(fault.status)
            for name, value in fault.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(fault.body) + fault.filler))
            handler.end_headers()
            if fault.filler:
                self._stream_filler(handler, fault)
            elif fault.truncate:
                handler.wfile.write(fault.body[: len(fault.body) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                self._reset(handler)
            elif fault.drip:
                for byte in fault.body:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    time.sleep(fault.drip)
            else:
                handler.wfile.write(fault.body)
            return
        self._forward(handler, method, body, reply=True)

    def _stream_filler(self, handler: BaseHTTPRequestHandler, fault: Fault) -> None:
        sent = 0
        chunk = b" " * 65536
        try:
            handler.wfile.write(fault.body)
            sent = len(fault.body)
            while sent < len(fault.body) + fault.filler:
                part = chunk[: len(fault.body) + fault.filler - sent]
                handler.wfile.write(part)
                sent += len(part)
        except OSError:
            handler.close_connection = True  # the client stopped reading: that is the point
        with self._lock:
            self.sent.append(sent)

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        # SO_LINGER 0: close() sends RST, as a crashed middlebox or a killed server does.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
        handler.connection.close()

    def _forward(self, handler: BaseHTTPRequestHandler, method: str, body: bytes, *, reply: bool = False) -> None:
        assert self.upstream is not None
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, handler.path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        if not reply:
            return
        time.sleep(self.latency)
        handler.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        with self._lock:
            self.answered.append(handler.path)

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running(proxy: FaultyProxy) -> Iterator[FaultyProxy]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
