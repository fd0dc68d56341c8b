"""`serve`'s durable state: the queue's state (console.servers.protocol.state) kept in SQLite.

The queue lives in memory as in the demo fleet (one process owns the data directory); every request's changes (items
and their change sequence, applied decisions, idempotency records, labels) are written in one SQLite transaction
(WAL, synchronous=FULL) before the request is answered. After a restart, or a SIGKILL, the state is read back: an
answer a client got is never lost, a change it did not get an answer for is either whole or absent, and a retry under
the same Idempotency-Key gets the stored answer. Cursors keep working across restarts (the epoch is stored).
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from console.servers.protocol.state import QueueState, Record

DB_NAME = "serve.db"
LOCK_NAME = "serve.lock"
KEEP_ANSWERS = 7 * 24 * 3600.0  # PROTOCOL.md section 3: keys are kept at least 7 days

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, state TEXT NOT NULL, item TEXT NOT NULL,
    deadline REAL, removal TEXT, decision TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    kind TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,
    stored_at REAL NOT NULL, PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS decisions (n INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (label_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class DataDirInUse(RuntimeError):
    """Another `serve` holds this data directory."""


class SqliteState(QueueState):
    """The queue's state, written through to SQLite at each commit. Call `_open_journal` once, before serving."""

    _db: sqlite3.Connection
    _lock_file: Any

    def _open_journal(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(data_dir / LOCK_NAME, "a")  # noqa: SIM115 - held for the server's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise DataDirInUse(f"another serve is running on {data_dir}") from None
        self._db = sqlite3.connect(data_dir / DB_NAME, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._staged: dict[str, Record] = {}
        self._staged_rows: list[tuple[str, tuple[Any, ...]]] = []
        with self._lock:
            self._load()

    def _close_journal(self) -> None:
        self._db.close()
        self._lock_file.close()

    # -- reading back ----------------------------------------------------------------------------------------------

    def _load(self) -> None:
        """The state as the database holds it (at start, and after a failed commit)."""
        db = self._db
        self._staged, self._staged_rows = {}, []
        epoch = db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        if epoch is None:
            db.execute("INSERT INTO meta VALUES ('epoch', ?)", (secrets.token_hex(4),))
            epoch = db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
        self._epoch = str(epoch[0])
        self._records, self._log, self._deadlines, self._leases = {}, {}, [], {}
        self._removals.clear()
        self._seq = self._horizon = 0
        now = time.time()
        rows = db.execute("SELECT id, seq, state, item, deadline, removal, decision FROM items ORDER BY seq")
        for item_id, seq, state, item, deadline, removal, decision in rows:
            rec = Record(json.loads(item))
            rec.seq, rec.state, rec.deadline = seq, state, deadline
            rec.removal = json.loads(removal) if removal else {}
            rec.decision = json.loads(decision) if decision else None
            self._records[item_id] = rec
            self._log[seq] = rec
            self._seq = seq
            if state != "pending":
                self._removals.append(seq)
            elif deadline is not None:
                self._deadlines.append((deadline, seq, item_id))
            if state == "pending" and rec.item.get("claimed_by"):
                self._leases[item_id] = now  # a claim does not outlive the server: it lapses at the next sweep
        self._deadlines.sort()
        db.execute("DELETE FROM answers WHERE stored_at < ?", (now - KEEP_ANSWERS,))
        for kind in ("decision", "feedback", "create"):
            self._answers(kind).clear()
        for kind, key, fingerprint, status, body in db.execute(
            "SELECT kind, key, fingerprint, status, body FROM answers"
        ):
            self._answers(kind)[key] = (fingerprint, status, bytes(body))
        self._applied = [json.loads(body) for (body,) in db.execute("SELECT body FROM decisions ORDER BY n")]
        self._labels = {label_id: json.loads(body) for label_id, body in db.execute("SELECT * FROM labels")}

    # -- writing through -------------------------------------------------------------------------------------------

    def _kept_record(self, rec: Record) -> None:
        self._staged[rec.item["id"]] = rec

    def _kept_answer(self, kind: str, key: str, entry: tuple[str, int, bytes]) -> None:
        sql = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)"
        self._staged_rows.append((sql, (kind, key, entry[0], entry[1], entry[2], time.time())))

    def _kept_label(self, label: dict[str, Any]) -> None:
        self._staged_rows.append(("INSERT OR IGNORE INTO labels VALUES (?, ?)", (label["label_id"], json.dumps(label))))

    def _kept_decision(self, decision: dict[str, Any]) -> None:
        sql = "INSERT INTO decisions (decision_id, body) VALUES (?, ?)"
        self._staged_rows.append((sql, (decision["decision_id"], json.dumps(decision))))

    def _commit(self) -> None:
        if not self._staged and not self._staged_rows:
            return
        records, rows = list(self._staged.values()), self._staged_rows
        self._staged, self._staged_rows = {}, []
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.item["id"],
                        r.seq,
                        r.state,
                        json.dumps({**r.item, "seq": r.seq}, ensure_ascii=False),
                        r.deadline,
                        json.dumps(r.removal) if r.removal else None,
                        json.dumps(r.decision) if r.decision is not None else None,
                    )
                    for r in records
                ],
            )
            for sql, values in rows:
                db.execute(sql, values)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._load()  # memory went ahead of the database: read back what is durable
            raise

    def _rollback(self) -> None:
        if self._staged or self._staged_rows:
            self._load()
