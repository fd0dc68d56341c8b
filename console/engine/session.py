"""A console session: the storage, sources, poller and sync engine for one config and data dir, wired together.

The app drives one; tests and headless tools can drive one without any UI.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from console.engine.config import Config
from console.engine.feedback import build_sink
from console.engine.feedback.base import FeedbackSink
from console.engine.feedback.pusher import FeedbackPusher
from console.engine.open_item import OpenItem
from console.engine.pager import Pager
from console.engine.poller import Poller
from console.engine.secrets import Token, get_token
from console.engine.sources import build_source
from console.engine.sources.base import ClaimingSource, ExtendAnswer, ExtendingSource, Source
from console.engine.sync import AUTH_HOLD, RESEND, SettledDecision, SyncEngine
from console.engine.views import check_views
from storage.db import DatabaseDamaged, DecisionRefused, StorageError, Store, Unsent, set_aside
from storage.errors import is_storage_failure, storage_error
from storage.lock import DataDirLock
from storage.queue import QueueView
from storage.records import (
    Decision,
    DecisionRow,
    Item,
    Quarantined,
    QueueGroup,
    QueueRow,
    SourceCounts,
    SourceHealth,
    SyncState,
    Verdict,
    item_digest,
    now_utc,
    second_approval_refusal,
)
from storage.safe_text import clean

log = logging.getLogger(__name__)
DB_NAME = "console.db"
LOG_NAME = "console.log"
_NOT_APPLIED = (SyncState.conflict, SyncState.failed)
CHECKING = "checking the database… decisions are held until its integrity check passes"
# A decision's write never checkpoints the WAL (it would sit in the key's path); the background connection does it
# this long after, when the decision's own work on screen is done and before the next key can come (REPEAT_GUARD).
CHECKPOINT_AFTER = 0.1


_T = TypeVar("_T")


class QueueRows:
    """The queue list's row provider: each call is one small SQL query, so 100k items cost what a screen costs.

    `view` (order, grouping, filter) is applied in SQL; set it, then refresh the list.
    """

    def __init__(self, store: Store, unreadable: Callable[[StorageError], None]) -> None:
        """`unreadable` hears of a read the database failed (damage the integrity check, run after the first paint,
        has not reported yet): the list then shows nothing rather than ending the app."""
        self._store = store
        self._unreadable = unreadable
        self.view = QueueView()

    def _read(self, read: Callable[[], _T], instead: _T) -> _T:
        try:
            return read()
        except sqlite3.Error as exc:
            if not is_storage_failure(exc):
                raise
            self._unreadable(storage_error(self._store.path, exc))
            return instead

    def count(self) -> int:
        return self._read(lambda: self._store.queue.count(self.view), 0)

    def rows(self, offset: int, limit: int) -> Sequence[QueueRow]:
        return self._read(lambda: self._store.queue.rows(offset, limit, self.view), [])

    def index_of(self, source: str, item_id: str) -> int | None:
        return self._read(lambda: self._store.queue.index_of(source, item_id, self.view), None)

    def groups(self) -> Sequence[QueueGroup]:
        return self._read(lambda: self._store.queue.groups(self.view), [])

    def visible_digests(self) -> list[tuple[str, str, str]]:
        """(source, id, digest) of every item the view holds: what "mark all" marks, in one query."""
        return self._read(lambda: self._store.queue.visible_digests(self.view), [])

    def pending_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The current digest of each of `keys` still pending (marks of items that left are dropped by it)."""
        return self._read(lambda: self._store.queue.pending_digests(keys), {})


class SessionEvents(Protocol):
    """What a session tells its observers, on the event loop. The app turns each into a Textual message."""

    def queue_changed(self, source: str) -> None:
        """Storage changed under the queue: a poll brought changes, or a claim's holder was learned."""

    def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
        """The sources answered these decisions for good (applied, conflict, failed)."""


@dataclass(frozen=True)
class OutcomeListener:
    """An observer that hears only outcomes (benchmarks and headless tools that count what was settled)."""

    listener: Callable[[Sequence[SettledDecision]], None]

    def queue_changed(self, source: str) -> None:
        pass

    def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
        self.listener(outcomes)


