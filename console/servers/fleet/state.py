"""The demo fleet's state: the in-memory queue of items, its change log (what cursors count), deadlines and claims.

Every method here expects the caller to hold `_lock`; the public, thread-safe operations are in hooks.py beside it
and the protocol's handlers in protocol.py.
"""

from __future__ import annotations

import heapq
import json
import secrets
import threading
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from console.servers.fleet.rules import SERVER_FIELDS, loads_object, parse_time
from console.servers.fleet.scenarios import Scenarios, rfc3339
from storage.records import item_digest, shown_part


class NotPending(ValueError):
    """The item already left the pending state."""


class Record:
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


class Garbage:
    """A raw value injected into listings to exercise a client's quarantine."""

    __slots__ = ("seq", "wire")

    def __init__(self, raw: Any, seq: int) -> None:
        self.seq = seq
        self.wire = json.dumps(raw)


class QueueState:
    """The queue behind one lock; `_changed` wakes the long-polls waiting for a change."""

    def __init__(self, scenarios: Scenarios, remember_removals: int) -> None:
        self._scenarios = scenarios
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # The epoch makes cursors from another run of the fleet (or another fleet) unusable: they get 410.
        self._epoch = secrets.token_hex(4)
        self._seq = 0
        self._horizon = 0  # the newest forgotten change: cursors below it get 410
        self._log: dict[int, Record | Garbage] = {}  # seq -> the entry whose latest change has that seq
        self._records: dict[str, Record] = {}
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

    def _new_id(self) -> str:
        while True:
            candidate = self._scenarios.new_id()
            if candidate not in self._records:
                return candidate

    def _build(self, item_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        item = {"id": item_id, **{k: v for k, v in payload.items() if k not in SERVER_FIELDS}}
        item["claimed_by"] = payload.get("claimed_by")
        # Eager digest: a value that cannot be canonicalised is refused here, not at listing time.
        item["digest"] = item_digest(shown_part(item))
        return item

    def _insert(self, payload: dict[str, Any], *, item_id: str | None = None, eager: bool = True) -> Record:
        item_id = item_id or self._new_id()
        item = self._build(item_id, payload) if eager else {"id": item_id, **payload, "claimed_by": None}
        deadline = parse_time(item.get("expires_at"))
        rec = Record(item)
        self._records[item_id] = rec
        self._store(rec, deadline)
        return rec

    def _payload(self, rec: Record) -> dict[str, Any]:
        """A deep copy of the item without the fields the digest leaves out (but with `claimed_by`)."""
        return {k: v for k, v in loads_object(self._wire(rec)).items() if k not in ("digest", "seq", "source")}

    def _bump(self, entry: Record) -> None:
        self._seq += 1
        if entry.seq:
            self._log.pop(entry.seq, None)
        entry.seq = self._seq
        entry.wire = None
        self._log[entry.seq] = entry
        self._changed.notify_all()

    def _store(self, rec: Record, deadline: float | None) -> None:
        """Record a new version of `rec` (its item already replaced): next seq, new deadline."""
        self._bump(rec)
        rec.deadline = deadline
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, rec.seq, rec.item["id"]))

    def _digest(self, rec: Record) -> str:
        digest = rec.item.get("digest")
        if digest is None:
            digest = rec.item["digest"] = item_digest(shown_part(rec.item))
        return str(digest)

    def _wire(self, rec: Record) -> str:
        if rec.wire is None:
            self._digest(rec)
            rec.item["seq"] = rec.seq
            rec.wire = json.dumps(rec.item, ensure_ascii=False, separators=(",", ":"))
        return rec.wire

    def _pending_record(self, item_id: str) -> Record:
        rec = self._records.get(item_id)
        if rec is None:
            raise KeyError(item_id)
        if rec.state != "pending":
            raise NotPending(f"item {item_id} is {rec.state}")
        return rec

    def _drop_claim(self, rec: Record) -> None:
        self._leases.pop(rec.item["id"], None)
        if rec.item.get("claimed_by") is not None:
            rec.item["claimed_by"] = None
            self._bump(rec)

    def _remove(self, rec: Record, state: str, **detail: Any) -> None:
        self._leases.pop(rec.item["id"], None)
        rec.state = state
        self._bump(rec)
        rec.removal = {"id": rec.item["id"], "state": state, "seq": rec.seq, **detail}
        self._removals.append(rec.seq)
        while len(self._removals) > self._remember:
            forgotten = self._removals.popleft()
            self._log.pop(forgotten, None)
            self._horizon = forgotten

    def _expire(self, rec: Record, now: float) -> None:
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
            gone = isinstance(entry, Record) and entry.state != "pending"
            if gone and snapshot:
                continue  # a snapshot omits removals
            if len(items) + len(removed) == limit:
                more = True
                break
            if isinstance(entry, Garbage):
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

    def _apply(
        self,
        rec: Record,
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
