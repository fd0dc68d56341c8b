"""The bridges' one client of the queue server (PROTOCOL.md section 9): post an item under the agent's own request id,
wait for its outcome until a deadline, withdraw it when the deadline passes.

It fails closed: only an operator's approve or edit allows the action. A queue that is down, an answer that is an
error, an item that expired or was withdrawn, or no decision by the deadline is a denial with a one-line reason.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from console.engine.backoff import Backoff

REMEMBERED_REQUESTS = 10_000  # request ids whose deadline a client keeps, so asking again finds the same item
MAX_WAIT = 30.0  # the server caps a long-poll here (PROTOCOL.md section 9)
MIN_WAIT = 0.05  # a "pending" answered faster than this did not wait: paced by RETRY, never asked in a tight loop
RETRY = Backoff(base=0.1, cap=2.0)  # a queue that is down or busy is asked again, until the deadline
RISKS = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Request:
    """What an agent asks: run `action` with `args`. `request_id` is the agent's own id for this request (a tool use
    id, a call id): asking again under it, after a crash or a timeout, finds the same item."""

    request_id: str
    action: str
    args: dict[str, Any]
    summary: str = ""
    risk: str = "high"
    policy: str = "the agent asks a human before this action"
    workflow: str = "agent"
    evidence: tuple[str, ...] = ()
    allowed_decisions: tuple[str, ...] = ("approve", "reject", "edit")
    args_schema: dict[str, Any] | None = None  # what an operator's edit must satisfy

    def item(self, expires_at: datetime) -> dict[str, Any]:
        """The item posted (section 7): the server fills in `id`, `digest`, `seq` and `agent` (from the token)."""
        return {
            "kind": "approval",
            "workflow": self.workflow,
            "action": {"name": self.action, "args": self.args}
            | ({"args_schema": self.args_schema} if self.args_schema is not None else {}),
            "context": {"summary": self.summary, "evidence": list(self.evidence), "links": []},
            "risk": self.risk if self.risk in RISKS else "high",
            "policy": self.policy,
            "expires_at": expires_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "on_expiry": "reject",
            "allowed_decisions": list(self.allowed_decisions),
        }


@dataclass(frozen=True)
class Outcome:
    """What the agent does: `allowed` only after an operator's approve or edit; then `args` is what runs (the
    operator's edit, when there was one). `reason` is one line saying why, for the agent or its model."""

    allowed: bool
    reason: str
    verdict: str | None = None  # approve, reject or edit, when an operator decided
    args: dict[str, Any] = field(default_factory=dict)
    operator: str | None = None
    item_id: str | None = None
    comment: str = ""  # the operator's own words, when any

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "verdict": self.verdict,
            "args": self.args,
            "reason": self.reason,
            "operator": self.operator,
            "item_id": self.item_id,
        }


class Refused(Exception):
    """An answer that asking again will not change (401, 403, 404, 409, 422): the action is denied at once."""


def denied(reason: str, item_id: str | None = None) -> Outcome:
    return Outcome(allowed=False, reason=reason, item_id=item_id)


def outcome_of(state: dict[str, Any], args: dict[str, Any]) -> Outcome | None:
    """The agent's outcome for an item's state (section 9), or None while it is pending."""
    item_id = state.get("id") if isinstance(state.get("id"), str) else None
    kind = state.get("state")
    if kind == "pending":
        return None
    if kind == "decided":
        operator = state.get("decided_by") if isinstance(state.get("decided_by"), str) else None
        verdict = state.get("verdict")
        by = f"the operator {operator}" if operator else "the operator"
        comment = " ".join(state["comment"].split()) if isinstance(state.get("comment"), str) else ""
        if verdict == "approve":
            return Outcome(
                True, _with_comment(f"approved by {by}", comment), "approve", args, operator, item_id, comment
            )
        if verdict == "edit" and isinstance(state.get("edited"), dict):
            reason = f"approved by {by} with edited arguments"
            return Outcome(True, _with_comment(reason, comment), "edit", state["edited"], operator, item_id, comment)
        if verdict == "reject":
            code = state.get("reason_code")
            reason = f"rejected by {by}" + (f": {code}" if isinstance(code, str) and code else "")
            return Outcome(False, _with_comment(reason, comment), "reject", {}, operator, item_id, comment)
        return denied(f"the queue answered a decision this bridge cannot apply ({verdict!r})", item_id)
    if kind == "expired":
        return denied("no decision before the deadline", item_id)
    if kind == "withdrawn":
        return denied("the request was withdrawn", item_id)
    if kind == "superseded":
        return denied("the request was superseded by another one", item_id)
    return denied(f"the queue answered an unknown state ({kind!r})", item_id)


def _with_comment(reason: str, comment: str) -> str:
    return f"{reason} ({comment})" if comment else reason


