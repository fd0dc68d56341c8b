"""Quarantine: items a source sent that the console could not read, kept (with an excerpt) for the operator."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from storage.connection import Connection
from storage.records import Quarantined


class Quarantine:
    """The `quarantine` table: one row per unreadable item, until the operator acknowledges it."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def add(self, source: str, item_id: str, reason: str, excerpt: str) -> None:
        # Agent text may hold lone surrogates, which SQLite (UTF-8) cannot store: keep them as visible escapes.
        with self._db.tx() as conn:
            conn.execute(
                "INSERT INTO quarantine(source, item_id, reason, excerpt, seen_at, times) VALUES (?, ?, ?, ?, ?, 1)"
                " ON CONFLICT(source, item_id) DO UPDATE SET reason = excluded.reason, excerpt = excluded.excerpt,"
                " seen_at = excluded.seen_at, times = times + 1,"
                # A new reason is a new problem: it asks for a fresh acknowledgement.
                " acknowledged = CASE WHEN quarantine.reason = excluded.reason THEN acknowledged ELSE 0 END",
                (source, _storable(item_id), _storable(reason[:2000]), _storable(excerpt[:2000]), time.time()),
            )

    def rows(self, source: str | None = None, *, unacknowledged: bool = False) -> list[Quarantined]:
        sql = "SELECT source, item_id, reason, seen_at, excerpt, acknowledged FROM quarantine WHERE 1"
        args: tuple[Any, ...] = ()
        if source is not None:
            sql += " AND source = ?"
            args = (source,)
        if unacknowledged:
            sql += " AND acknowledged = 0"
        with self._db.lock:
            rows = self._db.conn.execute(sql + " ORDER BY seen_at DESC", args).fetchall()
        return [
            Quarantined(source=r[0], item_id=r[1], reason=r[2], seen_at=r[3], excerpt=r[4], acknowledged=bool(r[5]))
            for r in rows
        ]

    def acknowledge(self, keys: Sequence[tuple[str, str]]) -> None:
        """The operator acknowledged these quarantined items (source, item id): they no longer count as problems."""
        with self._db.tx() as conn:
            conn.executemany(
                "UPDATE quarantine SET acknowledged = 1 WHERE source = ? AND item_id = ?",
                [(source, _storable(item_id)) for source, item_id in keys],
            )

    def counts(self, *, unacknowledged: bool = False) -> dict[str, int]:
        where = " WHERE acknowledged = 0" if unacknowledged else ""
        with self._db.lock:
            rows = self._db.conn.execute(f"SELECT source, count(*) FROM quarantine{where} GROUP BY source").fetchall()
        return {r[0]: r[1] for r in rows}


def _storable(text: str) -> str:
    """`text` as valid UTF-8: a lone surrogate (valid in JSON, not in UTF-8) becomes its backslash escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
