"""The status bar: which sources are up and when each last polled, what waits to sync, who I am.

Its state is reactive: a screen binds `sources`, `waiting`, `conflicts`, `operator` and `now` with `data_bind` (and
moves `now` on once a second, so "polled 3s ago" stays true); `update_status(...)` sets them all at once.
Source names come from config but are rendered literally anyway. A source that is not up says why in a few words
and when it last answered well; the whole error goes to the tooltip, cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from storage.records import SourceHealth

from .badges import format_age
from .safe_text import one_line

__all__ = ["STATE_LABELS", "STATE_STYLES", "StatusBar", "short_reason"]

STATE_LABELS: Final[dict[str, str]] = {
    "up": "up",
    "throttled": "throttled",  # answering 429/503: reachable, polled at the pace it asks for
    "down": "down",
    "auth": "auth failed",
    "starting": "starting",
}
STATE_STYLES: Final[dict[str, str]] = {
    "up": "bold $text-success",
    "throttled": "bold $text-warning",
    "down": "bold reverse $text-error",
    "auth": "bold reverse $text-error",
    "starting": "$foreground-muted",
}
_LABEL: Final = "$foreground-muted"
_SEPARATOR: Final = ("  |  ", "$foreground-muted")
_REASON_CELLS: Final = 48
_ERRNO: Final = re.compile(r"\[Errno -?\d+\]\s*")
_URL: Final = re.compile(r"\s*\b[a-z][a-z0-9+.-]*://\S*?(?=:?(?:\s|$))", re.IGNORECASE)
_FIX: Final = re.compile(r"[;,]?\s*\bfix:.*$", re.IGNORECASE | re.DOTALL)


def short_reason(error: str) -> str:
    """A source error in a few words for the status bar: no address (the config has it), no fix (the tooltip has it)."""
    text = _FIX.sub("", _ERRNO.sub("", _URL.sub("", error))).strip(" :;,")
    return one_line(text, _REASON_CELLS)


class StatusBar(Static):
    """One line (wrapping if it must: nothing here may be cut off) of health, backlog and identity."""

    DEFAULT_CSS = """
    StatusBar {
        width: 1fr;
        height: auto;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    # None until the first status arrives: the bar stays blank rather than claim "no sources configured".
    sources: reactive[tuple[SourceHealth, ...] | None] = reactive(None, layout=True)
    waiting: reactive[int] = reactive(0, layout=True)  # decisions not yet synced
    conflicts: reactive[int] = reactive(0, layout=True)
    operator: reactive[str] = reactive("", layout=True)
    now: reactive[float] = reactive(0.0, layout=True)

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__("", name=name, id=id, classes=classes, disabled=disabled)

    def update_status(
        self,
        sources: Sequence[SourceHealth],
        waiting: int,
        conflicts: int,
        operator: str,
        now: float,
    ) -> None:
        """Show `sources` health, `waiting` decisions not yet synced, `conflicts`, and the `operator`."""
        self.sources = tuple(sources)
        self.waiting = waiting
        self.conflicts = conflicts
        self.operator = operator
        self.now = now

    def render(self) -> Content:
        if self.sources is None:
            return Content("")
        return status_content(self.sources, self.waiting, self.conflicts, self.operator, self.now)

    def watch_sources(self, sources: tuple[SourceHealth, ...] | None) -> None:
        errors = [
            Content.assemble((one_line(source.name, 40), "bold"), ": ", one_line(source.error, 300))
            for source in sources or ()
            if source.error and source.state != "up"
        ]
        self.tooltip = Content("\n").join(errors) if errors else None


def status_content(sources: Sequence[SourceHealth], waiting: int, conflicts: int, operator: str, now: float) -> Content:
    """The status line as Content (exposed for reuse and tests)."""
    parts: list[str | Content | tuple[str, str]] = []
    if not sources:
        parts.append(("no sources configured", "bold $text-warning"))
    for index, source in enumerate(sources):
        if index:
            parts.append(_SEPARATOR)
        parts += [
            (one_line(source.name, 40), "bold"),
            " ",
            (f" {STATE_LABELS.get(source.state, source.state)} ", STATE_STYLES.get(source.state, "")),
        ]
        if source.state in ("up", "starting"):
            if source.last_poll_at is None:
                parts.append(("  never polled", _LABEL))
            else:
                parts.append((f"  polled {format_age(now - source.last_poll_at)} ago", _LABEL))
        else:
            # Not up (down, refused, throttled, or a state this bar does not know): why, and when it last answered
            # well. "polled 2s ago" here would read like a successful poll.
            reason = short_reason(source.error)
            if reason:
                parts.append((f"  {reason}", "$text-warning"))
            if source.last_ok_at is None:
                parts.append(("  · never answered", _LABEL))
            else:
                parts.append((f"  · last good poll {format_age(now - source.last_ok_at)} ago", _LABEL))
        if source.quarantined > 0:
            parts.append((f"  {source.quarantined} malformed", "bold $text-warning"))
    parts.append(_SEPARATOR)
    if waiting > 0:
        parts.append((f"{waiting} to sync", "bold $text-warning"))
    else:
        parts.append(("all synced", _LABEL))
    if conflicts > 0:
        parts += ["  ", (f" {conflicts} conflict{'s' if conflicts != 1 else ''} ", "bold reverse $text-error")]
    parts += [_SEPARATOR, ("operator: ", _LABEL), (one_line(operator, 60), "bold")]
    return Content.assemble(*parts)
