"""What a failing database means to the operator: SQLite errors translated into messages that say what to do."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


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


def is_storage_failure(exc: sqlite3.Error) -> bool:
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
