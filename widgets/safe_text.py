"""Neutralise untrusted text before it reaches the screen.

Agent-supplied strings may carry terminal escapes (ESC, CSI, OSC 8 links, OSC 52 clipboard writes), C1 controls,
bidirectional overrides and invisible characters that make the operator read something other than what will run.
`clean()` replaces every such character with a visible stand-in, so what is on screen is what is in the data.
Markup is a separate problem: never pass agent text to anything that parses markup; build `Text`/`Content` from
cleaned strings (`literal()`, `safe_content()`), with styles applied as objects or trusted style strings.
"""

from __future__ import annotations

from typing import Final

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from rich.text import Text
from textual.content import Content
from textual.style import Style as ContentStyle

# The cleaning itself lives in storage/, so the log and the CLI share it; the widgets' API stays as it was.
from storage.safe_text import NEWLINE_MARK, TAB_MARK, clean

__all__ = ["ELLIPSIS", "NEWLINE_MARK", "TAB_MARK", "clean", "literal", "one_line", "safe_content"]

ELLIPSIS: Final = "…"


def one_line(text: str, width: int) -> str:
    """Cleaned, single-line `text` that fits in `width` terminal cells, cut with "…" when it does not."""
    if width <= 0:
        return ""
    line = clean(text, multiline=False)
    # A cheap pre-cut keeps cell_len() off huge strings; anything cut here is marked as truncated below.
    limit = width * 4 + 16
    truncated = len(line) > limit
    if truncated:
        line = line[:limit]
    if not truncated and cell_len(line) <= width:
        return line
    return set_cell_size(line, width - 1) + ELLIPSIS


def literal(text: str, style: str | Style = "", *, multiline: bool = True) -> Text:
    """A Rich `Text` that shows `text` literally: cleaned, never parsed as markup."""
    return Text(clean(text, multiline=multiline), style=style, end="")


def safe_content(text: str, style: str | ContentStyle = "", *, multiline: bool = True) -> Content:
    """A Textual `Content` that shows `text` literally; `style` may use theme variables ("bold $warning").

    Only pass trusted style strings: the style is parsed, the text never is.
    """
    return Content.styled(clean(text, multiline=multiline), style)
