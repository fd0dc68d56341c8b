"""Noticing what matters: a new high or critical item, or a deadline about to pass, once per item.

What is worth saying is the engine's urgency watch (console/engine/urgency.py, which the pager shares); `Alerts` words
it and the app says it: the terminal bell, a toast, and a desktop notification where one can be sent (`notify-send` on
PATH, else an OSC 9 / OSC 777 escape for terminals known to show it). Every message is our own sentence with agent
text cleaned into it; nothing agent-controlled reaches the terminal as bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from console.engine.config import Notifications
from console.engine.urgency import UrgencyReads, UrgencyWatch
from storage.records import QueueRow
from widgets.badges import format_countdown, risk_label
from widgets.safe_text import one_line

MAX_SEPARATE: Final = 3  # more new items than this at once are announced in one summary
_OSC_UNSAFE: Final = re.compile(r"[^\x20-\x7e]|;")  # OSC payloads: printable ASCII only, no field separator


@dataclass(frozen=True)
class Alert:
    title: str
    message: str


def _what(row: QueueRow) -> str:
    return f"{one_line(row.action, 60)} ({one_line(row.agent, 40)}, {one_line(row.source, 30)})"


class Alerts:
    """What to alert about since the last look: the engine's urgency watch (each item once as new and once as due),
    said as the app says it."""

    def __init__(self, settings: Notifications, started_at: float, window: float) -> None:
        """`window`: seconds before a deadline that count as near (the config's deadline_warning, which the queue
        and the detail mark too)."""
        self.settings = settings
        self._watch = UrgencyWatch(started_at, window)

    def new_urgent(self, queue: UrgencyReads, now: float) -> list[Alert]:
        rows = self._watch.new_items(queue, now)
        if len(rows) > MAX_SEPARATE:
            critical = sum(1 for r in rows if r.risk.rank == 3)
            return [Alert("New urgent items", f"{len(rows)} new high-risk items ({critical} critical) in the queue.")]
        return [Alert(f"New {risk_label(r.risk).strip()} item", _what(r)) for r in rows]

    def deadlines(self, queue: UrgencyReads, now: float) -> list[Alert]:
        rows = self._watch.deadlines(queue, now)
        return [
            Alert("Deadline about to pass", f"{format_countdown(r.expires_at - now)} left: {_what(r)}")
            for r in rows
            if r.expires_at is not None
        ][:MAX_SEPARATE]


def osc_sequence(title: str, body: str, environ: Mapping[str, str]) -> str | None:
    """The desktop-notification escape this terminal is known to show, or None when it is not known to.

    OSC 9 (iTerm2, WezTerm, ghostty, kitty, Windows Terminal) takes one message; OSC 777 (urxvt, foot, VTE-based
    terminals) takes a title and a body. The text is reduced to printable ASCII without ';', so it cannot end the
    sequence early or start another.
    """
    safe_title = _OSC_UNSAFE.sub(" ", title)[:80]
    safe_body = _OSC_UNSAFE.sub(" ", body)[:200]
    program = environ.get("TERM_PROGRAM", "")
    term = environ.get("TERM", "")
    if program in ("iTerm.app", "WezTerm", "ghostty") or "kitty" in term or environ.get("WT_SESSION"):
        return f"\x1b]9;{safe_title}: {safe_body}\x1b\\"
    if "rxvt" in term or term.startswith("foot") or environ.get("VTE_VERSION"):
        return f"\x1b]777;notify;{safe_title};{safe_body}\x1b\\"
    return None


def notify_send(title: str, body: str) -> bool:
    """Hand the notification to the desktop's notify-send, without waiting; False when there is none."""
    program = shutil.which("notify-send")
    if program is None or (not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        subprocess.Popen(  # noqa: S603 - a fixed program; title and body are arguments, never a shell line
            # "--" ends the options: a title or body that starts with "-" (agent text) stays text, never an option.
            [program, "--app-name=approval-console", "--", title, body],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    return True
