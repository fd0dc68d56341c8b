"""The protocol's handlers (PROTOCOL.md): authentication, listing with long-poll, claims, decisions, feedback, and the
agent side (new items, their outcome, withdrawal), each over the queue's state and under the protocol's rules. The
transport (the HTTP server and its route table) is console.servers.protocol.http."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from console.engine import schema_check
from console.servers.protocol import two_person
from console.servers.protocol.rules import (
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
    rfc3339,
)
from console.servers.protocol.state import NotPending, QueueState, Record
from storage.json_diff import pointer
from storage.records import Item, trace_problem

Handler = Callable[[Any], Answer]  # a keyed request's body -> its answer
OPERATOR, AGENT = "operator", "agent"  # the roles a route may require


@dataclass(frozen=True)
class Caller:
    """Who a token belongs to, and what it may do: decide (an operator), post items and wait on them (an agent)."""

    name: str
    operator: bool
    agent: bool

    def may(self, role: str) -> bool:
        return self.operator if role == OPERATOR else self.agent

    @property
    def bound_agent(self) -> str | None:
        """The agent whose items this caller posts and sees; None: any (the fleet's tokens play every agent)."""
        return self.name if self.agent and not self.operator else None


def _unauthorized(status: int, detail: str) -> Answer:
    body = {"outcome": "unauthorized", "error": "unauthorized", "detail": detail}
    return json_answer(status, body, {"WWW-Authenticate": 'Bearer realm="approval-console"'} if status == 401 else {})


class ProtocolHandlers(QueueState):
    """The handlers of the `/v1` routes. Each takes the lock itself; the caller holds nothing."""

    name: str
    _stopping: bool  # set while the server stops: long-polls return at once

    def _caller_for(self, token: str) -> Caller | None:
        """The caller a bearer token names, or None when it names nobody."""
        return None

    def _requires_token(self) -> bool:
        return True

    def _authenticate(self, header: str | None) -> tuple[Caller | None, Answer | None]:
        if not self._requires_token():
            return None, None
        scheme, _, token = (header or "").partition(" ")
        caller = self._caller_for(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if caller is None:
            return None, _unauthorized(401, "a bearer token is required" if not header else "the token is not valid")
        return caller, None

    @staticmethod
    def _permit(caller: Caller | None, role: str | None) -> Answer | None:
        """403 when an authenticated caller may not do what the route does (None: no authentication, no roles)."""
        if caller is None or role is None or caller.may(role):
            return None
        doing = "decide, claim, list or send feedback" if role == OPERATOR else "post items or wait on them"
        return _unauthorized(403, f"this token may not {doing}: that needs an {role} token")

    def _info(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "name": self.name,
            "features": {"long_poll": True, "claims": True, "feedback": True, "outcomes": True},
            "additions": ["trace", "approvals"],
            "max_wait": MAX_WAIT,
            "max_limit": MAX_LIMIT,
        }

    def _claim_http(self, method: str, item_id: str, who: str | None, raw: bytes) -> Answer:
        if method not in ("POST", "DELETE"):
            return error_answer(405, "method_not_allowed", "claims are POSTed (claim, renew) or DELETEd (release)")
        body, ok = parse_json(raw) if raw.strip() else ({}, True)
        named = body.get("operator") if ok and isinstance(body, dict) else None
        # Without authentication the server trusts the name the client gives, as it does for decisions.
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

    @staticmethod
    def _wait_param(query: dict[str, list[str]]) -> float | None:
        try:
            wait = float((query.get("wait") or ["0"])[-1])
        except ValueError:
            return None
        return min(max(wait, 0.0), MAX_WAIT) if math.isfinite(wait) else None

    def _listing_http(self, query: dict[str, list[str]]) -> Answer:
        cursor = (query.get("cursor") or [""])[-1] or None
        wait = self._wait_param(query)
        try:
            limit = int((query.get("limit") or [str(DEFAULT_LIMIT)])[-1])
        except ValueError:
            wait = None
        if wait is None:
            return error_answer(400, "bad_request", "limit must be an integer and wait a finite number of seconds")
        limit = min(max(limit, 1), MAX_LIMIT)
        with self._transaction():
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
        caller, refused = self._authenticate(authorization)
        refused = refused or self._permit(caller, OPERATOR)
        if refused is not None:
            return refused
        who = caller.name if caller is not None else None
        if not key:
            return error_answer(400, "idempotency_key_required", "send the decision's id as the Idempotency-Key header")
        body, ok = parse_json(raw)
        if not ok:
            return error_answer(400, "bad_json", "the body is not valid JSON")
        fingerprint = request_fingerprint(item_id, who, body)
        with self._transaction():
            stored = self._decision_keys.get(key)
            if stored is not None:
                if stored[0] == fingerprint:
                    return stored[1], stored[2], {}
                return json_answer(
                    409, {"outcome": "idempotency_conflict", "detail": "this key was used with another body"}
                )
            status, answer = self._decide(item_id, key, body, who)
            encoded = encode(answer)
            self._keep_answer("decision", key, (fingerprint, status, encoded))
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
        if two_person.counts_once(rec.item, verdict):
            return self._approve_one_of_several(rec, key, verdict, edited, comment, operator, now)
        applied_at = self._apply(rec, key, verdict, edited, reason, comment, operator, now)
        return 200, {"outcome": "applied", "item_id": item_id, "decision_id": key, "applied_at": applied_at}

    def _approve_one_of_several(
        self, rec: Record, key: str, verdict: str, edited: Any, comment: str, operator: str, now: float
    ) -> tuple[int, dict[str, Any]]:
        """An approval (or edit) of a two-person item (PROTOCOL.md "Two-person items"): refused when this operator
        already approved it, applied when it is the last one needed, otherwise recorded in the item (202 partial)."""
        refused = two_person.same_operator(rec.item, operator)
        if refused is not None:
            return refused
        at = rfc3339(now)
        if two_person.completes(rec.item, verdict):
            recorded = [*two_person.approvals(rec.item), {"operator": operator, "at": at, "verdict": verdict}]
            final, final_edited = two_person.final_decision(rec.item)
            applied_at = self._apply(rec, key, final, final_edited, None, comment, operator, now)
            rec.removal["approvals"] = recorded  # kept with the removal: listings and the agent's outcome say who
            answer = {"outcome": "applied", "item_id": rec.item["id"], "decision_id": key, "applied_at": applied_at}
            return 200, {**answer, "approvals": recorded}
        rec.item = two_person.record_approval(rec.item, operator, verdict, edited, at)
        self._leases.pop(rec.item["id"], None)
        rec.item["claimed_by"] = None  # the approver is done with it: the next operator should not be warned off
        self._bump(rec)  # a new version (its digest covers the approvals): listed again
        return 202, two_person.partial_answer(rec.item, rec.item["id"], key, self._digest(rec))

    # -- feedback ------------------------------------------------------------------------------------------------

    def _keyed(self, kind: str, key: str | None, raw: bytes, who: str | None, act: Handler) -> Answer:
        """A keyed request: a replay is answered from the stored answers of `kind`; a new one is acted on and its
        answer kept. An agent's keys are its own: two agents may use the same request id."""
        scoped = f"{who}\x00{key}" if key and who is not None else key
        with self._transaction():
            body, fingerprint, done = keyed_request(self._answers(kind), scoped, raw, who)
            if done is not None:
                return done
            assert scoped is not None
            answer = act(body)
            self._keep_answer(kind, scoped, (fingerprint, answer[0], answer[1]))
            return answer

    def _feedback_http(self, key: str | None, raw: bytes, who: str | None) -> Answer:
        return self._keyed("feedback", key, raw, who, lambda body: self._feedback(body, who))

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
            self._labels[label["label_id"]] = kept = {**label, "operator": who} if who else dict(label)
            self._kept_label(kept)
        return json_answer(200, {"accepted": accepted, "duplicates": duplicates})

    # -- the agent side (PROTOCOL.md sections 7 and 9) -----------------------------------------------------------

    def _create_http(self, key: str | None, raw: bytes, caller: Caller | None) -> Answer:
        agent = caller.bound_agent if caller is not None else None
        who = caller.name if caller is not None else None
        return self._keyed("create", key, raw, who, lambda body: self._create(body, agent))

    def _create(self, body: Any, agent: str | None) -> Answer:
        if not isinstance(body, dict):
            return error_answer(
                422, "invalid", "the item must be a JSON object", errors=[issue("body", "", "not an object")]
            )
        payload = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        if agent is not None:  # an agent posts under its own name only
            if payload.get("agent", agent) != agent:
                problem = issue("body", "/agent", f"this token posts items as {agent!r} only")
                return error_answer(422, "invalid", "the item was refused", errors=[problem])
            payload["agent"] = agent
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

    def _own_record(self, item_id: str, caller: Caller | None) -> Record | None:
        """The item, when the caller may see it: an agent sees only its own items (others are not found)."""
        rec = self._records.get(item_id)
        if rec is None or (caller is not None and caller.bound_agent not in (None, rec.item.get("agent"))):
            return None
        return rec

    def _outcome(self, rec: Record) -> dict[str, Any]:
        """What became of an item, for the agent that posted it."""
        answer: dict[str, Any] = {"id": rec.item["id"], "state": rec.state, "seq": rec.seq}
        if rec.state == "pending":
            pending = {**answer, "digest": self._digest(rec), "expires_at": rec.item.get("expires_at")}
            return {**pending, "approvals": rec.item["approvals"]} if "approvals" in rec.item else pending
        answer.update({k: v for k, v in rec.removal.items() if k not in answer})
        if rec.decision is not None:
            for name in ("decision_id", "edited", "reason_code", "comment"):
                answer[name] = rec.decision[name]
        return answer

    def _outcome_http(self, item_id: str, query: dict[str, list[str]], caller: Caller | None) -> Answer:
        wait = self._wait_param(query)
        if wait is None:
            return error_answer(400, "bad_request", "wait must be a finite number of seconds")
        with self._transaction():
            rec = self._own_record(item_id, caller)
            if rec is None:
                return error_answer(404, "not_found", "no such item")
            now = time.time()
            until = now + wait if rec.deadline is None else min(now + wait, rec.deadline)
            self._await_outcome(rec, until - now, lambda: self._stopping)
            now = time.time()
            if rec.state == "pending" and rec.deadline is not None and rec.deadline <= now:
                self._expire(rec, now)  # the deadline is the server's clock: the agent hears it at once
            return json_answer(200, self._outcome(rec))

    def _withdraw_http(self, item_id: str, caller: Caller | None) -> Answer:
        with self._transaction():
            rec = self._own_record(item_id, caller)
            if rec is None:
                return error_answer(404, "not_found", "no such item")
            now = time.time()
            if rec.state == "pending" and rec.deadline is not None and rec.deadline <= now:
                self._expire(rec, now)
            if rec.state == "pending":
                self._remove(rec, "withdrawn")
            elif rec.state != "withdrawn":
                return json_answer(409, {**self._outcome(rec), "outcome": rec.state})  # decided first: it stands
            return json_answer(200, {**self._outcome(rec), "outcome": "withdrawn"})
