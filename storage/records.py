"""Records: the validated shapes of what the console stores and shows.

Items arrive from agent services and are untrusted: every field is validated here, on the way in, so the rest of
the code can rely on types. Display code must still treat every string as hostile (it may hold markup or escapes).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Limits of PROTOCOL.md (R10): what a server may send; longer is refused as malformed, never truncated silently.
MAX_TEXT = 64_000  # one free-text field: summary, reasoning, policy, each evidence or link entry
MAX_NAME = 200  # id, agent, action name
MAX_LABEL = 1_000  # workflow, on_expiry
MAX_ENTRIES = 1_000  # evidence, links
MAX_ITEM_BYTES = 1_048_576  # one item's JSON (1 MiB)
MAX_CURSOR = 1_024
_CURSOR = re.compile(r"[A-Za-z0-9\-._~:+/=]{1,1024}")
# The optional `trace` of an item (PROTOCOL.md section 1): where the agent's run is recorded in its tracing tool.
TRACE_KEYS = ("run_id", "trace_id", "project", "observation_id", "url", "session_id")
MAX_TRACE_URL = 2_000
_TRACE_URL = re.compile(r"https?://[^\s]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def id_problem(item_id: object) -> str | None:
    """Why `item_id` is not a usable item id (R5), or None. `.` and `..` would name another URL once in a path."""
    if not isinstance(item_id, str) or not item_id:
        return "the id must be a non-empty string"
    if len(item_id) > MAX_NAME:
        return f"the id is {len(item_id):,} characters; at most {MAX_NAME} are allowed"
    if _CONTROL.search(item_id):
        return "the id holds control characters"
    if item_id in (".", ".."):
        return f"the id {item_id!r} is reserved (it would address another URL)"
    return None


def trace_problem(value: Any) -> str | None:
    """Why an item's `trace` cannot be kept (it is then dropped and the item kept), or None."""
    if not isinstance(value, dict):
        return "the trace is not an object"
    for key in TRACE_KEYS:
        member = value.get(key)
        if member is None:
            continue
        limit = MAX_TRACE_URL if key == "url" else MAX_NAME
        if not isinstance(member, str) or not member:
            return f"trace.{key} is not a non-empty string"
        if len(member) > limit:
            return f"trace.{key} is {len(member):,} characters; at most {limit:,} are allowed"
        if _CONTROL.search(member):
            return f"trace.{key} holds control characters"
        if key == "url" and not _TRACE_URL.fullmatch(member):
            return "trace.url is not an http(s) URL"
    return None


def clean_trace(value: Any) -> dict[str, str] | None:
    """The trace's known members, or None when it is absent, empty or breaks a rule (members a later version may add
    are ignored). A trace is bookkeeping about the agent's run, not part of the decision: a bad one is dropped and
    the item kept."""
    if value is None or trace_problem(value) is not None:
        return None
    kept = {key: value[key] for key in TRACE_KEYS if value.get(key) is not None}
    return kept or None


# An item's optional `extend` offer (PROTOCOL.md section 10): how much later its deadline may be moved in all.
MAX_EXTEND_SECONDS = 7 * 24 * 3600


def extend_problem(value: Any) -> str | None:
    """Why an item's `extend` offer cannot be used (a server refuses the item; a client drops the offer), or None."""
    if not isinstance(value, dict):
        return "extend must be an object with max_seconds"
    most, used = value.get("max_seconds"), value.get("used_seconds", 0)
    if isinstance(most, bool) or not isinstance(most, int) or not 0 < most <= MAX_EXTEND_SECONDS:
        return f"extend.max_seconds must be a whole number of seconds from 1 to {MAX_EXTEND_SECONDS}"
    if isinstance(used, bool) or not isinstance(used, int) or not 0 <= used <= most:
        return "extend.used_seconds must be a whole number from 0 to max_seconds"
    return None


def cursor_problem(cursor: str) -> str | None:
    """Why a listing's cursor cannot be kept and sent back (R4), or None."""
    if len(cursor) > MAX_CURSOR:
        return f"a cursor of {len(cursor):,} characters (at most {MAX_CURSOR:,})"
    if not _CURSOR.fullmatch(cursor):
        return "a cursor with characters outside A-Z a-z 0-9 - . _ ~ : + / = (or an empty one)"
    return None


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return RISK_RANK[self]


RISK_RANK = {Risk.low: 0, Risk.medium: 1, Risk.high: 2, Risk.critical: 3}
# What the queue's KIND column shows for each kind; the filter's `kind:` accepts the label as well as the full word.
KIND_LABELS: dict[str, str] = {"approval": "APPR", "escalation": "ESC"}


class Verdict(StrEnum):
    approve = "approve"
    reject = "reject"
    edit = "edit"


