"""The decision outbox: each decision with its audit record and label, then its way to the source.

A decision is written in one durable transaction, waits out its undo window, is sent (and retried) by the sync engine,
and ends applied, conflict or failed; conflicts and failures stay as problems until the operator acknowledges them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import audit, labels
from storage.connection import Connection
from storage.records import Decision, DecisionRow, Item, SyncState, Verdict

# Decisions that need the operator: not applied (conflict, failure), or their label refused by the source.
_PROBLEMS = (
    "WHERE d.sync_state IN ('conflict', 'failed')"
    " OR d.id IN (SELECT decision_id FROM labels WHERE sync_state = 'refused')"
)


# Final answers that need nothing from the operator: applied, or recorded as one approval of a two-person item.
_NOT_PROBLEMS = (SyncState.applied, SyncState.partial)


class DecisionRefused(Exception):
    """The decision cannot be recorded: the item is gone, already decided, or not the version the operator saw."""


class UndoRefused(Exception):
    """The decision cannot be taken back: sending it has started, its undo window closed, or it is unknown."""


@dataclass(frozen=True)
class DecisionSyncUpdate:
    """One answer to record: a final state, or (state None) a retry at `next_attempt_at`."""

    decision_id: str
    state: SyncState | None
    outcome: str
    detail: str
    response: dict[str, Any] | None = None
    next_attempt_at: float = 0.0


@dataclass(frozen=True)
class Unsent:
    """A decision the source has not confirmed yet (in its undo window, waiting for a retry, or being sent)."""

    decision_id: str
    source: str
    item_id: str
    verdict: Verdict
    action: str  # the item's action name, "?" when the item is no longer held
    agent: str
    attempts: int
    next_attempt_at: float  # epoch seconds
    detail: str  # why the last attempt did not get a final answer; "" before the first attempt


class DecisionOutbox:
    """The `decisions` table: recording, undo, the sync engine's queue of sends, and what the history shows."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def record(self, decision: Decision, hold_seconds: float = 0.0, first_shown_at: datetime | None = None) -> None:
        """Write the decision and its audit record in one durable transaction, then take the item out of the queue and
        write its label.

        Refuses (DecisionRefused) unless the item is pending locally at exactly the version the operator saw.
        `hold_seconds` is the undo window: the sync engine sends only due decisions (and labels), so they wait that
        long. `first_shown_at` is when the operator first saw this version; the label keeps how long they took.

        Only the decision and its audit record wait for the disk: the item's state and the label follow in a second
        transaction that does not (about a fifth of the pages: a dozen queue indexes and the label's own), and that
        `settle_recorded` derives again on opening if a crash took it.
        """
        with self._db.held():
            with self._db.tx() as conn:
                row = conn.execute(
                    "SELECT digest, state, payload, first_shown_at FROM items WHERE source = ? AND id = ?",
                    (decision.source, decision.item_id),
                ).fetchone()
                if row is None:
                    raise DecisionRefused("the item is no longer in the queue")
                digest, state, payload, shown_at = row
                if digest != decision.item_digest:
                    raise DecisionRefused("the item changed since it was shown; review the new version")
                if state != "pending":
                    raise DecisionRefused(
                        "the item was already decided here" if state == "decided" else "the item left the queue"
                    )
                try:
                    conn.execute(
                        "INSERT INTO decisions(id, source, item_id, item_digest, verdict, edited, edited_digest,"
                        " reason_code, comment, operator, decided_at, sync_state, attempts, next_attempt_at, outcome,"
                        " detail, response, updated_at, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0,"
                        " ?, NULL, '', NULL, ?, 0)",
                        (
                            decision.id,
                            decision.source,
                            decision.item_id,
                            decision.item_digest,
                            decision.verdict.value,
                            None if decision.verdict is not Verdict.edit else json.dumps(decision.edited),
                            decision.edited_digest,
                            decision.reason_code,
                            decision.comment,
                            decision.operator,
                            decision.decided_at.isoformat(),
                            time.time() + max(0.0, hold_seconds),
                            time.time(),
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    raise DecisionRefused("this version of the item was already decided here") from exc
                audit.append(
                    conn,
                    kind="decision",
                    operator=decision.operator,
                    source=decision.source,
                    item_id=decision.item_id,
                    decision_id=decision.id,
                    item_digest=decision.item_digest,
                    body=decision.wire_body(),
                )
            if first_shown_at is None and shown_at is not None:  # shown, and the caller did not keep the time
                first_shown_at = datetime.fromtimestamp(shown_at, UTC)
            with self._db.tx(durable=False) as conn:
                _settle(conn, decision, Item.model_validate_json(payload), first_shown_at, hold_seconds)

    def settle_recorded(self) -> int:
        """After a crash between a decision's two transactions: take its item out of the queue and write its label.

        A decision still unsent with no label is one whose second transaction was lost (labels are written there, and
        voided, not deleted, on undo). Returns how many were settled.
        """
        with self._db.held():
            cur = self._db.conn.execute(
                "SELECT d.*, i.payload, i.first_shown_at AS shown_at FROM decisions d"
                " JOIN items i ON i.source = d.source AND i.id = d.item_id AND i.digest = d.item_digest"
                " WHERE d.sync_state IN ('pending', 'sending')"
                " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.decision_id = d.id)"
            )
            names = [d[0] for d in cur.description]
            found = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
            if not found:
                return 0
            with self._db.tx() as conn:
                for row in found:
                    shown_at = row.pop("shown_at")
                    item = Item.model_validate_json(row.pop("payload"))
                    first_shown_at = None if shown_at is None else datetime.fromtimestamp(shown_at, UTC)
                    hold = max(0.0, float(row["next_attempt_at"]) - time.time())
                    _settle(conn, _decision(row), item, first_shown_at, hold)
        return len(found)

    def undo(self, decision_id: str, operator: str, now: float | None = None) -> Decision:
        """Take a decision back while it waits in its undo window: in one transaction, mark it undone, put its item
        back in the queue (if it is still that version), and append an "undo" audit record next to the decision's.

        Refuses (UndoRefused) once the window closed or sending started: from then on the source may have it.
        """
        when = time.time() if now is None else now
        with self._db.tx() as conn:
            cur = conn.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,))
            names = [d[0] for d in cur.description]
            found = cur.fetchone()
            if found is None:
                raise UndoRefused("no such decision")
            row = dict(zip(names, found, strict=True))
            if row["sync_state"] == SyncState.undone.value:
                raise UndoRefused("it was already undone")
            if row["sync_state"] != SyncState.pending.value or row["attempts"] or row["next_attempt_at"] <= when:
                raise UndoRefused("it is already being sent; the source may have it")
            conn.execute("UPDATE decisions SET sync_state = 'undone', updated_at = ? WHERE id = ?", (when, decision_id))
            conn.execute(
                "UPDATE items SET state = 'pending', updated_at = ?"
                " WHERE source = ? AND id = ? AND digest = ? AND state = 'decided'",
                (when, row["source"], row["item_id"], row["item_digest"]),
            )
            decision = _decision(row)
            audit.append(
                conn,
                kind="undo",
                operator=operator,
                source=decision.source,
                item_id=decision.item_id,
                decision_id=decision.id,
                item_digest=decision.item_digest,
                body={"undone": decision.verdict.value, "decided_at": decision.decided_at.isoformat()},
            )
            labels.void_label(conn, decision.id)  # an undone decision teaches nothing; the audit keeps it
        return decision

    def due(self, limit: int, sources: Sequence[str], now: float | None = None) -> list[Decision]:
        """Decisions for these sources waiting to be sent whose retry time has come, oldest first."""
        if not sources:
            return []
        when = time.time() if now is None else now
        marks = ", ".join("?" for _ in sources)
        with self._db.lock:
            cur = self._db.conn.execute(
                "SELECT * FROM decisions WHERE sync_state IN ('pending', 'sending') AND next_attempt_at <= ?"
                f" AND source IN ({marks}) ORDER BY decided_at LIMIT ?",
                (when, *sources, limit),
            )
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_decision(dict(zip(names, r, strict=True))) for r in rows]

    def next_due_at(self, sources: Sequence[str]) -> float | None:
        if not sources:
            return None
        marks = ", ".join("?" for _ in sources)
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT min(next_attempt_at) FROM decisions WHERE sync_state IN ('pending', 'sending')"
                f" AND source IN ({marks})",
                tuple(sources),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sending(self, decision_ids: Sequence[str]) -> None:
        """Note the attempt before the network call; on restart 'sending' is simply sent again under the same key."""
        with self._db.tx() as conn:
            conn.executemany(
                "UPDATE decisions SET sync_state = 'sending', attempts = attempts + 1, updated_at = ?"
                " WHERE id = ? AND sync_state IN ('pending', 'sending')",
                [(time.time(), i) for i in decision_ids],
            )

    def record_results(self, results: Sequence[DecisionSyncUpdate]) -> list[str]:
        """Record a batch of answers in one transaction: finals with their audit records, retries with their time.

        Returns the ids whose final outcome was recorded now (an outcome is recorded once).
        """
        now = time.time()
        recorded: list[str] = []
        with self._db.tx() as conn:
            for result in results:
                if result.state is None:
                    conn.execute(
                        "UPDATE decisions SET sync_state = 'pending', next_attempt_at = ?, detail = ?, updated_at = ?"
                        " WHERE id = ? AND sync_state IN ('pending', 'sending')",
                        (result.next_attempt_at, result.detail[:2000], now, result.decision_id),
                    )
                    continue
                row = conn.execute(
                    "SELECT source, item_id, item_digest, operator, sync_state FROM decisions WHERE id = ?",
                    (result.decision_id,),
                ).fetchone()
                if row is None or row[4] not in ("pending", "sending"):
                    continue
                source, item_id, item_digest, operator, _ = row
                conn.execute(
                    "UPDATE decisions SET sync_state = ?, outcome = ?, detail = ?, response = ?, updated_at = ?,"
                    " seen = ? WHERE id = ?",
                    (
                        result.state.value,
                        result.outcome,
                        result.detail[:2000],
                        None if result.response is None else json.dumps(result.response)[:20_000],
                        now,
                        1 if result.state in _NOT_PROBLEMS else 0,
                        result.decision_id,
                    ),
                )
                audit.append(
                    conn,
                    kind="sync_outcome" if result.state in _NOT_PROBLEMS else "conflict",
                    operator=operator,
                    source=source,
                    item_id=item_id,
                    decision_id=result.decision_id,
                    item_digest=item_digest,
                    body={"state": result.state.value, "outcome": result.outcome, "detail": result.detail[:2000]},
                )
                labels.settle_label(conn, result.decision_id, labels.decision_outcome(result.state, result.outcome))
                recorded.append(result.decision_id)
        return recorded

    def waiting_count(self) -> int:
        return self._count("WHERE d.sync_state IN ('pending', 'sending')")

    def unsent(self) -> list[Unsent]:
        """Every decision not yet answered for good, oldest first: what quitting now would leave behind."""
        with self._db.lock:
            rows = self._db.conn.execute(
                "SELECT d.id, d.source, d.item_id, d.verdict, i.action_name, i.agent, d.attempts, d.next_attempt_at,"
                " d.detail FROM decisions d LEFT JOIN items i ON i.source = d.source AND i.id = d.item_id"
                " WHERE d.sync_state IN ('pending', 'sending') ORDER BY d.decided_at, d.id"
            ).fetchall()
        return [
            Unsent(r[0], r[1], r[2], Verdict(r[3]), r[4] or "?", r[5] or "?", r[6], float(r[7]), r[8] or "")
            for r in rows
        ]

    def send_unsent_now(self, now: float | None = None) -> int:
        """Make every unsent decision (and its label) due now: the undo window and any retry wait end, so the next sync
        round sends them. From here `undo` refuses them. Returns how many decisions were waiting for their time."""
        when = time.time() if now is None else now
        with self._db.tx() as conn:
            moved = conn.execute(
                "UPDATE decisions SET next_attempt_at = ?, updated_at = ?"
                " WHERE sync_state IN ('pending', 'sending') AND next_attempt_at > ?",
                (when, when, when),
            ).rowcount
            conn.execute(
                "UPDATE labels SET next_attempt_at = ? WHERE sync_state = 'pending' AND next_attempt_at > ?"
                " AND decision_id IN (SELECT id FROM decisions WHERE sync_state IN ('pending', 'sending'))",
                (when, when),
            )
        return int(moved)

    def unseen_problem_count(self) -> int:
        """How many conflicts and failures wait for the operator: the status bar asks every second, so a count."""
        return self._count("WHERE d.sync_state IN ('conflict', 'failed') AND d.seen = 0")

    def unseen_problems(self) -> list[DecisionRow]:
        """Conflicts and failures the operator has not acknowledged yet, newest first."""
        return self._decision_rows("WHERE d.sync_state IN ('conflict', 'failed') AND d.seen = 0")

    def problems(self, limit: int = 200) -> list[DecisionRow]:
        """Conflicts and failures, acknowledged or not (`seen`), newest first (Problems dims the first)."""
        return self._decision_rows("WHERE d.sync_state IN ('conflict', 'failed')", limit)

    def mark_seen(self, decision_ids: Sequence[str]) -> None:
        """The operator acknowledged these problems (an explicit key, not merely opening the Problems screen)."""
        with self._db.tx() as conn:
            conn.executemany("UPDATE decisions SET seen = 1 WHERE id = ?", [(i,) for i in decision_ids])

    def decisions(self, limit: int = 200, offset: int = 0, *, problems_only: bool = False) -> list[DecisionRow]:
        """Decisions newest first, a page at a time; `problems_only`: those that need the operator (_PROBLEMS)."""
        return self._decision_rows(_PROBLEMS if problems_only else "", limit, offset)

    def decision_count(self, *, problems_only: bool = False) -> int:
        return self._count(_PROBLEMS if problems_only else "")

    def _count(self, where: str) -> int:
        with self._db.lock:
            return int(self._db.conn.execute(f"SELECT count(*) FROM decisions d {where}").fetchone()[0])

    def _decision_rows(self, where: str, limit: int = 200, offset: int = 0) -> list[DecisionRow]:
        with self._db.lock:
            cur = self._db.conn.execute(
                "SELECT d.*, i.action_name, i.agent FROM decisions d LEFT JOIN items i"
                f" ON i.source = d.source AND i.id = d.item_id {where}"
                " ORDER BY d.decided_at DESC, d.id DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [
            DecisionRow(
                decision=_decision(r),
                sync_state=SyncState(r["sync_state"]),
                attempts=r["attempts"],
                outcome=r["outcome"],
                detail=r["detail"] or "",
                item_action=r["action_name"] or "?",
                item_agent=r["agent"] or "?",
                seen=bool(r["seen"]),
            )
            for r in rows
        ]


def _settle(
    conn: sqlite3.Connection, decision: Decision, item: Item, first_shown_at: datetime | None, hold_seconds: float
) -> None:
    """What a recorded decision changes besides itself: its item leaves the queue, and its label waits to be sent."""
    conn.execute(
        "UPDATE items SET state = 'decided', updated_at = ? WHERE source = ? AND id = ? AND digest = ?"
        " AND state = 'pending'",
        (time.time(), decision.source, decision.item_id, decision.item_digest),
    )
    label = labels.build_label(item, decision, first_shown_at)
    labels.insert_label(conn, label, not_before=time.time() + hold_seconds)


def _decision(row: dict[str, Any]) -> Decision:
    return Decision(
        id=row["id"],
        source=row["source"],
        item_id=row["item_id"],
        item_digest=row["item_digest"],
        verdict=Verdict(row["verdict"]),
        edited=None if row["edited"] is None else json.loads(row["edited"]),
        edited_digest=row["edited_digest"],
        reason_code=row["reason_code"],
        comment=row["comment"] or "",
        operator=row["operator"],
        decided_at=row["decided_at"],
    )
