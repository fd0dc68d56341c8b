"""How a Temporal workflow says "waiting for a human" (PROTOCOL.md, "Temporal workflows"): names and pure checks.

Both sides read this module: the workflow helper (temporal_workflow, inside a Temporal worker) writes the convention,
the console's Temporal source (console.engine.sources.temporal_payloads) reads it. It needs neither temporalio nor HTTP.

- Search attribute `ApprovalState` (Keyword): `waiting` while the workflow waits, then `decided` or `expired`.
- Search attribute `ApprovalSince` (Datetime): when the current wait began, so a console lists only what is new.
- Memo `approval_request`: the request, i.e. PROTOCOL.md's item without the fields the console derives (`id`, `digest`,
  `seq`, `claimed_by`, `source`), plus `version` (1) and `key` (which wait of the run it is).
- Memo `approval_outcome`: once decided or expired, what happened (so a late console is told by whom).
- Update `approval_decision`: takes one decision, an object with the `DECISION_FIELDS` below. Its validator refuses,
  as an ApplicationError whose type is the outcome's name: `conflict` (decided already), `expired` (past the
  deadline), `stale` (the request digest is not the current one), `invalid` (a decision the request does not allow,
  or a malformed one). Refused updates are not recorded; an accepted one returns `{"outcome": "applied", ...}`, and
  the same update id returns the same answer again.
- Optional: the request's `extend` offer, `{"max_seconds": N, "used_seconds": M}` (PROTOCOL.md section 10), and the
  Update `approval_extend`, which takes `{"request_digest", "seconds", "operator"}` and moves the deadline: a new
  version of the request (new `expires_at`, more `used_seconds`, `ApprovalSince` moved on so a polling console reads
  it again). Refusals as for a decision (`conflict`, `expired`, `stale`), then `not_extendable` (no offer or no
  deadline) and `invalid` (not a whole number of seconds, or more than the offer leaves; details `max_seconds`).
  It returns `{"outcome": "extended", "expires_at", "request_digest", "extended_by", "request"}`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from storage.records import Verdict, extend_problem, item_digest

VERSION = 1
STATE_ATTRIBUTE = "ApprovalState"  # Keyword
SINCE_ATTRIBUTE = "ApprovalSince"  # Datetime
WAITING, DECIDED, EXPIRED = "waiting", "decided", "expired"
REQUEST_MEMO = "approval_request"
OUTCOME_MEMO = "approval_outcome"
UPDATE_NAME = "approval_decision"
EXTEND_UPDATE = "approval_extend"
# Refusal types (ApplicationError.type): the console's outcome names, so an answer maps onto them one to one.
CONFLICT, STALE, INVALID = "conflict", "stale", "invalid"
NOT_EXTENDABLE = "not_extendable"
EXTENDED = "extended"
# The item fields a request carries (PROTOCOL.md section 1): what the operator is shown, and the digest covers.
REQUEST_FIELDS = (
    "kind",
    "agent",
    "workflow",
    "action",
    "output",
    "context",
    "confidence",
    "risk",
    "policy",
    "created_at",
    "expires_at",
    "on_expiry",
    "allowed_decisions",
    "extend",
)
DECISION_FIELDS = (
    "decision_id",
    "request_digest",
    "verdict",
    "edited",
    "edited_digest",
    "reason_code",
    "comment",
    "operator",
    "decided_at",
)


class Refusal(Exception):
    """A decision the workflow does not take: `kind` is the outcome name, `details` what a console may show."""

    def __init__(self, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details or {}


def request_digest(request: dict[str, Any]) -> str:
    """The digest of a request memo as stored: the same function and canonical form as an item's digest."""
    return item_digest(request)


def refusal(request: dict[str, Any], outcome: dict[str, Any] | None, decision: Any, now: datetime) -> Refusal | None:
    """Why the workflow refuses `decision` for `request` (waiting unless `outcome` says otherwise), or None.

    The order of PROTOCOL.md section 3: still pending (conflict, expired), the digest (stale), then the decision itself
    (invalid). Pure: the workflow's validator and the tests call it alike.
    """
    ended = _not_pending(request, outcome, now)
    if ended is not None:
        return ended
    if not isinstance(decision, dict):
        return Refusal(INVALID, "a decision is a JSON object")
    current = request_digest(request)
    if decision.get("request_digest") != current:
        return Refusal(STALE, "the request changed after it was shown", {"current_digest": current})
    return _malformed(request, decision)


