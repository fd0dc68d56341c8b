"""The demo fleet: one HTTP server playing several agent services; the reference implementation of PROTOCOL.md.

All state is in memory behind one lock. Besides the protocol (`/v1/...`) it serves test hooks under `/_fleet/...`
(no authentication) so tests running the console in a subprocess can drive it: add, change, supersede, expire or
withdraw items, decide them "elsewhere", inject malformed items, and read back what was applied.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import math
import random
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import ValidationError

from console import schema_check
from console.fleet.scenarios import DEMO_GAP, Pacing, Scenarios, rfc3339
from storage.records import Item, id_problem, item_digest, shown_part

PROTOCOL = "approval-console/1"
MAX_WAIT = 30.0
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_BODY = 16 * 1024 * 1024
MAX_ERRORS = 50
CLAIM_LEASE = 60.0  # seconds a claim lasts unless renewed (PROTOCOL.md section 5)
VERDICTS = ("approve", "reject", "edit")
_SERVER_FIELDS = ("id", "digest", "seq", "claimed_by", "source")  # filled in by the server, never by the agent

Answer = tuple[int, bytes, dict[str, str]]


class NotPending(ValueError):
    """The item already left the pending state."""


class _Record:
    """One item and its state. `item` is the listed payload; its digest is computed on first use (see `_digest`)."""

    __slots__ = ("deadline", "item", "removal", "seq", "state", "validator", "wire")

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.state = "pending"
        self.seq = 0
        self.deadline: float | None = None
        self.removal: dict[str, Any] = {}
        self.wire: str | None = None  # the item as listed (JSON), cached until the next change
        self.validator: Any = None  # the item's jsonschema validator, built on first use


class _Garbage:
    """A raw value injected into listings to exercise a client's quarantine."""

    __slots__ = ("seq", "wire")

    def __init__(self, raw: Any, seq: int) -> None:
        self.seq = seq
        self.wire = json.dumps(raw)


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _answer(status: int, value: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, _encode(value), headers or {}


def _error(status: int, name: str, detail: str, **extra: Any) -> Answer:
    return _answer(status, {"error": name, "detail": detail, **extra})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """PROTOCOL.md conventions: a body with a duplicate member name is refused, never read one way or the other."""
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("duplicate member name")
    return dict(pairs)


def _parse_json(raw: bytes) -> tuple[Any, bool]:
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique_names
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, False
    return value, True


def _remote_refs(schema: Any) -> list[str]:
    """The `$ref`s of a schema that point outside it: PROTOCOL.md allows only local ones (`#...`)."""
    if isinstance(schema, list):
        return [ref for part in schema for ref in _remote_refs(part)]
    if not isinstance(schema, dict):
        return []
    own = [schema["$ref"]] if isinstance(schema.get("$ref"), str) and not schema["$ref"].startswith("#") else []
    return own + [ref for value in schema.values() for ref in _remote_refs(value)]


def _fingerprint(*parts: Any) -> str:
    """What "the same request" means for an idempotency key: the same JSON values, whatever their spelling."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def _parse_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        raise ValueError("timestamps need a time zone")
    return moment.timestamp()


def _pointer(path: Any) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _issue(where: str, path: str, message: str) -> dict[str, str]:
    return {"in": where, "path": path, "message": message}


class Fleet:
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
        self._scenarios = Scenarios(random.Random(seed))  # noqa: S311 - demo contents, reproducible by seed
        # `interval` is the mean gap between new items outside bursts; None: only the test hooks add items.
        pace = random.Random(None if seed is None else f"pacing-{seed}")  # noqa: S311 - demo pace
        self.pacing = Pacing(pace, interval) if interval is not None else None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # The epoch makes cursors from another run of the fleet (or another fleet) unusable: they get 410.
        self._epoch = secrets.token_hex(4)
        self._seq = 0
        self._horizon = 0  # the newest forgotten change: cursors below it get 410
        self._log: dict[int, _Record | _Garbage] = {}  # seq -> the entry whose latest change has that seq
        self._records: dict[str, _Record] = {}
        self._removals: deque[int] = deque()
        self._remember = max(0, remember_removals)
        self._deadlines: list[tuple[float, int, str]] = []  # heap of (deadline, seq when set, item id)
        self._decision_keys: dict[str, tuple[str, int, bytes]] = {}
        self._feedback_keys: dict[str, tuple[str, int, bytes]] = {}
        self._create_keys: dict[str, tuple[str, int, bytes]] = {}
        self._applied: list[dict[str, Any]] = []
        self._requests = 0
        self._requests_by_item: Counter[str] = Counter()
        self._labels: dict[str, dict[str, Any]] = {}
        self._leases: dict[str, float] = {}  # item id -> when its claim lapses
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

    # -- test hooks (thread-safe) --------------------------------------------------------------------------------

    def add_item(self, **overrides: Any) -> dict[str, Any]:
        """Generate a realistic item, apply `overrides` (top-level fields; `kind`/`agent` also pick the template;
        `expires_in` seconds sets `expires_at`), store it and return it as listed."""
        now = time.time()
        with self._lock:
            payload = self._scenarios.make(now, kind=overrides.get("kind"), agent=overrides.get("agent"))
            _apply_overrides(payload, overrides, now)
            wanted = payload.pop("id", None)
            if wanted is not None and (id_problem(wanted) is not None or wanted in self._records):
                raise ValueError(f"id {wanted!r} is not a new item id ({id_problem(wanted) or 'taken'})")
            return _loads(self._wire(self._insert(payload, item_id=wanted)))

    def change_item(self, item_id: str, **changes: Any) -> dict[str, Any]:
        """A new version of a pending item: new seq and always a new digest (when `changes` alter nothing that is
        shown, the agent adds a line to its evidence)."""
        now = time.time()
        with self._lock:
            rec = self._pending_record(item_id)
            payload = self._payload(rec)
            _apply_overrides(payload, changes, now)
            item = self._build(item_id, payload)
            if item["digest"] == self._digest(rec):
                context = payload.get("context")
                context = dict(context) if isinstance(context, dict) else {}
                evidence = context.get("evidence")
                evidence = [*evidence] if isinstance(evidence, list) else []
                context["evidence"] = [*evidence, f"revised by the agent at {rfc3339(now)}"]
                item = self._build(item_id, {**payload, "context": context})
            deadline = _parse_time(item.get("expires_at"))
            rec.item, rec.validator = item, None
            self._store(rec, deadline)
            return _loads(self._wire(rec))

    def supersede(self, item_id: str, **changes: Any) -> dict[str, Any]:
        """The agent replaces a pending item by a new one (new id): the old one leaves as `superseded`."""
        now = time.time()
        with self._lock:
            rec = self._pending_record(item_id)
            payload = self._payload(rec)
            payload["created_at"] = rfc3339(int(now))
            payload.pop("claimed_by", None)
            _apply_overrides(payload, changes, now)
            new = self._insert(payload)
            self._remove(rec, "superseded", superseded_by=new.item["id"])
            return _loads(self._wire(new))

    def decide_elsewhere(self, item_id: str, by: str = "bob", verdict: str = "approve") -> None:
        """Another reviewer decides first. Recorded among the applied decisions, with a `decision_id` of its own."""
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self._lock:
            rec = self._pending_record(item_id)
            self._apply(rec, f"elsewhere-{secrets.token_hex(8)}", verdict, None, None, "", by, time.time())

    def claim(self, item_id: str, by: str, lease: float = CLAIM_LEASE) -> tuple[bool, dict[str, Any]]:
        """Claim (or renew) a pending item for `by`. Returns (granted, answer); refused while another holds it."""
        now = time.time()
        with self._lock:
            rec = self._pending_record(item_id)
            holder = rec.item.get("claimed_by")
            lapses = self._leases.get(item_id, 0.0)
            if holder and holder != by and lapses > now:
                return False, {"error": "claimed", "claimed_by": holder, "expires_at": rfc3339(lapses)}
            self._leases[item_id] = now + lease
            if holder != by:
                rec.item["claimed_by"] = by
                self._bump(rec)  # listed again: same digest, a new holder
            return True, {"lease_id": f"{item_id}:{by}", "claimed_by": by, "expires_at": rfc3339(now + lease)}

    def release(self, item_id: str, by: str) -> bool:
        """Release `by`'s claim; False when `by` does not hold it."""
        with self._lock:
            rec = self._pending_record(item_id)
            if rec.item.get("claimed_by") != by:
                return False
            self._drop_claim(rec)
            return True

    def expire(self, item_id: str) -> None:
        with self._lock:
            self._expire(self._pending_record(item_id), time.time())

    def withdraw(self, item_id: str) -> None:
        with self._lock:
            self._remove(self._pending_record(item_id), "withdrawn")

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            records = sorted((r for r in self._records.values() if r.state == "pending"), key=lambda r: r.seq)
            return [_loads(self._wire(r)) for r in records]

    def applied_decisions(self) -> list[dict[str, Any]]:
        """Every applied decision, oldest first: those POSTed and those made by `decide_elsewhere`."""
        with self._lock:
            return [dict(d) for d in self._applied]

    def decision_requests(self, item_id: str | None = None) -> int:
        with self._lock:
            return self._requests if item_id is None else self._requests_by_item[item_id]

    def feedback(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(label) for label in self._labels.values()]

    def inject_garbage(self, raw: Any) -> None:
        with self._lock:
            self._seq += 1
            self._log[self._seq] = _Garbage(raw, self._seq)
            self._changed.notify_all()

    # -- state (callers hold the lock) ---------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            candidate = self._scenarios.new_id()
            if candidate not in self._records:
                return candidate

    def _build(self, item_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        item = {"id": item_id, **{k: v for k, v in payload.items() if k not in _SERVER_FIELDS}}
        item["claimed_by"] = payload.get("claimed_by")
        # Eager digest: a value that cannot be canonicalised is refused here, not at listing time.
        item["digest"] = item_digest(shown_part(item))
        return item

    def _insert(self, payload: dict[str, Any], *, item_id: str | None = None, eager: bool = True) -> _Record:
        item_id = item_id or self._new_id()
        item = self._build(item_id, payload) if eager else {"id": item_id, **payload, "claimed_by": None}
        deadline = _parse_time(item.get("expires_at"))
        rec = _Record(item)
        self._records[item_id] = rec
        self._store(rec, deadline)
        return rec

    def _payload(self, rec: _Record) -> dict[str, Any]:
        """A deep copy of the item without the fields the digest leaves out (but with `claimed_by`)."""
        return {k: v for k, v in _loads(self._wire(rec)).items() if k not in ("digest", "seq", "source")}

    def _bump(self, entry: _Record) -> None:
        self._seq += 1
        if entry.seq:
            self._log.pop(entry.seq, None)
        entry.seq = self._seq
        entry.wire = None
        self._log[entry.seq] = entry
        self._changed.notify_all()

    def _store(self, rec: _Record, deadline: float | None) -> None:
        """Record a new version of `rec` (its item already replaced): next seq, new deadline."""
        self._bump(rec)
        rec.deadline = deadline
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, rec.seq, rec.item["id"]))

    def _digest(self, rec: _Record) -> str:
        digest = rec.item.get("digest")
        if digest is None:
            digest = rec.item["digest"] = item_digest(shown_part(rec.item))
        return str(digest)

    def _wire(self, rec: _Record) -> str:
        if rec.wire is None:
            self._digest(rec)
            rec.item["seq"] = rec.seq
            rec.wire = json.dumps(rec.item, ensure_ascii=False, separators=(",", ":"))
        return rec.wire

    def _pending_record(self, item_id: str) -> _Record:
        rec = self._records.get(item_id)
        if rec is None:
            raise KeyError(item_id)
        if rec.state != "pending":
            raise NotPending(f"item {item_id} is {rec.state}")
        return rec

    def _drop_claim(self, rec: _Record) -> None:
        self._leases.pop(rec.item["id"], None)
        if rec.item.get("claimed_by") is not None:
            rec.item["claimed_by"] = None
            self._bump(rec)

    def _remove(self, rec: _Record, state: str, **detail: Any) -> None:
        self._leases.pop(rec.item["id"], None)
        rec.state = state
        self._bump(rec)
        rec.removal = {"id": rec.item["id"], "state": state, "seq": rec.seq, **detail}
        self._removals.append(rec.seq)
        while len(self._removals) > self._remember:
            forgotten = self._removals.popleft()
            self._log.pop(forgotten, None)
            self._horizon = forgotten

    def _expire(self, rec: _Record, now: float) -> None:
        self._remove(rec, "expired", on_expiry=rec.item.get("on_expiry", "reject"), expired_at=rfc3339(now))

    def _sweep(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, item_id = heapq.heappop(deadlines)
            rec = self._records.get(item_id)
            if rec is not None and rec.state == "pending" and rec.deadline == deadline:
                self._expire(rec, now)
        for item_id in [i for i, lapses in self._leases.items() if lapses <= now]:
            self._drop_claim(self._records[item_id])

    # -- HTTP ----------------------------------------------------------------------------------------------------

    def respond(self, method: str, target: str, authorization: str | None, key: str | None, raw: bytes) -> Answer:
        """Answer one HTTP request: (status, JSON body, extra headers)."""
        split = urlsplit(target)
        segments = split.path.split("/")[1:] or [""]
        query = parse_qs(split.query)
        if segments[0] == "_fleet":
            return self._hook(method, [unquote(s) for s in segments[1:]], query, raw)
        if segments[0] != "v1":
            return _error(404, "not_found", f"no route {split.path}")
        route = [unquote(s) for s in segments[1:]]
        if len(route) == 3 and route[0] == "items" and route[2] == "decision":
            if method != "POST":
                return _error(405, "method_not_allowed", "decisions are POSTed")
            return self._decision_http(route[1], key, raw, authorization)
        who, refused = self._authenticate(authorization)
        if refused is not None:
            return refused
        if len(route) == 3 and route[0] == "items" and route[2] == "claim":
            return self._claim_http(method, route[1], who, raw)
        if route == ["info"] and method == "GET":
            return _answer(200, self._info())
        if route == ["items"] and method == "GET":
            return self._listing_http(query)
        if route == ["items"] and method == "POST":
            return self._create_http(key, raw, who)
        if route == ["feedback"] and method == "POST":
            return self._feedback_http(key, raw, who)
        if route in (["info"], ["items"], ["feedback"]):
            return _error(405, "method_not_allowed", f"{method} is not allowed here")
        return _error(404, "not_found", f"no route {split.path}")

    def _authenticate(self, header: str | None) -> tuple[str | None, Answer | None]:
        if self._tokens is None:
            return None, None
        scheme, _, token = (header or "").partition(" ")
        who = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if who is None:
            detail = "a bearer token is required" if not header else "the token is not valid"
            body = {"outcome": "unauthorized", "error": "unauthorized", "detail": detail}
            return None, _answer(401, body, {"WWW-Authenticate": 'Bearer realm="approval-console"'})
        return who, None

    def _info(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "name": self.name,
            "features": {"long_poll": True, "claims": True, "feedback": True},
            "max_wait": MAX_WAIT,
            "max_limit": MAX_LIMIT,
            "agents": self._scenarios.agents,
        }

    def _claim_http(self, method: str, item_id: str, who: str | None, raw: bytes) -> Answer:
        if method not in ("POST", "DELETE"):
            return _error(405, "method_not_allowed", "claims are POSTed (claim, renew) or DELETEd (release)")
        body, ok = _parse_json(raw) if raw.strip() else ({}, True)
        named = body.get("operator") if ok and isinstance(body, dict) else None
        # Without authentication the fleet trusts the name the client gives, as it does for decisions.
        by = who or (named if isinstance(named, str) and named else "anonymous")
        try:
            if method == "DELETE":
                released = self.release(item_id, by)
                return _answer(200 if released else 409, {"released": released})
            granted, answer = self.claim(item_id, by)
        except KeyError:
            return _error(404, "not_found", "no such item")
        except NotPending as exc:
            return _error(409, "not_pending", str(exc))
        return _answer(200 if granted else 409, answer)

    # -- listing -------------------------------------------------------------------------------------------------

    def _listing_http(self, query: dict[str, list[str]]) -> Answer:
        cursor = (query.get("cursor") or [""])[-1] or None
        try:
            limit = int((query.get("limit") or [str(DEFAULT_LIMIT)])[-1])
            wait = float((query.get("wait") or ["0"])[-1])
        except ValueError:
            return _error(400, "bad_request", "limit must be an integer and wait a number of seconds")
        if not math.isfinite(wait):
            return _error(400, "bad_request", "wait must be a finite number of seconds")
        limit = min(max(limit, 1), MAX_LIMIT)
        wait = min(max(wait, 0.0), MAX_WAIT)
        with self._lock:
            self._sweep(time.time())
            if cursor is None:
                return 200, self._page(0, limit, snapshot=True), {}
            after = self._cursor_seq(cursor)
            if after is not None and wait > 0 and after == self._seq:
                self._changed.wait_for(lambda: self._seq != after or self._stopping, timeout=wait)
                self._sweep(time.time())
                after = self._cursor_seq(cursor)
            if after is None:
                return _error(410, "cursor_expired", "this cursor is too old or from another run: list without one")
            return 200, self._page(after, limit, snapshot=False), {}

    def _cursor_seq(self, cursor: str) -> int | None:
        epoch, _, number = cursor.partition("-")
        if epoch != self._epoch or not (number.isascii() and number.isdigit()):
            return None
        seq = int(number)
        return seq if self._horizon <= seq <= self._seq else None

    def _page(self, after: int, limit: int, *, snapshot: bool) -> bytes:
        items: list[str] = []
        removed: list[dict[str, Any]] = []
        last, top, more = after, self._seq, False
        seq, log = after, self._log
        while seq < top:
            seq += 1
            entry = log.get(seq)
            if entry is None:
                continue
            gone = isinstance(entry, _Record) and entry.state != "pending"
            if gone and snapshot:
                continue  # a snapshot omits removals
            if len(items) + len(removed) == limit:
                more = True
                break
            if isinstance(entry, _Garbage):
                items.append(entry.wire)
            elif gone:
                removed.append(entry.removal)
            else:
                items.append(self._wire(entry))
            last = seq
        cursor = f"{self._epoch}-{last if more else top}"
        return (
            f'{{"items":[{",".join(items)}],"removed":{json.dumps(removed, separators=(",", ":"))},'
            f'"cursor":"{cursor}","has_more":{"true" if more else "false"}}}'
        ).encode()

    # -- deciding ------------------------------------------------------------------------------------------------

    def _decision_http(self, item_id: str, key: str | None, raw: bytes, authorization: str | None) -> Answer:
        with self._lock:
            self._requests += 1
            self._requests_by_item[item_id] += 1
        who, refused = self._authenticate(authorization)
        if refused is not None:
            return refused
        if not key:
            return _error(400, "idempotency_key_required", "send the decision's id as the Idempotency-Key header")
        body, ok = _parse_json(raw)
        if not ok:
            return _error(400, "bad_json", "the body is not valid JSON")
        fingerprint = _fingerprint(item_id, who, body)
        with self._lock:
            stored = self._decision_keys.get(key)
            if stored is not None:
                if stored[0] == fingerprint:
                    return stored[1], stored[2], {}
                return _answer(
                    409, {"outcome": "idempotency_conflict", "detail": "this key was used with another body"}
                )
            status, answer = self._decide(item_id, key, body, who)
            encoded = _encode(answer)
            self._decision_keys[key] = (fingerprint, status, encoded)
            return status, encoded, {}

    def _decide(self, item_id: str, key: str, body: Any, who: str | None) -> tuple[int, dict[str, Any]]:
        rec = self._records.get(item_id)
        if rec is None:
            return 404, {"outcome": "not_found", "detail": "no such item"}
        if not isinstance(body, dict):
            return _invalid([_issue("body", "", "the body must be a JSON object")])
        problems = _body_problems(body)
        if problems:
            return _invalid(problems)
        now = time.time()
        if rec.state == "pending" and rec.deadline is not None and rec.deadline <= now:
            self._expire(rec, now)  # the deadline is the server's clock, swept or not
        if rec.state != "pending":
            return _final_answer(rec)
        digest = self._digest(rec)
        if body["item_digest"] != digest:
            return 409, {
                "outcome": "stale",
                "detail": "the item changed since it was shown",
                "current_digest": digest,
            }
        verdict = body["verdict"]
        if verdict not in rec.item.get("allowed_decisions", VERDICTS):
            return _invalid([_issue("body", "/verdict", f"{verdict} is not allowed for this item")])
        edited = body.get("edited") if verdict == "edit" else None
        if verdict == "edit":
            problems = self._edit_problems(rec, edited)
            if problems:
                return _invalid(problems)
        operator = who or (body.get("operator") if isinstance(body.get("operator"), str) else None) or "anonymous"
        reason, comment = body.get("reason_code"), body.get("comment") or ""
        applied_at = self._apply(rec, key, verdict, edited, reason, comment, operator, now)
        return 200, {"outcome": "applied", "item_id": item_id, "decision_id": key, "applied_at": applied_at}

    def _apply(
        self,
        rec: _Record,
        decision_id: str,
        verdict: str,
        edited: Any,
        reason_code: str | None,
        comment: str,
        operator: str,
        now: float,
    ) -> str:
        applied_at = rfc3339(now)
        self._applied.append(
            {
                "decision_id": decision_id,
                "item_id": rec.item["id"],
                "verdict": verdict,
                "edited": edited,
                "reason_code": reason_code,
                "comment": comment,
                "operator": operator,
                "applied_at": applied_at,
            }
        )
        self._remove(rec, "decided", decided_by=operator, verdict=verdict, decided_at=applied_at)
        return applied_at

    def _edit_problems(self, rec: _Record, edited: Any) -> list[dict[str, str]]:
        if rec.item.get("kind") != "escalation" and not isinstance(edited, dict):
            return [_issue("body", "/edited", "edited arguments must be a JSON object")]
        action = rec.item.get("action")
        schema = action.get("args_schema") if isinstance(action, dict) else None
        if not isinstance(schema, dict):
            return []
        try:
            if rec.validator is None:
                rec.validator = schema_check.validator_for(schema)  # its own draft; local `$ref`s only (R8)
            errors = sorted(rec.validator.iter_errors(edited), key=lambda e: _pointer(e.absolute_path))
        except schema_check.SchemaUnusable as exc:
            return [_issue("edited", "", f"the item's args_schema cannot check an edit: {exc}")]
        except Exception as exc:  # e.g. an unresolvable $ref: final for this edit, never a 500 to retry
            return [_issue("edited", "", f"the item's args_schema cannot be applied: {type(exc).__name__}")]
        problems = []
        for error in errors[:MAX_ERRORS]:
            path = _pointer(error.absolute_path)
            if error.validator == "required" and isinstance(error.instance, dict):
                missing = [k for k in error.validator_value if k not in error.instance and repr(k) in error.message]
                path += _pointer(missing[:1])
            problems.append(_issue("edited", path, error.message))
        return problems

    # -- feedback and the agent side -----------------------------------------------------------------------------

    def _idempotent(
        self, store: dict[str, tuple[str, int, bytes]], key: str | None, raw: bytes, who: str | None
    ) -> tuple[Any, str, Answer | None]:
        """Parse a keyed request; returns (body, fingerprint, the answer when there is nothing more to do)."""
        if not key:
            return None, "", _error(400, "idempotency_key_required", "send an Idempotency-Key header")
        body, ok = _parse_json(raw)
        if not ok:
            return None, "", _error(400, "bad_json", "the body is not valid JSON")
        fingerprint = _fingerprint(who, body)
        stored = store.get(key)
        if stored is None:
            return body, fingerprint, None
        if stored[0] == fingerprint:
            return body, fingerprint, (stored[1], stored[2], {})
        return body, fingerprint, _error(409, "idempotency_conflict", "this key was used with another body")

    def _feedback_http(self, key: str | None, raw: bytes, who: str | None) -> Answer:
        with self._lock:
            body, fingerprint, done = self._idempotent(self._feedback_keys, key, raw, who)
            if done is not None:
                return done
            assert key is not None
            problems = _label_problems(body)
            if problems:
                answer = _error(422, "invalid", "the batch was refused", errors=problems)
            else:
                accepted = duplicates = 0
                for label in body["labels"]:
                    if label["label_id"] in self._labels:
                        duplicates += 1
                        continue
                    accepted += 1
                    self._labels[label["label_id"]] = {**label, "operator": who} if who else dict(label)
                answer = _answer(200, {"accepted": accepted, "duplicates": duplicates})
            self._feedback_keys[key] = (fingerprint, answer[0], answer[1])
            return answer

    def _create_http(self, key: str | None, raw: bytes, who: str | None) -> Answer:
        with self._lock:
            body, fingerprint, done = self._idempotent(self._create_keys, key, raw, who)
            if done is not None:
                return done
            assert key is not None
            answer = self._create(body)
            self._create_keys[key] = (fingerprint, answer[0], answer[1])
            return answer

    def _create(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return _error(
                422, "invalid", "the item must be a JSON object", errors=[_issue("body", "", "not an object")]
            )
        payload = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
        payload.setdefault("created_at", rfc3339(int(time.time())))
        item_id = self._new_id()
        try:
            item = self._build(item_id, payload)
        except ValueError as exc:
            return _error(422, "invalid", "the item cannot be canonicalised", errors=[_issue("body", "", str(exc))])
        problems: list[dict[str, str]] = []
        deadline: float | None = None
        for name in ("created_at", "expires_at"):
            try:
                moment = _parse_time(item.get(name))
            except ValueError:
                problems.append(_issue("body", f"/{name}", "must be an RFC 3339 timestamp with a time zone"))
            else:
                deadline = moment if name == "expires_at" else deadline
        try:
            parsed = Item.model_validate(item)
        except ValidationError as exc:
            problems = [_issue("body", _pointer(e["loc"]), e["msg"]) for e in exc.errors()[:MAX_ERRORS]]
        else:
            if not parsed.allowed_decisions:
                problems.append(_issue("body", "/allowed_decisions", "at least one decision must be allowed"))
            if parsed.action is not None and parsed.action.args_schema is not None:
                try:
                    schema_check.validator_for(parsed.action.args_schema)
                except schema_check.SchemaUnusable as exc:
                    problems.append(_issue("body", "/action/args_schema", str(exc)))
                if _remote_refs(item["action"]["args_schema"]):
                    problems.append(_issue("body", "/action/args_schema", "only local references ($ref: #...)"))
        if problems:
            return _error(422, "invalid", "the item was refused", errors=problems)
        rec = _Record(item)
        self._records[item_id] = rec
        self._store(rec, deadline)
        return 201, self._wire(rec).encode(), {}

    # -- test hooks over HTTP ------------------------------------------------------------------------------------

    def _hook(self, method: str, route: list[str], query: dict[str, list[str]], raw: bytes) -> Answer:
        body: Any = {}
        if raw.strip():
            body, ok = _parse_json(raw)
            if not ok:
                return _error(400, "bad_json", "the body is not valid JSON")
        try:
            return self._run_hook(method, route, query, body)
        except KeyError as exc:
            return _error(404, "not_found", f"no item {exc.args[0]!r}")
        except NotPending as exc:
            return _error(409, "not_pending", str(exc))
        except (TypeError, ValueError) as exc:
            return _error(422, "invalid", str(exc))

    def _run_hook(self, method: str, route: list[str], query: dict[str, list[str]], body: Any) -> Answer:
        if method == "GET" and route == ["decisions"]:
            item_id = query["item_id"][-1] if query.get("item_id") else None
            return _answer(200, {"applied": self.applied_decisions(), "requests": self.decision_requests(item_id)})
        if method == "GET" and route == ["feedback"]:
            return _answer(200, {"labels": self.feedback()})
        if method == "GET" and route == ["pending"]:
            return _answer(200, {"items": self.pending()})
        if method == "POST" and route == ["garbage"]:
            self.inject_garbage(body)
            return _answer(200, {"ok": True})
        if method != "POST" or not route or route[0] != "items":
            return _error(404, "not_found", "no such test hook")
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        if len(route) == 1:
            return _answer(200, self.add_item(**body))
        if len(route) != 3:
            return _error(404, "not_found", "no such test hook")
        item_id, verb = route[1], route[2]
        if verb == "change":
            return _answer(200, self.change_item(item_id, **body))
        if verb == "claim":
            return _answer(200, self.claim(item_id, by=str(body.get("by", "bob")))[1])
        if verb == "supersede":
            return _answer(200, self.supersede(item_id, **body))
        if verb == "decide_elsewhere":
            self.decide_elsewhere(item_id, by=str(body.get("by", "bob")), verdict=str(body.get("verdict", "approve")))
        elif verb == "expire":
            self.expire(item_id)
        elif verb == "withdraw":
            self.withdraw(item_id)
        else:
            return _error(404, "not_found", "no such test hook")
        return _answer(200, {"ok": True})


def _apply_overrides(payload: dict[str, Any], overrides: Mapping[str, Any], now: float) -> None:
    for name, value in overrides.items():
        if name == "expires_in":
            payload["expires_at"] = rfc3339(now + float(value))
        elif name in ("digest", "seq"):
            continue  # computed by the fleet; a wrong digest is what inject_garbage is for
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
            payload[name] = rfc3339(value.timestamp())
        else:
            payload[name] = value


def _invalid(problems: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
    first = problems[0]
    return 422, {"outcome": "invalid", "detail": f"{first['path'] or '/'}: {first['message']}", "errors": problems}


def _final_answer(rec: _Record) -> tuple[int, dict[str, Any]]:
    removal = rec.removal
    if rec.state == "decided":
        detail = f"decided by {removal['decided_by']} ({removal['verdict']}) at {removal['decided_at']}"
        fields = {k: removal[k] for k in ("decided_by", "verdict", "decided_at")}
        return 409, {"outcome": "conflict", "detail": detail, **fields}
    if rec.state == "expired":
        detail = f"the deadline passed; on_expiry {removal['on_expiry']!r} was applied"
        return 410, {"outcome": "expired", "detail": detail, **{k: removal[k] for k in ("on_expiry", "expired_at")}}
    if rec.state == "superseded":
        return 410, {
            "outcome": "superseded",
            "detail": f"replaced by {removal['superseded_by']}",
            "superseded_by": removal["superseded_by"],
        }
    return 410, {"outcome": "withdrawn", "detail": "the agent withdrew this item"}


def _body_problems(body: dict[str, Any]) -> list[dict[str, str]]:
    """The checks that do not depend on the item."""
    problems = []
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        problems.append(_issue("body", "/verdict", "must be one of approve, reject, edit"))
    if not isinstance(body.get("item_digest"), str):
        problems.append(_issue("body", "/item_digest", "the digest of the version shown is required"))
    for name in ("reason_code", "comment", "operator", "decided_at", "edited_digest"):
        if body.get(name) is not None and not isinstance(body[name], str):
            problems.append(_issue("body", f"/{name}", "must be a string or null"))
    if verdict == "reject" and not (isinstance(body.get("reason_code"), str) and body["reason_code"].strip()):
        problems.append(_issue("body", "/reason_code", "a reject needs a reason_code"))
    if verdict == "edit":
        if "edited" not in body:
            problems.append(_issue("body", "/edited", "an edit carries the edited value"))
        else:
            try:
                actual = item_digest(body["edited"])
            except (ValueError, RecursionError) as exc:
                problems.append(_issue("body", "/edited", f"cannot be canonicalised: {exc}"))
            else:
                if body.get("edited_digest") != actual:
                    problems.append(_issue("body", "/edited_digest", "does not match the edited value"))
    elif verdict in VERDICTS:
        for name in ("edited", "edited_digest"):
            if body.get(name) is not None:
                problems.append(_issue("body", f"/{name}", "only an edit carries an edited value"))
    return problems


def _label_problems(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        return [_issue("body", "/labels", "a batch is an object with a 'labels' array")]
    problems = []
    for index, label in enumerate(body["labels"]):
        if not isinstance(label, dict):
            problems.append(_issue("body", f"/labels/{index}", "a label is an object"))
            continue
        for name in ("label_id", "item_id"):
            if not isinstance(label.get(name), str) or not label[name]:
                problems.append(_issue("body", f"/labels/{index}/{name}", "a non-empty string is required"))
        if label.get("verdict") not in VERDICTS:
            problems.append(_issue("body", f"/labels/{index}/verdict", "must be one of approve, reject, edit"))
    return problems[:MAX_ERRORS]


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
            self._send(*_error(411, "length_required", "send the body with a Content-Length"))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send(*_error(413 if length > 0 else 400, "bad_length", "unusable Content-Length"))
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
            answer = _error(500, "internal", "the fleet failed on this request")
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
