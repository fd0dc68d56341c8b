"""`make screenshots`: drive the real app over the demo fleet with Pilot and save an SVG of each screen."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from console.engine.config import Config, SourceConfig

SIZE = (120, 36)

Shot = Callable[[str], Awaitable[None]]


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
    await pilot.press("g", "question_mark")
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
    items = [found[0] for row in rows if (found := session.item(row.source, row.id))]
    items = [item for item in items if item.risk is not Risk.critical and item.allows(Verdict.reject)][:6]
    fleet.decide_elsewhere(items[0].id)
    verdicts = (Verdict.approve, Verdict.reject, Verdict.approve, Verdict.approve, Verdict.reject, Verdict.approve)
    for index, (item, verdict) in enumerate(zip(items, verdicts, strict=False)):
        reason = session.config.reject_reasons[index % 3] if verdict is Verdict.reject else None
        shown = now_utc() - timedelta(seconds=25 + 40 * index)
        session.decide(item, verdict, reason_code=reason, first_shown_at=shown)
    await pilot.pause(session.config.undo_seconds + 0.5)  # past the undo window: the decisions are due
    await session.sync_once()
    await pilot.press("s")
    await pilot.app.workers.wait_for_complete()
    await shot("stats")
    await pilot.press("escape", "h")
    await shot("history")
    await pilot.press("escape")


async def capture(out: Path) -> list[Path]:
    from textual.app import App
    from textual.widgets import Input

    from console.engine.session import Session
    from console.servers.fleet import Fleet
    from console.tui.app import ApprovalApp
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
        with tempfile.TemporaryDirectory() as data:
            config = Config(operator="alice", sources=(SourceConfig(name="demo-fleet", url=url, poll_interval=0.5),))
            session = Session(config, Path(data), token_for=lambda _name: None)
            app = ApprovalApp(session, background=False)
            async with app.run_test(size=SIZE) as pilot:
                await session.poll_once()
                await pilot.pause(0.3)
                await _tour(pilot, session, shooter(app, pilot))
                await pilot.press("ctrl+t")  # back to the dark theme
                await _stats_and_history(pilot, session, fleet, shooter(app, pilot))
    finally:
        fleet.stop()
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
