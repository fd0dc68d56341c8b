"""Standing answers: an operator's "always" (ACP's allow_always, reject_always) kept in the bridges' data directory, so
the same agent's same action is answered without asking again, until the operator revokes it
(`approval-console approvals list`, `approval-console approvals revoke N`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from console.engine.config import default_data_dir as console_data_dir

DB_NAME = "standing.sqlite3"
Answer = Literal["allow", "reject"]

_COLUMNS = "SELECT id, agent, action, answer, decided_by, created_at FROM standing"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS standing (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL,
    action TEXT NOT NULL,
    answer TEXT NOT NULL CHECK (answer IN ('allow', 'reject')),
    decided_by TEXT,
    item_id TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS standing_in_force ON standing (agent, action) WHERE revoked_at IS NULL;
"""


@dataclass(frozen=True)
class Standing:
    id: int
    agent: str
    action: str
    answer: Answer
    decided_by: str | None
    created_at: str

    def describe(self) -> str:
        who = f" by {self.decided_by}" if self.decided_by else ""
        return f"{self.id}  {self.answer} always  {self.agent}: {self.action}  ({self.created_at}{who})"


def default_data_dir() -> Path:
    """Where the bridges keep standing answers unless told otherwise: what `approvals list` reads by default."""
    return console_data_dir() / "bridges"


class StandingApprovals:
    """One small SQLite table; each change is committed before it is acted on."""

    def __init__(self, data_dir: Path | None = None) -> None:
        data_dir = data_dir or default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / DB_NAME, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StandingApprovals:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def lookup(self, agent: str, action: str) -> Standing | None:
        row = self._db.execute(
            _COLUMNS + " WHERE agent = ? AND action = ? AND revoked_at IS NULL",
            (agent, action),
        ).fetchone()
        return _standing(row) if row else None

    def record(
        self, agent: str, action: str, answer: Answer, *, decided_by: str | None, item_id: str | None
    ) -> Standing:
        """Keep an "always" answer; it replaces the one in force for the same agent and action."""
        now = _now()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE standing SET revoked_at = ? WHERE agent = ? AND action = ? AND revoked_at IS NULL",
                (now, agent, action),
            )
            self._db.execute(
                "INSERT INTO standing (agent, action, answer, decided_by, item_id, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (agent, action, answer, decided_by, item_id, now),
            )
        found = self.lookup(agent, action)
        assert found is not None
        return found

    def standing(self) -> list[Standing]:
        rows = self._db.execute(_COLUMNS + " WHERE revoked_at IS NULL ORDER BY id").fetchall()
        return [_standing(row) for row in rows]

    def revoke(self, standing_id: int) -> bool:
        with self._db:
            done = self._db.execute(
                "UPDATE standing SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), standing_id)
            )
        return done.rowcount == 1


def _standing(row: tuple[int, str, str, Answer, str | None, str]) -> Standing:
    return Standing(*row)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
