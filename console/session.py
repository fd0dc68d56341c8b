"""A console session: the storage, sources, poller and sync engine for one config and data dir, wired together.

The app drives one; tests and headless tools can drive one without any UI.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from console.config import Config
from console.poller import Poller
from console.secrets import Token, get_token
from console.sources import build_source
from console.sources.base import ClaimingSource, Source
from console.sync import Outcome, SyncEngine
from storage.db import DatabaseDamaged, Store, set_aside
from storage.lock import DataDirLock
from storage.queue import QueueView
from storage.records import Decision, Item, QueueRow, Verdict, item_digest, now_utc

log = logging.getLogger(__name__)
DB_NAME = "console.db"
LOG_NAME = "console.log"


class QueueRows:
    """The queue list's row provider: each call is one small SQL query, so 100k items cost what a screen costs.

    `view` (order, grouping, filter) is applied in SQL; set it, then refresh the list.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.view = QueueView()

    def count(self) -> int:
        return self._store.queue_count(self.view)

    def rows(self, offset: int, limit: int) -> Sequence[QueueRow]:
        return self._store.queue_rows(offset, limit, self.view)

    def index_of(self, source: str, item_id: str) -> int | None:
        return self._store.queue_index_of(source, item_id, self.view)

    def groups(self) -> Sequence[tuple[str, int]]:
        return self._store.queue_groups(self.view)


def setup_logging(data_dir: Path) -> None:
    """A rotating log in the data dir. Tokens never reach it: they live only in request headers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    path = data_dir / LOG_NAME
    if any(isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # httpx logs every request line at INFO; polling would drown the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class Session:
    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        token_for: Callable[[str], Token | None] = get_token,
        start_clean: bool = False,
    ) -> None:
        """Raises storage.db.StorageError: DataDirBusy when another console holds `data_dir`, DatabaseDamaged when
        the database is damaged (unless `start_clean`: then it is kept aside, see `set_aside_as`, and a new one made).
        """
        self.config = config
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        db_path = data_dir / DB_NAME
        self.lock = DataDirLock(data_dir)
        self.lock.acquire()
        self.set_aside_as: Path | None = None
        try:
            try:
                # Checked once per session: a damaged file is reported before anything is shown or sent.
                self.store = Store(db_path, check=True)
            except DatabaseDamaged as exc:
                if not start_clean:
                    raise
                self.set_aside_as = set_aside(db_path)
                log.warning("damaged database (%s) kept aside as %s; starting empty", exc.problem, self.set_aside_as)
                self.store = Store(db_path, check=True)
            # Two connections: the UI reads (and records decisions) while background work writes; WAL keeps them apart.
            self.background_store = Store(db_path, background=True)
        except BaseException:
            self.lock.release()
            raise
        self.sources: dict[str, Source] = {s.name: build_source(s, token_for(s.name)) for s in config.sources}
        self._change_listeners: list[Callable[[str], None]] = []
        self._outcome_listeners: list[Callable[[Sequence[Outcome]], None]] = []
        self.poller = Poller(self.background_store, list(self.sources.values()), self._changed)
        self.sync = SyncEngine(self.background_store, self.sources, self._outcomes, labels=self.background_store.labels)
        self.queue = QueueRows(self.store)

    def on_change(self, listener: Callable[[str], None]) -> None:
        self._change_listeners.append(listener)

    def on_outcomes(self, listener: Callable[[Sequence[Outcome]], None]) -> None:
        self._outcome_listeners.append(listener)

    def _changed(self, source: str) -> None:
        for listener in self._change_listeners:
            listener(source)

    def _outcomes(self, outcomes: Sequence[Outcome]) -> None:
        for listener in self._outcome_listeners:
            listener(outcomes)

    async def run(self) -> None:
        """Poll and sync until cancelled."""
        await asyncio.gather(self.poller.run(), self.sync.run())

    async def poll_once(self) -> None:
        """Poll every source once (tests and one-shot tools); listeners hear of changes as in `run`."""
        for source in self.sources.values():
            if await self.poller.poll_once(source):
                self._changed(source.config.name)

    async def sync_once(self) -> int:
        """Send one batch of due decisions; returns how many were sent."""
        return await self.sync.drain_once()

    def decide(
        self,
        item: Item,
        verdict: Verdict,
        *,
        edited: Any = None,
        reason_code: str | None = None,
        comment: str = "",
        first_shown_at: datetime | None = None,
    ) -> Decision:
        """Record a decision on exactly the version of `item` the operator saw, durably, then wake the sync.

        Raises storage.db.DecisionRefused when that version is no longer pending here.
        """
        if not item.allows(verdict):
            raise ValueError(f"{verdict.value} is not allowed for this item")
        decision = Decision(
            id=str(uuid.uuid4()),
            source=item.source,
            item_id=item.id,
            item_digest=item.digest,
            verdict=verdict,
            edited=edited if verdict is Verdict.edit else None,
            edited_digest=item_digest(edited) if verdict is Verdict.edit else None,
            reason_code=reason_code,
            comment=comment,
            operator=self.config.operator,
            decided_at=now_utc(),
        )
        self.store.record_decision(decision, hold_seconds=self.config.undo_seconds, first_shown_at=first_shown_at)
        self.sync.kick()
        return decision

    def undo(self, decision_id: str) -> Decision:
        """Take back a decision still in its undo window (raises storage.db.UndoRefused once it is being sent)."""
        decision = self.store.undo(decision_id, self.config.operator)
        self.sync.kick()
        return decision

    async def claim(self, item: Item) -> str | None:
        """Claim the item at its source, where the source supports claims; returns who holds it if not us.

        A claim is advisory (PROTOCOL.md section 5): failing to claim never stops the operator from deciding.
        """
        source = self.sources.get(item.source)
        if not isinstance(source, ClaimingSource):
            return None
        holder = await source.claim(item.id, self.config.operator)
        if holder is not None and holder != item.claimed_by:
            # On the background connection: a thread waiting there for the write lock must not hold the UI's.
            await asyncio.to_thread(self.background_store.set_claim, item.source, item.id, holder)
            self._changed(item.source)
        return None if holder in (None, self.config.operator) else holder

    async def release(self, item: Item) -> None:
        source = self.sources.get(item.source)
        if isinstance(source, ClaimingSource):
            await source.release(item.id, self.config.operator)

    async def aclose(self) -> None:
        for source in self.sources.values():
            await source.aclose()
        self.store.close()
        self.background_store.close()
        self.lock.release()
