"""What the operator sees: first paint, keystroke to repainted frame, a new item reaching the screen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from tests.bench.fixtures import ChildFleet, Running, bench_config, fleet_source, open_app, queue_dir
from tests.bench.frames import detail_follows_cursor, key_for, queue_lines, queue_of
from tests.bench.harness import Bench, Result, Target, declared, figure, measured, summarize

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
FIRST_PAINT = (
    "from opening the session (the database) and starting ApprovalApp headless at 120x40 with N pending items "
    "already in storage, to the first frame handed to the terminal whose queue line below the header shows the most "
    "urgent item"
)
KEYSTROKE = (
    "from the key event (Pilot.press) to the first frame handed to the terminal that shows its effect and in which "
    "the detail shows the highlighted item; app over 100k cached items, 120x40, clock frozen so only the key "
    "changes the screen. The key is found by its binding's action name on the main screen"
)
ITEM_VISIBLE = (
    "from asking the demo fleet (a child process) to create an item to the first frame handed to the terminal whose "
    "queue shows that item's row"
)
POLL_INTERVAL = 2.0  # the config's default
SETTLE = 0.3  # a pause between keys, so one key's frames are not the next key's


@figure(
    "first_paint",
    *(
        (f"first_paint_{n // 1000}k", f"first paint, {n:,} items in storage", "s", FIRST_PAINT, Target("<=", 0.5))
        for n in SIZES
    ),
    (
        "first_paint_flatness",
        "first paint, largest / 1k items",
        "x",
        "first paint median with the most items divided by first paint median with 1k items, same run",
        Target("<=", 1.5),
    ),
)
async def first_paint(bench: Bench) -> list[Result]:
    sizes = QUICK_SIZES if bench.quick else SIZES
    runs = bench.runs(7, 3)
    timings: dict[int, list[float]] = {}
    for size in sizes:
        data_dir = queue_dir(bench, size)
        samples = timings[size] = []
        for _ in range(runs):
            async with open_app(data_dir, bench_config()) as running:
                samples.append(running.painted - running.started)
    results = [
        measured("first_paint", f"first_paint_{size // 1000}k", samples, params={"items": size})
        for size, samples in timings.items()
    ]
    largest = sizes[-1]
    ratio = declared("first_paint", "first_paint_flatness")
    ratio.summary = summarize([summarize(timings[largest]).median / summarize(timings[sizes[0]]).median])
    ratio.params = {"items": largest, "baseline_items": sizes[0]}
    ratio.details = {"median_s": {size: summarize(samples).median for size, samples in timings.items()}}
    if bench.quick:
        ratio.details["note"] = f"quick mode: {largest:,} items, not 100,000"
    return [*results, ratio]


_KEYS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "keystroke_move": ("move (cursor down)", lambda action: action == "cursor_down"),
    "keystroke_page_down": ("page down", lambda action: action == "cursor_page_down"),
    "keystroke_filter_char": ("one filter character", lambda action: "filter" in action and "clear" not in action),
    "keystroke_sort": ("sort change", lambda action: "sort" in action),
}
FILTER_CHARACTER = "b"  # "billing-agent": a fifth of the generated items


@figure(
    "keystroke",
    *(
        (name, f"keystroke: {what}, 100k items", "ms", KEYSTROKE, Target("<=", 50.0))
        for name, (what, _) in _KEYS.items()
    ),
)
async def keystroke(bench: Bench) -> list[Result]:
    data_dir = queue_dir(bench, bench.items(100_000, 10_000))
    frozen = time.time()
    results: list[Result] = []
    for name, (what, wanted) in _KEYS.items():
        samples: list[float] = []
        bound: tuple[str, str] | None = None
        # Moving keys repeat in one app; filter and sort change the app's state, so each run gets a fresh app.
        moving = name in ("keystroke_move", "keystroke_page_down")
        apps, repeats = (1, bench.runs(40, 8)) if moving else (bench.runs(10, 3), 1)
        for _ in range(apps):
            async with open_app(data_dir, bench_config(), now=lambda: frozen) as running:
                bound = key_for(running.app, wanted)
                if bound is None:
                    break
                for _ in range(repeats):
                    sample = await _time_key(running, name, bound[0])
                    if sample is None:
                        break
                    samples.append(sample)
        params = {"items": bench.items(100_000, 10_000), "key": bound[0] if bound else None}
        if bound is None:
            result = declared("keystroke", name)
            result.reason = f"not available yet: no binding on the main screen whose action is {what}"
        elif not samples:
            result = declared("keystroke", name)
            result.reason = f"pressing {bound[0]!r} ({bound[1]}) changed nothing on screen within 2 s"
        else:
            result = measured("keystroke", name, samples, params={**params, "action": bound[1]})
        results.append(result)
    return results


async def _time_key(running: Running, name: str, key: str) -> float | None:
    """Milliseconds from pressing `key` to the frame showing its effect; None if nothing changed within 2 s."""
    app, pilot, probe = running.app, running.pilot, running.probe
    await pilot.pause(SETTLE)
    queue = queue_of(app)
    assert queue is not None
    if name == "keystroke_filter_char":
        await pilot.press(key)  # open the filter (not timed); the character typed next is
        await pilot.pause(SETTLE)
        key = FILTER_CHARACTER
    cursor, lines = queue.cursor, queue_lines(queue)

    def shown() -> bool:
        if name in ("keystroke_move", "keystroke_page_down"):
            changed = queue.cursor != cursor
        else:
            changed = queue_lines(queue) != lines
        return changed and detail_follows_cursor(app)

    return await probe.key_to_frame_ms(pilot, key, shown)


@figure(
    "item_visible",
    (
        "item_visible_long_poll",
        "item created at the server to visible (long-poll)",
        "ms",
        ITEM_VISIBLE + "; source with long_poll = 25 s",
        Target("<=", 300.0),
    ),
    (
        "item_visible_polling",
        "item created at the server to visible (polling every 2 s)",
        "ms",
        ITEM_VISIBLE
        + f"; source with long_poll = 0, poll_interval = {POLL_INTERVAL:g} s; the target is on the worst run",
        Target("<=", POLL_INTERVAL * 1000 + 300.0, stat="max"),
    ),
)
async def item_visible(bench: Bench) -> list[Result]:
    results = []
    for name, options in (
        ("item_visible_long_poll", {"long_poll": 25.0}),
        ("item_visible_polling", {"long_poll": 0.0, "poll_interval": POLL_INTERVAL}),
    ):
        samples: list[float] = []
        runs = bench.runs(12, 3)
        # Items arrive after quiet spells of different lengths, shorter and longer than the poll interval.
        gaps = [round(0.25 + 2.75 * run / max(1, runs - 1), 2) for run in range(runs)]
        with ChildFleet(initial=12) as fleet:
            data_dir = bench.workdir / f"{name}-{time.monotonic_ns()}"
            async with (
                fleet.hooks() as hooks,
                open_app(data_dir, bench_config(fleet_source(fleet.url, **options))) as running,
            ):
                for run, gap in enumerate(gaps):
                    await running.pilot.pause(gap)
                    samples.append(await _time_new_item(running, hooks, f"bench_probe_{run}"))
        details = {"seconds_since_previous_item": gaps}
        results.append(
            measured("item_visible", name, samples, params={"initial_items": 12, **options}, details=details)
        )
    return results


async def _time_new_item(running: Running, hooks: httpx.AsyncClient, marker: str) -> float:
    app = running.app

    def visible() -> bool:
        queue = queue_of(app)
        return queue is not None and any(marker in line for line in queue_lines(queue))

    frame = running.probe.expect(visible)
    asked = time.perf_counter()
    # Critical and due soon: the most urgent item, so its row is on the first screen.
    await ChildFleet.add_item(hooks, risk="critical", expires_in=120, action={"name": marker, "args": {}})
    return (await asyncio.wait_for(frame, timeout=10.0) - asked) * 1000
