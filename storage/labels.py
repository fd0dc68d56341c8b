"""Labels: every decision (and every item that expires undecided) as a unit of feedback for the agent's owners.

A label says what the agent proposed, what the human decided, the change as an RFC 6902 JSON Patch, why, and how long
the operator took. Labels live in their own table with a sync state (pending -> sent | refused), written in the same
transaction as the decision they describe; the sync engine sends them to their source in idempotent batches, and
`storage.export` streams them out in the formats evaluation and training tools read. A label's `outcome` follows its
decision (`settle_label`, in the transaction that records the source's final answer); labels with a final outcome
enter the settle log that feedback sinks read (storage/feedback.py).

The functions that take a `sqlite3.Connection` run inside a transaction the caller holds (as `audit.append` does);
`LabelOutbox` wraps them for the sync engine, with a transaction each and a lock shared with the connection's owner.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from storage.json_diff import json_patch
from storage.records import Decision, Item, Outcome, SyncState, Verdict

LABEL_VERSION = 2  # 2: trace, inputs, reasoning, outcome (and `unknown` on labels the v6 migration upgraded)
REDACTED = "[redacted]"
# The verdict (and outcome) of an item nobody decided before its deadline: the agent applied its on_expiry. Its own
# name, never a reject: the human did not judge it. (Stored as "expired" before schema v8, which renamed it.)
TIMED_OUT: Literal["timed_out"] = "timed_out"
EXPIRED = TIMED_OUT  # the older name of the constant
LabelVerdict = Literal["approve", "reject", "edit", "timed_out"]
LABEL_VERDICTS: tuple[LabelVerdict, ...] = ("approve", "reject", "edit", "timed_out")
_LABEL_VERDICT: dict[Verdict, LabelVerdict] = {
    Verdict.approve: "approve",
    Verdict.reject: "reject",
    Verdict.edit: "edit",
}

# What became of a label's decision (README.md "Labels"). Only "applied" ran as decided; "conflict_lost" means another
# operator decided first, so this label is not what happened and never training data.
LabelOutcome = Literal["applied", "conflict_lost", "timed_out", "pending", "refused"]
LABEL_OUTCOMES: tuple[LabelOutcome, ...] = ("applied", "conflict_lost", "timed_out", "pending", "refused")


def decision_outcome(sync_state: str, answer: str | None) -> LabelOutcome:
    """The label outcome of a decision in this sync state with this final answer (PROTOCOL.md outcome names).

    "timed_out": the deadline passed first and the agent applied its on-expiry action: here the decision reached the
    source too late; an expiry label (verdict "timed_out", where nobody decided at all) has this outcome too.
    """
    if sync_state == SyncState.applied.value:
        return "applied"
    if sync_state == SyncState.conflict.value and answer == Outcome.conflict.value:
        return "conflict_lost"
    if sync_state == SyncState.conflict.value and answer in (Outcome.timed_out.value, Outcome.expired.value):
        return "timed_out"
    if sync_state in (SyncState.conflict.value, SyncState.failed.value):
        return "refused"
    return "pending"


# Expiry labels get a stable id from the item version, so recording the same expiry twice keeps one label.
_EXPIRY_NAMESPACE = uuid.UUID("6f1c7c52-2b8e-4f0e-9a55-2f0f3c1b7d11")


class LabelSyncState(StrEnum):
    pending = "pending"  # waiting to be sent (or to be retried at next_attempt_at)
    sent = "sent"  # the source holds it (accepted now, or a duplicate of one it already had)
    refused = "refused"  # the source refused it; kept here with the reason, never retried
    local = "local"  # nothing to send: the source itself expired the item and told us so


class Label(BaseModel):
    """One label. Its JSON is the `labels` export format; README.md documents every field."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    label_version: int = LABEL_VERSION
    label_id: str
    decision_id: str | None  # None for an expiry
    source: str
    item_id: str
    item_digest: str
    kind: Literal["approval", "escalation"]
    agent: str
    workflow: str
    action_name: str
    proposed: Any  # the arguments of an approval, the output of an escalation, as the agent proposed them
    confidence: float | None
    risk: str
    context_summary: str
    policy: str
    item_created_at: datetime
    verdict: LabelVerdict
    edited: Any = None  # the edited arguments or output; None unless the verdict is edit
    edited_digest: str | None = None
    patch: list[dict[str, Any]] = Field(default_factory=list)  # RFC 6902, from `proposed` to `edited`
    reason_code: str | None = None
    comment: str = ""
    on_expiry: str | None = None  # expiries: what the agent does when nobody decides
    operator: str | None  # None for an expiry
    decided_at: datetime  # for an expiry: when it expired
    first_shown_at: datetime | None = None
    seconds_to_decide: float | None = None  # from first shown to decided; None when never shown
    # Version 2. None on a label recorded before (the v6 migration fills what it can and names the rest in `unknown`).
    trace: dict[str, str] | None = None  # the item's trace (PROTOCOL.md section 1): where the agent's run is recorded
    inputs: Any = None  # what the agent acted on: {"action": name, "args": {...}}; None for an escalation without one
    reasoning: str | None = None  # the agent's own reasoning, as it sent it
    outcome: LabelOutcome | None = None  # what became of the decision; "pending" until the source answers
    unknown: list[str] = Field(default_factory=list)  # version-2 fields a migrated label could not recover

    def wire_body(self) -> dict[str, Any]:
        """The label as PROTOCOL.md section 4 sends it."""
        return {
            "label_id": self.label_id,
            "item_id": self.item_id,
            "item_digest": self.item_digest,
            "verdict": self.verdict,
            "edited": self.edited,
            "patch": self.patch,
            "reason_code": self.reason_code,
            "comment": self.comment,
            "operator": self.operator,
            "decided_at": self.decided_at.isoformat(),
            "seconds_to_decide": self.seconds_to_decide,
        }


