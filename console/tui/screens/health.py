"""`H`: the sources' health in full: each one's state, last error, next retry, what the console holds for it and why
its items were quarantined. The status bar says the same in a few words; this screen says all of it.

Re-read once a second (health is in memory; the counts are one grouped query per table), so a countdown to the next
retry stays true and a source that comes back is seen coming back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.engine.session import Session
from console.tui.keymap import hint
from storage.db import StorageError
from widgets.source_health import source_report

__all__ = ["HealthScreen"]


class HealthScreen(Screen[None]):
    CSS_PATH = Path(__file__).with_name("history.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,H,q", "close", "Close", id="health_close"),
    ]
    # what the screen holds, and its key as the keymap has it (keymap.hint)
    _ABOUT = "   each source's last error, next retry and what the console holds for it · {health_close:1} close"

    def __init__(self, session: Session, now: Callable[[], float] = time.time, zone: tzinfo | None = None) -> None:
        super().__init__()
        self._session = session
        self._now = now
        self._zone = zone  # times are drawn in it (None: local)
        self._shown = ""
        self._unreadable_told = False

    def compose(self) -> ComposeResult:
        yield Static(
            Content.assemble(
                ("Source health", "bold"),
                (
                    hint(self.app, self._ABOUT),
                    "$foreground-muted",
                ),
            ),
            id="history-head",
        )
        with VerticalScroll(id="history-list"):
            yield Static(id="health-report")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_report()
        self.query_one("#history-list").focus()
        self.set_interval(1.0, self.refresh_report)

    def refresh_report(self) -> None:
        session = self._session
        health = tuple(session.health().values())
        try:
            _, quarantined = session.problems()
            counts = session.source_counts()
        except (StorageError, OSError) as exc:  # health is in memory: shown anyway, the counts say why they are not
            quarantined, counts = [], {}
            if not self._unreadable_told:  # once: the screen re-reads every second
                self._unreadable_told = True
                self.notify(f"The counts could not be read: {exc}", severity="error", markup=False, timeout=10)
        report = source_report(health, counts, quarantined, self._now(), self._zone)
        if report.plain != self._shown:
            self._shown = report.plain
            self.query_one("#health-report", Static).update(report)

    def action_close(self) -> None:
        self.dismiss(None)
