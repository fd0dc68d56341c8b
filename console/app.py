"""The Textual app: one main screen over a Session, with polling and sync running as background workers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen

from console.alerts import Alert, Alerts, notify_send, osc_sequence
from console.screens.main import MainScreen
from console.session import Session
from console.sync import Outcome
from storage.records import SyncState
from widgets.safe_text import clean

# ctrl+t switches between the configured theme and its counterpart of the other lightness.
LIGHT_THEME = "textual-light"
DARK_THEME = "textual-dark"

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
    # Not in the footer (the main screen's keys need its width); `?` and ctrl+p list it.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "toggle_theme", "Light / dark theme", show=False)]

    def __init__(self, session: Session, *, now: Callable[[], float] = time.time, background: bool = True) -> None:
        super().__init__()
        self.session = session
        self._now = now
        self._background = background
        self.main = MainScreen(session, now=now)
        self.alerts = Alerts(session.config.notifications, started_at=now())
        self.announced: list[Alert] = []  # every alert raised, in order (the toast may have timed out)
        session.on_change(self._source_changed)
        session.on_outcomes(self._outcomes)

    def _source_changed(self, _source: str) -> None:
        self.post_message(QueueChanged())

    def _outcomes(self, outcomes: Sequence[Outcome]) -> None:
        self.post_message(OutcomesArrived(outcomes))

    def on_mount(self) -> None:
        theme = self.session.config.theme
        if theme in self.available_themes:
            self.theme = theme
        else:
            self.notify(f"Unknown theme {theme!r} in the config; using {self.theme}.", severity="warning", markup=False)
        self.push_screen(self.main)
        if self._background:
            self.run_worker(self.session.run(), name="poll-and-sync", group="background", exit_on_error=False)
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        self.main.refresh_status()
        self._announce(self.alerts.deadlines(self.session.store, self._now()))

    def on_queue_changed(self, _message: QueueChanged) -> None:
        self.main.queue_changed()
        self.main.refresh_status()
        self._announce(self.alerts.new_urgent(self.session.store, self._now()))

    def _announce(self, alerts: Sequence[Alert]) -> None:
        settings = self.session.config.notifications
        for alert in alerts:
            self.announced.append(alert)
            if settings.bell:
                self.bell()
            if settings.toast:
                self.notify(clean(alert.message), title=alert.title, severity="warning", timeout=8, markup=False)
            if settings.desktop and not self.is_headless:
                self.run_worker(partial(self._desktop, alert), thread=True, group="desktop", exit_on_error=False)

    def _desktop(self, alert: Alert) -> None:
        """In a thread: notify-send, else the terminal's own notification escape (written on the UI thread)."""
        if notify_send(alert.title, alert.message):
            return
        sequence = osc_sequence(alert.title, alert.message, os.environ)
        driver = self._driver
        if sequence is not None and driver is not None:
            self.call_from_thread(driver.write, sequence)

    def action_toggle_theme(self) -> None:
        configured = self.session.config.theme
        if self.theme != configured:
            self.theme = configured
        else:
            self.theme = DARK_THEME if self.current_theme.dark is False else LIGHT_THEME

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Every action of the main screen in the command palette, named as in the footer and the help screen."""
        yield from super().get_system_commands(screen)
        if screen is not self.main:
            return
        seen: set[str] = set()
        for binding in self.main.all_bindings():
            # Only what fits the item shown (Accept or Approve; Edit where allowed), as the footer offers it.
            if not binding.description or binding.action in seen or not self.main.check_action(binding.action, ()):
                continue
            seen.add(binding.action)
            yield SystemCommand(
                binding.description,
                f"key {self.get_key_display(binding)}",  # "?" and "/", not question_mark and slash
                partial(self.main.run_action, binding.action),
            )

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
