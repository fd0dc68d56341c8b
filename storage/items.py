"""The items cache: what each source listed, page by page, with the cursor to list on from."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import audit, labels
from storage.connection import Connection
from storage.queue import search_text
from storage.records import RISK_RANK, Item, cursor_problem, now_utc
from storage.two_person import settle_partial_approvals

_NO_DEADLINE = 1e18  # sorts items without a deadline after every real one
# What the full-text index (items_fts, schema v7) holds for a row: taken from the row itself both when a version is
# added and when it is replaced, because a contentless index can only drop exactly what it was given.
_INDEXED = "search, json_extract(payload, '$.context.summary'), json_extract(payload, '$.context.reasoning')"


@dataclass(frozen=True)
class Removal:
    item_id: str
    state: str  # decided | expired | withdrawn | superseded | gone
    detail: str = ""


@dataclass(frozen=True)
class ChangeSummary:
    added: int
    changed: int
    removed: int


class Items:
    """The `items` and `cursors` tables: ingest of listings, claims, and one item at a time."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def cursor(self, source: str) -> str | None:
        """The cursor to list from; None (list afresh) when there is none or it breaks R4 (an older database's)."""
        with self._db.lock:
            row = self._db.conn.execute("SELECT cursor FROM cursors WHERE source = ?", (source,)).fetchone()
        return None if row is None or row[0] is None or cursor_problem(row[0]) else str(row[0])

    def begin_snapshot(self, source: str) -> int:
        """Start a full re-listing of a source; items it does not list again are dropped at `end_snapshot`."""
        with self._db.tx() as conn:
            row = conn.execute("SELECT snapshot FROM cursors WHERE source = ?", (source,)).fetchone()
            generation = (row[0] if row and row[0] else 0) + 1
            conn.execute(
                "INSERT INTO cursors(source, cursor, snapshot) VALUES (?, NULL, ?)"
                " ON CONFLICT(source) DO UPDATE SET cursor = NULL, snapshot = excluded.snapshot",
                (source, generation),
            )
        return int(generation)

    def end_snapshot(self, source: str, generation: int, cursor: str | None) -> int:
        """Drop what the snapshot did not list, and only now keep its cursor: a crash mid-snapshot starts over."""
        with self._db.tx() as conn:
            conn.execute("UPDATE cursors SET cursor = ? WHERE source = ?", (_bounded(cursor), source))
            cur = conn.execute(
                "UPDATE items SET state = 'removed', removed_reason = 'gone', updated_at = ?"
                " WHERE source = ? AND state = 'pending' AND snapshot IS NOT ?",
                (time.time(), source, generation),
            )
        return cur.rowcount

    def apply_changes(
        self,
        source: str,
        items: Sequence[Item],
        removed: Sequence[Removal],
        cursor: str | None,
        snapshot: int | None = None,
    ) -> ChangeSummary:
        """Store one page of a listing and its cursor in one transaction."""
        now = time.time()
        added = changed = gone = 0
        with self._db.tx() as conn:
            for item in items:
                stored = self._put(conn, source, item, snapshot, now)
                added += stored == "added"
                changed += stored == "changed"
            for removal in removed:
                # An approval recorded as one of two was this console's act: no "nobody acted" expiry label then.
                approved_here = settle_partial_approvals(conn, source, removal.item_id, removal.state, removal.detail)
                if removal.state == "expired" and not approved_here:
                    self._label_expiry(conn, source, removal.item_id)
                cur = conn.execute(
                    "UPDATE items SET state = 'removed', removed_reason = ?, updated_at = ?"
                    " WHERE source = ? AND id = ? AND state != 'removed'",
                    (removal.state, now, source, removal.item_id),
                )
                gone += cur.rowcount
            if snapshot is None:
                conn.execute(
                    "INSERT INTO cursors(source, cursor, snapshot) VALUES (?, ?, NULL)"
                    " ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor",
                    (source, _bounded(cursor)),
                )
        return ChangeSummary(added, changed, gone)

    @staticmethod
    def _put(conn: sqlite3.Connection, source: str, item: Item, snapshot: int | None, now: float) -> str | None:
        """Store one listed version of an item: "added", "changed" (a new version, or a new holder), or None."""
        existing = conn.execute(
            "SELECT digest, state, claimed_by, first_seen_at, rowid FROM items WHERE source = ? AND id = ?",
            (source, item.id),
        ).fetchone()
        if existing is not None and existing[0] == item.digest:
            # Same version: keep its local state (a pending decision must not put it back in the queue).
            outcome = None
            if snapshot is not None:
                conn.execute("UPDATE items SET snapshot = ? WHERE source = ? AND id = ?", (snapshot, source, item.id))
                if existing[1] == "removed":
                    # A snapshot is the truth (R12): what it lists is pending, whatever we last heard.
                    conn.execute(
                        "UPDATE items SET state = 'pending', removed_reason = NULL, updated_at = ?"
                        " WHERE source = ? AND id = ?",
                        (now, source, item.id),
                    )
                    outcome = "added"
            if existing[2] != item.claimed_by:  # a claim changed: outside the digest, not a new version
                _set_claim(conn, source, item.id, item.claimed_by, now)
                outcome = outcome or "changed"
            return outcome
        if existing is not None:
            _unindex(conn, existing[4])
        stored = conn.execute(
            "INSERT OR REPLACE INTO items(source, id, state, removed_reason, kind, agent, workflow,"
            " action_name, risk, risk_order, confidence, created_at, expires_at, expires_sort, digest, payload,"
            " snapshot, first_seen_at, updated_at, claimed_by, search)"
            " VALUES (?, ?, 'pending', NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _item_row(source, item, snapshot, existing[3] if existing is not None else now, now),
        )
        conn.execute(
            f"INSERT INTO items_fts(rowid, search, summary, reasoning) SELECT rowid, {_INDEXED} FROM items"
            " WHERE rowid = ?",
            (stored.lastrowid,),
        )
        return "added" if existing is None else "changed"

    def record_extension(self, item: Item, *, previous_digest: str, operator: str, seconds: int) -> None:
        """The operator gave `item` more time at its source: the version the source answered with is stored as a
        listing would store it, with its audit record, in one transaction (the next listing finds it the same)."""
        with self._db.tx() as conn:
            self._put(conn, item.source, item, None, time.time())
            audit.append(
                conn,
                kind="extend",
                operator=operator,
                source=item.source,
                item_id=item.id,
                decision_id=None,
                item_digest=previous_digest,
                body={
                    "seconds": seconds,
                    "expires_at": None if item.expires_at is None else item.expires_at.isoformat(),
                    "new_digest": item.digest,
                },
            )

    @staticmethod
    def _label_expiry(conn: sqlite3.Connection, source: str, item_id: str) -> None:
        """An item that expired while still undecided here is a label too: nobody acted in time."""
        row = conn.execute(
            "SELECT payload, first_shown_at FROM items WHERE source = ? AND id = ? AND state = 'pending'",
            (source, item_id),
        ).fetchone()
        if row is not None:
            shown = None if row[1] is None else datetime.fromtimestamp(row[1], UTC)
            labels.insert_label(conn, labels.expiry_label(Item.model_validate_json(row[0]), now_utc(), shown))

    def mark_shown(self, source: str, item_id: str, digest: str, when: float) -> bool:
        """The operator has this version on screen for the first time: kept, so an expiry's label can say so (a new
        version replaces the row and starts unshown). True if this was the first time."""
        with self._db.tx() as conn:
            cur = conn.execute(
                "UPDATE items SET first_shown_at = ? WHERE source = ? AND id = ? AND digest = ?"
                " AND first_shown_at IS NULL",
                (when, source, item_id, digest),
            )
        return cur.rowcount == 1

    def set_claim(self, source: str, item_id: str, claimed_by: str | None) -> None:
        """Note who holds a claim on the item, as the source just told us (the next listing says the same)."""
        with self._db.tx() as conn:
            _set_claim(conn, source, item_id, claimed_by, time.time())

    def removed_reason(self, source: str, item_id: str) -> str | None:
        """Why the item left the queue (decided, expired, withdrawn, superseded, gone), or None if it has not."""
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT state, removed_reason FROM items WHERE source = ? AND id = ?", (source, item_id)
            ).fetchone()
        if row is None:
            return "gone"
        return None if row[0] != "removed" else str(row[1] or "gone")

    def get(self, source: str, item_id: str) -> tuple[Item, str] | None:
        """The item and its local state (pending, decided or removed)."""
        with self._db.lock:
            row = self._db.conn.execute(
                "SELECT payload, state FROM items WHERE source = ? AND id = ?", (source, item_id)
            ).fetchone()
        if row is None:
            return None
        return Item.model_validate_json(row[0]), row[1]


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _bounded(cursor: str | None) -> str | None:
    """Only a cursor that can be sent back is kept (R4): anything else would stop the source for good."""
    return None if cursor is None or cursor_problem(cursor) else cursor


