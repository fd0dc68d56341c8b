"""`make screenshots`: drive the real app over the demo fleet with Pilot and save an SVG of each screen."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from console.engine.config import Config, SourceConfig

SIZE = (120, 36)
WIDE = (180, 40)  # past the main screen's wide breakpoint: the detail beside the queue

Shot = Callable[[str], Awaitable[None]]


@asynccontextmanager
async def _demo_app(url: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """The app over the demo fleet at `url`, alice at the keys, once its first poll is in: (app, pilot, session)."""
    from console.engine.session import Session
    from console.tui.app import ApprovalApp

    with tempfile.TemporaryDirectory() as data:
        config = Config(operator="alice", sources=(SourceConfig(name="demo-fleet", url=url, poll_interval=0.5),))
        session = Session(config, Path(data), token_for=lambda _name: None)
        app = ApprovalApp(session, background=False)
        async with app.run_test(size=SIZE) as pilot:
            await session.poll_once()
            await pilot.pause(0.3)
            yield app, pilot, session


async def _tour(pilot: Any, session: Any, shot: Shot) -> None:
    """Every screen, in the order an operator meets them."""
    from textual.widgets import TextArea

    from console.tui.screens.edit import EditScreen
    from storage.records import Verdict

    app = pilot.app
    await shot("main")
    rows = session.queue.rows(0, 50)  # in the screen's order: `j` steps through them
    items = [found[0] for row in rows if (found := session.item(row.source, row.id))]
    steps = next((i for i, item in enumerate(items) if item.kind == "escalation"), 0)
    await pilot.press(*["j"] * steps)
    await shot("escalation")
    await pilot.press(*["k"] * steps, "r")
    await shot("reject")
    editable = next(i for i, item in enumerate(items) if item.kind == "approval" and item.allows(Verdict.edit))
    await pilot.press("escape", *["j"] * editable, "e")
    await pilot.pause(0.1)
    editor = app.screen.query_one(TextArea)
    edited = json.loads(editor.text)
    if isinstance(edited, dict) and edited:
        edited[next(iter(edited))] = "changed by the operator"
    editor.text = json.dumps(edited, indent=2)
    await pilot.press("ctrl+s")
    while isinstance(app.screen, EditScreen) and app.screen.checking:  # the schema check answers from a worker
        await pilot.pause(0.05)
    await shot("edit-diff")
    await pilot.press("escape", "escape", "y", "home", "a")  # back to editing, leave, discard the change
    await shot("critical-confirm")
    await pilot.press("escape", "slash", *"billing")
    await shot("filter")
    await pilot.press("escape", "2")  # the Critical+high view
    await shot("views")
    await pilot.press("1", "g", "g")
    await shot("grouped")
    await pilot.press("c")  # the group under the cursor collapses to its header
    await shot("grouped-collapsed")
    await pilot.press("g", "asterisk", "a")  # ungrouped, every item marked, bulk approve asks first
    await shot("bulk-confirm")
    await pilot.press("escape", "escape", "question_mark")  # cancelled, unmarked
    await shot("help")
    await pilot.press("escape", "p")
    await shot("problems")
    await pilot.press("escape", "ctrl+t")
    await shot("main-light")


async def _stats_and_history(pilot: Any, session: Any, fleet: Any, shot: Shot) -> None:
    """Decide a few items (one of them decided elsewhere first: a conflict), sync, then `s` and `h`."""
    from datetime import timedelta

    from storage.records import Risk, Verdict, now_utc

    rows = session.queue.rows(0, 20)  # the tour left the view as it found it: whole queue, most urgent first
    listed = [found[0] for row in rows if (found := session.item(row.source, row.id))]
    items = [item for item in listed if item.risk is not Risk.critical and item.allows(Verdict.reject)][:6]
    editable = next(
        item
        for item in listed
        if item not in items and item.allows(Verdict.edit) and item.action and isinstance(item.action.args, dict)
    )
    fleet.decide_elsewhere(items[0].id)
    verdicts = (Verdict.approve, Verdict.reject, Verdict.approve, Verdict.approve, Verdict.reject, Verdict.approve)
    for index, (item, verdict) in enumerate(zip(items, verdicts, strict=False)):
        reason = session.config.reject_reasons[index % 3] if verdict is Verdict.reject else None
        shown = now_utc() - timedelta(seconds=25 + 40 * index)
        session.decide(item, verdict, reason_code=reason, first_shown_at=shown)
    assert editable.action is not None
    args = dict(editable.action.args)
    args[next(iter(args))] = "changed by the operator"
    session.decide(editable, Verdict.edit, edited=args, comment="the amount was wrong", first_shown_at=now_utc())
    await pilot.pause(session.config.undo_seconds + 0.5)  # past the undo window: the decisions are due
    await session.sync_once()
    await pilot.press("s")
    await pilot.app.workers.wait_for_complete()
    await shot("stats")
    await pilot.press("escape", "h")
    await shot("history")
    await pilot.press("enter")  # the newest decision: the edit, with its diff
    await shot("history-detail")
    await pilot.press("escape", "escape")


async def _health(out_shot: Callable[[Any, Any], Shot], url: str) -> None:
    """`H` over two sources: the demo fleet, and one that is down (nothing listens on its port)."""
    import socket

    from console.engine.session import Session
    from console.tui.app import ApprovalApp

    with socket.socket() as sock:  # a loopback port bound, then released: nobody listens there
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sources = (
        SourceConfig(name="demo-fleet", url=url, poll_interval=0.5),
        SourceConfig(name="billing-eu", url=down, poll_interval=30.0, timeout=1.0),
    )
    with tempfile.TemporaryDirectory() as data:
        session = Session(Config(operator="alice", sources=sources), Path(data), token_for=lambda _name: None)
        app = ApprovalApp(session)
        async with app.run_test(size=SIZE) as pilot:
            health = session.poller.health
            for _ in range(300):  # both sources polled at least once (each answers, or fails, within a second or so)
                if health["billing-eu"].next_retry_at is not None and health["demo-fleet"].state == "up":
                    break
                await pilot.pause(0.1)
            await pilot.press("H")
            await out_shot(app, pilot)("health")


async def _two_person(pilot: Any, session: Any, fleet: Any, shot: Shot) -> None:
    """A two-person item bob approved first, as alice sees it: "1 of 2", who approved and when."""
    import uuid

    added = fleet.add_item(kind="approval", agent="crm-agent", risk="high", approvals_required=2, expires_in=1500)
    body = {"verdict": "approve", "item_digest": added["digest"], "operator": "bob", "comment": ""}
    # Bob's console's request, straight to the fleet's handler (the fleet takes the body's operator).
    fleet.respond("POST", f"/v1/items/{added['id']}/decision", None, str(uuid.uuid4()), json.dumps(body).encode())
    await session.poll_once()
    await pilot.press("slash", *f"id:{added['id']}", "enter")
    await pilot.pause(0.3)
    await shot("two-person")
    await pilot.press("slash", "escape")


async def _deadlines(shooter: Callable[[Any, Any], Shot]) -> None:
    """Deadlines that bend: one near its deadline (more time offered), one that approves itself; then `x`."""
    from console.servers.fleet import Fleet

    fleet = Fleet(seed=7, interval=None, initial=4)
    fleet.add_item(risk="high", kind="approval", agent="infra-agent", expires_in=100, extend={"max_seconds": 3600})
    fleet.add_item(risk="medium", kind="approval", expires_in=700, on_expiry="approve")
    url = fleet.start()
    try:
        async with _demo_app(url) as (app, pilot, _session):
            shot = shooter(app, pilot)
            await shot("deadlines")
            await pilot.press("ctrl+l", "x")
            await shot("extend")
    finally:
        fleet.stop()


async def capture(out: Path) -> list[Path]:
    from textual.app import App
    from textual.widgets import Input

    from console.servers.fleet import Fleet
    from console.tui.screens.first_run import FirstRunApp

    written: list[Path] = []

    def shooter(app: App[Any], pilot: Any) -> Shot:
        async def shot(name: str) -> None:
            for field in app.screen.query(Input):
                field.cursor_blink = False
            await pilot.pause(0.2)
            app.save_screenshot(filename=f"{name}.svg", path=str(out))
            written.append(out / f"{name}.svg")

        return shot

    fleet = Fleet(seed=2026, interval=None, initial=14)
    fleet.add_item(risk="critical", kind="approval", agent="infra-agent", expires_in=1500)
    url = fleet.start()
    try:
        async with _demo_app(url) as (app, pilot, session):
            await _tour(pilot, session, shooter(app, pilot))
            await pilot.press("ctrl+t")  # back to the dark theme
            await pilot.resize_terminal(*WIDE)
            await shooter(app, pilot)("wide")
            await pilot.resize_terminal(*SIZE)
            await _stats_and_history(pilot, session, fleet, shooter(app, pilot))
            await _two_person(pilot, session, fleet, shooter(app, pilot))
        await _health(shooter, url)
    finally:
        fleet.stop()
    await _deadlines(shooter)
    with tempfile.TemporaryDirectory() as empty:
        first_run = FirstRunApp(Path(empty) / "config.toml")
        async with first_run.run_test(size=SIZE) as first_pilot:
            await shooter(first_run, first_pilot)("first-run")
    return written


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(capture(out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
