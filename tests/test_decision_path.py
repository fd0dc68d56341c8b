"""A decision's path from the key to the disk: the decision is durable before the screen does any work for it, and the
UI's commits never carry a WAL checkpoint (the session runs it on the background connection afterwards). Pilot over the
demo fleet, real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from storage.db import Store
from storage.records import Verdict
from tests.conftest import decide_key, eventually
from tests.factories import decision, item
from widgets.queue_list import QueueList

SIZE = (120, 40)
_ROOT = Path(__file__).resolve().parent.parent


def _decisions_on_disk(path: Path) -> int:
    """Decisions another process would read now: a connection of its own, read-only."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])
    finally:
        conn.close()


async def test_a_decision_is_durable_before_the_screen_refreshes_for_it(
    fleet: Fleet, make_session: Callable[..., Session], monkeypatch: Any
) -> None:
    session = make_session()
    events: list[tuple[str, int]] = []
    record = session.store.outbox.record

    def recorded(*args: Any, **kwargs: Any) -> None:
        record(*args, **kwargs)
        events.append(("recorded", _decisions_on_disk(session.store_path)))

    refresh = QueueList.refresh_rows

    def refreshed(self: QueueList) -> None:
        events.append(("refresh", _decisions_on_disk(session.store_path)))
        refresh(self)

    monkeypatch.setattr(session.store.outbox, "record", recorded)
    monkeypatch.setattr(QueueList, "refresh_rows", refreshed)
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        # The poll's own refresh is done, and nothing else is queued: a busy machine may take a while to get there.
        await eventually(lambda: app.main.shown is not None and ("refresh", 0) in events, what="the poll shown")
        await pilot.pause()
        await pilot.pause()
        events.clear()
        await decide_key(pilot, "a")
        await pilot.pause(0.1)
    first_refresh = next(i for i, (what, _) in enumerate(events) if what == "refresh")
    assert events[0] == ("recorded", 1), events  # on disk, seen by another connection, before anything else
    assert first_refresh > 0 and all(on_disk == 1 for _, on_disk in events), events
    await session.aclose()


def test_the_uis_commits_never_checkpoint_and_the_background_connection_does(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    ui = Store(path, checkpoints=False)
    background = Store(path, background=True)
    try:
        items = [item(f"i{n}") for n in range(600)]
        background.items.apply_changes("billing", items, [], None)
        background.checkpoint()
        assert _wal_frames_unchecked(path) == 0, "everything so far is in the database"
        for it in items[:400]:  # far more than the 1,000 pages after which a commit would checkpoint
            ui.outbox.record(decision(it, Verdict.approve))
        # Nothing the UI's commits wrote was copied back by them: the WAL holds every frame they wrote.
        assert _wal_frames_unchecked(path) > 1_000
        background.checkpoint()
        assert _wal_frames_unchecked(path) == 0
    finally:
        background.close()
        ui.close()


def _wal_frames_unchecked(path: Path) -> int:
    """Frames in the WAL not yet copied into the database, read from the WAL index without checkpointing."""
    shm = path.with_name(path.name + "-shm").read_bytes()
    max_frame = int.from_bytes(shm[16:20], "little")  # WalIndexHdr.mxFrame (native order: little-endian here)
    backfilled = int.from_bytes(shm[96:100], "little")  # WalCkptInfo.nBackfill
    return max_frame - backfilled


async def test_the_session_checkpoints_after_a_decision(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    await session.poll_once()
    running = asyncio.create_task(session.run())
    try:
        rows = session.store.queue.rows(0, 3)
        for row in rows:
            found = session.item(row.source, row.id)
            assert found is not None
            session.decide(found[0], Verdict.reject)
        await eventually(lambda: _wal_frames_unchecked(session.store_path) == 0, what="the WAL copied back")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await session.aclose()


def test_only_the_decision_and_its_audit_record_wait_for_the_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "console.db")
    try:
        it = item("i1")
        store.items.apply_changes("billing", [it], [], None)
        statements: list[str] = []
        store.db.conn.set_trace_callback(statements.append)
        store.outbox.record(decision(it, Verdict.approve))
        store.db.conn.set_trace_callback(None)
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL again for the next decision"
    finally:
        store.close()
    words = [" ".join(s.split()[:3]).upper() for s in statements]
    commits = [i for i, w in enumerate(words) if w == "COMMIT"]
    relaxed = words.index("PRAGMA SYNCHRONOUS=NORMAL")
    durable = words[: commits[0]]
    assert commits[0] < relaxed < commits[1], words
    assert any(w.startswith("INSERT INTO DECISIONS") for w in durable), words
    assert any(w.startswith("INSERT INTO AUDIT") for w in durable), words
    assert not any(w.startswith(("UPDATE ITEMS", "INSERT INTO LABELS")) for w in durable), words
    settled = words[relaxed : commits[1]]
    assert any(w.startswith("UPDATE ITEMS") for w in settled), words
    assert any(w.startswith("INSERT INTO LABELS") for w in settled), words


_DIE_AFTER_THE_DURABLE_COMMIT = """
import os, sys
from pathlib import Path
import storage.outbox
from storage.db import Store
from storage.records import Verdict
from tests.factories import decision, item

store = Store(Path(sys.argv[1]))
it = item("i1")
store.items.apply_changes("billing", [it, item("i2")], [], None)
storage.outbox._settle = lambda *args: os._exit(9)  # the process dies between the two transactions
store.outbox.record(decision(it, Verdict.edit, edited={"amount": 1}))
"""


def test_a_crash_after_the_durable_commit_is_settled_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "console.db"
    died = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_THE_DURABLE_COMMIT, str(path)],
        check=False,
        cwd=_ROOT,
        capture_output=True,
        text=True,
    )
    assert died.returncode == 9, died.stderr
    conn = sqlite3.connect(path)
    try:  # what the crash left: the decision, its item still in the queue, no label
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 1
        assert conn.execute("SELECT state FROM items WHERE id = 'i1'").fetchone()[0] == "pending"
        assert conn.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    finally:
        conn.close()
    store = Store(path)
    try:
        assert store.audit.verify().ok
        assert [row.id for row in store.queue.rows(0, 10)] == ["i2"], "the decided item left the queue"
        [label] = store.db.conn.execute("SELECT verdict, item_id FROM labels").fetchall()
        assert tuple(label) == ("edit", "i1")
        assert store.outbox.settle_recorded() == 0, "settled once"
    finally:
        store.close()
