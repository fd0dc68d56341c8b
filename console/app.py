"""The Textual app: one main screen over a Session, with polling and sync running as background workers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from textual.app import App
from textual.message import Message

from console.screens.main import MainScreen
from console.session import Session
from console.sync import Outcome
from storage.records import SyncState
from widgets.safe_text import clean

log = logging.getLogger(__name__)


class QueueChanged(Message):
    """Storage changed under the queue. Repeats waiting in the message queue collapse into one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueChanged)


class OutcomesArrived(Message):
    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        super().__init__()
        self.outcomes = outcomes


class ApprovalApp(App[None]):
    TITLE = "approval-console"
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, session: Session, *, now: Callable[[], float] = time.time, background: bool = True) -> None:
        super().__init__()
        self.session = session
        self._now = now
        self._background = background
        self.main = MainScreen(session, now=now)
        session.on_change(self._source_changed)
        session.on_outcomes(self._outcomes)

    def _source_changed(self, _source: str) -> None:
        self.post_message(QueueChanged())

    def _outcomes(self, outcomes: Sequence[Outcome]) -> None:
        self.post_message(OutcomesArrived(outcomes))

    def on_mount(self) -> None:
        self.push_screen(self.main)
        if self._background:
            self.run_worker(self.session.run(), name="poll-and-sync", group="background", exit_on_error=False)
        self.set_interval(1.0, self.main.refresh_status)

    def on_queue_changed(self, _message: QueueChanged) -> None:
        self.main.queue_changed()
        self.main.refresh_status()

    def on_outcomes_arrived(self, message: OutcomesArrived) -> None:
        for outcome in message.outcomes:
            if outcome.result.state is SyncState.applied:
                continue
            title = "Conflict" if outcome.result.state is SyncState.conflict else "Not applied"
            decision = outcome.decision
            self.notify(
                clean(f"{decision.verdict.value} {decision.source}/{decision.item_id}: {outcome.result.detail}.")
                + " Press p for details.",
                title=title,
                severity="error",
                timeout=15,
                markup=False,
            )
            self.bell()
        self.main.queue_changed()
        self.main.refresh_status()

    async def on_unmount(self) -> None:
        await self.session.aclose()
