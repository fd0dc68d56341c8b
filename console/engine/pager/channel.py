"""One [[pager]]: its rate limit, its line of pages, and the task that posts them in order.

A slow or down webhook holds only its own line: pages wait in memory (up to QUEUE_LIMIT), each is retried with the
engine's backoff (or the server's Retry-After) up to MAX_ATTEMPTS, and every failure is logged by the pager's name and
host, never its full URL or secret. Nothing here raises into the caller.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import urlsplit

import httpx

from console.engine.backoff import Backoff
from console.engine.config import PagerConfig, token_fix
from console.engine.pager.pages import Page, ntfy_request, summary_page, webhook_request
from console.engine.secrets import Token

log = logging.getLogger(__name__)

PAGE_RETRY: Final = Backoff(base=1.0, cap=60.0)
MAX_ATTEMPTS: Final = 8  # about four minutes of retries; a page later than that is no use to anyone
QUEUE_LIMIT: Final = 200
WINDOW_SECONDS: Final = 60.0  # the rate limit's window: `per_minute` pages in any minute
_RETRYABLE: Final = frozenset({408, 425, 429})
_MAX_RETRY_AFTER: Final = 300.0


def authorization(config: PagerConfig, secret: Token | None) -> str | None:
    """The Authorization header for the pager's secret: a bearer token; for ntfy, `user:password` goes as Basic."""
    if secret is None:
        return None
    if config.kind == "ntfy" and ":" in secret.value:
        return "Basic " + base64.b64encode(secret.value.encode("utf-8")).decode("ascii")
    return f"Bearer {secret.value}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(_MAX_RETRY_AFTER, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return None


class PagerChannel:
    def __init__(
        self,
        config: PagerConfig,
        secret: Token | None,
        *,
        backoff: Backoff = PAGE_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.backoff = backoff
        self.clock = clock  # monotonic: the rate limit's minute
        self._authorization = authorization(config, secret)
        self._host = urlsplit(config.url).netloc  # what the log names: never the path (an ntfy topic) or the query
        self._admitted: deque[float] = deque()  # when each page of the last window was admitted
        self._held = 0  # pages over the limit since the last summary
        self._line: asyncio.Queue[Page] = asyncio.Queue(QUEUE_LIMIT)
        self._client: httpx.AsyncClient | None = None
        self.delivered: list[Page] = []  # posted and accepted, in order (the most recent QUEUE_LIMIT)
        self.failed = 0  # given up on: refused, or still failing after MAX_ATTEMPTS

    @property
    def name(self) -> str:
        return self.config.name

    def admit(self, pages: Sequence[Page]) -> list[Page]:
        """Line up `pages` within the rate limit. Over it, the last free place goes to a summary ("and K more")
        of every page held back; with no free place, pages are counted for the next summary. Returns what was lined
        up."""
        now = self.clock()
        while self._admitted and self._admitted[0] <= now - WINDOW_SECONDS:
            self._admitted.popleft()
        free = self.config.per_minute - len(self._admitted)
        if free <= 0:
            self._held += len(pages)
            return []
        if not self._held and len(pages) <= free:
            chosen = list(pages)
        else:
            chosen = list(pages[: free - 1])
            chosen.append(summary_page(self._held + len(pages) - len(chosen), self.config.per_minute))
            self._held = 0
        for page in chosen:
            self._admitted.append(now)
            try:
                self._line.put_nowait(page)
            except asyncio.QueueFull:
                log.error("pager %s: %d pages wait already; dropped: %s", self.name, QUEUE_LIMIT, page.title)
        return chosen

    async def run(self) -> None:
        """Post the pages in line, in order, until cancelled."""
        while True:
            page = await self._line.get()
            try:
                await self._deliver(page)
            except Exception:  # a bug must not end paging, nor the session beside it
                log.exception("pager %s: a page could not be posted", self.name)
                self.failed += 1

    async def _deliver(self, page: Page) -> None:
        body, headers = ntfy_request(page) if self.config.kind == "ntfy" else webhook_request(page)
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout, follow_redirects=False)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wait: float | None = None
            try:
                response = await self._client.post(self.config.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__} from {self._host}"
            else:
                if response.is_success:
                    self.delivered = [*self.delivered[-(QUEUE_LIMIT - 1) :], page]
                    return
                if response.status_code < 500 and response.status_code not in _RETRYABLE:
                    status = response.status_code
                    hint = f" (its secret: {token_fix(self.name)})" if status in (401, 403) else ""
                    log.error("pager %s: %s refused a page with HTTP %d%s", self.name, self._host, status, hint)
                    self.failed += 1
                    return
                problem = f"HTTP {response.status_code} from {self._host}"
                wait = _retry_after(response)
            if attempt == MAX_ATTEMPTS:
                break
            delay = self.backoff.delay(attempt) if wait is None else wait
            log.warning("pager %s: %s; trying again in %.1f s (attempt %d)", self.name, problem, delay, attempt)
            await asyncio.sleep(delay)
        log.error("pager %s: gave up on a page after %d attempts: %s", self.name, MAX_ATTEMPTS, page.title)
        self.failed += 1

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
