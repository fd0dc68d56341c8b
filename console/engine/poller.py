"""Polls each source and writes what it lists into storage. Sources fetch and translate; this stores."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from console.engine.backoff import Backoff
from console.engine.sources.base import Page, PagingSource, Source, SourceError
from storage.db import Store
from storage.records import SourceHealth

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0
LONG_POLL_FLOOR = 0.05  # seconds between long-polls that brought a change (or waited their whole time)
# Items per write transaction. WAL has one writer: a decision's commit on the UI connection waits for the background
# transaction in progress (storage.connection._WriteGate), so a page is stored in short ones.
STORE_CHUNK = 100


class Poller:
    """One loop per source. `on_change` is called (on the event loop) after a page changed what storage holds."""

    def __init__(self, store: Store, sources: list[Source], on_change: Callable[[str], None]) -> None:
        self.store = store
        self.sources = sources
        self.on_change = on_change
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # between failed polls; tests simulate time
        # The status bar's "N malformed" counts what still waits for the operator: an acknowledged item stops counting.
        counts = store.quarantine.counts(unacknowledged=True)
        self.health: dict[str, SourceHealth] = {
            s.config.name: SourceHealth(name=s.config.name, quarantined=counts.get(s.config.name, 0)) for s in sources
        }
        self._cursor_refused: set[str] = set()  # sources whose refused cursor was logged (once each)

    async def run(self) -> None:
        await asyncio.gather(*(self._run_source(source) for source in self.sources))

    async def _run_source(self, source: Source) -> None:
        name = source.config.name
        failures = 0
        while True:
            started = time.monotonic()
            try:
                changed = await self.poll_once(source)
            except SourceError as exc:
                failures += 1
                state = "auth" if exc.auth else "throttled" if exc.throttled else "down"
                self._set_health(name, state=state, last_poll_at=time.time(), error=str(exc))
                log.warning("poll %s failed (%s): %s", name, state, exc)
                # The server's pace (already clamped) when it gave one: never sooner than it asked.
                wait = exc.retry_after if exc.retry_after is not None else _backoff(source).delay(failures + 1)
                self._set_health(name, next_retry_at=time.time() + wait)
                await self.sleep(wait)
                continue
            except Exception as exc:  # never let one source take down polling of the others
                failures += 1
                log.exception("poll %s crashed", name)
                wait = _backoff(source).ceiling(failures + 1)
                now = time.time()
                self._set_health(
                    name, state="down", last_poll_at=now, error=f"internal error: {exc}", next_retry_at=now + wait
                )
                await asyncio.sleep(wait)
                continue
            if failures:
                log.info("poll %s: up again after %d failed poll(s)", name, failures)
            failures = 0
            if changed:
                log.info("poll %s: the queue changed", name)
                self.on_change(name)
            # A long-poll that brought a change, or waited its whole time at the server: ask again at once (a short
            # floor guards against a server that answers instantly). One that answered early with nothing new comes
            # from a server that ignores `wait` (R11): keep to the poll interval then, as without long-poll.
            elapsed = time.monotonic() - started
            waited = source.long_polls and (changed or elapsed >= source.config.long_poll)
            pause = LONG_POLL_FLOOR if waited else source.config.poll_interval
            if elapsed < pause:
                await asyncio.sleep(pause - elapsed)

    async def poll_once(self, source: Source) -> bool:
        """Fetch until the source has nothing more; store each page (`on_change` hears of each but the last, which
        the caller tells of). True if storage changed."""
        name = source.config.name
        cursor = await asyncio.to_thread(self.store.items.cursor, name)
        snapshot = None
        if cursor is None:
            snapshot = await asyncio.to_thread(self.store.items.begin_snapshot, name)
        changed = False
        # A paging source hands out each page as it reads it: stored (and shown) before the next one is asked for.
        paging = source if isinstance(source, PagingSource) else None
        stream = paging.pages(cursor) if paging is not None else None
        try:
            while True:
                page = await (anext(stream) if stream is not None else source.fetch(cursor))
                if page.reset:
                    log.info("source %s: cursor expired, listing everything again", name)
                    snapshot = await asyncio.to_thread(self.store.items.begin_snapshot, name)
                    cursor = None
                    if paging is not None and stream is not None:
                        await stream.aclose()
                        stream = paging.pages(None)
                    continue
                stored = await asyncio.to_thread(self._store_page, name, page, snapshot)
                if stored and page.has_more:  # shown now, not after the last page (the caller tells of the last)
                    self.on_change(name)
                changed |= stored
                cursor = page.cursor
                if page.cursor_refused:
                    if name not in self._cursor_refused:
                        self._cursor_refused.add(name)
                        log.warning("source %s: %s was not kept; listing afresh next time", name, page.cursor_refused)
                    if page.has_more:
                        snapshot = None  # an unfinished snapshot drops nothing; the next poll starts a new one
                    break
                if not page.has_more:
                    break
        finally:
            if stream is not None:
                await stream.aclose()
        if snapshot is not None:
            changed |= await asyncio.to_thread(self.store.items.end_snapshot, name, snapshot, cursor) > 0
        now = time.time()
        self._set_health(name, state="up", last_poll_at=now, last_ok_at=now, error="", next_retry_at=None)
        return changed

    def _store_page(self, name: str, page: Page, snapshot: int | None) -> bool:
        for rejected in page.rejected:
            log.warning("source %s: quarantined item %s: %s", name, rejected.item_id, rejected.reason)
            self.store.quarantine.add(name, rejected.item_id, rejected.reason, rejected.excerpt)
        # The page's cursor is kept only with its last chunk: after a crash in between, the page is listed again, and
        # the chunks already stored are the same versions (kept as they are).
        kept = None if snapshot is not None else self.store.items.cursor(name)
        changed = False
        chunks = range(0, max(len(page.items), 1), STORE_CHUNK)
        for start in chunks:
            last = start == chunks[-1]
            summary = self.store.items.apply_changes(
                name,
                page.items[start : start + STORE_CHUNK],
                page.removed if last else [],
                page.cursor if last else kept,
                snapshot,
            )
            changed |= bool(summary.added or summary.changed or summary.removed)
        known = self.health[name].quarantined
        if page.rejected:
            self._set_health(name, quarantined=self.store.quarantine.counts(unacknowledged=True).get(name, 0))
        # An item quarantined again is nothing new (R11: a server repeating it is not asked again at once).
        return changed or self.health[name].quarantined != known

    def recount_quarantined(self) -> None:
        """After the operator acknowledged quarantined items: the health's counts follow at once."""
        counts = self.store.quarantine.counts(unacknowledged=True)
        for name in self.health:
            self._set_health(name, quarantined=counts.get(name, 0))

    def _set_health(self, name: str, **changes: object) -> None:
        self.health[name] = self.health[name].model_copy(update=changes)


def _backoff(source: Source) -> Backoff:
    """A failing source is polled at doubling intervals (up to 64 times its own), a fifth of each wait random."""
    return Backoff(source.config.poll_interval, MAX_BACKOFF, spread=0.2, max_exponent=6)
