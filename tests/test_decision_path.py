"""A decision's path from the key to the disk: the decision is durable before the screen does any work for it, and the
UI's commits never carry a WAL checkpoint (the session runs it on the background connection afterwards). Pilot over the
demo fleet, real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
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
        await pilot.pause(0.5)  # the poll's own refresh is done
        assert app.main.shown is not None
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