def record_json(record: dict[str, Any]) -> str:
    """One JSON Lines record. ASCII only: an export sent to a terminal cannot carry control or bidi characters raw."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))


def redact(value: Any, keys: Iterable[str], *, drop: bool = False) -> Any:
    """A copy of `value` with every object member named in `keys` (any case, at any depth) masked, or dropped."""
    names = {k.casefold() for k in keys}
    if not names:
        return value

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, child in node.items():
                if key.casefold() in names:
                    if not drop:
                        out[key] = REDACTED
                else:
                    out[key] = walk(child)
            return out
        if isinstance(node, list):
            return [walk(child) for child in node]
        return node

    return walk(value)


def redact_label(label: Label, keys: Iterable[str], *, drop: bool = False) -> Label:
    """The label with named argument keys redacted in what was proposed, what was edited, and the inputs.

    The patch is recomputed from the redacted values: a patch of the originals would carry the secrets in its values.
    """
    names = list(keys)
    if not names:
        return label
    proposed = redact(label.proposed, names, drop=drop)
    edited = redact(label.edited, names, drop=drop)
    patch = json_patch(proposed, edited) if label.verdict == Verdict.edit.value else []
    inputs = redact(label.inputs, names, drop=drop)
    return label.model_copy(update={"proposed": proposed, "edited": edited, "patch": patch, "inputs": inputs})


def _seconds_between(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else round(max(0.0, (end - start).total_seconds()), 3)


def _proposal(item: Item) -> dict[str, Any]:
    return {
        "source": item.source,
        "item_id": item.id,
        "item_digest": item.digest,
        "kind": item.kind,
        "agent": item.agent,
        "workflow": item.workflow,
        "action_name": item.action_name,
        "proposed": item.editable_value,
        "confidence": item.confidence,
        "risk": item.risk.value,
        "context_summary": item.context.summary,
        "policy": item.policy,
        "item_created_at": item.created_at,
        "trace": item.trace,
        "inputs": item_inputs(item),
        "reasoning": item.context.reasoning or None,
    }


def item_inputs(item: Item) -> dict[str, Any] | None:
    """What the agent acted on: its action and arguments (an approval's proposal, an escalation's input).

    Never the agent's summary: that is its own account of the answer, and may state it.
    """
    if item.action is None:
        return None
    return {"action": item.action.name, "args": item.action.args}


def build_label(item: Item, decision: Decision, first_shown_at: datetime | None) -> Label:
    """The label of a decision on exactly this item version."""
    if (decision.source, decision.item_id, decision.item_digest) != (item.source, item.id, item.digest):
        raise ValueError("the decision is not about this item version")
    edited = decision.edited if decision.verdict is Verdict.edit else None
    return Label(
        label_id=decision.id,
        decision_id=decision.id,
        **_proposal(item),
        verdict=_LABEL_VERDICT[decision.verdict],
        edited=edited,
        edited_digest=decision.edited_digest if decision.verdict is Verdict.edit else None,
        patch=json_patch(item.editable_value, edited) if decision.verdict is Verdict.edit else [],
        reason_code=decision.reason_code,
        comment=decision.comment,
        operator=decision.operator,
        decided_at=decision.decided_at,
        first_shown_at=first_shown_at,
        seconds_to_decide=_seconds_between(first_shown_at, decision.decided_at),
        outcome="pending",
    )


def expiry_label(item: Item, expired_at: datetime, first_shown_at: datetime | None = None) -> Label:
    """The label of an item that left the queue undecided because its deadline passed."""
    return Label(
        label_id=str(uuid.uuid5(_EXPIRY_NAMESPACE, f"{item.source}\n{item.id}\n{item.digest}")),
        decision_id=None,
        **_proposal(item),
        verdict=TIMED_OUT,
        on_expiry=item.on_expiry,
        operator=None,
        decided_at=expired_at,
        first_shown_at=first_shown_at,
        seconds_to_decide=None,
        outcome=TIMED_OUT,
    )


def batch_id(label_ids: Iterable[str]) -> str:
    """The idempotency key of a batch: the same labels give the same key, however often they are sent."""
    digest = hashlib.sha256("\n".join(sorted(label_ids)).encode()).hexdigest()
    return f"labels-{digest[:40]}"


# ------------------------------------------------------------------------------------------------------- the table


def create_labels_table(db: sqlite_utils.Database) -> None:
    """The labels table as it is now, for a database of labels alone (the schema's migrations build it in steps)."""
    create_labels_table_v3(db)
    add_version_2_columns(db)


def add_version_2_columns(db: sqlite_utils.Database) -> None:
    """Version 2 of labels: the outcome column (what became of the decision: stats count conflicts lost apart); and
    the settle log, the order in which labels got their final outcome, which feedback sinks read from a mark on."""
    db.execute("ALTER TABLE labels ADD COLUMN outcome TEXT")
    db.execute("CREATE TABLE labels_settled (seq INTEGER PRIMARY KEY AUTOINCREMENT, label_id TEXT NOT NULL UNIQUE)")


def _log_settled(conn: sqlite3.Connection, label_id: str) -> None:
    conn.execute("INSERT INTO labels_settled(label_id) VALUES (?) ON CONFLICT DO NOTHING", (label_id,))


def create_labels_table_v3(db: sqlite_utils.Database) -> None:
    """The labels table and its indexes as migration v3 made them (kept as they were: v6 adds to them)."""
    db.table("labels").create(
        {
            "label_id": str,
            "decision_id": str,
            "source": str,
            "item_id": str,
            "item_digest": str,
            "kind": str,
            "agent": str,
            "action_name": str,
            "verdict": str,
            "reason_code": str,
            "operator": str,
            "decided_at": float,  # epoch seconds: what export filters and stats windows compare
            "seconds_to_decide": float,
            "record": str,  # the Label as JSON: exported as it is
            "sync_state": str,
            "attempts": int,
            "last_error": str,
            "next_attempt_at": float,
            "updated_at": float,
        },
        pk="label_id",
        not_null={"source", "item_id", "item_digest", "kind", "agent", "verdict", "decided_at", "record", "sync_state"},
    )
    db.execute("CREATE UNIQUE INDEX labels_decision ON labels(decision_id) WHERE decision_id IS NOT NULL")
    # Export filters: a time range, optionally one source or one agent; the time index alone serves verdict filters.
    db.execute("CREATE INDEX labels_time ON labels(decided_at)")
    db.execute("CREATE INDEX labels_source_time ON labels(source, decided_at)")
    db.execute("CREATE INDEX labels_agent_time ON labels(agent, decided_at)")
    # The sync outbox: only labels still to send, so the index stays as small as the backlog.
    db.execute("CREATE INDEX labels_outbox ON labels(next_attempt_at, source) WHERE sync_state = 'pending'")
    db.execute("CREATE INDEX labels_refused ON labels(updated_at) WHERE sync_state = 'refused'")


def settle_label(conn: sqlite3.Connection, decision_id: str, outcome: LabelOutcome) -> None:
    """The decision's final answer came: its label (if it has one) now says what became of it."""
    row = conn.execute("SELECT label_id, record FROM labels WHERE decision_id = ?", (decision_id,)).fetchone()
    if row is None:
        return
    label = Label.model_validate_json(row[1]).model_copy(update={"outcome": outcome})
    conn.execute(
        "UPDATE labels SET record = ?, outcome = ? WHERE label_id = ?",
        (record_json(label.model_dump(mode="json")), outcome, row[0]),
    )
    if outcome != "pending":
        _log_settled(conn, row[0])


def _epoch(value: datetime) -> float:
    return float(value.timestamp())


def insert_label(conn: sqlite3.Connection, label: Label, *, not_before: float = 0.0) -> bool:
    """Store a label to be sent (not before `not_before`: the decision's undo window). False if it is already held."""
    state = LabelSyncState.local if label.verdict == TIMED_OUT else LabelSyncState.pending
    cur = conn.execute(
        "INSERT INTO labels(label_id, decision_id, source, item_id, item_digest, kind, agent, action_name, verdict,"
        " reason_code, operator, decided_at, seconds_to_decide, record, sync_state, attempts, last_error,"
        " next_attempt_at, updated_at, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (
            label.label_id,
            label.decision_id,
            label.source,
            label.item_id,
            label.item_digest,
            label.kind,
            label.agent,
            label.action_name,
            label.verdict,
            label.reason_code,
            label.operator,
            _epoch(label.decided_at),
            label.seconds_to_decide,
            record_json(label.model_dump(mode="json")),
            state.value,
            not_before,
            time.time(),
            label.outcome,
        ),
    )
    if cur.rowcount == 1 and label.outcome not in (None, "pending"):
        _log_settled(conn, label.label_id)
    return cur.rowcount == 1


