"""The feedback outbox: which labels each configured feedback sink (a LangSmith or Langfuse project) holds.

A label is due at a sink once its decision has a final outcome (an applied decision and a lost conflict teach different
things), in the order of the settle log (`labels_settled`), from the sink's mark on. Each (sink, label) pair has a row
once it was tried: sent, refused (final, with the tool's reason), local (the tool cannot take it: no trace it can attach
to; the reason says so), or pending with its retry time. A sink added later starts at mark 0: it catches up with the
labels already held.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlite_utils

from storage.labels import Label


class FeedbackState(StrEnum):
    pending = "pending"  # to be retried at next_attempt_at
    sent = "sent"  # the tool holds it (accepted now, or already had it under the same id)
    refused = "refused"  # the tool refused it; kept with the reason, never retried
    local = "local"  # the tool cannot take it (no trace to attach to): kept here, with the reason


def create_feedback_table(db: sqlite_utils.Database) -> None:
    db.table("feedback_sends").create(
        {
            "sink": str,
            "label_id": str,
            "state": str,
            "attempts": int,
            "last_error": str,
            "next_attempt_at": float,
            "updated_at": float,
        },
        pk=("sink", "label_id"),
        not_null={"state", "attempts", "next_attempt_at"},
    )
    db.execute("CREATE INDEX feedback_sends_due ON feedback_sends(sink, next_attempt_at) WHERE state = 'pending'")
    # How far each sink has read the settle log (labels_settled.seq): labels after it are new to the sink.
    db.table("feedback_marks").create({"sink": str, "seq": int}, pk="sink", not_null={"seq"})


@dataclass(frozen=True)
class FeedbackBatch:
    retries: list[Label]  # tried before, due again
    fresh: list[tuple[int, Label]]  # settled since the sink's mark, with their place in the settle log


@dataclass(frozen=True)
class FeedbackUpdate:
    """One label's answer at one sink: a final state, or (state pending) a retry at `next_attempt_at`."""

    label_id: str
    state: FeedbackState
    detail: str = ""
    next_attempt_at: float = 0.0


@dataclass(frozen=True)
class FeedbackKept:
    """A label a sink does not hold, and why: what the operator reads."""

    sink: str
    label_id: str
    state: FeedbackState
    attempts: int
    reason: str


class FeedbackOutbox:
    """The sync engine's view of `feedback_sends`: one transaction per call, under the connection owner's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock | None = None) -> None:
        self._conn = conn
        self._lock = lock or threading.RLock()

    def due(self, sink: str, limit: int, now: float | None = None) -> FeedbackBatch:
        """What this sink should be sent now: retries whose time has come, then labels settled since its mark.

        Reading from the mark in the settle log (`labels_settled`) keeps a round as cheap as the new labels, however
        many the sink already took.
        """
        with self._lock:
            retries = self._conn.execute(
                "SELECT l.record FROM feedback_sends f JOIN labels l ON l.label_id = f.label_id"
                " WHERE f.sink = ? AND f.state = 'pending' AND f.next_attempt_at <= ?"
                " ORDER BY f.next_attempt_at, f.label_id LIMIT ?",
                (sink, time.time() if now is None else now, limit),
            ).fetchall()
            row = self._conn.execute("SELECT seq FROM feedback_marks WHERE sink = ?", (sink,)).fetchone()
            mark = 0 if row is None else int(row[0])
            fresh = self._conn.execute(
                "SELECT s.seq, l.record FROM labels_settled s JOIN labels l ON l.label_id = s.label_id"
                " WHERE s.seq > ? ORDER BY s.seq LIMIT ?",
                (mark, max(0, limit - len(retries))),
            ).fetchall()
        return FeedbackBatch(
            [Label.model_validate_json(r[0]) for r in retries],
            [(int(r[0]), Label.model_validate_json(r[1])) for r in fresh],
        )

    def record(self, sink: str, results: Sequence[FeedbackUpdate], mark: int | None = None) -> None:
        """Record the answers, and move the sink's mark in the settle log to `mark` (every label up to it was
        handled: answered, or out of the sink's scope)."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO feedback_sends(sink, label_id, state, attempts, last_error, next_attempt_at,"
                    " updated_at) VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT(sink, label_id) DO UPDATE SET"
                    " state = excluded.state, attempts = attempts + 1, last_error = excluded.last_error,"
                    " next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at"
                    " WHERE feedback_sends.state = 'pending'",
                    [(sink, r.label_id, r.state.value, r.detail[:2000], r.next_attempt_at, now) for r in results],
                )
                if mark is not None:
                    self._conn.execute(
                        "INSERT INTO feedback_marks(sink, seq) VALUES (?, ?)"
                        " ON CONFLICT(sink) DO UPDATE SET seq = max(seq, excluded.seq)",
                        (sink, mark),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def next_due_at(self, sink: str) -> float | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT min(next_attempt_at) FROM feedback_sends WHERE sink = ? AND state = 'pending'", (sink,)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def kept(self, sink: str | None = None, limit: int = 200) -> list[FeedbackKept]:
        """Labels a sink refused, cannot take, or still retries, newest first, with the reason."""
        where = "state != 'sent'" + (" AND sink = ?" if sink is not None else "")
        with self._lock:
            rows = self._conn.execute(
                "SELECT sink, label_id, state, attempts, last_error FROM feedback_sends"
                f" WHERE {where} ORDER BY updated_at DESC LIMIT ?",
                (*(() if sink is None else (sink,)), limit),
            ).fetchall()
        return [FeedbackKept(r[0], r[1], FeedbackState(r[2]), r[3], r[4] or "") for r in rows]

    def not_taken(self, label_ids: Sequence[str]) -> dict[str, list[FeedbackKept]]:
        """For the history: per label, the sinks that refused it or cannot take it, with their reasons."""
        found: dict[str, list[FeedbackKept]] = {}
        for start in range(0, len(label_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = label_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            with self._lock:
                rows = self._conn.execute(
                    "SELECT sink, label_id, state, attempts, last_error FROM feedback_sends"
                    f" WHERE state IN ('refused', 'local') AND label_id IN ({marks}) ORDER BY sink",
                    tuple(chunk),
                ).fetchall()
            for r in rows:
                found.setdefault(r[1], []).append(FeedbackKept(r[0], r[1], FeedbackState(r[2]), r[3], r[4] or ""))
        return found

    def states(self, sink: str) -> dict[str, FeedbackState]:
        """Every label this sink was tried with, and where it stands (for `doctor`-like summaries and tests)."""
        with self._lock:
            rows = self._conn.execute("SELECT label_id, state FROM feedback_sends WHERE sink = ?", (sink,)).fetchall()
        return {r[0]: FeedbackState(r[1]) for r in rows}
