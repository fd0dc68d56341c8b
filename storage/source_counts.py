"""Per source, what the console holds for it: pending items, quarantined ones (and how many wait to be acknowledged),
decisions not yet synced. The source-health screen reads these once a second: one grouped count per table."""

from __future__ import annotations

from storage.connection import Connection
from storage.records import SourceCounts


class SourceCountReads:
    def __init__(self, db: Connection) -> None:
        self._db = db

    def counts(self) -> dict[str, SourceCounts]:
        """Counts by source name; a source with nothing held is absent (read it as SourceCounts())."""
        found: dict[str, dict[str, int]] = {}
        queries = (
            ("SELECT source, count(*), 0 FROM items WHERE state = 'pending' GROUP BY source", ("pending",)),
            (
                "SELECT source, count(*), sum(acknowledged = 0) FROM quarantine GROUP BY source",
                ("quarantined", "unacknowledged"),
            ),
            (
                "SELECT source, count(*), 0 FROM decisions WHERE sync_state IN ('pending', 'sending') GROUP BY source",
                ("unsynced",),
            ),
        )
        with self._db.lock:
            for sql, names in queries:
                for source, first, second in self._db.conn.execute(sql).fetchall():
                    entry = found.setdefault(str(source), {})
                    for name, value in zip(names, (first, second), strict=False):
                        entry[name] = int(value or 0)
        return {source: SourceCounts.model_validate(values) for source, values in found.items()}
