"""Paging the operator when away: new urgent items and close deadlines posted to webhooks (README "Paging").

The session runs a `Pager` beside the poller when the config has [[pager]] blocks. It looks after every change the
poller reports and once every TICK_SECONDS (deadlines come closer by themselves), with the engine's urgency watch
(console/engine/urgency.py, shared with the app's alerts), one per pager: each pager says each item once. Reads run
in a thread on the background connection, posts in each pager's own task: a slow webhook never holds the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from console.engine.config import DEFAULT_DEADLINE_WARNING, PagerConfig
from console.engine.pager.channel import PagerChannel
from console.engine.pager.pages import Page, item_page
from console.engine.secrets import Token
from console.engine.sync import SettledDecision
from console.engine.urgency import UrgencyReads, UrgencyWatch
from storage.records import Item, QueueRow, Risk

log = logging.getLogger(__name__)

TICK_SECONDS: Final = 1.0


@dataclass
class _Watched:
    channel: PagerChannel
    watch: UrgencyWatch


class Pager:
    def __init__(
        self,
        configs: Sequence[PagerConfig],
        reads: UrgencyReads,
        item: Callable[[str, str], tuple[Item, str] | None],
        secret_for: Callable[[str], Token | None],
        *,
        started_at: float,
        clock: Callable[[], float] = time.time,
        deadline_window: float = DEFAULT_DEADLINE_WARNING,
    ) -> None:
        """`reads` and `item` are storage reads (run in a thread here); `started_at`: items first seen before it are
        not new; `deadline_window`: the config's deadline_warning, for pagers without a deadline_seconds of their
        own."""
        self._reads = reads
        self._item = item
        self._clock = clock
        self.pagers = [
            _Watched(
                PagerChannel(config, secret_for(config.name)),
                UrgencyWatch(
                    started_at,
                    deadline_window if config.deadline_seconds is None else config.deadline_seconds,
                    [Risk(r) for r in config.risks],
                ),
            )
            for config in configs
        ]
        self._wake = asyncio.Event()

    @property
    def channels(self) -> list[PagerChannel]:
        return [p.channel for p in self.pagers]

    # SessionEvents: a change in the queue is a reason to look now.
    def queue_changed(self, source: str) -> None:
        self._wake.set()

    def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
        pass

    async def look(self) -> list[Page]:
        """Find what is worth a page for each pager and line it up; returns the pages lined up."""
        now = self._clock()
        lined_up: list[Page] = []
        for pager in self.pagers:
            pages = await asyncio.to_thread(self._pages, pager, now)
            lined_up += pager.channel.admit(pages)
        return lined_up

    def _pages(self, pager: _Watched, now: float) -> list[Page]:
        include = pager.channel.config.include

        def item(row: QueueRow) -> Item | None:  # read only when the page is to carry some of it
            found = self._item(row.source, row.id) if include else None
            return found[0] if found else None

        new = [item_page("new_item", r, now, item(r), include) for r in pager.watch.new_items(self._reads, now)]
        due = [item_page("deadline", r, now, item(r), include) for r in pager.watch.deadlines(self._reads, now)]
        return new + due

    async def run(self) -> None:
        """Look and post until cancelled. Nothing here ends the session: a failed look is logged and tried again."""
        posting = [asyncio.create_task(c.run(), name=f"pager-{c.name}") for c in self.channels]
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
                self._wake.clear()
                try:
                    await self.look()
                except Exception:
                    log.exception("paging: looking for urgent items failed; trying again")
        finally:
            for task in posting:
                task.cancel()
            await asyncio.gather(*posting, return_exceptions=True)

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.aclose()
