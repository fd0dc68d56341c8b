"""Polling a real engine's source adapter until a listing shows what a test waits for: engines list a new request,
and let go of an answered one, a little after it happens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from console.engine.sources.base import Page, Source
from storage.db import Removal

Found = TypeVar("Found")


async def polled_until(
    source: Source,
    cursor: str | None,
    find: Callable[[Page], list[Found]],
    *,
    attempts: int,
    pause: float,
    never: str,
) -> tuple[Found, str | None]:
    """The first thing `find` finds in a page of polls from `cursor` on, and the cursor to poll on with; `never` is the
    failure after `attempts` polls `pause` seconds apart."""
    for _ in range(attempts):
        page = await source.fetch(cursor)
        cursor = page.cursor
        found = find(page)
        if found:
            return found[0], cursor
        await asyncio.sleep(pause)
    raise AssertionError(never)


async def removal_of(source: Source, cursor: str | None, item_id: str, *, attempts: int, pause: float) -> Removal:
    """How the item left the queue, as the next polls report it."""
    gone, _ = await polled_until(
        source,
        cursor,
        lambda page: [r for r in page.removed if r.item_id == item_id],
        attempts=attempts,
        pause=pause,
        never=f"{item_id} was never removed",
    )
    return gone
