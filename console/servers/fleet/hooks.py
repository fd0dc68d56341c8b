"""The demo fleet's test hooks: thread-safe operations that play the agents' side (add, change, supersede, expire,
withdraw items, decide them "elsewhere", claim, inject malformed items, read back what was applied), and the same over
HTTP under `/_fleet/...` (no authentication) for tests that run the console in a subprocess."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from console.servers.fleet.scenarios import Scenarios
from console.servers.protocol.rules import (
    VERDICTS,
    Answer,
    apply_overrides,
    error_answer,
    json_answer,
    loads_object,
    parse_json,
    parse_time,
    rfc3339,
    route_params,
)
from console.servers.protocol.state import Garbage, NotPending, QueueState
from storage.records import id_problem

# A hook: (the fleet, the path's `*` segments, the query, the JSON body) -> the answer.
Hook = Callable[["FleetHooks", list[str], dict[str, list[str]], Any], Answer]
OK = {"ok": True}


class FleetHooks(QueueState):
    _scenarios: Scenarios

    def _make_id(self) -> str:
        return self._scenarios.new_id()

    def add_item(self, **overrides: Any) -> dict[str, Any]:
        """Generate a realistic item, apply `overrides` (top-level fields; `kind`/`agent` also pick the template;
        `expires_in` seconds sets `expires_at`), store it and return it as listed."""
        now = time.time()
        with self._transaction():
            payload = self._scenarios.make(now, kind=overrides.get("kind"), agent=overrides.get("agent"))
            apply_overrides(payload, overrides, now)
            wanted = payload.pop("id", None)
            if wanted is not None and (id_problem(wanted) is not None or wanted in self._records):
                raise ValueError(f"id {wanted!r} is not a new item id ({id_problem(wanted) or 'taken'})")
            return loads_object(self._wire(self._insert(payload, item_id=wanted)))

    def change_item(self, item_id: str, **changes: Any) -> dict[str, Any]:
        """A new version of a pending item: new seq and always a new digest (when `changes` alter nothing that is
        shown, the agent adds a line to its evidence)."""
        now = time.time()
        with self._transaction():
            rec = self._pending_record(item_id)
            payload = self._payload(rec)
            apply_overrides(payload, changes, now)
            item = self._build(item_id, payload)
            if item["digest"] == self._digest(rec):
                context = payload.get("context")
                context = dict(context) if isinstance(context, dict) else {}
                evidence = context.get("evidence")
                evidence = [*evidence] if isinstance(evidence, list) else []
                context["evidence"] = [*evidence, f"revised by the agent at {rfc3339(now)}"]
                item = self._build(item_id, {**payload, "context": context})
            deadline = parse_time(item.get("expires_at"))
            rec.item, rec.validator = item, None
            self._store(rec, deadline)
            return loads_object(self._wire(rec))

    def supersede(self, item_id: str, **changes: Any) -> dict[str, Any]:
        """The agent replaces a pending item by a new one (new id): the old one leaves as `superseded`."""
        now = time.time()
        with self._transaction():
            rec = self._pending_record(item_id)
            payload = self._payload(rec)
            payload["created_at"] = rfc3339(int(now))
            payload.pop("claimed_by", None)
            apply_overrides(payload, changes, now)
            new = self._insert(payload)
            self._remove(rec, "superseded", superseded_by=new.item["id"])
            return loads_object(self._wire(new))

    def decide_elsewhere(self, item_id: str, by: str = "bob", verdict: str = "approve") -> None:
        """Another reviewer decides first. Recorded among the applied decisions, with a `decision_id` of its own."""
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        with self._transaction():
            rec = self._pending_record(item_id)
            self._apply(rec, f"elsewhere-{secrets.token_hex(8)}", verdict, None, None, "", by, time.time())

    def expire(self, item_id: str) -> None:
        with self._transaction():
            self._expire(self._pending_record(item_id), time.time())

    def withdraw(self, item_id: str) -> None:
        with self._transaction():
            self._remove(self._pending_record(item_id), "withdrawn")

    def pending(self) -> list[dict[str, Any]]:
        with self._transaction():
            records = sorted((r for r in self._records.values() if r.state == "pending"), key=lambda r: r.seq)
            return [loads_object(self._wire(r)) for r in records]

    def applied_decisions(self) -> list[dict[str, Any]]:
        """Every applied decision, oldest first: those POSTed and those made by `decide_elsewhere`."""
        with self._transaction():
            return [dict(d) for d in self._applied]

    def decision_requests(self, item_id: str | None = None) -> int:
        with self._transaction():
            return self._requests if item_id is None else self._requests_by_item[item_id]

    def feedback(self) -> list[dict[str, Any]]:
        with self._transaction():
            return [dict(label) for label in self._labels.values()]

    def inject_garbage(self, raw: Any) -> None:
        with self._transaction():
            self._seq += 1
            self._log[self._seq] = Garbage(raw, self._seq)
            self._changed.notify_all()

    def _hook(self, method: str, route: list[str], query: dict[str, list[str]], raw: bytes) -> Answer:
        body: Any = {}
        if raw.strip():
            body, ok = parse_json(raw)
            if not ok:
                return error_answer(400, "bad_json", "the body is not valid JSON")
        try:
            return self._run_hook(method, route, query, body)
        except KeyError as exc:
            return error_answer(404, "not_found", f"no item {exc.args[0]!r}")
        except NotPending as exc:
            return error_answer(409, "not_pending", str(exc))
        except (TypeError, ValueError) as exc:
            return error_answer(422, "invalid", str(exc))

    def _run_hook(self, method: str, route: list[str], query: dict[str, list[str]], body: Any) -> Answer:
        if method == "POST" and route[:1] == ["items"] and not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        for (verb, pattern), hook in HOOKS.items():
            params = route_params(pattern, route) if verb == method else None
            if params is not None:
                return hook(self, params, query, body)
        return error_answer(404, "not_found", "no such test hook")


def _decisions(fleet: FleetHooks, _: list[str], query: dict[str, list[str]], __: Any) -> Answer:
    item_id = query["item_id"][-1] if query.get("item_id") else None
    return json_answer(200, {"applied": fleet.applied_decisions(), "requests": fleet.decision_requests(item_id)})


def _garbage(fleet: FleetHooks, _: list[str], __: dict[str, list[str]], body: Any) -> Answer:
    fleet.inject_garbage(body)
    return json_answer(200, OK)


def _decide_elsewhere(fleet: FleetHooks, params: list[str], _: dict[str, list[str]], body: Any) -> Answer:
    fleet.decide_elsewhere(params[0], by=str(body.get("by", "bob")), verdict=str(body.get("verdict", "approve")))
    return json_answer(200, OK)


def _expire(fleet: FleetHooks, params: list[str], _: dict[str, list[str]], __: Any) -> Answer:
    fleet.expire(params[0])
    return json_answer(200, OK)


def _withdraw(fleet: FleetHooks, params: list[str], _: dict[str, list[str]], __: Any) -> Answer:
    fleet.withdraw(params[0])
    return json_answer(200, OK)


HOOKS: dict[tuple[str, tuple[str, ...]], Hook] = {
    ("GET", ("decisions",)): _decisions,
    ("GET", ("feedback",)): lambda fleet, _, __, ___: json_answer(200, {"labels": fleet.feedback()}),
    ("GET", ("pending",)): lambda fleet, _, __, ___: json_answer(200, {"items": fleet.pending()}),
    ("POST", ("garbage",)): _garbage,
    ("POST", ("items",)): lambda fleet, _, __, body: json_answer(200, fleet.add_item(**body)),
    ("POST", ("items", "*", "change")): lambda fleet, p, _, body: json_answer(200, fleet.change_item(p[0], **body)),
    ("POST", ("items", "*", "claim")): lambda fleet, p, _, body: json_answer(
        200, fleet.claim(p[0], by=str(body.get("by", "bob")))[1]
    ),
    ("POST", ("items", "*", "supersede")): lambda fleet, p, _, body: json_answer(200, fleet.supersede(p[0], **body)),
    ("POST", ("items", "*", "decide_elsewhere")): _decide_elsewhere,
    ("POST", ("items", "*", "expire")): _expire,
    ("POST", ("items", "*", "withdraw")): _withdraw,
}
