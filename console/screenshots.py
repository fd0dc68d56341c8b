"""`make screenshots`: drive the real app over the demo fleet with Pilot and save an SVG of each screen."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from console.config import Config, SourceConfig

SIZE = (120, 36)


async def capture(out: Path) -> list[Path]:
    from console.app import ApprovalApp
    from console.fleet import Fleet
    from console.session import Session

    fleet = Fleet(seed=2026, interval=None, initial=14)
    url = fleet.start()
    written: list[Path] = []
    try:
        with tempfile.TemporaryDirectory() as data:
            config = Config(operator="alice", sources=(SourceConfig(name="demo-fleet", url=url, poll_interval=0.5),))
            session = Session(config, Path(data), token_for=lambda _name: None)
            app = ApprovalApp(session, background=False)
            async with app.run_test(size=SIZE) as pilot:
                await session.poll_once()
                await pilot.pause(0.3)

                async def shot(name: str) -> None:
                    await pilot.pause(0.2)
                    path = out / f"{name}.svg"
                    app.save_screenshot(filename=path.name, path=str(out))
                    written.append(path)

                await shot("main")
                rows = session.store.queue_rows(0, 50)
                steps = next((i for i, row in enumerate(rows) if row.kind == "escalation"), 0)
                await pilot.press(*["j"] * steps)
                await shot("escalation")
                await pilot.press(*["k"] * steps, "r")
                await shot("reject")
                await pilot.press("escape", "e")
                await shot("edit")
                await pilot.press("escape", "p")
                await shot("problems")
    finally:
        fleet.stop()
    return written


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(capture(out)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
