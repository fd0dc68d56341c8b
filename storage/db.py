"""The local SQLite database: items cache, decisions outbox, audit chain.

One `Store` wraps one connection. It is safe to share between threads (a lock serialises calls); the app keeps one for
the UI and one for background work, and WAL lets the UI read while the background writes. Writes take turns (one writer
in WAL), and a UI write waiting for its turn goes before the background's next transaction (_WriteGate).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from storage import audit, labels
from storage.queue import QueueView, search_text
from storage.records import (
    RISK_RANK,
    Decision,
    DecisionRow,
    Item,
    Quarantined,
    QueueRow,
    Risk,
    SyncState,
    Verdict,
    cursor_problem,
    now_utc,
)
from storage.schema import MIGRATIONS, SCHEMA_VERSION, URGENCY_ORDER

_NO_DEADLINE = 1e18  # sorts items without a deadline after every real one

# Columns the queue list reads; the partial index in storage/schema.py covers them so a screenful is one index walk.
_QUEUE_COLUMNS = "source, id, kind, agent, action_name, risk, confidence, created_at, expires_at, claimed_by"
_URGENCY = URGENCY_ORDER
_WHOLE_QUEUE = QueueView()
# Decisions that need the operator: not applied (conflict, failure), or their label refused by the source.
_PROBLEMS = (
    "WHERE d.sync_state IN ('conflict', 'failed')"
    " OR d.id IN (SELECT decision_id FROM labels WHERE sync_state = 'refused')"
)


class DecisionRefused(Exception):
    """The decision cannot be recorded: the item is gone, already decided, or not the version the operator saw."""


class StorageError(Exception):
    """The database could not be read or written (full or read-only disk, I/O error, damage): nothing was recorded.

    The message says what happened and what to do; it never claims that anything was saved.
    """


class DatabaseDamaged(StorageError):
    """The database file is not a readable SQLite database, or fails its integrity check. Nothing was changed."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(
            f"the database {path} is damaged ({problem}). Nothing was changed; decisions recorded in it but not yet"
            " synced are still in that file.\n"
            f"  fix: run approval-console with --start-clean to keep the damaged file aside as"
            f" {path.name}{DAMAGED_SUFFIX}<time> and start with an empty database"
            f" ('sqlite3 {path.name}{DAMAGED_SUFFIX}<time> .recover' salvages what is readable)"
        )


class NewerSchema(StorageError, RuntimeError):
    """The database was written by a newer approval-console; this one must not touch it."""


DAMAGED_SUFFIX = ".damaged-"
_DAMAGED_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """A StorageError that tells the operator what went wrong with `path` and what to do about it."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if code.startswith(_DAMAGED_CODES) or "malformed" in text or "not a database" in text:
        return DatabaseDamaged(path, text)
    where = path.parent
    if code.startswith("SQLITE_FULL") or "disk is full" in text:
        return StorageError(f"the disk holding {where} is full ({text}): free some space, then try again")
    if code.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return StorageError(
            f"the database {path} cannot be written ({text}): check that the disk is mounted read-write and"
            " that the file and its directory are writable by you"
        )
    if code.startswith("SQLITE_IOERR") or "I/O error" in text:
        return StorageError(f"the disk failed writing {path} ({text}): check the disk, then try again")
    if code.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return StorageError(f"the database {path} cannot be opened ({text}): check that {where} is readable")
    if code.startswith("SQLITE_BUSY") or "locked" in text:
        return StorageError(f"the database {path} is busy ({text}): another process holds it; try again")
    return StorageError(f"the database {path} failed ({text})")


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    """Failures of the disk or the file, as opposed to bugs (constraint violations, SQL mistakes)."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


