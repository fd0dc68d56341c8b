"""The Textual app: one main screen over a Session, with polling and sync running as background workers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar

from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from console.engine.session import SendReport, Session
from console.engine.sync import SettledDecision
from console.tui.alerts import Alert, Alerts, notify_send, osc_sequence
from console.tui.keymap import hint, rebound, resolve
from console.tui.messages import OutcomesArrived, PostedEvents, QueueChanged
from console.tui.screens.main import MainScreen
from console.tui.screens.quit import QuitChoice, QuitScreen
from console.tui.toasts import ToastingApp
from storage.records import SyncState
from widgets.safe_text import clean

# ctrl+t switches between the configured theme and its counterpart of the other lightness.
LIGHT_THEME = "textual-light"
DARK_THEME = "textual-dark"

log = logging.getLogger(__name__)

QUIT_SEND_BOUND = 30.0  # "send now and wait": the operator watches the progress and may quit anyway at any time
STOP_SEND_BOUND = 5.0  # a stop signal: whoever sent it will not wait long before a SIGKILL
DAMAGE_SHOWN = 24 * 3600.0  # seconds a failed integrity check stays on screen: until the operator quits
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # a service manager's stop; a closed terminal or SSH session


__all__ = ["STOP_SIGNALS", "ApprovalApp", "OutcomesArrived", "QueueChanged", "log_unsent"]


class ApprovalApp(ToastingApp):
    TITLE = "approval-console"
    ENABLE_COMMAND_PALETTE = True
    # Not in the footer (the main screen's keys need its width); `?` and ctrl+p list it.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "toggle_theme", "Light / dark theme", show=False, id="toggle_theme")
    ]

    def __init__(
        self,
        session: Session,
        *,
        now: Callable[[], float] = time.time,
        background: bool = True,
        stop_signals: Sequence[signal.Signals] = (),
        open_on: tuple[str, str] | None = None,
    ) -> None:
        """`stop_signals` (the CLI passes STOP_SIGNALS) stop the console the headless way: send what can be sent within
        STOP_SEND_BOUND, log what is left, exit with status 128 + the signal's number. `open_on` (source, item id):
        the item to move to once it is listed (`approval-console open`)."""
        super().__init__()
        self.session = session
        self._now = now
        self._background = background
        self._stop_signals = tuple(stop_signals)
        self.stopped_by: signal.Signals | None = None
        self.crashed: BaseException | None = None
        # The actions [keymap] rebinds and their keys (the rest keep their bindings' own). Refused here, before the
        # terminal is taken: a bad keymap is a config error like any other.
        self.keys_in_force = rebound(resolve(session.config.keymap, session.config.path))
        self.main = MainScreen(session, now=now, open_on=open_on)
        self.alerts = Alerts(session.config.notifications, started_at=now(), window=session.config.deadline_window)
        self.announced: list[Alert] = []  # every alert raised, in order (the toast may have timed out)
        # The engine's events go to the main screen as messages; it handles them, then they bubble up to here.
        session.subscribe(PostedEvents(self.main))

    def on_mount(self) -> None:
        theme = self.session.config.theme
        if theme in self.available_themes:
            self.theme = theme
        else:
            self.notify(f"Unknown theme {theme!r} in the config; using {self.theme}.", severity="warning", markup=False)
        self.set_keymap(self.keys_in_force)
        self.push_screen(self.main)
        # After the first frame: the database's integrity check (its cost grows with the database), then polling.
        self.call_after_refresh(self._after_first_frame)
        self.set_interval(1.0, self._tick)
        loop = asyncio.get_running_loop()
        for signum in self._stop_signals:
            loop.add_signal_handler(signum, self._stop_signalled, signum)

    def _after_first_frame(self) -> None:
        self.run_worker(self._check_database(), name="database-check", group="background", exit_on_error=False)
        if self._background:  # its polling and syncing wait for the check to pass
            self.run_worker(self.session.run(), name="poll-and-sync", group="background", exit_on_error=False)

    async def _check_database(self) -> None:
        await self.session.check_database()
        problem = self.session.database_problem
        if problem is not None:
            self.notify(f"Decisions are refused: {problem}", severity="error", timeout=DAMAGE_SHOWN, markup=False)

    def _stop_signalled(self, signum: signal.Signals) -> None:
        if self.stopped_by is None:
            self.stopped_by = signum
            self.run_worker(self._stop_headless(signum), name="stop", group="stop", exit_on_error=False)

    async def _stop_headless(self, signum: signal.Signals) -> None:
        """Nobody is there to ask: send what can be sent within a short bound, log what is left, exit."""
        try:
            unsent = self.session.unsent()
            log.info("stopping on %s: %d decision(s) unsent", signum.name, len(unsent))
            if unsent:
                self.notify(
                    f"Stopping ({signum.name}): sending {len(unsent)} unsent decision(s) first.",
                    severity="warning",
                    markup=False,
                )
                report = await self.session.send_unsent(STOP_SEND_BOUND)
                log_unsent(report, f"stopped on {signum.name}")
        except Exception:
            log.exception("sending before stopping on %s failed; the decisions stay in the outbox", signum.name)
        self.exit(return_code=128 + signum)

    async def action_quit(self) -> None:
        """Quit, unless decisions are unsent: then ask (send now and wait / quit anyway / stay)."""
        if isinstance(self.screen, QuitScreen):  # quit pressed again in the dialog: quit anyway
            self.screen.dismiss("quit")
            return
        unsent = self.session.unsent()
        if not unsent:
            self.exit()
            return

        def chosen(choice: QuitChoice | None) -> None:
            if choice == "quit":
                log_unsent(SendReport(len(unsent), self.session.unsent(), {}), "quit")
                self.exit()

        screen = QuitScreen(unsent, self.session.health(), self._send_before_quit, bound=QUIT_SEND_BOUND)
        self.push_screen(screen, chosen)

    async def _send_before_quit(self, progress: Callable[[SendReport], None]) -> SendReport:
        self.main.undoable.clear()  # their undo window ends now: `u` must not offer them
        return await self.session.send_unsent(QUIT_SEND_BOUND, progress)

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected exception ends the app (Textual's rule). Its traceback goes to the log, not the terminal: it is
        no use to an operator and may quote agent text. The CLI then prints one line and exits non-zero."""
        if self.crashed is None:
            self.crashed = error
            log.critical("the console crashed: %s: %s", type(error).__name__, error, exc_info=error)
        super()._handle_exception(error)
        self._exit_renderables.clear()  # Textual's traceback print, at exit

    def _tick(self) -> None:
        self._announce(self.alerts.deadlines(self.session, self._now()))

    def on_queue_changed(self, _message: QueueChanged) -> None:
        """After the main screen re-read the queue: announce what became urgent."""
        self._announce(self.alerts.new_urgent(self.session, self._now()))

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
                f"key {self.get_key_display(self.in_force(binding))}",  # "?" and "/", not question_mark and slash
                partial(self.main.run_action, binding.action),
            )

    def in_force(self, binding: Binding) -> Binding:
        """`binding` on the first key the keymap gives its action."""
        keys = self.keys_in_force.get(binding.id or "")
        return binding.with_key(keys.split(",")[0]) if keys else binding

    def on_outcomes_arrived(self, message: OutcomesArrived) -> None:
        """After the main screen re-read the queue and the status: toast what was not applied."""
        for outcome in message.outcomes:
            if outcome.result.state is SyncState.applied:
                continue
            if outcome.result.state is SyncState.partial:  # a two-person item's first approval: recorded, not done
                self._approval_recorded(outcome)
                continue
            title = "Conflict" if outcome.result.state is SyncState.conflict else "Not applied"
            decision = outcome.decision
            self.notify(
                clean(f"{decision.verdict.value} {decision.source}/{decision.item_id}: {outcome.result.detail}.")
                + hint(self, " Press {problems:1} for details."),
                title=title,
                severity="error",
                timeout=15,
                markup=False,
            )
            self.bell()

    def _approval_recorded(self, outcome: SettledDecision) -> None:
        """The source recorded this operator's approval of a two-person item; it waits for another operator's."""
        decision = outcome.decision
        self.notify(
            clean(f"{decision.source}/{decision.item_id}: {outcome.result.detail}.", multiline=False),
            title="Approval recorded",
            timeout=6,
            markup=False,
        )

    async def on_unmount(self) -> None:
        if self._stop_signals:
            loop = asyncio.get_running_loop()
            for signum in self._stop_signals:
                loop.remove_signal_handler(signum)
        await self.session.aclose()


def log_unsent(report: SendReport, when: str) -> None:
    """Name every decision left unsent, and why, so the log says what the agents have not heard."""
    if not report.unsent:
        if report.total:
            log.info("%s: all %d unsent decision(s) sent", when, report.total)
        return
    log.warning("%s with %d decision(s) unsent; they are sent when the console runs again", when, len(report.unsent))
    for unsent in report.unsent:
        why = report.blocked.get(unsent.source) or unsent.detail or "not sent yet (undo window or in flight)"
        log.warning(
            "unsent: decision %s (%s %s/%s): %s",
            unsent.decision_id,
            unsent.verdict.value,
            unsent.source,
            unsent.item_id,
            why,
        )