def void_label(conn: sqlite3.Connection, decision_id: str) -> bool:
    """An undone decision yields no label: drop it unless it already left the machine. True if one was dropped."""
    cur = conn.execute(
        "DELETE FROM labels WHERE decision_id = ? AND sync_state = 'pending' AND attempts = 0", (decision_id,)
    )
    return cur.rowcount == 1


def due_labels(conn: sqlite3.Connection, limit: int, sources: Sequence[str], now: float | None = None) -> list[Label]:
    """Labels for these sources waiting to be sent whose time has come, oldest first.

    Labels of a failed batch share their retry time, so they come due together and form the same batch again: a
    resend is then a replay of the same idempotency key.
    """
    if not sources:
        return []
    marks = ", ".join("?" for _ in sources)
    rows = conn.execute(
        "SELECT record FROM labels WHERE sync_state = 'pending' AND next_attempt_at <= ?"
        f" AND source IN ({marks}) ORDER BY decided_at, label_id LIMIT ?",
        (time.time() if now is None else now, *sources, limit),
    ).fetchall()
    return [Label.model_validate_json(r[0]) for r in rows]


def next_label_due_at(conn: sqlite3.Connection, sources: Sequence[str]) -> float | None:
    if not sources:
        return None
    marks = ", ".join("?" for _ in sources)
    row = conn.execute(
        f"SELECT min(next_attempt_at) FROM labels WHERE sync_state = 'pending' AND source IN ({marks})",
        tuple(sources),
    ).fetchone()
    return None if row[0] is None else float(row[0])


