"""Seeing frames leave the app: the moment a frame that shows something is handed to the terminal.

Kept light (Textual and the app only): the launch benchmark imports it in a fresh child process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from rich.console import RenderableType
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.screen import Screen

from console.tui.app import ApprovalApp
from widgets.queue_list import QueueList

SIZE = (120, 40)  # a common SSH terminal; the queue shows about 18 rows at this size


class FrameProbe:
    """Notes the time of each frame the app emits, and tells waiters when one shows what they wait for.

    Every frame goes through `App._display` on its way to the terminal. Headless, Textual computes the frame and
    skips the write; the probe encodes it to terminal bytes as the real driver would (`render_segments`), so a
    frame's time includes what a terminal frame costs. A condition is checked after each frame, at the frame's
    time: it holds for that frame because nothing runs between computing a frame and displaying it.
    """

    def __init__(self, app: ApprovalApp) -> None:
        self.app = app
        self.frames = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        original = app._display

        def display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            original(screen, renderable)
            if renderable is None:
                return
            encode = getattr(renderable, "render_segments", None)  # a CompositorUpdate: what the driver writes
            if encode is not None:
                encode(app.console)
            when = time.perf_counter()
            self.frames += 1
            for waiter in list(self._waiters):
                condition, future = waiter
                if future.done():
                    self._waiters.remove(waiter)
                elif condition():
                    future.set_result(when)
                    self._waiters.remove(waiter)

        app._display = display  # type: ignore[method-assign]

    def expect(self, condition: Callable[[], bool]) -> asyncio.Future[float]:
        """A future for the perf_counter time of the first frame from now on after which `condition()` holds."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, future))
        return future

    async def key_to_frame_ms(
        self, pilot: Pilot[Any], key: str, condition: Callable[[], bool], timeout: float = 2.0
    ) -> float | None:
        """Milliseconds from pressing `key` to the first frame after which `condition()` holds (None: none came)."""
        frame = self.expect(condition)
        pressed = time.perf_counter()
        await pilot.press(key)
        try:
            return (await asyncio.wait_for(frame, timeout=timeout) - pressed) * 1000
        except TimeoutError:
            return None


def key_for(app: ApprovalApp, wanted: Callable[[str], bool]) -> tuple[str, str] | None:
    """(key, action) of the first binding active on the top screen whose action name `wanted` accepts."""
    for key, active in app.screen.active_bindings.items():
        action = active.binding.action.rpartition(".")[2]
        if wanted(action):
            return key, action
    return None


def queue_of(app: ApprovalApp) -> QueueList | None:
    """The main screen's queue list, once it is composed."""
    try:
        return app.main.query_one(QueueList)
    except NoMatches:
        return None


def queue_lines(queue: QueueList) -> list[str]:
    """The text of the queue's visible lines as it paints them now (cached strips: cheap)."""
    return [queue.render_line(y).text for y in range(queue.size.height)]


def rows_painted(app: ApprovalApp) -> bool:
    """The queue's first line below its header shows the first row (the most urgent item, highlighted at start)."""
    queue = queue_of(app)
    row = None if queue is None else queue.highlighted
    return queue is not None and row is not None and row.action[:10] in queue.render_line(1).text


def interactive(app: ApprovalApp) -> bool:
    """Rows are painted and the queue has the focus: the next key moves the cursor or decides."""
    return rows_painted(app) and app.focused is queue_of(app)


def detail_follows_cursor(app: ApprovalApp) -> bool:
    """The detail shows the highlighted row's item (or both are empty): what a decision key would act on."""
    queue = queue_of(app)
    if queue is None:
        return False
    row, shown = queue.highlighted, app.main.shown
    if row is None or shown is None:
        return row is None and shown is None
    return (row.source, row.id) == (shown.source, shown.id)
