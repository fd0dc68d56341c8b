"""The native protocol's payloads (PROTOCOL.md), read: pure functions, no HTTP (the transport is
console.engine.sources.native).

A listing's body becomes a page (items checked and quarantined with their reasons, removals, the cursor to keep); an
answer to a decision or a feedback batch becomes the source's answer, final only when its status and its body agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from console.engine.sources.answers import Kind, busy_answer, classify, json_object
from console.engine.sources.base import (
    DecisionAnswer,
    ExtendAnswer,
    LabelAnswer,
    Page,
    Rejected,
    excerpt,
    validate_items,
)
from console.engine.sources.listing import parse_listing
from storage.db import Removal
from storage.records import Item, Outcome, SyncState

# PROTOCOL.md section 3: an answer is final only when its status and its body's outcome name agree on one of these.
_FINAL_STATUS = {
    Outcome.applied.value: 200,
    Outcome.partial.value: 202,  # a two-person item's first approval: recorded, waiting for another operator
    Outcome.same_operator.value: 409,
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


def listing_page(source: str, max_item_bytes: int, raw: bytes, cursor: str | None) -> Page:
    """A listing's body as a page: valid items, rejected ones with their reasons, removals, and the cursor to keep."""
    listing = parse_listing(raw)
    listed, oversized = _split_oversized(listing.items, max_item_bytes, len(raw))
    items, rejected = validate_items(source, listed)
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


def interpret_decision_answer(response: httpx.Response) -> DecisionAnswer:
    answer = classify(response)
    status = answer.status
    body = json_object(response)
    outcome = outcome_name(body)
    if answer.kind is Kind.auth:
        return DecisionAnswer(
            None,
            Outcome.unauthorized.value,
            f"the source refused our credentials ({status}); check its token",
            body,
            auth_refused=True,
        )
    if answer.kind is Kind.redirect:  # never followed; kept in the outbox until the url is fixed
        where = answer.location
        return DecisionAnswer(
            None, f"http_{status}", f"a redirect to {where}; not followed (the token stays here)", body
        )
    if answer.busy:
        return busy_answer(answer, body)
    if body is not None and outcome is not None and _FINAL_STATUS.get(outcome) == status:
        if outcome == Outcome.applied.value:
            return DecisionAnswer(SyncState.applied, outcome, "applied", body)
        if outcome == Outcome.partial.value:
            return DecisionAnswer(SyncState.partial, outcome, partial_detail(body), body)
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


def outcome_name(body: dict[str, Any] | None) -> str | None:
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
    if outcome == Outcome.same_operator.value:
        return "you already approved this item; another operator must approve it"
    if outcome == "idempotency_conflict":
        return "the source holds a different decision under the same key"
    if outcome == Outcome.not_found.value:
        return "the source no longer knows this item"
    return f"{outcome}: {body.get('detail', '')}".strip(": ")


def partial_detail(body: dict[str, Any]) -> str:
    """A partial answer in words: "recorded: 1 of 2 approvals (alice); another operator must approve it"."""
    recorded = body.get("approvals")
    entries = recorded if isinstance(recorded, list) else []
    names = [a["operator"] for a in entries if isinstance(a, dict) and isinstance(a.get("operator"), str)]
    required = body.get("approvals_required")
    of = f" of {required}" if type(required) is int else ""
    who = f" ({', '.join(names)})" if names else ""
    return f"recorded: {len(names)}{of} approvals{who}; another operator must approve it"


def interpret_feedback_answer(response: httpx.Response, label_ids: Sequence[str]) -> LabelAnswer:
    """Sent, refused with a reason (kept locally, never retried), or retried: nothing is dropped silently."""
    answer = classify(response)
    status = answer.status
    body = json_object(response) or {}
    name = outcome_name(body)
    if status == 200 and type(body.get("accepted")) is int:
        detail = f"accepted {body['accepted']}, duplicates {body.get('duplicates', 0)}"
        return LabelAnswer(sent=frozenset(label_ids), detail=detail)
    if answer.kind is Kind.auth:
        return LabelAnswer(detail=f"the source refused our credentials ({status})", auth_refused=True)
    if name is None or _FEEDBACK_REFUSALS.get(name) != status:
        # Busy, failing, a redirect, or an answer whose status and body do not agree (PROTOCOL.md section 4): resending
        # under the same key is safe, and only an answer that agrees is final.
        busy = f"the source is busy or failing ({status})"
        detail = busy if answer.busy else _odd_answer(status, name, _FEEDBACK_REFUSALS)
        return LabelAnswer(detail=detail, retry_after=answer.retry_after)
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
    return json.dumps({k: raw[k] for k in ("decided_by", "verdict", "approvals") if k in raw})


# PROTOCOL.md section 10: what a refused extension means to the operator (every source's refusals are told so).
_EXTEND_REFUSALS = {
    "stale": "the item changed since you saw it; read the new version first",
    "not_extendable": "the source does not allow more time for this item",
    "invalid": "the source refused the request",
    "not_found": "the source no longer has this item",
    "conflict": "it was decided meanwhile",
    "expired": "its deadline passed already",
    "withdrawn": "the agent withdrew it",
    "superseded": "a newer item replaced it",
}


def interpret_extend_answer(source: str, shown: Item, response: httpx.Response) -> ExtendAnswer:
    """The answer to an extension: the new version (checked as a listed item is: its digest, its fields) or why not."""
    body = json_object(response)
    outcome = body.get("outcome") if body is not None else None
    if response.status_code == 200 and outcome == "extended" and body is not None:
        items, rejected = validate_items(source, [body.get("item")])
        if items and items[0].id == shown.id:
            return ExtendAnswer(items[0], "extended")
        why = rejected[0].reason if rejected else "another item"
        return ExtendAnswer(None, f"the source answered with an item this console cannot use ({why})")
    if response.status_code in (404, 405) and outcome is None:
        return ExtendAnswer(None, "the source cannot extend deadlines (it has no extend route)")
    detail = body.get("detail") if body is not None else None
    refused = extend_refused(str(outcome), detail if isinstance(detail, str) else "") if outcome is not None else None
    return refused or ExtendAnswer(None, f"the source answered {response.status_code}; nothing changed")


def extend_refused(outcome: str, detail: str = "") -> ExtendAnswer | None:
    """A refused extension (section 10's outcome name) as the operator reads it; None for a name it does not have."""
    said = _EXTEND_REFUSALS.get(outcome)
    if said is None:
        return None
    return ExtendAnswer(None, f"{said}: {detail}" if detail else said)