@dataclass(frozen=True)
class SyncBacklog:
    """What the status bar counts: decisions not yet confirmed by their source, and problems nobody has seen."""

    waiting: int
    unseen_problems: int


@dataclass(frozen=True)
class SendReport:
    """How sending the unsent decisions before quitting went."""

    total: int  # unsent when sending started
    unsent: list[Unsent]  # still unsent at the end
    blocked: dict[str, str]  # source -> why it takes no decisions now (down, refusing our token, busy)
    not_applied: tuple[DecisionRow, ...] = ()  # answered for good, but not applied (decided elsewhere, expired, ...)

    @property
    def sent(self) -> int:
        return self.total - len(self.unsent)


class SafeFormatter(logging.Formatter):
    """Log records as the screen shows text: server and agent text (in a message or its arguments) is cleaned of
    terminal escapes, C1 controls and bidi overrides, so `tail -f console.log` replays nothing into a terminal.

    A record is one line (a newline in server text cannot forge another record); a traceback keeps its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return clean(super().formatMessage(record), multiline=False)

    def formatException(self, ei: Any) -> str:
        return clean(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return clean(super().formatStack(stack_info))


def setup_logging(data_dir: Path) -> None:
    """A rotating log in the data dir, every record cleaned by SafeFormatter. Tokens never reach it: they live only in
    request headers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    path = data_dir / LOG_NAME
    if any(isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename) == path for h in root.handlers):
        return
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # httpx logs every request line at INFO; polling would drown the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _feedback_sinks(config: Config, token_for: Callable[[str], Token | None]) -> list[FeedbackSink]:
    """The [[feedback]] sinks; one whose SDK is not installed is left out, and the log says how to add it."""
    sinks: list[FeedbackSink] = []
    for sink in config.feedback:
        try:
            sinks.append(build_sink(sink, token_for(sink.name)))
        except ImportError as exc:
            log.error(
                "feedback sink %s needs the %s SDK: pip install 'approval-console[feedback]' (%s)",
                sink.name,
                sink.kind,
                exc.name,
            )
    return sinks


