"""The demo fleet's protocol handlers (PROTOCOL.md): authentication, listing with long-poll, claims, decisions,
feedback and new items, each over the queue's state and under the protocol's rules. The transport (the HTTP server and
its route table) is console.servers.fleet.server."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from console.engine import schema_check
from console.servers.fleet.hooks import FleetHooks
from console.servers.fleet.rules import (
    DEFAULT_LIMIT,
    MAX_ERRORS,
    MAX_LIMIT,
    MAX_WAIT,
    PROTOCOL,
    SERVER_FIELDS,
    VERDICTS,
    Answer,
    body_problems,
    edit_problems,
    encode,
    error_answer,
    final_answer,
    invalid,
    issue,
    json_answer,
    keyed_request,
    label_problems,
    parse_json,
    parse_time,
    remote_refs,
    request_fingerprint,
)
from console.servers.fleet.scenarios import rfc3339
from console.servers.fleet.state import NotPending, Record
from storage.json_diff import pointer
from storage.records import Item, trace_problem

Handler = Callable[[Any], Answer]  # a keyed request's body -> its answer


class FleetProtocol(FleetHooks):
    """The handlers of the `/v1` routes. Each takes the lock itself; the caller holds nothing."""

    name: str
    _tokens: dict[str, str] | None  # token -> operator; None: no authentication
    _stopping: bool  # set while the server stops: long-polls return at once

    def _authenticate(self, header: str | None) -> tuple[str | None, Answer | None]:
        if self._tokens is None:
            return None, None
        scheme, _, token = (header or "").partition(" ")
        who = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if who is None:
            detail = "a bearer token is required" if not header else "the token is not valid"
            body = {"outcome": "unauthorized", "error": "unauthorized", "detail": detail}
            return None, json_answer(401, body, {"WWW-Authenticate": 'Bearer realm="approval-console"'})
        return who, None

    def _info(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "name": self.name,
            "features": {"long_poll": True, "claims": True, "feedback": True},
            "additions": ["trace"],
            "max_wait": MAX_WAIT,
            "max_limit": MAX_LIMIT,
            "agents": self._scenarios.agents,
        }

    def _claim_http(self, method: str, item_id: str, who: str | None, raw: bytes) -> Answer:
        if method not in ("POST", "DELETE"):
            return error_answer(405, "method_not_allowed", "claims are POSTed (claim, renew) or DELETEd (release)")
        body, ok = parse_json(raw) if raw.strip() else ({}, True)
        named = body.get("operator") if ok and isinstance(body, dict) else None
        # Without authentication the fleet trusts the name the client gives, as it does for decisions.
        by = who or (named if isinstance(named, str) and named else "anonymous")
        try:
            if method == "DELETE":
                released = self.release(item_id, by)
                return json_answer(200 if released else 409, {"released": released})
            granted, answer = self.claim(item_id, by)
        except KeyError:
            return error_answer(404, "not_found", "no such item")
        except NotPending as exc:
            return error_answer(409, "not_pending", str(exc))
        return json_answer(200 if granted else 409, answer)

    # -- listing -------------------------------------------------------------------------------------------------

    def _listing_http(self, query: dict[str, list[str]]) -> Answer:
        cursor = (query.get("cursor") or [""])[-1] or None
        try:
            limit = int((query.get("limit") or [str(DEFAULT_LIMIT)])[-1])
            wait = float((query.get("wait") or ["0"])[-1])
        except ValueError:
            return error_answer(400, "bad_request", "limit must be an integer and wait a number of seconds")
        if not math.isfinite(wait):
            return error_answer(400, "bad_request", "wait must be a finite number of seconds")
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
                return error_answer(
                    410, "cursor_expired", "this cursor is too old or from another run: list without one"
                )
            return 200, self._page(after, limit, snapshot=False), {}

    # -- deciding ------------------------------------------------------------------------------------------------

    def _decision_http(self, item_id: str, key: str | None, raw: bytes, authorization: str | None) -> Answer:
        with self._lock:
            self._requests += 1
            self._requests_by_item[item_id] += 1
        who, refused = self._authenticate(authorization)
        if refused is not None:
            return refused
        if not key:
            return error_answer(400, "idempotency_key_required", "send the decision's id as the Idempotency-Key header")
        body, ok = parse_json(raw)
        if not ok:
            return error_answer(400, "bad_json", "the body is not valid JSON")
        fingerprint = request_fingerprint(item_id, who, body)
        with self._lock:
            stored = self._decision_keys.get(key)
            if stored is not None:
                if stored[0] == fingerprint:
                    return stored[1], stored[2], {}
                return json_answer(
                    409, {"outcome": "idempotency_conflict", "detail": "this key was used with another body"}
                )
            status, answer = self._decide(item_id, key, body, who)
            encoded = encode(answer)
            self._decision_keys[key] = (fingerprint, status, encoded)
            return status, encoded, {}

    def _decide(self, item_id: str, key: str, body: Any, who: str | None) -> tuple[int, dict[str, Any]]:
        rec = self._records.get(item_id)
        if rec is None:
            return 404, {"outcome": "not_found", "detail": "no such item"}
        if not isinstance(body, dict):
            return invalid([issue("body", "", "the body must be a JSON object")])
        problems = body_problems(body)
        if problems:
            return invalid(problems)
        now = time.time()
        if rec.state == "pending" and rec.deadline is not None and rec.deadline <= now:
            self._expire(rec, now)  # the deadline is the server's clock, swept or not
        if rec.state != "pending":
            return final_answer(rec)
        digest = self._digest(rec)
        if body["item_digest"] != digest:
            return 409, {
                "outcome": "stale",
                "detail": "the item changed since it was shown",
                "current_digest": digest,
            }
        verdict = body["verdict"]
        if verdict not in rec.item.get("allowed_decisions", VERDICTS):
            return invalid([issue("body", "/verdict", f"{verdict} is not allowed for this item")])
        edited = body.get("edited") if verdict == "edit" else None
        if verdict == "edit":
            problems = edit_problems(rec, edited)
            if problems:
                return invalid(problems)
        operator = who or (body.get("operator") if isinstance(body.get("operator"), str) else None) or "anonymous"
        reason, comment = body.get("reason_code"), body.get("comment") or ""
        applied_at = self._apply(rec, key, verdict, edited, reason, comment, operator, now)
        return 200, {"outcome": "applied", "item_id": item_id, "decision_id": key, "applied_at": applied_at}

    # -- feedback and the agent side -----------------------------------------------------------------------------

    def _keyed(
        self, store: dict[str, tuple[str, int, bytes]], key: str | None, raw: bytes, who: str | None, act: Handler
    ) -> Answer:
        """A keyed request: a replay is answered from `store`; a new one is acted on and its answer kept."""
        with self._lock:
            body, fingerprint, done = keyed_request(store, key, raw, who)
            if done is not None:
                return done
            assert key is not None
            answer = act(body)
            store[key] = (fingerprint, answer[0], answer[1])
            return answer

    def _feedback_http(self, key: str | None, raw: bytes, who: str | None) -> Answer:
        return self._keyed(self._feedback_keys, key, raw, who, lambda body: self._feedback(body, who))

    def _feedback(self, body: Any, who: str | None) -> Answer:
        problems = label_problems(body)
        if problems:
            return error_answer(422, "invalid", "the batch was refused", errors=problems)
        accepted = duplicates = 0
        for label in body["labels"]:
            if label["label_id"] in self._labels:
                duplicates += 1
                continue
            accepted += 1
            self._labels[label["label_id"]] = {**label, "operator": who} if who else dict(label)
        return json_answer(200, {"accepted": accepted, "duplicates": duplicates})

    def _create_http(self, key: str | None, raw: bytes, who: str | None) -> Answer:
        return self._keyed(self._create_keys, key, raw, who, self._create)

    def _create(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return error_answer(
                422, "invalid", "the item must be a JSON object", errors=[issue("body", "", "not an object")]
            )
        payload = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        payload.setdefault("created_at", rfc3339(int(time.time())))
        item_id = self._new_id()
        try:
            item = self._build(item_id, payload)
        except ValueError as exc:
            return error_answer(
                422, "invalid", "the item cannot be canonicalised", errors=[issue("body", "", str(exc))]
            )
        problems: list[dict[str, str]] = []
        deadline: float | None = None
        for name in ("created_at", "expires_at"):
            try:
                moment = parse_time(item.get(name))
            except ValueError:
                problems.append(issue("body", f"/{name}", "must be an RFC 3339 timestamp with a time zone"))
            else:
                deadline = moment if name == "expires_at" else deadline
        try:
            parsed = Item.model_validate(item)
        except ValidationError as exc:
            problems = [issue("body", pointer(e["loc"]), e["msg"]) for e in exc.errors()[:MAX_ERRORS]]
        else:
            if not parsed.allowed_decisions:
                problems.append(issue("body", "/allowed_decisions", "at least one decision must be allowed"))
            # A client drops a bad trace and keeps the item (PROTOCOL.md "The trace"); the agent is told here.
            trace_why = None if item.get("trace") is None else trace_problem(item["trace"])
            if trace_why is not None:
                problems.append(issue("body", "/trace", trace_why))
            if parsed.action is not None and parsed.action.args_schema is not None:
                try:
                    schema_check.validator_for(parsed.action.args_schema)
                except schema_check.SchemaUnusable as exc:
                    problems.append(issue("body", "/action/args_schema", str(exc)))
                if remote_refs(item["action"]["args_schema"]):
                    problems.append(issue("body", "/action/args_schema", "only local references ($ref: #...)"))
        if problems:
            return error_answer(422, "invalid", "the item was refused", errors=problems)
        rec = Record(item)
        self._records[item_id] = rec
        self._store(rec, deadline)
        return 201, self._wire(rec).encode(), {}
