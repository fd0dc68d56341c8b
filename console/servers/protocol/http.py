"""The protocol's HTTP transport: the server, its threads and the `/v1` route table, over the protocol's handlers.

The demo fleet (console.servers.fleet) and `serve` (console.servers.serve) are two front-ends of this one server: the
fleet adds scenarios and test hooks, `serve` persistence and tokens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from console.servers.protocol.extend import ExtendHandlers
from console.servers.protocol.handlers import AGENT, OPERATOR, Caller
from console.servers.protocol.rules import MAX_BODY, Answer, error_answer, json_answer, route_params


class QueueServer(ExtendHandlers):
    """The protocol served over HTTP. Thread-safe; `start()` serves it in daemon threads; `stop()` ends them."""

    def __init__(self, *, name: str, expire_check: float, remember_removals: int) -> None:
        if expire_check <= 0:
            raise ValueError("expire_check must be positive")
        super().__init__(remember_removals)
        self.name = name
        self.expire_check = expire_check
        self.url = ""
        self._stopping = False
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop_event = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            raise RuntimeError("the server is already serving")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = _Server((host, port), self, family)
        self._server = server
        self._stop_event.clear()
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        shown_host = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        self.url = f"http://{shown_host}:{bound_port}"
        self._threads = [
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="queue-http", daemon=True
            ),
            threading.Thread(target=self._tick, name="queue-tick", daemon=True),
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
            for waiters in self._settled.values():
                waiters.notify_all()
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []
        with self._lock:
            self._stopping = False

    def _next_periodic(self) -> float:
        """When (time.monotonic) the front-end's own periodic work is next due; inf: it has none."""
        return float("inf")

    def _periodic(self) -> None:
        """The front-end's own periodic work (the fleet adds items at its pace)."""

    def _tick(self) -> None:
        next_sweep = time.monotonic() + self.expire_check
        while not self._stop_event.wait(max(0.0, min(self._next_periodic(), next_sweep) - time.monotonic())):
            now = time.monotonic()
            if now >= next_sweep:
                with self._transaction():
                    self._sweep(time.time())
                next_sweep = now + self.expire_check
            if now >= self._next_periodic():
                self._periodic()

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def respond(self, method: str, target: str, authorization: str | None, key: str | None, raw: bytes) -> Answer:
        """Answer one HTTP request: (status, JSON body, extra headers)."""
        split = urlsplit(target)
        segments = split.path.split("/")[1:] or [""]
        if segments[0] != "v1":
            return error_answer(404, "not_found", f"no route {split.path}")
        route = [unquote(s) for s in segments[1:]]
        request = Request(method, [], parse_qs(split.query), authorization, key, raw, None)
        authenticated = False
        for pattern in ROUTES:
            params = route_params(pattern.path, route)
            if params is None:
                continue
            if pattern.authenticated and not authenticated:
                caller, refused = self._authenticate(authorization)
                if refused is not None:
                    return refused
                authenticated, request = True, replace(request, caller=caller)
            handler = pattern.methods.get(method)
            if handler is None:
                return error_answer(405, "method_not_allowed", pattern.refusal or f"{method} is not allowed here")
            refused = self._permit(request.caller, pattern.roles.get(method))
            if refused is not None:
                return refused
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
    caller: Caller | None  # who the token names; None without authentication

    @property
    def who(self) -> str | None:
        return self.caller.name if self.caller is not None else None


@dataclass(frozen=True)
class Route:
    path: tuple[str, ...]  # `*` matches one segment
    methods: dict[str, Callable[[QueueServer, Request], Answer]]
    authenticated: bool = True  # False: the handler authenticates (a decision counts its requests first)
    refusal: str = ""  # the 405's detail for another method
    roles: dict[str, str] = field(default_factory=dict)  # method -> the role it needs (OPERATOR, AGENT); absent: any


def _only(role: str, *verbs: str) -> dict[str, str]:
    """These methods need this role."""
    return dict.fromkeys(verbs, role)


# The protocol's routes, in order. A route's methods answer it; any other method gets 405.
ROUTES = (
    Route(
        ("items", "*", "decision"),
        {"POST": lambda q, r: q._decision_http(r.params[0], r.key, r.raw, r.authorization)},
        authenticated=False,
        refusal="decisions are POSTed",
    ),
    Route(
        ("items", "*", "claim"),
        {verb: lambda q, r: q._claim_http(r.method, r.params[0], r.who, r.raw) for verb in ("POST", "DELETE")},
        refusal="claims are POSTed (claim, renew) or DELETEd (release)",
        roles=_only(OPERATOR, "POST", "DELETE"),
    ),
    Route(
        ("items", "*", "outcome"),
        {"GET": lambda q, r: q._outcome_http(r.params[0], r.query, r.caller)},
        roles=_only(AGENT, "GET"),
    ),
    Route(
        ("items", "*", "withdraw"),
        {"POST": lambda q, r: q._withdraw_http(r.params[0], r.caller)},
        refusal="an agent withdraws its item with a POST",
        roles=_only(AGENT, "POST"),
    ),
    Route(  # PROTOCOL.md section 10: an optional part (console/servers/protocol/extend.py)
        ("items", "*", "extend"),
        {"POST": lambda q, r: q._extend_http(r.params[0], r.raw, r.caller)},
        refusal="a deadline is extended with a POST",
        roles=_only(OPERATOR, "POST"),
    ),
    Route(("info",), {"GET": lambda q, _: json_answer(200, q._info())}),
    Route(
        ("items",),
        {
            "GET": lambda q, r: q._listing_http(r.query),
            "POST": lambda q, r: q._create_http(r.key, r.raw, r.caller),
        },
        roles={"GET": OPERATOR, "POST": AGENT},
    ),
    Route(("feedback",), {"POST": lambda q, r: q._feedback_http(r.key, r.raw, r.who)}, roles=_only(OPERATOR, "POST")),
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
            answer = self.server.queue.respond(
                method, self.path, headers.get("Authorization"), headers.get("Idempotency-Key"), raw
            )
        except Exception:
            answer = error_answer(500, "internal", "the server failed on this request")
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

    def __init__(self, address: tuple[str, int], queue: QueueServer, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.queue = queue
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
            target=self.process_request_thread, args=(request, client_address), name="queue-conn", daemon=True
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