def _unindex(conn: sqlite3.Connection, rowid: int) -> None:
    """Take a stored version out of the full-text index, before its row is replaced."""
    conn.execute(
        f"INSERT INTO items_fts(items_fts, rowid, search, summary, reasoning) SELECT 'delete', rowid, {_INDEXED}"
        " FROM items WHERE rowid = ?",
        (rowid,),
    )


def _set_claim(conn: sqlite3.Connection, source: str, item_id: str, claimed_by: str | None, now: float) -> None:
    # The payload holds the item as shown; claimed_by is outside its digest, so both change together.
    conn.execute(
        "UPDATE items SET claimed_by = ?, payload = json_set(payload, '$.claimed_by', ?), updated_at = ?"
        " WHERE source = ? AND id = ?",
        (claimed_by, claimed_by, now, source, item_id),
    )


def _item_row(source: str, item: Item, snapshot: int | None, first_seen: float, now: float) -> tuple[Any, ...]:
    expires = _epoch(item.expires_at)
    return (
        source,
        item.id,
        item.kind,
        item.agent,
        item.workflow,
        item.headline,  # "(no action)" for an escalation without one: the queue, history and alerts show it
        item.risk.value,
        3 - RISK_RANK[item.risk],
        item.confidence,
        _epoch(item.created_at),
        expires,
        _NO_DEADLINE if expires is None else expires,
        item.digest,
        item.model_copy(update={"source": source}).model_dump_json(),
        snapshot,
        first_seen,
        now,
        item.claimed_by,
        search_text(item.agent, item.headline, source, item.workflow, item.id, item.kind, item.risk.value),
    )