def set_aside(path: Path, when: float | None = None) -> Path:
    """Move a damaged database (and its WAL and shared-memory files) aside under a timestamped name; return it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}-{counter}")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(target.with_name(target.name + suffix))
    path.replace(target)
    return target


class UndoRefused(Exception):
    """The decision cannot be taken back: sending it has started, its undo window closed, or it is unknown."""


@dataclass(frozen=True)
class Removal:
    item_id: str
    state: str  # decided | expired | withdrawn | superseded | gone
    detail: str = ""


@dataclass(frozen=True)
class SyncResult:
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


@dataclass(frozen=True)
class ChangeSummary:
    added: int
    changed: int
    removed: int


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


class _WriteGate:
    """Orders the write transactions of this process's connections to one database file.

    SQLite lets one connection write at a time and makes the others poll (sleeping 1, 2, 5, 10 ... ms) with no
    queue, so a writer that commits and begins again keeps the lock. Here a waiting foreground writer (the UI's
    decision, undo) goes before the next background transaction, and is woken the moment the lock is free. SQLite's
    own lock still guards the file: the gate only orders writers, other processes still meet the busy timeout.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # The thread whose turn it is. Within it the turn nests: a write there on a second connection meets SQLite's
        # busy timeout, as before, rather than a deadlock here.
        self._writer: int | None = None
        self._foreground_waiting = 0

    @contextmanager
    def turn(self, *, background: bool) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:
            yield
            return
        with self._changed:
            if not background:
                self._foreground_waiting += 1
            try:
                while self._writer is not None or (background and self._foreground_waiting):
                    self._changed.wait()
            finally:
                if not background:
                    self._foreground_waiting -= 1
            self._writer = me
        try:
            yield
        finally:
            with self._changed:
                self._writer = None
                self._changed.notify_all()


_GATES: weakref.WeakValueDictionary[Path, _WriteGate] = weakref.WeakValueDictionary()  # gone with its last Store
_GATES_LOCK = threading.Lock()


def _gate_for(path: Path) -> _WriteGate:
    with _GATES_LOCK:
        gate = _GATES.get(path.resolve())
        if gate is None:
            gate = _GATES[path.resolve()] = _WriteGate()
        return gate


