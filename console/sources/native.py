"""The native protocol (PROTOCOL.md): incremental listing by cursor with long-poll, decisions with idempotency keys."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from console.config import SourceConfig, public_url, token_fix
from console.secrets import Token
from console.sources.base import DecisionAnswer, LabelAnswer, Page, Rejected, SourceError, excerpt, validate_items
from console.sources.listing import parse_listing
from storage.db import Removal
from storage.labels import Label, batch_id
from storage.records import Decision, Outcome, SyncState, id_problem

PAGE_SIZE = 500
# A listing page is read into memory up to this many bytes (or twice an item's cap, if more); past it the console
# stops reading and asks for fewer items, so a huge or endless answer never fills memory.
PAGE_BYTES = 8_000_000
_RESET = b"\x00reset"  # the cursor is too old (410): list everything again
USER_AGENT = "approval-console/0.1"
RETRY_AFTER_FLOOR = 1.0  # PROTOCOL.md section 6: a Retry-After below this (or 0, negative, NaN) is taken as 1 s
RETRY_AFTER_CEILING = 300.0  # and one above this (or inf, or an overflow) as 300 s: a recovered server is heard soon
# PROTOCOL.md section 3: an answer is final only when its status and its body's outcome name agree on one of these.
_FINAL_STATUS = {
    Outcome.applied.value: 200,
    Outcome.conflict.value: 409,
    Outcome.stale.value: 409,
    "idempotency_conflict": 409,
    Outcome.expired.value: 410,
    Outcome.withdrawn.value: 410,
    Outcome.superseded.value: 410,
    Outcome.not_found.value: 404,
    Outcome.invalid.value: 422,
    "idempotency_key_required": 400,
    "bad_json": 400,
}
# The same rule for a feedback batch's refusals (section 4); its acceptance is a 200 with an `accepted` count.
# A 404 `not_found` is a server that takes no feedback: its labels are kept here with the reason, not resent for ever.
_FEEDBACK_REFUSALS = {
    "invalid": 422,
    "idempotency_conflict": 409,
    "idempotency_key_required": 400,
    "bad_json": 400,
    "not_found": 404,
}


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The server's Retry-After (delay-seconds or an HTTP-date), clamped to [1 s, 300 s]; None if absent or unreadable.

    A hostile or buggy value can neither make the console hammer the server nor park a decision for hours.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # unreadable: the caller's own backoff applies
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # RFC 9110 dates are GMT
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return RETRY_AFTER_FLOOR
    return max(RETRY_AFTER_FLOOR, min(seconds, RETRY_AFTER_CEILING))


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
        self._claims = False  # features.claims, learnt with long_poll

    @property
    def long_polls(self) -> bool:
        return bool(self._long_poll and self.config.long_poll > 0)

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
            self._claims = bool(isinstance(features, dict) and features.get("claims"))
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
        page_cap = max(PAGE_BYTES, 2 * self.config.max_item_bytes)
        raw = await self._read_listing(params, wait, page_cap)
        # Over the page cap: ask for fewer items until one page fits; a single item over it cannot be read at all.
        while raw is None and int(params["limit"]) > 1:
            params["limit"] = max(1, int(params["limit"]) // 8)
            raw = await self._read_listing(params, wait, page_cap)
        if raw is None:
            raise SourceError(
                f"the next item is larger than {page_cap:,} bytes; it was not read, and the listing cannot go past it"
                " until the agent withdraws or shrinks it"
            )
        if raw is _RESET:
            return Page(reset=True)
        # Parsing and checking a page of 500 items takes tens of milliseconds: off the event loop, keys stay prompt.
        return await asyncio.to_thread(self._page, raw, cursor)

    def _page(self, raw: bytes, cursor: str | None) -> Page:
        listing = parse_listing(raw)
        listed, oversized = _split_oversized(listing.items, self.config.max_item_bytes, len(raw))
        items, rejected = validate_items(self.config.name, listed)
        rejected += oversized + listing.unreadable
        removed = [
            Removal(str(r["id"]), str(r.get("state", "gone")), _removal_detail(r))
            for r in listing.removed
            if isinstance(r, dict) and isinstance(r.get("id"), str)
        ]
        if listing.cursor_refused:
            # Not kept (R4): the next poll lists afresh. Paging on needs a cursor, so this page is the last.
            return Page(
                items, rejected, removed, cursor=None, has_more=listing.has_more, cursor_refused=listing.cursor_refused
            )
        return Page(
            items=items,
            rejected=rejected,
            removed=removed,
            cursor=listing.cursor if listing.cursor is not None else cursor,
            has_more=listing.has_more and listing.cursor is not None,  # "more" without a cursor would loop for ever
        )

    async def _read_listing(self, params: dict[str, str | int | float], wait: float, cap: int) -> bytes | None:
        """The listing's body, streamed: None as soon as it passes `cap` bytes (the rest is never read)."""
        timeout = self.config.timeout + wait
        try:
            # Overall, not per read (httpx's): a slow drip must not hold the poll for ever.
            async with (
                asyncio.timeout(timeout),
                self._client.stream("GET", "/v1/items", params=params, timeout=httpx.Timeout(timeout)) as response,
            ):
                if response.status_code == 410:
                    return _RESET
                _raise_for_listing(response, self.config.name)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    return None
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        return None
                return bytes(body)
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise SourceError(f"no answer within {timeout:g} s") from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise SourceError(f"the answer was cut off ({_brief(exc)})") from exc
        except httpx.HTTPError as exc:
            raise SourceError(public_url(f"cannot reach {self.config.url}: {_brief(exc)}")) from exc

    async def send_decision(self, decision: Decision) -> DecisionAnswer:
        unusable = id_problem(decision.item_id)
        if unusable is not None:  # only an older console stored such an item (R5): its URL would name another
            return DecisionAnswer(SyncState.failed, "invalid_id", f"not sent: {unusable}")
        try:
            # httpx's timeout is per read: a server dripping a byte at a time never trips it. This one is overall.
            async with asyncio.timeout(self.config.timeout):
                response = await self._client.post(
                    f"/v1/items/{quote(decision.item_id, safe='')}/decision",
                    json=decision.wire_body(),
                    headers={"Idempotency-Key": decision.id},
                )
        except TimeoutError:
            return DecisionAnswer(None, "timeout", f"no answer within {self.config.timeout:g} s")
        except httpx.HTTPError as exc:
            return DecisionAnswer(None, "unreachable", _brief(exc))
        return interpret_decision_answer(response)

    async def send_labels(self, labels: Sequence[Label]) -> LabelAnswer:
        """POST /v1/feedback (PROTOCOL.md section 4): one batch, keyed by its label ids so a resend is a replay."""
        ordered = sorted(labels, key=lambda label: label.label_id)  # the same batch is the same body, too
        ids = [label.label_id for label in ordered]
        try:
            response = await self._client.post(
                "/v1/feedback",
                json={"labels": [label.wire_body() for label in ordered]},
                headers={"Idempotency-Key": batch_id(ids)},
            )
        except httpx.HTTPError as exc:
            return LabelAnswer(detail=_brief(exc))
        return interpret_feedback_answer(response, ids)

    async def claim(self, item_id: str, operator: str) -> str | None:
        """POST /v1/items/{id}/claim (PROTOCOL.md section 5): who holds the item now, or None if claims are off.

        Best effort: a claim is advisory, so a failure is logged by the caller's silence, never raised.
        """
        await self._features()
        if not self._claims or id_problem(item_id) is not None:
            return None
        try:
            response = await self._client.post(
                f"/v1/items/{quote(item_id, safe='')}/claim", json={"operator": operator}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        holder = body.get("claimed_by") if isinstance(body, dict) else None
        return holder if isinstance(holder, str) and holder else None

    async def release(self, item_id: str, operator: str) -> None:
        if not self._claims or id_problem(item_id) is not None:
            return
        with contextlib.suppress(httpx.HTTPError):
            await self._client.request(
                "DELETE", f"/v1/items/{quote(item_id, safe='')}/claim", json={"operator": operator}
            )


def interpret_decision_answer(response: httpx.Response) -> DecisionAnswer:
    status = response.status_code
    body = _json_object(response)
    outcome = _outcome_name(body)
    if status in (401, 403):
        return DecisionAnswer(
            None,
            Outcome.unauthorized.value,
            f"the source refused our credentials ({status}); check its token",
            body,
            auth_refused=True,
        )
    if 300 <= status < 400:  # never followed; kept in the outbox until the url is fixed
        where = response.headers.get("Location", "?")[:200]
        return DecisionAnswer(
            None, f"http_{status}", f"a redirect to {where}; not followed (the token stays here)", body
        )
    if status in (429, 503) or status >= 500:
        return DecisionAnswer(
            None, f"http_{status}", f"the source is busy or failing ({status})", body, retry_after_seconds(response)
        )
    if body is not None and outcome is not None and _FINAL_STATUS.get(outcome) == status:
        if outcome == Outcome.applied.value:
            return DecisionAnswer(SyncState.applied, outcome, "applied", body)
        if status == 400:  # nothing was stored: our request itself was refused
            return DecisionAnswer(
                SyncState.failed, outcome, f"the source refused the decision ({status} {outcome})", body
            )
        return DecisionAnswer(SyncState.conflict, outcome, describe_outcome(outcome, body), body)
    # Status and body disagree, or one of them is unknown: the decision may or may not be applied. Resending under the
    # same key is safe: the server answers the resend from its record, and only an answer that agrees is final.
    if body is None and 200 <= status < 300:
        return DecisionAnswer(None, "unreadable", f"unreadable answer ({status}); sending again under the same key")
    return DecisionAnswer(None, "uncertain", f"{_odd_answer(status, outcome)}; sending again under the same key", body)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body: Any = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _outcome_name(body: dict[str, Any] | None) -> str | None:
    """The answer's name: its `outcome`, else its `error` (protocol errors carry one or the other)."""
    if body is None:
        return None
    for field in ("outcome", "error"):
        if isinstance(body.get(field), str) and body[field]:
            return str(body[field])
    return None


def _odd_answer(status: int, name: str | None, known: Mapping[str, int] = _FINAL_STATUS) -> str:
    """What was odd about an answer that is not final, for the decision's or label's last error."""
    # The name is server text: quoted and escaped (json), and short, wherever it is shown or logged.
    shown = json.dumps(name[:80]) if name is not None else None
    expected = known.get(name or "")
    if shown is None:
        return f"the answer's status {status} came without a known outcome"
    if expected is None:
        return f"the answer named an unknown outcome {shown} (status {status})"
    return f"the answer contradicts itself: status {status} with outcome {shown} (which comes with {expected})"


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
    if outcome == Outcome.superseded.value:
        by = body.get("superseded_by")
        return f"the agent replaced this item{f' by {by}' if by else ''}; the new version is in the queue"
    if outcome == Outcome.withdrawn.value:
        return "the agent withdrew this item; nothing will run"
    if outcome == "idempotency_conflict":
        return "the source holds a different decision under the same key"
    if outcome == Outcome.not_found.value:
        return "the source no longer knows this item"
    return f"{outcome}: {body.get('detail', '')}".strip(": ")


def interpret_feedback_answer(response: httpx.Response, label_ids: Sequence[str]) -> LabelAnswer:
    """Sent, refused with a reason (kept locally, never retried), or retried: nothing is dropped silently."""
    status = response.status_code
    body = _json_object(response) or {}
    name = _outcome_name(body)
    if status == 200 and type(body.get("accepted")) is int:
        detail = f"accepted {body['accepted']}, duplicates {body.get('duplicates', 0)}"
        return LabelAnswer(sent=frozenset(label_ids), detail=detail)
    if status in (401, 403):
        return LabelAnswer(detail=f"the source refused our credentials ({status})", auth_refused=True)
    if name is None or _FEEDBACK_REFUSALS.get(name) != status:
        # Busy, failing, a redirect, or an answer whose status and body do not agree (PROTOCOL.md section 4): resending
        # under the same key is safe, and only an answer that agrees is final.
        busy = status in (429, 503) or status >= 500
        detail = f"the source is busy or failing ({status})" if busy else _odd_answer(status, name, _FEEDBACK_REFUSALS)
        return LabelAnswer(detail=detail, retry_after=retry_after_seconds(response))
    reason = f"{name}: {body.get('detail') or ''}".strip(": ")
    if status == 422:
        named = _refused_indexes(body.get("errors"), len(label_ids))
        if named:
            # Only the labels the errors point at are refused; the rest go again at once, as a new batch.
            refused = {label_ids[i]: f"{reason}: {why}"[:2000] for i, why in named.items()}
            return LabelAnswer(refused=refused, detail=reason, retry_after=0.0)
    return LabelAnswer(refused=dict.fromkeys(label_ids, reason[:2000]), detail=reason)


def _refused_indexes(errors: Any, count: int) -> dict[int, str]:
    """Which labels of a batch the 422 errors name (`/labels/N/...`), with the first message for each."""
    named: dict[int, str] = {}
    for error in errors if isinstance(errors, list) else []:
        path = error.get("path") if isinstance(error, dict) else None
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) >= 3 and parts[1] == "labels" and parts[2].isdigit() and int(parts[2]) < count:
            named.setdefault(int(parts[2]), f"{path} {error.get('message', '')}".strip())
    return named


