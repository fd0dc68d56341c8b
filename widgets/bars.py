"""The main screen's one-line bars: what the queue shows (count, order, filter) and the decision that can be undone.

Each draws the state it is given through reactive attributes (the screen binds them with `data_bind`); neither knows
where that state comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from .safe_text import one_line

__all__ = ["QueueBar", "UndoBar", "UndoPrompt"]

_MUTED = "$foreground-muted"


class QueueBar(Static):
    """`QUEUE 1,234 items · most urgent first · filter deploy   (o sort · g group · / filter · ? help)`; with marks,
    `· ● 45 marked` and the keys that act on them."""

    count: reactive[int] = reactive(0)
    description: reactive[str] = reactive("")  # the order and grouping, in words
    filter_text: reactive[str] = reactive("")
    hint: reactive[str] = reactive("o sort · g group · / filter · space mark · ? help")  # the keys in force
    marked_hint: reactive[str] = reactive("a / r decide the marked · esc unmarks · ? help")  # with marks
    marked: reactive[int] = reactive(0)  # items marked for bulk work

    def render(self) -> Content:
        count = self.count
        parts: list[Content | tuple[str, str] | str] = [
            ("QUEUE ", "bold"),
            (f"{count:,} item{'s' if count != 1 else ''}", "bold $text-primary"),
            (f"  ·  {self.description}", _MUTED),
        ]
        if self.filter_text:
            parts += [("  ·  filter ", _MUTED), (one_line(self.filter_text, 60), "bold $text-warning")]
        if self.marked:
            parts += [("  ·  ", _MUTED), (f"● {self.marked:,} marked", "bold $text-accent")]
            parts.append((f"   ({self.marked_hint})", _MUTED))
        else:
            parts.append((f"   ({self.hint})", _MUTED))
        return Content.assemble(*parts)


@dataclass(frozen=True)
class UndoPrompt:
    """The newest decision still inside its undo window, and how many others are."""

    label: str  # cleaned already: "Approved: Restart the web tier (deployer)"
    seconds_left: int
    more: int = 0
    key: str = "u"  # the undo key in force


class UndoBar(Static):
    """`↶ Approved: … — press u to undo (4s)`; hidden while nothing can be undone."""

    prompt: reactive[UndoPrompt | None] = reactive(None)

    def render(self) -> Content:
        prompt = self.prompt
        if prompt is None:
            return Content("")
        return Content.assemble(
            ("↶ ", "bold"),
            (prompt.label, "bold"),
            ("  —  press ", _MUTED),
            (f" {prompt.key} ", "bold reverse $text-warning"),
            (f" to undo ({prompt.seconds_left}s)", "bold $text-warning"),
            (f"  (+{prompt.more} more)" if prompt.more else "", _MUTED),
        )

    def watch_prompt(self, prompt: UndoPrompt | None) -> None:
        self.display = prompt is not None
