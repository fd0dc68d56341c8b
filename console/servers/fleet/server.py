"""The demo fleet: one HTTP server playing several agent services; the reference implementation of PROTOCOL.md.

The protocol itself (rules, handlers, HTTP transport, the in-memory state) is console.servers.protocol, shared with
`serve`. The fleet adds what a demo and the tests need: generated items (scenarios.py) at a realistic pace, and the
test hooks (`/_fleet/...`, no authentication; and the same as Python methods) in hooks.py.
"""

from __future__ import annotations

import gc
import math
import random
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from console.servers.fleet.hooks import FleetHooks
from console.servers.fleet.scenarios import DEMO_GAP, Pacing, Scenarios
from console.servers.protocol.handlers import Caller
from console.servers.protocol.http import QueueServer
from console.servers.protocol.rules import Answer


class Fleet(FleetHooks, QueueServer):
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
        two_person: bool = False,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("interval must be positive or None")
        super().__init__(name=name, expire_check=expire_check, remember_removals=remember_removals)
        self.interval = interval
        # token -> operator; None: no authentication. A fleet token may do everything (the fleet plays the agents).
        self._tokens = dict(tokens) if tokens else None
        # Contents reproducible by seed; the queue starts empty and is filled below.
        self._scenarios = Scenarios(random.Random(seed), two_person=two_person)  # noqa: S311 - demo contents
        # `interval` is the mean gap between new items outside bursts; None: only the test hooks add items.
        pace = random.Random(None if seed is None else f"pacing-{seed}")  # noqa: S311 - demo pace
        self.pacing = Pacing(pace, interval) if interval is not None else None
        self._next_add = math.inf
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

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._next_add = time.monotonic() + self.pacing.next_gap() if self.pacing else math.inf
        return super().start(host, port)

    def _next_periodic(self) -> float:
        return self._next_add

    def _periodic(self) -> None:
        self.add_item()
        self._next_add = time.monotonic() + self.pacing.next_gap() if self.pacing else math.inf

    def _requires_token(self) -> bool:
        return self._tokens is not None

    def _caller_for(self, token: str) -> Caller | None:
        name = (self._tokens or {}).get(token)
        return Caller(name, operator=True, agent=True) if name is not None else None

    def _info(self) -> dict[str, Any]:
        return {**super()._info(), "agents": self._scenarios.agents}

    def respond(self, method: str, target: str, authorization: str | None, key: str | None, raw: bytes) -> Answer:
        split = urlsplit(target)
        segments = split.path.split("/")[1:] or [""]
        if segments[0] == "_fleet":
            return self._hook(method, [unquote(s) for s in segments[1:]], parse_qs(split.query), raw)
        return super().respond(method, target, authorization, key, raw)