def extend_refusal(request: dict[str, Any], outcome: dict[str, Any] | None, ask: Any, now: datetime) -> Refusal | None:
    """Why the workflow refuses to move the deadline as `ask` says, or None: PROTOCOL.md section 10's order (still
    pending, the digest, an offer at all, then the seconds against what the offer leaves)."""
    ended = _not_pending(request, outcome, now)
    if ended is not None:
        return ended
    if not isinstance(ask, dict):
        return Refusal(INVALID, "an extension is a JSON object")
    current = request_digest(request)
    if ask.get("request_digest") != current:
        return Refusal(STALE, "the request changed after it was shown", {"current_digest": current})
    offer = request.get("extend")
    if request.get("expires_at") is None or offer is None or extend_problem(offer) is not None:
        return Refusal(NOT_EXTENDABLE, "this request has no deadline or offers no more time")
    seconds = ask.get("seconds")
    left = offer["max_seconds"] - offer.get("used_seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        return Refusal(INVALID, "seconds must be a whole number, at least 1", {"max_seconds": left})
    if seconds > left:
        return Refusal(INVALID, f"the request allows at most {left} more seconds", {"max_seconds": left})
    if not isinstance(ask.get("operator"), str) or not ask["operator"]:
        return Refusal(INVALID, "operator must be a non-empty string")
    return None


def extended(request: dict[str, Any], seconds: int) -> dict[str, Any]:
    """The request after an extension: its deadline `seconds` later, that much more of its offer used."""
    offer = request["extend"]
    later = datetime.fromisoformat(request["expires_at"]) + timedelta(seconds=seconds)
    used = offer.get("used_seconds", 0) + seconds
    return {**request, "expires_at": later.isoformat(), "extend": {**offer, "used_seconds": used}}


def _not_pending(request: dict[str, Any], outcome: dict[str, Any] | None, now: datetime) -> Refusal | None:
    if outcome is not None and outcome.get("state") == EXPIRED:
        return Refusal(
            EXPIRED, "the deadline passed before the decision arrived", {"on_expiry": outcome.get("on_expiry")}
        )
    if outcome is not None:
        details = {k: outcome.get(k) for k in ("decided_by", "verdict", "decided_at")}
        return Refusal(CONFLICT, f"already decided by {outcome.get('decided_by')} ({outcome.get('verdict')})", details)
    expires_at = request.get("expires_at")
    if isinstance(expires_at, str) and datetime.fromisoformat(expires_at) <= now:
        return Refusal(
            EXPIRED, "the deadline passed before the decision arrived", {"on_expiry": request.get("on_expiry")}
        )
    return None


def _malformed(request: dict[str, Any], decision: dict[str, Any]) -> Refusal | None:
    verdict = decision.get("verdict")
    allowed = request.get("allowed_decisions") or [v.value for v in Verdict]
    if verdict not in allowed:
        return Refusal(
            INVALID, f"the verdict {str(verdict)[:40]!r} is not one this request allows ({', '.join(allowed)})"
        )
    for name in ("decision_id", "operator", "decided_at"):
        if not isinstance(decision.get(name), str) or not decision[name]:
            return Refusal(INVALID, f"{name} must be a non-empty string")
    if verdict == Verdict.reject and not decision.get("reason_code"):
        return Refusal(INVALID, "a rejection needs a reason_code")
    if verdict != Verdict.edit:
        return None
    edited = decision.get("edited")
    if request.get("kind") == "approval" and not isinstance(edited, dict):
        return Refusal(INVALID, "edited arguments must be a JSON object")
    if decision.get("edited_digest") != item_digest(edited):
        return Refusal(INVALID, "edited_digest does not match the edited value")
    return None


def outcome_of(decision: dict[str, Any]) -> dict[str, Any]:
    """What the `approval_outcome` memo records once a decision is applied."""
    return {
        "state": DECIDED,
        "decision_id": decision["decision_id"],
        "decided_by": decision["operator"],
        "verdict": decision["verdict"],
        "decided_at": decision["decided_at"],
    }
