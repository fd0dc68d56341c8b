"""`serve`'s durable state: the queue's state (console.servers.protocol.state) kept in SQLite.

One process owns the data directory. Every request's changes (items and their change sequence, applied decisions,
idempotency records, labels) are written in one SQLite transaction (WAL, synchronous=FULL) before the request is
answered. After a restart, or a SIGKILL, the state is read back: an answer a client got is never lost, a change it did
not get an answer for is either whole or absent, and a retry under the same Idempotency-Key gets the stored answer.
Cursors keep working across restarts (the epoch is stored).

Memory holds what listings and long-polls need: the pending items and the latest removals (`remember_removals`; a
cursor older than them gets 410 and lists afresh, as PROTOCOL.md section 2 allows). Older items, and every stored
answer, are read from the database when asked for, so a long-running `serve` does not grow with its history.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import sqlite3
import time
from collections import deque
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
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, seq);
CREATE TABLE IF NOT EXISTS answers (
    kind TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body BLOB NOT NULL,
    stored_at REAL NOT NULL, PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS decisions (n INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (label_id TEXT PRIMARY KEY, body TEXT NOT NULL);
"""
ITEM_COLUMNS = "id, seq, state, item, deadline, removal, decision"
Answer = tuple[str, int, bytes]  # (request fingerprint, status, body)


class DataDirInUse(RuntimeError):
    """Another `serve` holds this data directory."""


def _record(row: tuple[Any, ...]) -> Record:
    _, seq, state, item, deadline, removal, decision = row
    rec = Record(json.loads(item))
    rec.seq, rec.state, rec.deadline = seq, state, deadline
    rec.removal = json.loads(removal) if removal else {}
    rec.decision = json.loads(decision) if decision else None
    return rec


class StoredRecords(dict[str, Record]):
    """The items in memory (pending, recently removed), and on a miss the database's copy, read and not kept."""

    def __init__(self, state: SqliteState) -> None:
        super().__init__()
        self._state = state

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        if found is None:
            found = self._state._staged.get(key) or self._state._stored_record(key)
        return default if found is None else found

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


class StoredAnswers(dict[str, Answer]):
    """Idempotency records of one kind: those of the open transaction here, the rest in the database."""

    def __init__(self, db: sqlite3.Connection, kind: str) -> None:
        super().__init__()
        self._db, self._kind = db, kind

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        if found is None:
            sql = "SELECT fingerprint, status, body FROM answers WHERE kind = ? AND key = ?"
            row = self._db.execute(sql, (self._kind, key)).fetchone()
            found = None if row is None else (row[0], row[1], bytes(row[2]))
        return default if found is None else found


class SqliteState(QueueState):
    """The queue's state, written through to SQLite at each commit. Call `_open_journal` once, before serving."""

    _db: sqlite3.Connection
    _lock_file: Any
    _staged: dict[str, Record]  # what changed since the last commit
    _staged_rows: list[tuple[str, tuple[Any, ...]]]  # (SQL, values) to run at the next commit

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
            epoch = (secrets.token_hex(4),)
            db.execute("INSERT INTO meta VALUES ('epoch', ?)", epoch)
        self._epoch = str(epoch[0])
        self._records, self._log, self._deadlines, self._leases = StoredRecords(self), {}, [], {}
        self._removals.clear()
        now = time.time()
        pending = db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE state = 'pending'").fetchall()  # noqa: S608
        recent = db.execute(
            f"SELECT {ITEM_COLUMNS} FROM items WHERE state != 'pending' ORDER BY seq DESC LIMIT ?",  # noqa: S608
            (self._remember,),
        ).fetchall()
        for row in sorted(pending + recent, key=lambda r: int(r[1])):
            rec = _record(row)
            item_id = rec.item["id"]
            dict.__setitem__(self._records, item_id, rec)
            self._log[rec.seq] = rec
            if rec.state != "pending":
                self._removals.append(rec.seq)
            elif rec.deadline is not None:
                self._deadlines.append((rec.deadline, rec.seq, item_id))
            if rec.state == "pending" and rec.item.get("claimed_by"):
                self._leases[item_id] = now  # a claim does not outlive the server: it lapses at the next sweep
        self._deadlines.sort()
        self._seq = db.execute("SELECT coalesce(max(seq), 0) FROM items").fetchone()[0]
        oldest = min((int(r[1]) for r in recent), default=self._seq + 1)
        sql = "SELECT coalesce(max(seq), 0) FROM items WHERE state != 'pending' AND seq < ?"
        self._horizon = db.execute(sql, (oldest,)).fetchone()[0]  # the newest removal not in memory
        db.execute("DELETE FROM answers WHERE stored_at < ?", (now - KEEP_ANSWERS,))
        self._decision_keys = StoredAnswers(db, "decision")
        self._feedback_keys = StoredAnswers(db, "feedback")
        self._create_keys = StoredAnswers(db, "create")
        rows = db.execute("SELECT body FROM decisions ORDER BY n DESC LIMIT ?", (self._remember,)).fetchall()
        self._applied = deque((json.loads(body) for (body,) in reversed(rows)), maxlen=self._remember)  # type: ignore[assignment]
        self._labels = {label_id: json.loads(body) for label_id, body in db.execute("SELECT * FROM labels")}

    def _stored_record(self, item_id: str) -> Record | None:
        row = self._db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()  # noqa: S608
        return None if row is None else _record(row)

    def _forget(self, rec: Record) -> None:
        dict.pop(self._records, rec.item["id"], None)  # on disk (or staged for this commit): read back when asked

    # -- writing through -------------------------------------------------------------------------------------------

    def _kept_record(self, rec: Record) -> None:
        self._staged[rec.item["id"]] = rec

    def _kept_answer(self, kind: str, key: str, entry: Answer) -> None:
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
        self._staged, self._staged_rows = {}, []
        for answers in (self._decision_keys, self._feedback_keys, self._create_keys):
            answers.clear()  # in the database now

    def _rollback(self) -> None:
        if self._staged or self._staged_rows:
            self._load()
