"""Toasts that keep out of the way: a band of their own, repeats merged into one with a count, a key to clear them.

Textual floats toasts over the bottom right of the screen, where the main screen shows the item's arguments and the
status bar and a dialog has its input. Here they take a band at the bottom of whichever screen is on top (the rest
of the screen is laid out above it, so nothing is covered); the same alert raised again while shown replaces its
toast with one that counts ("Conflict (x3)", with a multiplication sign); `x` (where a key is not typed into a field)
or `ctrl+l` (anywhere, dialogs included) clears them all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import Notification, SeverityLevel
from textual.widgets._toast import ToastRack

__all__ = ["ToastingApp"]


class ToastingApp(App[None]):
    CSS_PATH = Path(__file__).with_name("toasts.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "dismiss_alerts", "Dismiss alerts", show=False, id="dismiss_alerts"),
        # A priority binding: the only kind a dialog (a modal screen) lets through; no field types ctrl+l.
        Binding(
            "ctrl+l",
            "dismiss_alerts",
            "Dismiss alerts (also in dialogs)",
            show=False,
            priority=True,
            id="dismiss_alerts_anywhere",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        # The toast now shown for each kind of alert, and how many times it was raised while shown.
        self._shown: dict[tuple[str, str], tuple[Notification, int]] = {}

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        if self._thread_id != threading.get_ident():  # Textual's notify is thread-safe: so is this one
            self.call_from_thread(self.notify, message, title=title, severity=severity, timeout=timeout, markup=markup)
            return
        # Alerts with a title are of one kind per title (the latest message shown); others repeat word for word.
        key = (severity, title or message)
        earlier, count = self._shown.get(key, (None, 0))
        if earlier is None or earlier not in self._notifications or earlier.has_expired:
            count = 0
        else:
            self._unnotify(earlier, refresh=False)
            # Textual removes a stale toast but not its holder, which would stay as a blank line.
            for holder in self.screen.query(f"#{ToastRack._toast_id(earlier)}"):
                holder.remove()
        count += 1
        tally = f"(×{count})" if count > 1 else ""
        notification = Notification(
            message if title or not tally else f"{message} {tally}",
            f"{title} {tally}".strip() if title else "",
            severity,
            self.NOTIFICATION_TIMEOUT if timeout is None else timeout,
            markup=markup,
        )
        self._shown = {k: v for k, v in self._shown.items() if v[0] in self._notifications}
        self._shown[key] = (notification, count)
        self._notifications.add(notification)
        self._refresh_notifications()

    def action_dismiss_alerts(self) -> None:
        self._shown.clear()
        self.clear_notifications()
