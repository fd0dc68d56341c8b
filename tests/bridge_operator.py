"""A real console deciding what the bridges post: a Session (poller, storage, sync engine) polling `serve` as a native
source with an operator token, deciding the next pending item the moment it is listed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import Session
from storage.records import Item, Verdict
from tests.queue_servers import OPERATOR, fixed_token

SOURCE = "serve"


class Operator:
    """The operator alice's console on `url`; `decide_next` decides the next pending item it has not decided yet."""

    def __init__(self, url: str, data_dir: Path, *, long_poll: float = 2.0) -> None:
        token = Token(fixed_token("operator", OPERATOR), "environment")
        source = SourceConfig(name=SOURCE, url=url, poll_interval=0.05, long_poll=long_poll)
        config = Config(operator=OPERATOR, sources=(source,), undo_seconds=0)
        self.session = Session(config, data_dir, token_for=lambda _name: token)
        self.decided: set[str] = set()

    async def aclose(self) -> None:
        await self.session.aclose()

    async def next_pending(self, timeout: float = 20.0) -> Item:
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while loop.time() < until:
            await self.session.poll_once()
            for row in self.session.queue.rows(0, 100):
                found = self.session.store.items.get(row.source, row.id)
                if row.id not in self.decided and found is not None and found[1] == "pending":
                    return found[0]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no new pending item in the console within {timeout:g} s")

    async def decide_next(
        self, verdict: Verdict, *, edited: Any = None, reason_code: str | None = None, comment: str = ""
    ) -> Item:
        """Decide the next pending item as soon as it is listed, then send the decision; returns the item decided."""
        item = await self.next_pending()
        await self.decide(item, verdict, edited=edited, reason_code=reason_code, comment=comment)
        return item

    async def decide(
        self, item: Item, verdict: Verdict, *, edited: Any = None, reason_code: str | None = None, comment: str = ""
    ) -> None:
        """Record the decision in the console and send it until the server has answered."""
        self.decided.add(item.id)
        self.session.decide(item, verdict, edited=edited, reason_code=reason_code, comment=comment)
        while self.session.store.outbox.waiting_count():
            await self.session.sync_once()
            if self.session.store.outbox.waiting_count():
                await asyncio.sleep(0.005)
