"""The native protocol (PROTOCOL.md): incremental listing by cursor with long-poll, decisions with idempotency keys."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from console.config import SourceConfig
from console.secrets import Token
from console.sources.base import Page, SendResult, SourceError, validate_items
from storage.db import Removal
from storage.records import Decision, Outcome, SyncState

PAGE_SIZE = 500
USER_AGENT = "approval-console/0.1"
_FINAL_OUTCOMES = {o.value for o in Outcome} - {Outcome.applied.value, Outcome.unauthorized.value}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        return None  # an HTTP date: rare from agent services; the normal backoff applies


class NativeSource:
    def __init__(self, config: SourceConfig, token: Token | None, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        headers = {"User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bearer {token.value}"
        self._client = client or httpx.AsyncClient(
            base_url=config.url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout),
            follow_redirects=False,
        )
        self._long_poll: bool | None = None  # learnt from /v1/info on first use

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _features(self) -> None:
        if self._long_poll is not None:
            return
        try:
            response = await self._client.get("/v1/info")
            info = response.json() if response.status_code == 200 else {}
            features = info.get("features", {}) if isinstance(info, dict) else {}
            self._long_poll = bool(isinstance(features, dict) and features.get("long_poll"))
        except (httpx.HTTPError, ValueError):
            self._long_poll = None  # ask again next time; fetch reports the real error

    async def fetch(self, cursor: str | None) -> Page:
        await self._features()
        wait = self.config.long_poll if (self._long_poll and cursor is not None) else 0.0
        params: dict[str, str | int | float] = {"limit": PAGE_SIZE}
        if cursor is not None:
            params["cursor"] = cursor
        if wait:
            params["wait"] = wait
        try:
            response = await self._client.get(
                "/v1/items", params=params, timeout=httpx.Timeout(self.config.timeout + wait)
            )
        except httpx.TimeoutException as exc:
            raise SourceError(f"no answer within {self.config.timeout + wait:g} s") from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach {self.config.url}: {_brief(exc)}") from exc
        if response.status_code == 410:
            return Page(reset=True)
        _raise_for_listing(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise SourceError("answered with invalid JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            raise SourceError("answered with a listing of the wrong shape (no 'items' array)")
        raw_removed = body.get("removed", [])
        next_cursor = body.get("cursor")
        if not isinstance(raw_removed, list) or not isinstance(next_cursor, str | None):
            raise SourceError("answered with a listing of the wrong shape ('removed' or 'cursor')")
        items, rejected = validate_items(self.config.name, body.get("items", []))
        removed = [
            Removal(str(r["id"]), str(r.get("state", "gone")), _removal_detail(r))
            for r in raw_removed
            if isinstance(r, dict) and isinstance(r.get("id"), str)
        ]
        return Page(
            items=items,
            rejected=rejected,
            removed=removed,
            cursor=next_cursor if next_cursor is not None else cursor,
            has_more=bool(body.get("has_more")),
        )

    async def send_decision(self, decision: Decision) -> SendResult:
        try:
            response = await self._client.post(
                f"/v1/items/{quote(decision.item_id, safe='')}/decision",
                json=decision.wire_body(),
                headers={"Idempotency-Key": decision.id},
            )
        except httpx.HTTPError as exc:
            return SendResult(None, "unreachable", _brief(exc))
        return interpret_decision_answer(response)


def interpret_decision_answer(response: httpx.Response) -> SendResult:
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    outcome = str(body.get("outcome") or body.get("error") or "") if body else ""
    if status in (401, 403):
        return SendResult(
            None,
            Outcome.unauthorized.value,
            f"the source refused our credentials ({status}); check its token",
            body,
            auth_refused=True,
        )
    if status in (429, 503) or status >= 500:
        return SendResult(
            None, f"http_{status}", f"the source is busy or failing ({status})", body, retry_after_seconds(response)
        )
    if status == 200 and outcome == Outcome.applied.value:
        return SendResult(SyncState.applied, outcome, "applied", body)
    if body is not None and (outcome in _FINAL_OUTCOMES or outcome == "idempotency_conflict"):
        return SendResult(SyncState.conflict, outcome, describe_outcome(outcome, body), body)
    if 400 <= status < 500:
        return SendResult(SyncState.failed, f"http_{status}", f"the source refused the decision ({status})", body)
    # A 2xx we cannot read: the decision may or may not be applied. Resending under the same key is safe.
    return SendResult(None, "unreadable", f"unreadable answer ({status})", body)


def describe_outcome(outcome: str, body: dict[str, Any]) -> str:
    """One line for the operator. Server-supplied text stays data: the UI renders it literally."""
    if outcome == Outcome.conflict.value:
        by = body.get("decided_by") or "someone else"
        verdict = body.get("verdict") or "decided"
        return f"already decided elsewhere by {by} ({verdict})"
    if outcome == Outcome.stale.value:
        return "the item changed after you saw it; the new version is in the queue"
    if outcome == Outcome.expired.value:
        return "the deadline passed before the decision arrived"
    if outcome == Outcome.invalid.value:
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            where = f"{first.get('path', '')} {first.get('message', '')}".strip()
            return f"the source refused the decision as invalid: {where}"
        return f"the source refused the decision as invalid: {body.get('detail', '')}".strip()
    if outcome == "idempotency_conflict":
        return "the source holds a different decision under the same key"
    if outcome == Outcome.not_found.value:
        return "the source no longer knows this item"
    return f"{outcome}: {body.get('detail', '')}".strip(": ")


def _raise_for_listing(response: httpx.Response) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403):
        raise SourceError(f"refused our credentials ({status}): check the token", auth=True)
    if status in (429, 503):
        raise SourceError(f"busy ({status})", retry_after=retry_after_seconds(response))
    raise SourceError(f"answered {status} to a listing")


def _removal_detail(raw: dict[str, Any]) -> str:
    return json.dumps({k: raw[k] for k in ("decided_by", "verdict") if k in raw})


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