@dataclass(frozen=True)
class LabelSyncUpdate:
    """One label's answer: sent, refused (final, with the reason), or (state None) retried at `next_attempt_at`."""

    label_id: str
    state: LabelSyncState | None
    detail: str = ""
    next_attempt_at: float = 0.0


def record_label_results(conn: sqlite3.Connection, results: Sequence[LabelSyncUpdate]) -> int:
    """Record the answers for labels still pending; returns how many reached a final state now."""
    now = time.time()
    finals = 0
    for result in results:
        if result.state is None:
            conn.execute(
                "UPDATE labels SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, updated_at = ?"
                " WHERE label_id = ? AND sync_state = 'pending'",
                (result.detail[:2000], result.next_attempt_at, now, result.label_id),
            )
            continue
        cur = conn.execute(
            "UPDATE labels SET sync_state = ?, attempts = attempts + 1, last_error = ?, updated_at = ?"
            " WHERE label_id = ? AND sync_state = 'pending'",
            (result.state.value, result.detail[:2000], now, result.label_id),
        )
        finals += cur.rowcount
    return finals


@dataclass(frozen=True)
class LabelStatus:
    """Where a decision's label is: for the history screen."""

    label_id: str
    sync_state: LabelSyncState
    attempts: int
    last_error: str


def label_statuses(conn: sqlite3.Connection, decision_ids: Sequence[str]) -> dict[str, LabelStatus]:
    """The label state of each of these decisions that has a label (undone decisions have none)."""
    found: dict[str, LabelStatus] = {}
    for start in range(0, len(decision_ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = decision_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(
            "SELECT decision_id, label_id, sync_state, attempts, last_error FROM labels"
            f" WHERE decision_id IN ({marks})",
            tuple(chunk),
        ):
            found[row[0]] = LabelStatus(row[1], LabelSyncState(row[2]), row[3], row[4] or "")
    return found


def refused_labels(conn: sqlite3.Connection, limit: int = 200) -> list[tuple[Label, str]]:
    """Labels the source refused, newest first, with its reason: kept, shown, never dropped silently."""
    rows = conn.execute(
        "SELECT record, last_error FROM labels WHERE sync_state = 'refused' ORDER BY updated_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [(Label.model_validate_json(r[0]), r[1] or "") for r in rows]


class LabelOutbox:
    """The sync engine's view of the labels table: one transaction per call, under the connection owner's lock.

    Give it the lock that guards every other use of `conn` (a Store's), or a connection of its own; either way the
    connection is in autocommit mode (`isolation_level=None`), as the Store's is, so transactions are explicit.
    """

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock | None = None) -> None:
        self._conn = conn
        self._lock = lock or threading.RLock()

    def due(self, limit: int, sources: Sequence[str], now: float | None = None) -> list[Label]:
        with self._lock:
            return due_labels(self._conn, limit, sources, now)

    def statuses(self, decision_ids: Sequence[str]) -> dict[str, LabelStatus]:
        """The label state of each of these decisions that has a label (undone decisions have none)."""
        with self._lock:
            return label_statuses(self._conn, decision_ids)

    def of_decision(self, decision_id: str) -> Label | None:
        """The label kept with this decision (None for an undone one): what was proposed, as the operator saw it."""
        with self._lock:
            row = self._conn.execute("SELECT record FROM labels WHERE decision_id = ?", (decision_id,)).fetchone()
        return None if row is None else Label.model_validate_json(row[0])

    def next_due_at(self, sources: Sequence[str]) -> float | None:
        with self._lock:
            return next_label_due_at(self._conn, sources)

    def record(self, results: Sequence[LabelSyncUpdate]) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                finals = record_label_results(self._conn, results)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return finals
