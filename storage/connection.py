"""One connection to the database file and the lock around it, shared by every table class of a Store.

A connection is safe to share between threads: `lock` serialises its calls. The app keeps one for the UI and one for
background work, and WAL lets the UI read while the background writes. Writes take turns (one writer in WAL), and a
UI write waiting for its turn goes before the background's next transaction (_WriteGate).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from storage.errors import is_storage_failure, storage_error

BUSY_TIMEOUT = 10.0  # seconds a connection waits for another process's lock before it reports the database busy


def open_readonly(path: Path, *, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`): it can run beside a live console and can never change its data.

    Usable from any thread (its user serialises calls); waits `timeout` for a writer's lock like every other opener.
    """
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, timeout=timeout)


DURABLE_SYNC = "FULL"


def open_writable(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), in WAL, with every commit durable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a decision the operator was told is recorded survives power loss, not just a crash.
        conn.execute(f"PRAGMA synchronous={DURABLE_SYNC}")
    except BaseException:
        conn.close()
        raise
    return conn


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


class Connection:
    """`conn` with its lock and its turn among this process's writers; the table classes share one.

    `background`: this connection's writes wait while a foreground one (the UI's) waits to write (_WriteGate).
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, *, background: bool = False) -> None:
        self.path = path
        self.conn = conn
        self.lock = threading.RLock()
        self._background = background
        self.gate = _gate_for(path)

    @contextmanager
    def held(self) -> Iterator[None]:
        """This connection's lock and its writer's turn, across several transactions that must follow each other."""
        with self.lock, self.gate.turn(background=self._background):
            yield

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. A failure of the disk or the file becomes a StorageError, after rolling back.

        `durable=False` commits without waiting for the disk (synchronous=NORMAL): only for what can be derived again
        from durable rows. In WAL the commit still lands in order, so it is lost only with everything after it, and the
        next durable commit or checkpoint makes it durable too.
        """
        with self.held():
            try:
                if not durable:
                    self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and is_storage_failure(exc):
                    raise storage_error(self.path, exc) from exc
                raise
            finally:
                if not durable:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute(f"PRAGMA synchronous={DURABLE_SYNC}")