class QueueClient:
    """An agent's client of one queue server, with the agent's token (never logged, never in an error text)."""

    def __init__(self, url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=MAX_WAIT + 10.0),
            transport=transport,
        )
        # The item a request id posted carries its first deadline: the same request asked again (a client that
        # retried) posts the same body, so the queue answers with the same item instead of an idempotency conflict.
        self._expiry_of: OrderedDict[str, datetime] = OrderedDict()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> QueueClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def ask(
        self,
        request: Request,
        *,
        deadline_seconds: float,
        expires_at: datetime | None = None,
        withdraw_if_cancelled: bool = True,
    ) -> Outcome:
        """Post `request` and wait for the operator, at most `deadline_seconds`; never raises, never allows by default.

        `expires_at` (the item's deadline) is for a caller that asks again after a restart: the same request id with
        the same body finds the same item. Without it, the deadline is now + `deadline_seconds` the first time this
        client is asked under the request id, and the same deadline again after that. A call cancelled while it waits
        withdraws its item (unless `withdraw_if_cancelled` is false: a caller that resumes the wait after a restart).
        """
        until = time.monotonic() + max(0.0, deadline_seconds)
        expires = expires_at or self._expiry_of.get(request.request_id)
        if expires is None:
            expires = datetime.now(UTC) + timedelta(seconds=max(0.0, deadline_seconds))
        self._expiry_of[request.request_id] = expires
        self._expiry_of.move_to_end(request.request_id)
        while len(self._expiry_of) > REMEMBERED_REQUESTS:
            self._expiry_of.popitem(last=False)
        try:
            item_id = await self._post(request.item(expires), request.request_id, until)
            if item_id is None:
                return denied(f"the queue at {self.url} could not be reached before the deadline")
            try:
                outcome = await self._wait(item_id, request.args, until)
            except BaseException:  # the agent stopped asking (a cancelled call): nobody should decide it in vain
                if withdraw_if_cancelled:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                        await self._give_up(item_id, request.args)
                raise
        except Refused as exc:
            return denied(str(exc))
        except Exception as exc:  # fail closed: whatever went wrong, the action is not taken
            return denied(f"the bridge could not get a decision ({type(exc).__name__})")
        return outcome

    async def _post(self, item: dict[str, Any], request_id: str, until: float) -> str | None:
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._http.post("/v1/items", json=item, headers={"Idempotency-Key": request_id})
                if answer.status_code in (200, 201):
                    body = answer.json()
                    item_id = body.get("id") if isinstance(body, dict) else None
                    if isinstance(item_id, str):
                        return item_id
                    raise Refused("the queue answered an item without an id")
                _raise_if_final(answer, "posting the request")
            except (httpx.HTTPError, ValueError):
                pass  # down, busy or garbled: asked again until the deadline
            if not await _pause(attempt, until):
                return None

    async def _wait(self, item_id: str, args: dict[str, Any], until: float) -> Outcome:
        path = f"/v1/items/{quote(item_id, safe='')}/outcome"
        attempt = 0
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return await self._give_up(item_id, args)
            asked, wait = time.monotonic(), min(MAX_WAIT, remaining)
            try:
                answer = await self._http.get(path, params={"wait": f"{wait:.3f}"})
                if answer.status_code == 200:
                    state = answer.json()
                    outcome = outcome_of(state, args) if isinstance(state, dict) else None
                    if outcome is not None:
                        return outcome
                    # A long-poll that waited (half what was asked, at least): ask again at once. Not a fixed time:
                    # a queue that says "pending" at once can still take that long to answer on a busy machine.
                    if time.monotonic() - asked >= max(MIN_WAIT, wait / 2):
                        attempt = 0
                        continue
                else:
                    _raise_if_final(answer, "waiting for the decision")
            except (httpx.HTTPError, ValueError):
                pass
            attempt += 1
            if not await _pause(attempt, until):
                return await self._give_up(item_id, args)

    async def _give_up(self, item_id: str, args: dict[str, Any]) -> Outcome:
        """The deadline passed: withdraw the item so no one decides it in vain; a decision that came first stands."""
        try:
            answer = await self._http.post(f"/v1/items/{quote(item_id, safe='')}/withdraw", timeout=5.0)
            if answer.status_code == 409:
                state = answer.json()
                outcome = outcome_of(state, args) if isinstance(state, dict) else None
                if outcome is not None:
                    return outcome
        except (httpx.HTTPError, ValueError):
            pass
        return denied("no decision before the deadline", item_id)


def _raise_if_final(answer: httpx.Response, doing: str) -> None:
    """429 and 5xx are asked again; any other error is final and becomes the denial's reason."""
    if answer.status_code == 429 or answer.status_code >= 500:
        return
    try:
        body = answer.json()
    except ValueError:
        body = {}
    name = body.get("outcome") or body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = f"the queue refused {doing}: {answer.status_code}" + (f" {name}" if isinstance(name, str) else "")
    if isinstance(detail, str) and detail:
        text += f" ({' '.join(detail.split())[:200]})"
    raise Refused(text)


async def _pause(attempt: int, until: float) -> bool:
    """Sleep before asking again; False when the deadline comes first."""
    remaining = until - time.monotonic()
    if remaining <= 0:
        return False
    await asyncio.sleep(min(RETRY.delay(attempt), remaining))
    return time.monotonic() < until
