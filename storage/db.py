"""The local SQLite database: a `Store` opens it, migrates it, and hands out one small class per table.

Every table class shares the Store's one connection and its lock (storage/connection.py), so a Store is safe to share
between threads; the app keeps one for the UI and one for background work.

    store.items       the items cache and listing cursors (storage/items.py)
    store.queue       the pending queue as the list reads it (storage/queue.py)
    store.outbox      decisions, their undo window, sending and problems (storage/outbox.py)
    store.labels      labels and their outbox (storage/labels.py)
    store.quarantine  items a source sent that could not be read (storage/quarantine.py)
    store.source_counts  per source: pending, quarantined, unsynced (storage/source_counts.py)
    store.audit       the hash-chained audit trail (storage/audit.py)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from storage import audit, feedback, labels
from storage.connection import Connection, open_readonly, open_writable
from storage.errors import (
    DAMAGED_SUFFIX,
    DatabaseDamaged,
    NewerSchema,
    StorageError,
    set_aside,
    storage_error,
)
from storage.items import ChangeSummary, Items, Removal
from storage.outbox import DecisionOutbox, DecisionRefused, DecisionSyncUpdate, UndoRefused, Unsent
from storage.quarantine import Quarantine
from storage.queue import QueueReads
from storage.schema import MIGRATIONS, SCHEMA_VERSION
from storage.source_counts import SourceCountReads

# Where these names lived before the tables had modules of their own; callers still import them from here.
__all__ = [
    "DAMAGED_SUFFIX",
    "ChangeSummary",
    "DatabaseDamaged",
    "DecisionRefused",
    "DecisionSyncUpdate",
    "NewerSchema",
    "Removal",
    "StorageError",
    "Store",
    "UndoRefused",
    "Unsent",
    "set_aside",
    "storage_error",
]


class Store:
    """One connection to the database at `path`, and the table classes that share it.

    Opening raises StorageError (DatabaseDamaged for a file that is not a database or, with `check`, fails SQLite's
    quick_check); every write that the disk refuses raises StorageError after rolling back, so nothing half-written
    is ever reported as recorded. `readonly` opens without migrating or writing (audit verify, doctor).
    `background`: this connection's writes wait while a foreground one (the UI's) waits to write.
    `checkpoints=False`: this connection's commits never copy the WAL back into the database (SQLite does that in the
    commit that passes 1,000 pages, several fsyncs inside one decision's write); whoever opens it calls `checkpoint()`
    off the UI's path instead (the session does, in a thread).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        check: bool = False,
        readonly: bool = False,
        background: bool = False,
        checkpoints: bool = True,
    ) -> None:
        self.path = Path(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = open_readonly(self.path) if readonly else open_writable(self.path)
            conn.execute("PRAGMA foreign_keys=ON")
            if not checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            if check:
                problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
                if problems != ["ok"]:
                    raise DatabaseDamaged(self.path, "; ".join(problems)[:300])
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise storage_error(self.path, exc) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._shared = Connection(self.path, conn, background=background)
        self._conn, self._lock, self._gate = conn, self._shared.lock, self._shared.gate
        self.db = sqlite_utils.Database(conn)
        self.items = Items(self._shared)
        self.queue = QueueReads(self._shared)
        self.outbox = DecisionOutbox(self._shared)
        self.quarantine = Quarantine(self._shared)
        self.source_counts = SourceCountReads(self._shared)
        self.labels = labels.LabelOutbox(conn, self._lock)
        self.feedback = feedback.FeedbackOutbox(conn, self._lock)
        self.audit = audit.AuditTrail(conn, self._lock)
        if not readonly:
            try:
                self._migrate()
                self.outbox.settle_recorded()
            except sqlite3.Error as exc:
                conn.close()
                raise storage_error(self.path, exc) from exc
            except BaseException:
                conn.close()
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (see Connection.tx)."""
        with self._shared.tx() as conn:
            yield conn

    def schema_version(self) -> int:
        """The schema version the file is at (0: empty; above SCHEMA_VERSION: written by a newer console)."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise NewerSchema(
                    f"{self.path} was written by a newer approval-console (schema {version}, this one knows "
                    f"{SCHEMA_VERSION}); upgrade approval-console or use another --data-dir"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with self._tx():
                    MIGRATIONS[target - 1](self.db)
                    self._conn.execute(f"PRAGMA user_version = {target}")

    def checkpoint(self) -> None:
        """Copy what the WAL holds back into the database, as far as readers allow, without blocking any writer."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