class Store:
    """One connection to the database at `path`.

    Opening raises StorageError (DatabaseDamaged for a file that is not a database or, with `check`, fails SQLite's
    quick_check); every write that the disk refuses raises StorageError after rolling back, so nothing half-written
    is ever reported as recorded. `readonly` opens without migrating or writing (audit verify, doctor).
    """

    def __init__(
        self, path: Path | str, *, check: bool = False, readonly: bool = False, background: bool = False
    ) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        # `background`: this connection's writes wait while a foreground one (the UI's) waits to write (_WriteGate).
        self._background = background
        self._gate = _gate_for(self.path)
        conn: sqlite3.Connection | None = None
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=10.0
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: a decision the operator was told is recorded survives power loss, not just a crash.
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
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
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        self.labels = labels.LabelOutbox(conn, self._lock)  # the label outbox shares this connection and lock
        if not readonly:
            try:
                self._migrate()
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
        """One write transaction. A failure of the disk or the file becomes a StorageError, after rolling back."""
        with self._lock, self._gate.turn(background=self._background):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and _is_storage_failure(exc):
                    raise storage_error(self.path, exc) from exc
                raise

    # ----------------------------------------------------------------- schema
    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NewerSchema(
                    f"{self.path} was written by a newer approval-console (schema {version}, this one knows "
                    f"{SCHEMA_VERSION}); upgrade approval-console or use another --data-dir"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                with self._tx():
                    MIGRATIONS[target - 1](self.db)
                    self._conn.execute(f"PRAGMA user_version = {target}")

    # ------------------------------------------------------------------ items
    def cursor(self, source: str) -> str | None:
        """The cursor to list from; None (list afresh) when there is none or it breaks R4 (an older database's)."""
        with self._lock:
            row = self._conn.execute("SELECT cursor FROM cursors WHERE source = ?", (source,)).fetchone()
        return None if row is None or row[0] is None or cursor_problem(row[0]) else str(row[0])

    def begin_snapshot(self, source: str) -> int:
        """Start a full re-listing of a source; items it does not list again are dropped at `end_snapshot`."""
        with self._tx() as conn:
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
        with self._tx() as conn:
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
        with self._tx() as conn:
            for item in items:
                existing = conn.execute(
                    "SELECT digest, state, claimed_by, first_seen_at FROM items WHERE source = ? AND id = ?",
                    (source, item.id),
                ).fetchone()
                if existing is not None and existing[0] == item.digest:
                    # Same version: keep its local state (a pending decision must not put it back in the queue).
                    if snapshot is not None:
                        conn.execute(
                            "UPDATE items SET snapshot = ? WHERE source = ? AND id = ?", (snapshot, source, item.id)
                        )
                        if existing[1] == "removed":
                            # A snapshot is the truth (R12): what it lists is pending, whatever we last heard.
                            conn.execute(
                                "UPDATE items SET state = 'pending', removed_reason = NULL, updated_at = ?"
                                " WHERE source = ? AND id = ?",
                                (now, source, item.id),
                            )
                            added += 1
                    if existing[2] != item.claimed_by:  # a claim changed: outside the digest, not a new version
                        _set_claim(conn, source, item.id, item.claimed_by, now)
                        changed += 1
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO items(source, id, state, removed_reason, kind, agent, workflow,"
                    " action_name, risk, risk_order, confidence, created_at, expires_at, expires_sort, digest, payload,"
                    " snapshot, first_seen_at, updated_at, claimed_by, search)"
                    " VALUES (?, ?, 'pending', NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _item_row(source, item, snapshot, existing[3] if existing is not None else now, now),
                )
                if existing is None:
                    added += 1
                else:
                    changed += 1
            for removal in removed:
                if removal.state == "expired":
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
    def _label_expiry(conn: sqlite3.Connection, source: str, item_id: str) -> None:
        """An item that expired while still undecided here is a label too: nobody acted in time."""
        row = conn.execute(
            "SELECT payload FROM items WHERE source = ? AND id = ? AND state = 'pending'", (source, item_id)
        ).fetchone()
        if row is not None:
            labels.insert_label(conn, labels.expiry_label(Item.model_validate_json(row[0]), now_utc()))

    def quarantine(self, source: str, item_id: str, reason: str, excerpt: str) -> None:
        # Agent text may hold lone surrogates, which SQLite (UTF-8) cannot store: keep them as visible escapes.
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO quarantine(source, item_id, reason, excerpt, seen_at, times) VALUES (?, ?, ?, ?, ?, 1)"
                " ON CONFLICT(source, item_id) DO UPDATE SET reason = excluded.reason, excerpt = excluded.excerpt,"
                " seen_at = excluded.seen_at, times = times + 1,"
                # A new reason is a new problem: it asks for a fresh acknowledgement.
                " acknowledged = CASE WHEN quarantine.reason = excluded.reason THEN acknowledged ELSE 0 END",
                (source, _storable(item_id), _storable(reason[:2000]), _storable(excerpt[:2000]), time.time()),
            )

    def quarantined(self, source: str | None = None, *, unacknowledged: bool = False) -> list[Quarantined]:
        sql = "SELECT source, item_id, reason, seen_at, excerpt FROM quarantine WHERE 1"
        args: tuple[Any, ...] = ()
        if source is not None:
            sql += " AND source = ?"
            args = (source,)
        if unacknowledged:
            sql += " AND acknowledged = 0"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY seen_at DESC", args).fetchall()
        return [Quarantined(source=r[0], item_id=r[1], reason=r[2], seen_at=r[3], excerpt=r[4]) for r in rows]

    def acknowledge_quarantined(self, keys: Sequence[tuple[str, str]]) -> None:
        """The operator acknowledged these quarantined items (source, item id): Problems stops listing them."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE quarantine SET acknowledged = 1 WHERE source = ? AND item_id = ?",
                [(source, _storable(item_id)) for source, item_id in keys],
            )

    def quarantine_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT source, count(*) FROM quarantine GROUP BY source").fetchall()
        return {r[0]: r[1] for r in rows}

    def queue_count(self, view: QueueView = _WHOLE_QUEUE) -> int:
        sql, params = view.count_query()
        with self._lock:
            return int(self._conn.execute(sql, params).fetchone()[0])

    def queue_rows(self, offset: int, limit: int, view: QueueView = _WHOLE_QUEUE) -> list[QueueRow]:
        """Rows `offset .. offset+limit-1` of the pending queue in `view`'s order and filter."""
        where, params = view.where()
        group = view.group_column or "NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_QUEUE_COLUMNS}, {group} FROM items WHERE {where}"
                f" ORDER BY {', '.join(view.key_columns)} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_queue_row(r, group=r[10]) for r in rows]

    def queue_index_of(self, source: str, item_id: str, view: QueueView = _WHOLE_QUEUE) -> int | None:
        """The item's position in `view`, or None when it is not pending or the filter hides it."""
        where, params = view.where()
        keys = view.key_columns
        with self._lock:
            key = self._conn.execute(
                f"SELECT {', '.join(keys)} FROM items WHERE source = ? AND id = ? AND {where}",
                (source, item_id, *params),
            ).fetchone()
            if key is None:
                return None
            marks = ", ".join("?" for _ in keys)
            return int(
                self._conn.execute(
                    f"SELECT count(*) FROM items WHERE {where} AND ({', '.join(keys)}) < ({marks})", (*params, *key)
                ).fetchone()[0]
            )

    def queue_groups(self, view: QueueView) -> list[tuple[str, int]]:
        """The groups of `view` in display order, each with how many rows it holds (none when not grouping)."""
        column = view.group_column
        if column is None:
            return []
        where, params = view.where()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {column}, count(*) FROM items WHERE {where} GROUP BY {column} ORDER BY {column}", params
            ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def set_claim(self, source: str, item_id: str, claimed_by: str | None) -> None:
        """Note who holds a claim on the item, as the source just told us (the next listing says the same)."""
        with self._tx() as conn:
            _set_claim(conn, source, item_id, claimed_by, time.time())

    def new_urgent(self, since: float, ranks: int = 2) -> list[QueueRow]:
        """Pending items first seen after `since` whose risk is among the top `ranks` (2: high and critical)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM items WHERE state = 'pending' AND first_seen_at > ? AND risk_order < ?"
                " ORDER BY first_seen_at LIMIT 100",
                (since, ranks),
            ).fetchall()
        return [_queue_row(r) for r in rows]

    def deadlines_between(self, after: float, until: float) -> list[QueueRow]:
        """Pending items whose deadline falls after `after` and before `until` (soonest first, at most 100).

        The lower bound matters: items already past their deadline (the source has not expired them yet) must not
        fill the 100 and hide the ones about to pass.
        """
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_QUEUE_COLUMNS} FROM items WHERE state = 'pending' AND expires_sort > ? AND expires_sort < ?"
                " ORDER BY expires_sort LIMIT 100",
                (after, until),
            ).fetchall()
        return [_queue_row(r) for r in rows]

    def removed_reason(self, source: str, item_id: str) -> str | None:
        """Why the item left the queue (decided, expired, withdrawn, superseded, gone), or None if it has not."""
        with self._lock:
            row = self._conn.execute(
                "SELECT state, removed_reason FROM items WHERE source = ? AND id = ?", (source, item_id)
            ).fetchone()
        if row is None:
            return "gone"
        return None if row[0] != "removed" else str(row[1] or "gone")

    def item(self, source: str, item_id: str) -> tuple[Item, str] | None:
        """The item and its local state (pending, decided or removed)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT payload, state FROM items WHERE source = ? AND id = ?", (source, item_id)
            ).fetchone()
        if row is None:
            return None
        return Item.model_validate_json(row[0]), row[1]

    # -------------------------------------------------------------- decisions
    def record_decision(
        self, decision: Decision, hold_seconds: float = 0.0, first_shown_at: datetime | None = None
    ) -> None:
        """Write the decision, its audit record and its label in one durable transaction.

        Refuses (DecisionRefused) unless the item is pending locally at exactly the version the operator saw.
        `hold_seconds` is the undo window: the sync engine sends only due decisions (and labels), so they wait that
        long. `first_shown_at` is when the operator first saw this version; the label keeps how long they took.
        """
        with self._tx() as conn:
            row = conn.execute(
                "SELECT digest, state, payload FROM items WHERE source = ? AND id = ?",
                (decision.source, decision.item_id),
            ).fetchone()
            if row is None:
                raise DecisionRefused("the item is no longer in the queue")
            digest, state, payload = row
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
                    " detail, response, updated_at, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?,"
                    " NULL, '', NULL, ?, 0)",
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
            conn.execute(
                "UPDATE items SET state = 'decided', updated_at = ? WHERE source = ? AND id = ?",
                (time.time(), decision.source, decision.item_id),
            )
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
            label = labels.build_label(Item.model_validate_json(payload), decision, first_shown_at)
            labels.insert_label(conn, label, not_before=time.time() + max(0.0, hold_seconds))

    def undo(self, decision_id: str, operator: str, now: float | None = None) -> Decision:
        """Take a decision back while it waits in its undo window: in one transaction, mark it undone, put its item
        back in the queue (if it is still that version), and append an "undo" audit record next to the decision's.

        Refuses (UndoRefused) once the window closed or sending started: from then on the source may have it.
        """
        when = time.time() if now is None else now
        with self._tx() as conn:
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

    def due_decisions(self, limit: int, sources: Sequence[str], now: float | None = None) -> list[Decision]:
        """Decisions for these sources waiting to be sent whose retry time has come, oldest first."""
        if not sources:
            return []
        when = time.time() if now is None else now
        marks = ", ".join("?" for _ in sources)
        with self._lock:
            cur = self._conn.execute(
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
        with self._lock:
            row = self._conn.execute(
                "SELECT min(next_attempt_at) FROM decisions WHERE sync_state IN ('pending', 'sending')"
                f" AND source IN ({marks})",
                tuple(sources),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sending(self, decision_ids: Sequence[str]) -> None:
        """Note the attempt before the network call; on restart 'sending' is simply sent again under the same key."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE decisions SET sync_state = 'sending', attempts = attempts + 1, updated_at = ?"
                " WHERE id = ? AND sync_state IN ('pending', 'sending')",
                [(time.time(), i) for i in decision_ids],
            )

    def record_results(self, results: Sequence[SyncResult]) -> list[str]:
        """Record a batch of answers in one transaction: finals with their audit records, retries with their time.

        Returns the ids whose final outcome was recorded now (an outcome is recorded once).
        """
        now = time.time()
        recorded: list[str] = []
        with self._tx() as conn:
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
                        1 if result.state is SyncState.applied else 0,
                        result.decision_id,
                    ),
                )
                audit.append(
                    conn,
                    kind="sync_outcome" if result.state is SyncState.applied else "conflict",
                    operator=operator,
                    source=source,
                    item_id=item_id,
                    decision_id=result.decision_id,
                    item_digest=item_digest,
                    body={"state": result.state.value, "outcome": result.outcome, "detail": result.detail[:2000]},
                )
                recorded.append(result.decision_id)
        return recorded

    def waiting_count(self) -> int:
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT count(*) FROM decisions WHERE sync_state IN ('pending', 'sending')"
                ).fetchone()[0]
            )

    def unsent(self) -> list[Unsent]:
        """Every decision not yet answered for good, oldest first: what quitting now would leave behind."""
        with self._lock:
            rows = self._conn.execute(
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
        with self._tx() as conn:
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
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT count(*) FROM decisions WHERE sync_state IN ('conflict', 'failed') AND seen = 0"
                ).fetchone()[0]
            )

    def unseen_problems(self) -> list[DecisionRow]:
        """Conflicts and failures the operator has not acknowledged yet, newest first."""
        return self._decision_rows("WHERE d.sync_state IN ('conflict', 'failed') AND d.seen = 0")

    def mark_seen(self, decision_ids: Sequence[str]) -> None:
        """The operator acknowledged these problems (an explicit key, not merely opening the Problems screen)."""
        with self._tx() as conn:
            conn.executemany("UPDATE decisions SET seen = 1 WHERE id = ?", [(i,) for i in decision_ids])

    def decisions(self, limit: int = 200, offset: int = 0, *, problems_only: bool = False) -> list[DecisionRow]:
        """Decisions newest first, a page at a time; `problems_only`: those that need the operator (_PROBLEMS)."""
        return self._decision_rows(_PROBLEMS if problems_only else "", limit, offset)

    def decision_count(self, *, problems_only: bool = False) -> int:
        where = _PROBLEMS if problems_only else ""
        with self._lock:
            return int(self._conn.execute(f"SELECT count(*) FROM decisions d {where}").fetchone()[0])

    def _decision_rows(self, where: str, limit: int = 200, offset: int = 0) -> list[DecisionRow]:
        with self._lock:
            cur = self._conn.execute(
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
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ audit
    def verify_audit(self) -> audit.Verification:
        with self._lock:
            return audit.verify(self._conn)

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])


def _bounded(cursor: str | None) -> str | None:
    """Only a cursor that can be sent back is kept (R4): anything else would stop the source for good."""
    return None if cursor is None or cursor_problem(cursor) else cursor


def _storable(text: str) -> str:
    """`text` as valid UTF-8: a lone surrogate (valid in JSON, not in UTF-8) becomes its backslash escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _queue_row(r: Sequence[Any], group: str | None = None) -> QueueRow:
    return QueueRow(
        source=r[0],
        id=r[1],
        kind=r[2],
        agent=r[3],
        action=r[4],
        risk=Risk(r[5]),
        confidence=r[6],
        created_at=r[7],
        expires_at=r[8],
        claimed_by=r[9],
        group=group,
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
