"""Quitting with decisions the agents have not heard yet: send them now and wait, quit anyway, or stay.

The dialog says what quitting would leave behind (decisions in their undo window, decisions waiting for a source that
is down) before anything happens. "Send now" ends the undo window of those decisions and waits, with progress, for the
sync engine to deliver them, for a bounded time; a source that cannot take them is named, and the operator chooses
again. Every line built from agent or server text is cleaned and never parsed as markup.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Literal

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from console.engine.session import SendReport
from console.tui.keymap import hint
from storage.db import StorageError, Unsent
from storage.records import SourceHealth, Verdict
from widgets.safe_text import literal, one_line

QuitChoice = Literal["quit", "stay"]
SHOWN = 5  # decisions listed by name; the rest are counted
_VERB = {Verdict.approve: "Approve", Verdict.reject: "Reject", Verdict.edit: "Edit"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _title(unsent: int) -> Text:
    words = f"{_plural(unsent, 'decision')} not sent yet" if unsent else "Every decision reached its source"
    return Text(f" {words} ", "bold reverse")


def describe_unsent(unsent: Unsent, health: Mapping[str, SourceHealth], now: float) -> str:
    """Where one unsent decision stands, in the operator's words (agent and server text cleaned, one line)."""
    what = f"{_VERB[unsent.verdict]} {one_line(unsent.action, 40)} ({one_line(unsent.agent, 24)})"
    source = health.get(unsent.source)
    if source is not None and source.state != "up" and source.error:
        return f"{what}: {one_line(unsent.source, 24)} is {source.state}: {one_line(source.error, 60)}"
    if unsent.attempts == 0 and unsent.next_attempt_at > now:
        return f"{what}: in its undo window, sent in {math.ceil(unsent.next_attempt_at - now)} s"
    if unsent.detail:
        return f"{what}: not sent yet: {one_line(unsent.detail, 60)}"
    return f"{what}: being sent"


class QuitScreen(ModalScreen[QuitChoice]):
    """Returns "quit" (everything was sent, or the operator quits anyway) or "stay"."""

    CSS_PATH = Path(__file__).with_name("modals.tcss")
    DEFAULT_CSS = """
    QuitScreen { align: center middle; background: $background 60%; }
    QuitScreen #quit-list { height: auto; margin-bottom: 1; }
    QuitScreen #quit-explain { width: 100%; height: auto; margin-bottom: 1; }
    QuitScreen #quit-progress { height: auto; margin-bottom: 1; display: none; }
    QuitScreen #quit-progress.blocked { color: $text-error; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "send", "Send now and wait", id="send"),
        Binding("q", "quit_anyway", "Quit anyway", id="quit_anyway"),
        Binding("escape", "stay", "Stay", id="stay"),
    ]

    def __init__(
        self,
        unsent: Sequence[Unsent],
        health: Mapping[str, SourceHealth],
        send: Callable[[Callable[[SendReport], None]], Awaitable[SendReport]],
        *,
        bound: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._unsent = list(unsent)
        self._health = health  # a live view (Session.health): a source going down while sending shows
        self._send = send
        self._bound = bound
        self._now = now
        self.sending = False
        self.report: SendReport | None = None  # the last look while sending

    def compose(self) -> ComposeResult:
        count = len(self._unsent)
        now = self._now()
        held = sum(1 for u in self._unsent if u.attempts == 0 and u.next_attempt_at > now)
        with Vertical(id="dialog"):
            yield Label(_title(count), id="dialog-title")
            yield Static(self._listing(self._unsent), id="quit-list")
            what = (
                "If you quit now, the agents will not hear of "
                f"{'it' if count == 1 else 'them'} until the console runs again: an agent may wait, "
                "or act on its deadline."
            )
            if held:
                what = (
                    f"{_plural(held, 'decision')} {'is' if held == 1 else 'are'} still in the undo window: "
                    "sent when the window closes, which will not happen once the console has quit. " + what
                )
            yield Label(what, id="quit-explain", markup=False)
            yield Static("", id="quit-progress")
            keys = hint(self.app, "{send} send now and wait · {quit_anyway} quit anyway · {stay} stay")
            yield Label(keys, id="quit-keys", classes="hint", markup=False)

    def _listing(self, unsent: Sequence[Unsent]) -> Text:
        now = self._now()
        lines = [describe_unsent(u, self._health, now) for u in unsent[:SHOWN]]
        if len(unsent) > SHOWN:
            lines.append(f"… and {len(unsent) - SHOWN} more")
        return literal("\n".join(f"• {line}" for line in lines))

    def action_send(self) -> None:
        if self.sending:
            return
        self.sending = True
        self.query_one("#quit-explain", Label).display = False  # the undo window has ended: no longer what happens
        self.query_one("#quit-progress", Static).display = True
        self.query_one("#quit-keys", Label).update(hint(self.app, "sending… · {quit_anyway} quit anyway · {stay} stay"))
        self._show_progress(None)
        self._send_and_wait()

    @work(exclusive=True, group="quit-send", exit_on_error=False)
    async def _send_and_wait(self) -> None:
        try:
            report = await self._send(self._show_progress)
        except (StorageError, OSError) as exc:  # the outbox could not be read or written: nothing changed
            self.sending = False
            self._show_trouble([f"Could not send: {one_line(str(exc), 120)}", "The decisions stay here."])
            return
        self.sending = False
        if not report.unsent and not report.not_applied:
            self.dismiss("quit")
            return
        self._show_blocked(report)

    def _show_progress(self, report: SendReport | None) -> None:
        if report is not None:
            self.report = report
            self.query_one("#dialog-title", Label).update(_title(len(report.unsent)))
            listing = self.query_one("#quit-list", Static)
            listing.update(self._listing(report.unsent))
            listing.display = bool(report.unsent)
        total = len(self._unsent) if report is None else report.total
        sent = 0 if report is None else report.sent
        self.query_one("#quit-progress", Static).update(
            Text(f"Sending: {sent} of {_plural(total, 'decision')} delivered (gives up after {self._bound:g} s)")
        )

    def _show_blocked(self, report: SendReport) -> None:
        lines: list[str] = []
        if report.not_applied:
            # Delivered, but the source did not apply them: the operator should know before walking away.
            lines.append(f"{_plural(len(report.not_applied), 'decision')} reached the source but did not apply:")
            for row in report.not_applied[:SHOWN]:
                lines.append(
                    f"{_VERB[row.decision.verdict]} {one_line(row.item_action, 30)}: {one_line(row.detail, 60)}"
                )
            lines.append(hint(self.app, "The problems screen ({problems:1}) keeps them."))
        if report.unsent:
            lines.append(f"{_plural(len(report.unsent), 'decision')} could not be sent now and stay here:")
            for source, why in sorted(report.blocked.items()):
                lines.append(f"{one_line(source, 24)}: {one_line(why, 70)}")
            if not report.blocked:
                lines.append(f"no final answer within {self._bound:g} s")
            lines.append("They are sent when the console runs again.")
        self._show_trouble(lines, again=bool(report.unsent))

    def _show_trouble(self, lines: Sequence[str], *, again: bool = True) -> None:
        progress = self.query_one("#quit-progress", Static)
        progress.update(literal("\n".join(lines)))
        progress.add_class("blocked")
        keys = (
            "{quit_anyway} quit anyway · {stay} stay · {send} try again"
            if again
            else "{quit_anyway} quit · {stay} stay"
        )
        self.query_one("#quit-keys", Label).update(hint(self.app, keys))

    def action_quit_anyway(self) -> None:
        self.dismiss("quit")

    def action_stay(self) -> None:
        self.dismiss("stay")
