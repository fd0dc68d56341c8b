"""The item this operator has open: claimed at its source while it is open, let go of when another one opens.

Claims are advisory leases (PROTOCOL.md section 5): the claim is renewed every `renew_seconds` while the item stays
open, so it does not lapse under an operator who is still reading. Best effort throughout: a claim that fails never
stops the operator from deciding, and nothing here raises into the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from storage.records import Item

log = logging.getLogger(__name__)

CLAIM_RENEW_SECONDS = 30.0  # the fleet's leases last longer; a renewal lost to a slow network leaves time for the next


class OpenItem:
    """Which item is open, and the one task that claims it, renews the claim and releases the item left."""

    def __init__(
        self,
        claim: Callable[[Item], Awaitable[object]],
        release: Callable[[Item], Awaitable[None]],
        renew_seconds: float = CLAIM_RENEW_SECONDS,
    ) -> None:
        self._claim = claim
        self._release = release
        self.renew_seconds = renew_seconds
        self.item: Item | None = None  # the version shown: renewals claim this one
        self._claimed: Item | None = None  # the item our claim is on (kept while nothing is shown)
        self._task: asyncio.Task[None] | None = None

    def set(self, item: Item | None) -> None:
        """The operator now has `item` open (None: nothing is shown; the last claim is kept, not renewed).

        Opening another item claims it and releases the one before; a new version of the same item renews nothing
        early (its next renewal claims that version). Call on the event loop.
        """
        self.item = item
        if item is None:
            self._stop()
            return
        claimed = self._claimed
        same = claimed is not None and (claimed.source, claimed.id) == (item.source, item.id)
        if same and self._task is not None and not self._task.done():
            return
        self._stop()
        self._claimed = item
        self._task = asyncio.get_running_loop().create_task(
            self._hold(None if same else claimed, claim_now=not same), name="claim-open-item"
        )

    async def _hold(self, previous: Item | None, *, claim_now: bool) -> None:
        if previous is not None:
            await self._best_effort(self._release, previous)
        if not claim_now:
            await asyncio.sleep(self.renew_seconds)
        while (item := self.item) is not None:
            await self._best_effort(self._claim, item)
            await asyncio.sleep(self.renew_seconds)

    async def _best_effort(self, call: Callable[[Item], Awaitable[object]], item: Item) -> None:
        try:
            await call(item)
        except Exception:  # advisory: never into the operator's way; the next renewal tries again
            log.exception("claim or release of %s/%s failed", item.source, item.id)

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def aclose(self) -> None:
        """Stop renewing (the session is closing; the sources' leases lapse by themselves)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
