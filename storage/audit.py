"""The audit trail: append-only, hash-chained records written in the same transaction as the change they describe.

Each record's hash covers its content and the previous record's hash, so an edited, deleted or reordered record
breaks the chain from that point on and `verify` names the first broken one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.records import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    first_bad: int | None = None
    problem: str = ""


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE audit ("
        " seq INTEGER PRIMARY KEY,"
        " at REAL NOT NULL,"
        " kind TEXT NOT NULL,"
        " operator TEXT NOT NULL,"
        " source TEXT NOT NULL,"
        " item_id TEXT NOT NULL,"
        " decision_id TEXT,"
        " item_digest TEXT,"
        " body TEXT NOT NULL,"
        " prev_hash TEXT NOT NULL,"
        " hash TEXT NOT NULL)"
    )
    # Append-only: the database itself refuses edits and deletions made through SQL.
    conn.execute(
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END"
    )
    conn.execute(
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END"
    )


def _hash(prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical_json(record)).hexdigest()


# The hashed fields of a record, in the order they are hashed and stored.
HASHED_FIELDS = ("seq", "at", "kind", "operator", "source", "item_id", "decision_id", "item_digest", "body")
_COLUMNS = ", ".join((*HASHED_FIELDS, "prev_hash", "hash"))


def _record(row: Sequence[Any]) -> dict[str, Any]:
    """The record that is hashed, from its stored fields (HASHED_FIELDS, in order)."""
    record = dict(zip(HASHED_FIELDS, row, strict=True))
    record["at"] = repr(record["at"])  # a string: the hash must not depend on float formatting
    return record


def append(
    conn: sqlite3.Connection,
    *,
    kind: str,
    operator: str,
    source: str,
    item_id: str,
    decision_id: str | None,
    item_digest: str | None,
    body: dict[str, Any],
) -> None:
    """Append one record. The caller holds the transaction that makes the change it records."""
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    at = time.time()
    body_text = json.dumps(body, sort_keys=True, default=str)
    row = (seq, at, kind, operator, source, item_id, decision_id, item_digest, body_text)
    conn.execute(
        f"INSERT INTO audit({_COLUMNS}) VALUES ({', '.join('?' * (len(row) + 2))})",
        (*row, prev_hash, _hash(prev_hash, _record(row))),
    )


def verify(conn: sqlite3.Connection) -> Verification:
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    cur = conn.execute(f"SELECT {_COLUMNS} FROM audit ORDER BY seq")
    for row in cur:
        seq = row[0]
        if seq != expected_seq:
            return Verification(False, count, seq, f"record {seq} follows {expected_seq - 1}: a record is missing")
        if row[9] != prev_hash:
            return Verification(False, count, seq, f"record {seq} does not link to the record before it")
        if _hash(prev_hash, _record(row[:9])) != row[10]:
            return Verification(False, count, seq, f"record {seq} was changed after it was written")
        prev_hash = row[10]
        expected_seq += 1
        count += 1
    missing = _unrecorded_decision(conn)
    if missing is not None:
        # The chain itself cannot show records cut from its end; the decisions they described still can.
        return Verification(False, count, count + 1, f"{missing}: records after {count} were removed")
    return Verification(True, count)


def _unrecorded_decision(conn: sqlite3.Connection) -> str | None:
    """A decision (or a final sync outcome) that has no audit record, described; None when every one has one."""
    row = conn.execute(
        "SELECT id FROM decisions d WHERE NOT EXISTS"
        " (SELECT 1 FROM audit a WHERE a.decision_id = d.id AND a.kind = 'decision') LIMIT 1"
    ).fetchone()
    if row is not None:
        return f"decision {row[0]} has no audit record"
    row = conn.execute(
        "SELECT id FROM decisions d WHERE d.sync_state IN ('applied', 'conflict', 'failed') AND NOT EXISTS"
        " (SELECT 1 FROM audit a WHERE a.decision_id = d.id AND a.kind IN ('sync_outcome', 'conflict')) LIMIT 1"
    ).fetchone()
    if row is not None:
        return f"the outcome of decision {row[0]} has no audit record"
    return None


class AuditTrail:
    """The audit table for a Store's owner: checking the chain (appends happen inside the changes they record)."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self._conn, self._lock = conn, lock

    def verify(self) -> Verification:
        with self._lock:
            return verify(self._conn)
