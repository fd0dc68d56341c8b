"""The Store's shape: table classes that share its one connection and lock, and the one read-only opener."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from console.cli.labels import _labels_db
from console.engine.session import DB_NAME
from storage.connection import BUSY_TIMEOUT, open_readonly
from storage.db import Store
from storage.stats import read_window_stats
from tests import factories


def test_every_reader_beside_a_live_console_waits_as_long_for_a_writer(tmp_path: Path) -> None:
    """The export's connection used sqlite3's default wait (5 s), the others 10 s: one opener now serves all three."""
    Store(tmp_path / DB_NAME).close()
    waits: list[object] = []
    real_connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> Any:
        waits.append(kwargs.get("timeout", "the default"))
        return real_connect(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", recording)
        read_window_stats(tmp_path / DB_NAME, 3600.0, 0.0)
        with _labels_db(tmp_path):  # what `approval-console export` reads through
            pass
        Store(tmp_path / DB_NAME, readonly=True).close()
    assert waits == [BUSY_TIMEOUT] * 3


def test_a_read_only_connection_cannot_write(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    Store(path).close()
    conn = open_readonly(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("CREATE TABLE nope(x)")
    conn.close()


def test_the_tables_share_the_stores_connection_and_lock(tmp_path: Path) -> None:
    """A write through one table waits while another thread holds the Store's lock: one connection, one lock."""
    store = Store(tmp_path / "console.db")
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            holding.set()
            release.wait(30.0)
            order.append("holder")

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30.0)

    def write() -> None:
        store.items.apply_changes("billing", [factories.item("itm_1")], [], None)
        order.append("items")

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.2)  # gives the writer its chance to jump the lock (it must not)
    release.set()
    holder.join()
    writer.join()
    assert order == ["holder", "items"]
    assert store.queue.count() == 1 and store.items.get("billing", "itm_1") is not None
    store.close()
