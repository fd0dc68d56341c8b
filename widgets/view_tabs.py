"""The saved views along the top of the queue: `1 All 120 │ 2 Critical+high 7 │ 3 Mine 2 │ 4 Escalations 5`.

Draws what it is given (the screen binds `tabs` and `active`); the counts are found elsewhere, off the keys' path.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from .safe_text import one_line

__all__ = ["ViewTab", "ViewTabs"]

_MUTED = "$foreground-muted"
_NAME_WIDTH = 30


@dataclass(frozen=True)
class ViewTab:
    name: str
    count: int | None = None  # None: not counted yet


class ViewTabs(Static):
    """One tab per saved view: its number key, its name and how many items it holds; the active one stands out."""

    tabs: reactive[tuple[ViewTab, ...]] = reactive(())
    active: reactive[int] = reactive(0)  # index into tabs

    def render(self) -> Content:
        parts: list[Content | tuple[str, str] | str] = []
        for index, tab in enumerate(self.tabs):
            if index:
                parts.append((" │ ", _MUTED))
            count = "…" if tab.count is None else f"{tab.count:,}"
            name = one_line(tab.name, _NAME_WIDTH)
            if index == self.active:
                parts.append((f" {index + 1} {name} {count} ", "bold reverse $accent"))
            else:
                parts += [(f"{index + 1} ", "bold"), (f"{name} ", ""), (count, "bold $text-primary")]
        return Content.assemble(*parts)
