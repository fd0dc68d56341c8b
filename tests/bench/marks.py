"""Bulk work at scale: marking every item a filter shows, from the key to the frame that shows the marks."""

from __future__ import annotations

import time

from tests.bench.fixtures import Running, bench_config, open_app, queue_dir
from tests.bench.frames import key_for, queue_of
from tests.bench.harness import Bench, Result, Target, declared, figure, measured

MARK_ALL = (
    "from the key event (Pilot.press) of the binding whose action is mark_all to the first frame handed to the "
    "terminal whose queue bar counts every item the filter shows as marked and whose first row shows its mark; app "
    "over 100k cached items, filter `id:item-001` (10,000 matches) applied before, 120x40, clock frozen. Each run "
    "starts with no marks (the marks are cleared between runs, not timed)"
)
# Generated ids are item-0000000 .. item-0099999: this prefix holds 10,000 of 100k (1,000 of the quick 10k).
FILTERS = {100_000: "id:item-001", 10_000: "id:item-0001"}
SETTLE = 0.3


@figure(
    "mark_all",
    ("keystroke_mark_all", "marking all visible 10k items at 100k items", "ms", MARK_ALL, Target("<=", 100.0)),
)
async def mark_all(bench: Bench) -> list[Result]:
    items = bench.items(100_000, 10_000)
    text = FILTERS[items]
    frozen = time.time()
    samples: list[float] = []
    matches = 0
    async with open_app(queue_dir(bench, items), bench_config(), now=lambda: frozen) as running:
        bound = key_for(running.app, lambda action: action == "mark_all")
        if bound is None:
            result = declared("mark_all", "keystroke_mark_all")
            result.reason = "not available yet: no binding on the main screen whose action is mark_all"
            return [result]
        await running.pilot.press("slash", *text, "enter")
        queue = queue_of(running.app)
        assert queue is not None
        matches = queue.row_count
        for _ in range(bench.runs(15, 3)):
            sample = await _time_mark_all(running, bound[0], matches)
            if sample is None:
                break
            samples.append(sample)
    params = {"items": items, "filter": text, "matches": matches, "key": bound[0]}
    if not samples:
        result = declared("mark_all", "keystroke_mark_all")
        result.reason = f"pressing {bound[0]!r} did not show {matches:,} marks within 2 s"
        result.params = params
        return [result]
    return [measured("mark_all", "keystroke_mark_all", samples, params=params)]


async def _time_mark_all(running: Running, key: str, matches: int) -> float | None:
    """Milliseconds from pressing `key` to the frame showing every match marked; None if not within 2 s."""
    app, pilot, probe = running.app, running.pilot, running.probe
    screen = app.main
    await pilot.pause(SETTLE)
    screen.action_clear_marks()  # each run marks from none (not timed)
    await pilot.pause(SETTLE)
    queue = queue_of(app)
    assert queue is not None

    def shown() -> bool:
        bar = str(screen.query_one("#queue-bar").render())
        return f"{matches:,} marked" in bar and queue.render_line(1).text[1:2] == "●"

    return await probe.key_to_frame_ms(pilot, key, shown)