def _raise_for_listing(response: httpx.Response, source: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403):
        raise SourceError(f"refused our credentials ({status}); fix: {token_fix(source)}", auth=True)
    if status in (429, 503):
        raise SourceError(f"busy ({status})", retry_after=retry_after_seconds(response), throttled=True)
    if 300 <= status < 400:
        # Not followed: the token would go wherever the redirect points. A moved source is a config change.
        where = response.headers.get("Location", "?")[:200]
        raise SourceError(
            f"answered {status}, a redirect to {where}; not followed (the token stays here): update the url"
        )
    raise SourceError(f"answered {status} to a listing")


def _split_oversized(raw_items: list[Any], cap: int, page_bytes: int) -> tuple[list[Any], list[Rejected]]:
    """Items over `cap` bytes are refused (quarantined) before validation; a page under the cap has none."""
    if page_bytes <= cap:
        return raw_items, []
    kept: list[Any] = []
    refused: list[Rejected] = []
    for raw in raw_items:
        size = len(json.dumps(raw, separators=(",", ":")).encode())
        if size <= cap:
            kept.append(raw)
            continue
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        item_id = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= 200 else f"?{size}-bytes"
        reason = f"the item is {size:,} bytes, over this source's cap of {cap:,} (max_item_bytes)"
        head = {k: raw[k] for k in ("id", "kind", "agent") if k in raw} if isinstance(raw, dict) else type(raw).__name__
        refused.append(Rejected(item_id, reason, excerpt(head)))
    return kept, refused


def _removal_detail(raw: dict[str, Any]) -> str:
    return json.dumps({k: raw[k] for k in ("decided_by", "verdict") if k in raw})


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__
