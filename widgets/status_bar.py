"""The status bar: which sources are up and when each last polled, what waits to sync, who I am.

Call `update_status(...)` from the app's poll/sync loop (and once a second, so "polled 3s ago" stays true).
Source names come from config but are rendered literally anyway; source errors go to the tooltip, cleaned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from textual.content import Content
from textual.widgets import Static

from storage.records import SourceHealth

from .badges import format_age
from .safe_text import one_line

__all__ = ["STATE_LABELS", "StatusBar"]

STATE_LABELS: Final[dict[str, str]] = {
    "up": "up",
    "throttled": "throttled",  # answering 429/503: reachable, polled at the pace it asks for
    "down": "down",
    "auth": "auth failed",
    "starting": "starting",
}
_STATE_STYLES: Final[dict[str, str]] = {
    "up": "bold $text-success",
    "throttled": "bold $text-warning",
    "down": "bold reverse $text-error",
    "auth": "bold reverse $text-error",
    "starting": "$foreground-muted",
}
_LABEL: Final = "$foreground-muted"
_SEPARATOR: Final = ("  |  ", "$foreground-muted")


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
        self.update(status_content(sources, waiting, conflicts, operator, now))
        errors = [
            Content.assemble((one_line(source.name, 40), "bold"), ": ", one_line(source.error, 300))
            for source in sources
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
            (f" {STATE_LABELS.get(source.state, source.state)} ", _STATE_STYLES.get(source.state, "")),
        ]
        if source.last_poll_at is None:
            parts.append(("  never polled", _LABEL))
        else:
            parts.append((f"  polled {format_age(now - source.last_poll_at)} ago", _LABEL))
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