class SyncState(StrEnum):
    pending = "pending"  # durable, not yet sent (or to be retried)
    sending = "sending"  # handed to the network; on restart treated as pending (the idempotency key makes it safe)
    applied = "applied"
    conflict = "conflict"  # a final answer other than applied: decided elsewhere, expired, stale, invalid...
    failed = "failed"  # a final answer that retrying cannot fix (auth, malformed request)
    undone = "undone"  # taken back by the operator within the undo window, before anything was sent
    partial = "partial"  # recorded by the source as one approval of a two-person item; another operator completes it


class Outcome(StrEnum):
    """The final answers of PROTOCOL.md, plus the ones the client infers."""

    applied = "applied"
    conflict = "conflict"  # decided elsewhere
    expired = "expired"  # the protocol's name (PROTOCOL.md section 3); stored and shown as timed_out
    timed_out = "timed_out"  # the deadline passed first: the agent applied its on_expiry (never a human reject)
    stale = "stale"  # the item changed since the operator saw it
    invalid = "invalid"  # the edit broke the item's schema
    withdrawn = "withdrawn"
    superseded = "superseded"
    not_found = "not_found"
    unauthorized = "unauthorized"
    partial = "partial"  # a two-person item's first approval: recorded, not applied (PROTOCOL.md)
    same_operator = "same_operator"  # this operator already approved the two-person item


def console_outcome(answer: str) -> str:
    """A source's outcome name as the console keeps and shows it: the protocol's `expired` is `timed_out` here."""
    return Outcome.timed_out.value if answer == Outcome.expired.value else answer


FINAL_CONFLICTS = {
    Outcome.conflict,
    Outcome.expired,
    Outcome.timed_out,
    Outcome.stale,
    Outcome.invalid,
    Outcome.withdrawn,
    Outcome.superseded,
    Outcome.not_found,
    Outcome.same_operator,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Levels of arrays and objects allowed in arguments or output. Deeper items are refused as malformed: the JSON
# layer (pydantic's limit is 200 levels in all) could store them but not read them back, and nobody reads 64 levels.
MAX_NESTING = 64


def _shallow(value: Any) -> Any:
    """`value`, if it nests at most MAX_NESTING levels (checked without recursion: the input is hostile)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth >= MAX_NESTING:
                raise ValueError(f"nested deeper than {MAX_NESTING} levels")
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)
    return value


class Action(_Strict):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    args: dict[str, Any] = Field(default_factory=dict)
    args_schema: dict[str, Any] | None = None

    _shallow_args = field_validator("args", "args_schema")(_shallow)


class Context(_Strict):
    summary: str = Field(default="", max_length=MAX_TEXT)
    reasoning: str = Field(default="", max_length=MAX_TEXT)
    evidence: list[Annotated[str, Field(max_length=MAX_TEXT)]] = Field(default_factory=list, max_length=MAX_ENTRIES)
    links: list[Annotated[str, Field(max_length=MAX_TEXT)]] = Field(default_factory=list, max_length=MAX_ENTRIES)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone (RFC 3339)")
    return value.astimezone(UTC)


MAX_APPROVALS = 10  # the most approvals an item may require (PROTOCOL.md "Two-person items")


class Approval(_Strict):
    """One operator's approval of a two-person item, recorded by the source while it waits for another."""

    operator: str = Field(min_length=1, max_length=MAX_NAME)
    at: datetime
    verdict: Literal["approve", "edit"] = "approve"  # an edit restarts the count with the edited action

    _utc_at = field_validator("at")(_utc)


class ExtendOffer(_Strict):
    """How much later the item's deadline may still be moved (PROTOCOL.md section 10)."""

    max_seconds: int
    used_seconds: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.max_seconds - self.used_seconds)