class Session:
    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        token_for: Callable[[str], Token | None] = get_token,
        start_clean: bool = False,
        check_later: bool = False,
    ) -> None:
        """Raises storage.db.StorageError: DataDirBusy when another console holds `data_dir`, DatabaseDamaged when
        the database is damaged (unless `start_clean`: then it is kept aside, see `set_aside_as`, and a new one made).

        `check_later`: the integrity check (its cost grows with the database) is left to `check_database`, which the
        app runs once its first frame is up; until it passes, decisions are refused and nothing is polled or sent. A
        file that is no database at all is still refused here. (With `start_clean` the check runs now: a damaged
        file is to be kept aside before anything else.)
        """
        check_views(config)  # a [[views]] filter the filter would refuse: ConfigError, before anything starts
        self.config = config
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        db_path = data_dir / DB_NAME
        self.lock = DataDirLock(data_dir)
        self.lock.acquire()
        self.set_aside_as: Path | None = None
        self.database_problem: str | None = None  # what the integrity check found wrong; decisions are refused
        self.database_checked = not check_later or start_clean  # the check passed: decisions may be recorded
        self._checking = asyncio.Lock()
        try:
            try:
                # Checked once per session (now, or after the first paint: `check_database`).
                self.store = Store(db_path, check=self.database_checked, checkpoints=False)
            except DatabaseDamaged as exc:
                if not start_clean:
                    raise
                self.set_aside_as = set_aside(db_path)
                log.warning("damaged database (%s) kept aside as %s; starting empty", exc.problem, self.set_aside_as)
                self.store = Store(db_path, check=True, checkpoints=False)
            # Two connections: the UI reads (and records decisions) while background work writes; WAL keeps them apart.
            self.background_store = Store(db_path, background=True)
        except BaseException:
            self.lock.release()
            raise
        self.sources: dict[str, Source] = {s.name: build_source(s, token_for(s.name)) for s in config.sources}
        self._observers: list[SessionEvents] = []
        self.poller = Poller(self.background_store, list(self.sources.values()), self._changed)
        self.sinks = _feedback_sinks(config, token_for)
        pusher = FeedbackPusher(self.background_store.feedback, self.sinks, backoff=RESEND, auth_hold=AUTH_HOLD)
        self.sync = SyncEngine(
            self.background_store,
            self.sources,
            self._outcomes,
            labels=self.background_store.labels,
            feedback=pusher if self.sinks else None,
        )
        self.queue = QueueRows(self.store, self._queue_unreadable)
        self.open_item = OpenItem(self.claim, self.release)
        # Paging (off unless [[pager]] blocks say where): reads on the background connection, beside the poller.
        self.pager: Pager | None = None
        if config.pager:
            store = self.background_store
            self.pager = Pager(
                config.pager,
                store.queue,
                store.items.get,
                token_for,
                started_at=time.time(),
                deadline_window=config.deadline_window,
            )
            self.subscribe(self.pager)
        self._ui_wrote = asyncio.Event()  # the UI's connection committed: the background one checkpoints soon

    def subscribe(self, observer: SessionEvents) -> None:
        """`observer` hears of every change from now on (the app subscribes once, at construction)."""
        self._observers.append(observer)

    def on_outcomes(self, listener: Callable[[Sequence[SettledDecision]], None]) -> None:
        """`listener` hears of settled decisions only."""
        self.subscribe(OutcomeListener(listener))

    def _changed(self, source: str) -> None:
        for observer in self._observers:
            observer.queue_changed(source)

    def _outcomes(self, outcomes: Sequence[SettledDecision]) -> None:
        for observer in self._observers:
            observer.outcomes_settled(outcomes)

    # ------------------------------------------------------------ what the screens read
    @property
    def store_path(self) -> Path:
        """The database file (screens that page through history open it read-only, on a connection of their own)."""
        return self.store.path

    def health(self) -> Mapping[str, SourceHealth]:
        """Each source's health by name: a live, read-only view (it follows the poller without being asked again)."""
        return MappingProxyType(self.poller.health)

    def item(self, source: str, item_id: str) -> tuple[Item, str] | None:
        """The item as stored, and its local state (pending, decided or removed); None if never listed."""
        return self.store.items.get(source, item_id)

    def removed_reason(self, source: str, item_id: str) -> str | None:
        """Why the item left the queue (decided, expired, withdrawn, superseded, gone), or None if it has not."""
        return self.store.items.removed_reason(source, item_id)

    def pending_count(self) -> int:
        """Pending items in the whole queue, whatever the view's filter."""
        return self.store.queue.count()

    def backlog(self) -> SyncBacklog:
        outbox = self.store.outbox
        return SyncBacklog(waiting=outbox.waiting_count(), unseen_problems=outbox.unseen_problem_count())

    def new_urgent(self, since: float, ranks: int = 2) -> list[QueueRow]:
        """Pending items of the top `ranks` risks (2: high and critical) first seen after `since`."""
        return self.store.queue.new_urgent(since, ranks)

    def deadlines_between(self, after: float, until: float) -> list[QueueRow]:
        """Pending items whose deadline falls after `after` and before `until` (soonest first)."""
        return self.store.queue.deadlines_between(after, until)

    def unseen_problems(self) -> list[DecisionRow]:
        """Decisions the sources did not apply (conflict, failed) that nobody has acknowledged."""
        return self.store.outbox.unseen_problems()

    def quarantined(self) -> list[Quarantined]:
        """Malformed items set aside, not yet acknowledged."""
        return self.store.quarantine.rows(unacknowledged=True)

    def problems(self) -> tuple[list[DecisionRow], list[Quarantined]]:
        """Every conflict and failure and every quarantined item, acknowledged or not (each row says which)."""
        return self.store.outbox.problems(), self.store.quarantine.rows()

    def source_counts(self) -> Mapping[str, SourceCounts]:
        """Per source: pending, quarantined (and not yet acknowledged), decisions not yet synced."""
        return self.store.source_counts.counts()

    def acknowledge(self, decision_ids: Sequence[str] = (), quarantined: Sequence[tuple[str, str]] = ()) -> None:
        """The operator has seen these problems: decisions by id, quarantined items by (source, item id)."""
        if decision_ids:
            self.store.outbox.mark_seen(decision_ids)
        if quarantined:
            self.store.quarantine.acknowledge(quarantined)
            self.poller.recount_quarantined()
        self._ui_wrote.set()

    def _queue_unreadable(self, error: StorageError) -> None:
        """A queue read failed: damage is what the integrity check would say (decisions are refused from now on)."""
        if self.database_problem is None and isinstance(error, DatabaseDamaged):
            self.database_checked = False
            self.database_problem = str(error)
            log.error("%s", self.database_problem)

    async def check_database(self) -> None:
        """Run the integrity check left for later, once, in a thread on a connection of its own (the UI's stays free).

        Sets `database_checked` when it passes, `database_problem` when it does not.
        """
        async with self._checking:
            if self.database_checked or self.database_problem is not None:
                return
            self.database_problem = await asyncio.to_thread(self._integrity_problem)
            self.database_checked = self.database_problem is None
            if self.database_problem is not None:
                log.error("%s", self.database_problem)

    def _integrity_problem(self) -> str | None:
        try:
            Store(self.store.path, readonly=True, check=True).close()
        except StorageError as exc:
            return str(exc)
        return None

    async def run(self) -> None:
        """Poll, sync, page and checkpoint until cancelled; on a database that fails its integrity check, none."""
        await self.check_database()
        if self.database_checked:
            pager = [self.pager.run()] if self.pager else []
            await asyncio.gather(self.poller.run(), self.sync.run(), self._checkpoints(), *pager)

    async def _checkpoints(self) -> None:
        """What the UI's connection writes is checkpointed here, in a thread, on the background connection."""
        while True:
            await self._ui_wrote.wait()
            await asyncio.sleep(CHECKPOINT_AFTER)
            self._ui_wrote.clear()
            await asyncio.to_thread(self.background_store.checkpoint)

    async def poll_once(self) -> None:
        """Poll every source once (tests and one-shot tools); observers hear of changes as in `run`."""
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

        Raises storage.db.DecisionRefused when that version is no longer pending here, or while the database has not
        passed its integrity check.
        """
        if not self.database_checked:
            raise DecisionRefused(self.database_problem or CHECKING)
        if not item.allows(verdict):
            raise ValueError(f"{verdict.value} is not allowed for this item")
        twice = second_approval_refusal(item, self.config.operator, verdict)
        if twice is not None:  # one person never counts twice: refused here, before anything is recorded or sent
            raise DecisionRefused(twice)
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
        self.store.outbox.record(decision, hold_seconds=self.config.undo_seconds, first_shown_at=first_shown_at)
        self._ui_wrote.set()
        self.sync.kick()
        return decision

    async def mark_shown(self, item: Item, when: datetime) -> None:
        """The operator has this version of `item` on screen for the first time: kept durably, so the label of an
        expiry (which the poller records, not the screen) knows the item was shown."""
        await self.check_database()  # nothing is written to a database before it passed its check
        if not self.database_checked:
            return
        # On the background connection, in a thread: a write waiting for the lock must never hold up a key press.
        await asyncio.to_thread(
            self.background_store.items.mark_shown, item.source, item.id, item.digest, when.timestamp()
        )

    def undo(self, decision_id: str) -> Decision:
        """Take back a decision still in its undo window (raises storage.db.UndoRefused once it is being sent)."""
        decision = self.store.outbox.undo(decision_id, self.config.operator)
        self._ui_wrote.set()
        self.sync.kick()
        return decision

    def unsent(self) -> list[Unsent]:
        """Decisions the sources have not confirmed yet (in the undo window, waiting for a retry, being sent)."""
        return self.store.outbox.unsent()

    async def send_unsent(
        self, bound: float, progress: Callable[[SendReport], None] | None = None, *, poll: float = 0.1
    ) -> SendReport:
        """End the undo window (and any retry wait) of every unsent decision and wait while the sync engine sends them.

        Needs `run()` going (the app's background work does it). Returns when none is left, when every one left was
        tried and came back for a retry (its source is down, refusing our token or busy: waiting longer would not
        help), or after `bound` seconds. `progress` hears each look.
        """
        # Off the event loop: the write may wait for the background connection's, and the UI keeps drawing meanwhile.
        tried_before = {u.decision_id: u.attempts for u in await asyncio.to_thread(self.store.outbox.unsent)}
        total = len(tried_before)
        await asyncio.to_thread(self.store.outbox.send_unsent_now)
        self.sync.kick()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while True:
            left = await asyncio.to_thread(self.store.outbox.unsent)
            blocked = self._blocked(left, tried_before)
            report = SendReport(total, left, blocked)
            if progress is not None:
                progress(report)
            if not left or all(u.source in blocked for u in left) or loop.time() >= deadline:
                answered = tried_before.keys() - {u.decision_id for u in left}
                problems = await asyncio.to_thread(self.store.outbox.decisions, 200 + total, problems_only=True)
                refused = tuple(p for p in problems if p.decision.id in answered and p.sync_state in _NOT_APPLIED)
                return SendReport(total, left, blocked, refused)
            await asyncio.sleep(poll)

    def _blocked(self, left: Sequence[Unsent], tried_before: dict[str, int]) -> dict[str, str]:
        """Sources of `left` that answered this round without taking the decision, with why."""
        now = time.time()
        blocked: dict[str, str] = {}
        for unsent in left:
            if unsent.source not in self.sources:
                blocked[unsent.source] = "the source is no longer in the config"
            elif unsent.source in self.sync.held:  # refused our credentials: not asked again for a while
                blocked[unsent.source] = unsent.detail or "the source refused our credentials"
            elif unsent.attempts > tried_before.get(unsent.decision_id, 0) and unsent.next_attempt_at > now:
                blocked.setdefault(unsent.source, unsent.detail or "no final answer")
        return blocked

    async def claim(self, item: Item) -> str | None:
        """Claim the item at its source, where the source supports claims; returns who holds it if not us.

        A claim is advisory (PROTOCOL.md section 5): failing to claim never stops the operator from deciding.
        """
        source = self.sources.get(item.source)
        if not isinstance(source, ClaimingSource):
            return None
        if item.approved_by(self.config.operator) is not None:
            return None  # a two-person item this operator approved: a claim would only warn off the second approver
        holder = await source.claim(item.id, self.config.operator)
        if holder is not None and holder != item.claimed_by:
            # On the background connection: a thread waiting there for the write lock must not hold the UI's.
            await asyncio.to_thread(self.background_store.items.set_claim, item.source, item.id, holder)
            self._changed(item.source)
        return None if holder in (None, self.config.operator) else holder

    async def release(self, item: Item) -> None:
        source = self.sources.get(item.source)
        if isinstance(source, ClaimingSource):
            await source.release(item.id, self.config.operator)

    async def extend(self, item: Item, seconds: int) -> ExtendAnswer:
        """Ask the item's source for `seconds` more before its deadline (PROTOCOL.md section 10); the new version it
        answers with is stored (with an audit record) before this returns, so the screen can show it at once."""
        source = self.sources.get(item.source)
        if not isinstance(source, ExtendingSource):
            kind = source.config.kind if source is not None else "unknown"
            return ExtendAnswer(None, f"{item.source} ({kind}) cannot extend deadlines")
        if not 0 < seconds <= item.extendable_seconds:
            return ExtendAnswer(None, f"the source allows at most {item.extendable_seconds} more seconds for this item")
        if not self.database_checked:
            return ExtendAnswer(None, self.database_problem or CHECKING)
        answer = await source.extend(item, seconds, self.config.operator)
        if answer.item is not None:
            await asyncio.to_thread(
                self.background_store.items.record_extension,
                answer.item,
                previous_digest=item.digest,
                operator=self.config.operator,
                seconds=seconds,
            )
            self._changed(item.source)
        return answer

    def set_open_item(self, item: Item | None) -> None:
        """The operator has `item` open: claim it (and renew the claim while it stays open), release the one before.
        None: nothing is open (the last claim is kept, not renewed). Call on the event loop."""
        self.open_item.set(item)

    async def aclose(self) -> None:
        await self.open_item.aclose()
        if self.pager is not None:
            await self.pager.aclose()
        for source in self.sources.values():
            await source.aclose()
        for sink in self.sinks:
            await asyncio.to_thread(sink.close)
        self.store.close()
        self.background_store.close()
        self.lock.release()
