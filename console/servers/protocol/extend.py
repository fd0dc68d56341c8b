"""Extending a deadline (PROTOCOL.md section 10, an optional part of version 1): the rules, and the handler that
the demo fleet and `serve` share.

An item that may be given more time says so with `extend: {"max_seconds": N}`; the server keeps how much of it was
used in `extend.used_seconds`. `POST /v1/items/{id}/extend` with `{"seconds": S, "item_digest": ...}` moves the
deadline S seconds later: a new version of the item (a new digest and seq, listed again), so a replay of the same
request is refused as `stale` and never extends twice.
"""

from __future__ import annotations

import time
from typing import Any

from console.servers.protocol.handlers import Caller, ProtocolHandlers
from console.servers.protocol.rules import (
    Answer,
    error_answer,
    final_answer,
    invalid,
    issue,
    json_answer,
    loads_object,
    parse_json,
    parse_time,
    rfc3339,
)
from console.servers.protocol.state import Record
from storage.records import extend_problem

EXTEND = "extend"  # the item's field, the route's last segment, the name in `features` and `additions`


def remaining_seconds(rec: Record) -> int | None:
    """How many seconds the item's deadline may still move, or None when it cannot be extended at all."""
    offer = rec.item.get(EXTEND)
    if rec.deadline is None or offer is None or extend_problem(offer) is not None:
        return None
    return int(offer["max_seconds"]) - int(offer.get("used_seconds", 0))


def extend_body_problems(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [issue("body", "", "the body must be a JSON object")]
    problems = []
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        problems.append(issue("body", "/seconds", "a whole number of seconds, at least 1"))
    if not isinstance(body.get("item_digest"), str):
        problems.append(issue("body", "/item_digest", "the digest of the version shown is required"))
    if body.get("operator") is not None and not isinstance(body["operator"], str):
        problems.append(issue("body", "/operator", "must be a string or null"))
    return problems


class ExtendHandlers(ProtocolHandlers):
    """The `extend` route over the queue's state, and its announcement in `GET /v1/info`."""

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        return {
            **info,
            "features": {**info["features"], EXTEND: True},
            "additions": [*info.get("additions", []), EXTEND],
        }

    def _create(self, body: Any, agent: str | None) -> Answer:
        offer = body.get(EXTEND) if isinstance(body, dict) else None
        if offer is not None:
            problem = extend_problem(offer)
            if problem is None and body.get("expires_at") is None:
                problem = "an item without expires_at has no deadline to extend"
            if problem is not None:
                return error_answer(422, "invalid", "the item was refused", errors=[issue("body", "/extend", problem)])
        return super()._create(body, agent)

    def _extend_http(self, item_id: str, raw: bytes, caller: Caller | None) -> Answer:
        body, ok = parse_json(raw)
        if not ok:
            return error_answer(400, "bad_json", "the body is not valid JSON")
        who = caller.name if caller is not None else None
        with self._transaction():
            status, answer = self._extend(item_id, body, who)
            return json_answer(status, answer)

    def _extend(self, item_id: str, body: Any, who: str | None) -> tuple[int, dict[str, Any]]:
        """The checks in PROTOCOL.md's order: the item, the body, still pending, the digest, the offer, the amount."""
        rec = self._records.get(item_id)
        if rec is None:
            return 404, {"outcome": "not_found", "detail": "no such item"}
        problems = extend_body_problems(body)
        if problems:
            return invalid(problems)
        now = time.time()
        if rec.state == "pending" and rec.deadline is not None and rec.deadline <= now:
            self._expire(rec, now)  # the deadline is the server's clock: too late to move it
        if rec.state != "pending":
            return final_answer(rec)
        digest = self._digest(rec)
        if body["item_digest"] != digest:
            return 409, {"outcome": "stale", "detail": "the item changed since it was shown", "current_digest": digest}
        left = remaining_seconds(rec)
        if left is None:
            why = "the item has no deadline" if rec.deadline is None else "the agent does not allow it"
            return 409, {"outcome": "not_extendable", "detail": f"this item's deadline cannot be extended: {why}"}
        seconds = int(body["seconds"])
        if seconds > left:
            problem = issue("body", "/seconds", f"at most {left} more seconds are allowed for this item")
            answer = invalid([problem])
            return answer[0], {**answer[1], "max_seconds": left}
        return 200, self._move_deadline(rec, seconds, who or _named(body))

    def _move_deadline(self, rec: Record, seconds: int, operator: str) -> dict[str, Any]:
        """A new version of the item with its deadline `seconds` later (new digest, new seq: listed again)."""
        assert rec.deadline is not None
        payload = self._payload(rec)
        offer = dict(payload[EXTEND])
        offer["used_seconds"] = int(offer.get("used_seconds", 0)) + seconds
        deadline = rec.deadline + seconds
        payload.update({"expires_at": rfc3339(deadline), EXTEND: offer})
        item = self._build(rec.item["id"], payload)
        rec.item, rec.validator = item, None
        self._store(rec, parse_time(item["expires_at"]))
        listed = loads_object(self._wire(rec))
        return {
            "outcome": "extended",
            "item_id": rec.item["id"],
            "expires_at": listed["expires_at"],
            "digest": listed["digest"],
            "extended_by": operator,
            "item": listed,
        }


def _named(body: dict[str, Any]) -> str:
    """Without authentication the server takes the name the client gives, as it does for decisions."""
    named = body.get("operator")
    return named if isinstance(named, str) and named else "anonymous"
