"""The filter field, with the filters kept: up walks back through them, down forward to what was typed."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

__all__ = ["FilterInput"]


class FilterInput(Input):
    """An Input whose kept filters (`remember`, on enter) come back with up and down, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "filter_older", "Older filter", show=False, id="filter_older"),
        Binding("down", "filter_newer", "Newer filter", show=False, id="filter_newer"),
    ]
    KEPT: ClassVar[int] = 50

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.history: list[str] = []  # oldest first
        self._at: int | None = None  # the entry shown, None: what is being typed
        self._draft = ""  # what was being typed when up was first pressed

    def remember(self, text: str) -> bool:
        """Keep `text` as the newest filter (once: an older copy moves up); walking starts again from the newest.
        True if the history changed."""
        self._at = None
        if not text.strip() or self.history[-1:] == [text]:
            return False
        if text in self.history:
            self.history.remove(text)
        self.history.append(text)
        del self.history[: -self.KEPT]
        return True

    def action_filter_older(self) -> None:
        if not self.history:
            return
        if self._at is None:
            self._draft = self.value
            self._at = len(self.history) - 1
        elif self._at > 0:
            self._at -= 1
        self._show(self.history[self._at])

    def action_filter_newer(self) -> None:
        if self._at is None:
            return
        self._at += 1
        if self._at >= len(self.history):
            self._at = None
            self._show(self._draft)
        else:
            self._show(self.history[self._at])

    def _show(self, text: str) -> None:
        self.value = text
        self.cursor_position = len(text)
