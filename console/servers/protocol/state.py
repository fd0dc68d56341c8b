"""The queue's state: items, their change log (what cursors count), deadlines, claims, idempotency records.

The state lives in memory behind one lock, for the demo fleet and for `serve` alike. `_transaction()` holds the lock
for one request's changes; the `_kept_*` and `_commit` hooks are where `serve` makes them durable (SQLite) before the
request is answered. Methods with a leading underscore expect the caller to hold the lock; the protocol's handlers are
in handlers.py beside it.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from typing import Any

from console.servers.protocol.rules import CLAIM_LEASE, SERVER_FIELDS, loads_object, parse_time, rfc3339
from storage.records import item_digest, shown_part


class NotPending(ValueError):
    """The item already left the pending state."""


class Record:
    """One item and its state. `item` is the listed payload; its digest is computed on first use (see `_digest`)."""

    __slots__ = ("deadline", "decision", "item", "removal", "seq", "state", "validator", "wire")

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.state = "pending"
        self.seq = 0
        self.deadline: float | None = None
        self.removal: dict[str, Any] = {}  # what a listing reports once the item left the pending state
        self.decision: dict[str, Any] | None = None  # the applied decision, whole (edited value, reason): the outcome
        self.wire: str | None = None  # the item as listed (JSON), cached until the next change
        self.validator: Any = None  # the item's jsonschema validator, built on first use


class Garbage:
    """A raw value injected into listings to exercise a client's quarantine."""

    __slots__ = ("seq", "wire")

    def __init__(self, raw: Any, seq: int) -> None:
        self.seq = seq
        self.wire = json.dumps(raw)


class QueueState:
    """The queue behind one lock; `_changed` wakes the long-polls waiting for a change, `_settled` those waiting for
    one item's outcome."""

    def __init__(self, remember_removals: int) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._settled: dict[str, threading.Condition] = {}  # item id -> the waiters for its outcome
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

    # -- where a durable state keeps what changed (the in-memory state keeps nothing) -----------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock for one request's changes; they are durable (`_commit`) before the lock is released."""
        with self._lock:
            try:
                yield
            except BaseException:
                self._rollback()
                raise
            self._commit()

    def _commit(self) -> None:
        """Make the changes kept since the last commit durable."""

    def _rollback(self) -> None:
        """Forget the changes kept since the last commit (the request failed half-way)."""

    def _kept_record(self, rec: Record) -> None:
        """`rec` changed (a new version, a new seq, a claim, a removal)."""

    def _kept_answer(self, kind: str, key: str, entry: tuple[str, int, bytes]) -> None:
        """An idempotency record: the answer stored under `key` for requests of `kind`."""

    def _kept_label(self, label: dict[str, Any]) -> None:
        """A feedback label was accepted."""

    def _kept_decision(self, decision: dict[str, Any]) -> None:
        """A decision was applied."""

    def _forget(self, rec: Record) -> None:
        """`rec` left the pending state long enough ago that listings no longer report it (the fleet keeps it
        anyway, for the test hooks; a durable state reads it back from disk when asked)."""

    def _make_id(self) -> str:
        return f"itm_{secrets.token_hex(8)}"

    # -- the queue -----------------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            candidate = self._make_id()
            if candidate not in self._records:
                return candidate

    def _keep_answer(self, kind: str, key: str, entry: tuple[str, int, bytes]) -> None:
        self._answers(kind)[key] = entry
        self._kept_answer(kind, key, entry)

    def _answers(self, kind: str) -> dict[str, tuple[str, int, bytes]]:
        stores = {"decision": self._decision_keys, "feedback": self._feedback_keys, "create": self._create_keys}
        return stores[kind]

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
        if isinstance(entry, Record):
            self._kept_record(entry)
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
        self._kept_record(rec)
        waiters = self._settled.pop(rec.item["id"], None)
        if waiters is not None:
            waiters.notify_all()
        self._removals.append(rec.seq)
        while len(self._removals) > self._remember:
            forgotten = self._removals.popleft()
            entry = self._log.pop(forgotten, None)
            self._horizon = forgotten
            if isinstance(entry, Record):
                self._forget(entry)

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
        decision = {
            "decision_id": decision_id,
            "item_id": rec.item["id"],
            "verdict": verdict,
            "edited": edited,
            "reason_code": reason_code,
            "comment": comment,
            "operator": operator,
            "applied_at": applied_at,
        }
        self._applied.append(decision)
        self._kept_decision(decision)
        rec.decision = decision
        self._remove(rec, "decided", decided_by=operator, verdict=verdict, decided_at=applied_at)
        return applied_at

    def _await_outcome(self, rec: Record, timeout: float, stopping: Any) -> None:
        """Wait (lock held) until `rec` leaves the pending state, `timeout` passes or `stopping()` says so."""
        if rec.state != "pending" or timeout <= 0:
            return
        waiters = self._settled.setdefault(rec.item["id"], threading.Condition(self._lock))
        waiters.wait_for(lambda: rec.state != "pending" or stopping(), timeout=timeout)

    # -- claims (PROTOCOL.md section 5) --------------------------------------------------------------------------

    def claim(self, item_id: str, by: str, lease: float = CLAIM_LEASE) -> tuple[bool, dict[str, Any]]:
        """Claim (or renew) a pending item for `by`. Returns (granted, answer); refused while another holds it."""
        now = time.time()
        with self._transaction():
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
        with self._transaction():
            rec = self._pending_record(item_id)
            if rec.item.get("claimed_by") != by:
                return False
            self._drop_claim(rec)
            return True