class Item(_Strict):
    """One pending approval or escalation, exactly as the operator is shown it."""

    source: str = ""  # filled in by the console: which configured source it came from
    id: str = Field(min_length=1, max_length=MAX_NAME)
    kind: Literal["approval", "escalation"]
    agent: str = Field(min_length=1, max_length=MAX_NAME)
    workflow: str = Field(default="", max_length=MAX_LABEL)
    action: Action | None = None  # an escalation may come without one (R1); an approval needs one
    output: Any = None
    context: Context = Field(default_factory=Context)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    risk: Risk
    policy: str = Field(default="", max_length=MAX_TEXT)
    created_at: datetime
    expires_at: datetime | None = None
    on_expiry: str = Field(default="reject", max_length=MAX_LABEL)
    allowed_decisions: tuple[Verdict, ...] = (Verdict.approve, Verdict.reject, Verdict.edit)
    claimed_by: str | None = None
    trace: dict[str, str] | None = None  # where the agent's run is traced; an unusable one is dropped (clean_trace)
    # Two-person items: how many distinct operators must approve, and who has so far (PROTOCOL.md).
    approvals_required: int = Field(default=1, ge=1, le=MAX_APPROVALS, strict=True)
    approvals: tuple[Approval, ...] = Field(default=(), max_length=MAX_APPROVALS)
    extend: ExtendOffer | None = None  # how much more time the source allows; an unusable offer is dropped
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")

    _utc_created = field_validator("created_at")(_utc)
    _shallow_output = field_validator("output")(_shallow)

    @field_validator("trace", mode="before")
    @classmethod
    def _usable_trace(cls, value: Any) -> dict[str, str] | None:
        return clean_trace(value)

    @field_validator("extend", mode="before")
    @classmethod
    def _usable_extend(cls, value: Any) -> Any:
        # Like a trace, the offer is no part of what is decided: a bad one means "cannot be extended", not a bad item.
        return None if value is None or extend_problem(value) is not None else value

    @property
    def extendable_seconds(self) -> int:
        """How many seconds later the deadline may still be moved here (0: it cannot be)."""
        return 0 if self.extend is None or self.expires_at is None else self.extend.remaining

    @field_validator("confidence", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        # A JSON number only (R9): true would read as 1.0, "0.9" as 0.9.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"confidence must be a number in 0..1, not {json.dumps(value)[:40]}")
        return value

    @field_validator("allowed_decisions", mode="before")
    @classmethod
    def _known_decisions(cls, value: Any) -> Any:
        # Unknown names are ignored (R9): a newer server may offer more; an item none of whose names is known cannot
        # be decided here at all.
        if not isinstance(value, list | tuple):
            return value
        known = [v for v in value if isinstance(v, str) and v in Verdict.__members__]
        if not known:
            raise ValueError(f"none of the decisions it allows is known here: {json.dumps(value)[:80]}")
        return tuple(dict.fromkeys(known))

    @model_validator(mode="after")
    def _approval_has_action(self) -> Item:
        if self.action is None and self.kind == "approval":
            raise ValueError("an approval needs an action")
        return self

    @field_validator("expires_at")
    @classmethod
    def _utc_expires(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @field_validator("confidence")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("confidence must be a finite number")
        return value

    @property
    def editable_value(self) -> Any:
        """What an edit changes: the arguments of an approval, the output of an escalation."""
        return self.output if self.kind == "escalation" or self.action is None else self.action.args

    @property
    def action_name(self) -> str:
        """The action's name; "" for an escalation that has none."""
        return "" if self.action is None else self.action.name

    @property
    def args_schema(self) -> dict[str, Any] | None:
        """The schema an edit must satisfy, if the item has one."""
        return None if self.action is None else self.action.args_schema

    @property
    def headline(self) -> str:
        """What titles and notices call the item: its action's name, or "(no action)"."""
        return self.action_name or NO_ACTION

    def allows(self, verdict: Verdict) -> bool:
        return verdict in self.allowed_decisions

    def approved_by(self, operator: str) -> Approval | None:
        """This operator's recorded approval of the item, if any."""
        return next((a for a in self.approvals if a.operator == operator), None)

    @property
    def approval_progress(self) -> str:
        """ "1 of 2 — approved by alice" for a two-person item; "" for an ordinary one."""
        if self.approvals_required <= 1:
            return ""
        done = f"{len(self.approvals)} of {self.approvals_required}"
        if not self.approvals:
            return f"{done} approvals — needs {self.approvals_required} different operators"
        names = ", ".join(a.operator + (" (edited)" if a.verdict == "edit" else "") for a in self.approvals)
        return f"{done} — approved by {names}"


def second_approval_refusal(item: Item, operator: str, verdict: Verdict) -> str | None:
    """Why `operator` may not record `verdict` on `item` (they already approved it and one person never counts
    twice), or None. A reject is always possible."""
    if verdict is Verdict.reject or item.approvals_required <= 1:
        return None
    mine = item.approved_by(operator)
    if mine is None:
        return None
    return (
        f"you ({operator}) already approved this item ({len(item.approvals)} of {item.approvals_required}); another"
        " operator must approve it. Nothing was sent"
    )


NO_ACTION = "(no action)"

# Fields outside the digest: bookkeeping that may change without changing what is being decided.
_UNSHOWN = ("source", "digest", "claimed_by", "seq")


def shown_part(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in _UNSHOWN}


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON: the same value always gives the same bytes.

    Most values take a fast path (the C json encoder, about ten times faster than the pure-Python rfc8785 package,
    which dominated the cost of listing a large queue); values where the two could differ take the package.
    """
    try:
        text = json.dumps(_jcs_ready(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except _NeedsFullJcs:
        return bytes(rfc8785.dumps(value))
    if max(text, default=" ") > "\uffff":
        # Astral characters: JCS sorts keys by UTF-16 code units, Python by code points; let the package decide.
        return bytes(rfc8785.dumps(value))
    return text.encode("utf-8")


class _NeedsFullJcs(Exception):
    """The value holds a number that Python's json and RFC 8785 would write differently."""


_AS_IS = frozenset({str, bool, type(None)})  # written the same by both: no call needed (most leaves are strings)
_EXACT_INT = 2**53 - 1  # beyond this an integer is not exactly a double (rfc8785 refuses it)


def _jcs_ready(value: Any) -> Any:
    """The value with integral floats as ints (JCS writes 1250.0 as 1250); numbers repr() writes in exponent form, or
    integers a double cannot hold, send it to the full implementation."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _AS_IS else _jcs_ready(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [item if type(item) in _AS_IS else _jcs_ready(item) for item in value]
    if kind is float:
        magnitude = abs(value)
        if value.is_integer() and magnitude < 1e16:
            return int(value)
        if not 1e-4 <= magnitude < 1e16:  # repr() switches to exponent form outside this range; JCS elsewhere
            raise _NeedsFullJcs
        return value
    if kind is int and abs(value) > _EXACT_INT:
        raise _NeedsFullJcs
    return value


def item_digest(shown: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(shown)).hexdigest()


def digest_problem(payload: dict[str, Any]) -> str | None:
    """Why the payload's digest does not bind its content, or None when it does.

    Computed over the payload as received (not the parsed model), exactly as the server computed it.
    """
    claimed = payload.get("digest")
    try:
        actual = item_digest(shown_part(payload))
    except rfc8785.IntegerDomainError:
        return "an integer beyond +-(2^53-1), which a digest cannot hold exactly (send it as a string)"
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than Python's stack
        return f"content cannot be canonicalised: {type(exc).__name__}: {exc}"[:300]
    if claimed != actual:
        return f"digest {str(claimed)[:24]!r} does not match the content ({actual[:24]}...)"
    return None


class Decision(_Strict):
    """What the operator decided, bound to the exact version of the item they saw."""

    id: str  # uuid4; also the idempotency key
    source: str
    item_id: str
    item_digest: str
    verdict: Verdict
    edited: Any = None  # edited args (approval) or output (escalation); None unless verdict is edit
    edited_digest: str | None = None
    reason_code: str | None = None
    comment: str = ""
    operator: str
    decided_at: datetime

    def wire_body(self) -> dict[str, Any]:
        """The decision as PROTOCOL.md sends it."""
        return {
            "verdict": self.verdict.value,
            "item_digest": self.item_digest,
            "edited": self.edited,
            "edited_digest": self.edited_digest,
            "reason_code": self.reason_code,
            "comment": self.comment,
            "operator": self.operator,
            "decided_at": self.decided_at.isoformat(),
        }


class DecisionRow(_Strict):
    """A decision as stored, with its sync state."""

    decision: Decision
    sync_state: SyncState
    attempts: int
    outcome: str | None
    detail: str
    item_action: str
    item_agent: str
    seen: bool = False  # a problem the operator acknowledged


class QueueRow(_Strict):
    """What one line of the queue list needs: small, so a screenful is cheap to fetch."""

    source: str
    id: str
    kind: str
    agent: str
    action: str
    risk: Risk
    confidence: float | None
    created_at: float  # epoch seconds
    expires_at: float | None
    claimed_by: str | None = None  # who holds a claim on it, where the source supports claims
    approvals_required: int = 1  # a two-person item: 2
    approvals: int = 0  # how many it has so far
    on_expiry: str = "reject"  # what the agent does if nobody decides in time ("approve" is flagged)
    group: str | None = None  # the value of the grouping column, when the queue is grouped


class QueueGroup(NamedTuple):
    """One group of a grouped queue view, in display order: its label, how many pending items it holds, and whether
    the view collapses it (then none of its rows is listed, only this header)."""

    label: str
    size: int  # its pending items (matching the filter), collapsed or not
    collapsed: bool = False


class SourceHealth(_Strict):
    name: str
    state: Literal["starting", "up", "throttled", "down", "auth"] = "starting"
    last_poll_at: float | None = None
    last_ok_at: float | None = None
    error: str = ""
    quarantined: int = 0
    next_retry_at: float | None = None  # after a failed poll: when the poller tries again (epoch seconds)


class SourceCounts(_Strict):
    """What the console holds for one source (storage/source_counts.py)."""

    pending: int = 0
    quarantined: int = 0
    unacknowledged: int = 0  # quarantined items nobody has acknowledged yet (Problems lists them)
    unsynced: int = 0  # decisions recorded here the source has not answered yet


class Quarantined(_Strict):
    source: str
    item_id: str
    reason: str
    seen_at: float
    excerpt: str
    acknowledged: bool = False


def now_utc() -> datetime:
    return datetime.now(UTC)
