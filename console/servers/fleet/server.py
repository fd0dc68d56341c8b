"""The demo fleet: one HTTP server playing several agent services; the reference implementation of PROTOCOL.md.

This module is the transport: the HTTP server and its route table. Beside it: the protocol's handlers in protocol.py,
the queue's state in state.py, the protocol's rules (checks, idempotency, answers) in rules.py, and the test hooks
(`/_fleet/...`, no authentication; and the same as Python methods) in hooks.py. All state is in memory behind one lock.
"""

from __future__ import annotations

import contextlib
import gc
import math
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from console.servers.fleet.protocol import FleetProtocol
from console.servers.fleet.rules import MAX_BODY, Answer, error_answer, json_answer, route_params
from console.servers.fleet.scenarios import DEMO_GAP, Pacing, Scenarios


class Fleet(FleetProtocol):
    """The demo fleet. Thread-safe; `start()` serves it over HTTP in daemon threads."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        interval: float | None = DEMO_GAP,
        initial: int = 12,
        tokens: dict[str, str] | None = None,
        expire_check: float = 1.0,
        remember_removals: int = 10_000,
        name: str = "demo-fleet",
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("interval must be positive or None")
        if expire_check <= 0:
            raise ValueError("expire_check must be positive")
        self.interval = interval
        self.expire_check = expire_check
        self.name = name
        self.url = ""
        self._tokens = dict(tokens) if tokens else None
        # Contents reproducible by seed; the queue starts empty and is filled below.
        super().__init__(Scenarios(random.Random(seed)), remember_removals)  # noqa: S311 - demo contents
        # `interval` is the mean gap between new items outside bursts; None: only the test hooks add items.
        pace = random.Random(None if seed is None else f"pacing-{seed}")  # noqa: S311 - demo pace
        self.pacing = Pacing(pace, interval) if interval is not None else None
        self._stopping = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop_event = threading.Event()
        now = time.time()
        # A bulk load allocates only long-lived objects: collecting meanwhile would double the time of a 100k queue.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with self._lock:
                for _ in range(initial):
                    # The initial queue's digests are computed on first use, also to start quickly.
                    self._insert(self._scenarios.make(now, max_age=900), eager=False)
        finally:
            if collecting:
                gc.enable()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            raise RuntimeError("the fleet is already serving")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = _Server((host, port), self, family)
        self._server = server
        self._stop_event.clear()
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self.url = f"http://{shown_host}:{bound_port}"
        self._threads = [
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fleet-http", daemon=True
            ),
            threading.Thread(target=self._tick, name="fleet-tick", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self.url

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        self._stop_event.set()
        with self._lock:
            self._stopping = True  # releases long-polls at once
            self._changed.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []
        with self._lock:
            self._stopping = False

    def _tick(self) -> None:
        start = time.monotonic()
        next_add = start + self.pacing.next_gap() if self.pacing else math.inf
        next_sweep = start + self.expire_check
        while not self._stop_event.wait(max(0.0, min(next_add, next_sweep) - time.monotonic())):
            now = time.monotonic()
            if now >= next_sweep:
                with self._lock:
                    self._sweep(time.time())
                next_sweep = now + self.expire_check
            if self.pacing and now >= next_add:
                self.add_item()
                next_add = now + self.pacing.next_gap()

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def respond(self, method: str, target: str, authorization: str | None, key: str | None, raw: bytes) -> Answer:
        """Answer one HTTP request: (status, JSON body, extra headers)."""
        split = urlsplit(target)
        segments = split.path.split("/")[1:] or [""]
        query = parse_qs(split.query)
        if segments[0] == "_fleet":
            return self._hook(method, [unquote(s) for s in segments[1:]], query, raw)
        if segments[0] != "v1":
            return error_answer(404, "not_found", f"no route {split.path}")
        route = [unquote(s) for s in segments[1:]]
        request = Request(method, [], query, authorization, key, raw, None)
        authenticated = False
        for pattern in ROUTES:
            params = route_params(pattern.path, route)
            if params is None:
                continue
            if pattern.authenticated and not authenticated:
                who, refused = self._authenticate(authorization)
                if refused is not None:
                    return refused
                authenticated, request = True, replace(request, who=who)
            handler = pattern.methods.get(method)
            if handler is None:
                return error_answer(405, "method_not_allowed", pattern.refusal or f"{method} is not allowed here")
            return handler(self, replace(request, params=params))
        # An unknown path, too, is answered only with a valid token.
        if not authenticated:
            _, refused = self._authenticate(authorization)
            if refused is not None:
                return refused
        return error_answer(404, "not_found", f"no route {split.path}")


@dataclass(frozen=True)
class Request:
    """One request to a `/v1` route, as its handler gets it."""

    method: str
    params: list[str]  # the path segments the route's `*`s stand for
    query: dict[str, list[str]]
    authorization: str | None
    key: str | None  # the Idempotency-Key header
    raw: bytes
    who: str | None  # the authenticated operator, None without tokens


@dataclass(frozen=True)
class Route:
    path: tuple[str, ...]  # `*` matches one segment
    methods: dict[str, Callable[[Fleet, Request], Answer]]
    authenticated: bool = True  # False: the handler authenticates (a decision counts its requests first)
    refusal: str = ""  # the 405's detail for another method


# The protocol's routes, in order. A route's methods answer it; any other method gets 405.
ROUTES = (
    Route(
        ("items", "*", "decision"),
        {"POST": lambda f, r: f._decision_http(r.params[0], r.key, r.raw, r.authorization)},
        authenticated=False,
        refusal="decisions are POSTed",
    ),
    Route(
        ("items", "*", "claim"),
        {verb: lambda f, r: f._claim_http(r.method, r.params[0], r.who, r.raw) for verb in ("POST", "DELETE")},
        refusal="claims are POSTed (claim, renew) or DELETEd (release)",
    ),
    Route(("info",), {"GET": lambda f, _: json_answer(200, f._info())}),
    Route(
        ("items",),
        {
            "GET": lambda f, r: f._listing_http(r.query),
            "POST": lambda f, r: f._create_http(r.key, r.raw, r.who),
        },
    ),
    Route(("feedback",), {"POST": lambda f, r: f._feedback_http(r.key, r.raw, r.who)}),
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # seconds a keep-alive connection may idle (longer than any long-poll) before it is closed
    server: _Server

    def setup(self) -> None:
        super().setup()
        # One write per answer plus no Nagle delay: keep-alive clients get their answers without 40 ms stalls.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # per-request logging costs more than the request

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(*error_answer(411, "length_required", "send the body with a Content-Length"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(*error_answer(413 if length > 0 else 400, "bad_length", "unusable Content-Length"))
            return
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True  # the client went away mid-body
            return
        try:
            headers = self.headers
            answer = self.server.fleet.respond(
                method, self.path, headers.get("Authorization"), headers.get("Idempotency-Key"), raw
            )
        except Exception:
            answer = error_answer(500, "internal", "the fleet failed on this request")
        self._send(*answer)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many keep-alive connections at once

    def __init__(self, address: tuple[str, int], fleet: Fleet, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.fleet = fleet
        self._live: dict[Any, threading.Thread] = {}
        self._live_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can take seconds: not needed here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        # Own thread bookkeeping, so stop() can close keep-alive connections and join their threads.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="fleet-conn", daemon=True
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanished mid-answer is its own problem; the server carries on

    def close_connections(self) -> None:
        with self._live_lock:
            live = list(self._live.items())
        for connection, _ in live:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _, thread in live:
            thread.join(timeout=5)
