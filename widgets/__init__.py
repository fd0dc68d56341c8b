"""Textual widgets that render storage records and post messages.

Layering: this package imports textual, rich, the stdlib and `storage.records` only (never console, httpx or
sqlite). Every agent-supplied string is rendered through `safe_text`, never parsed as markup.
"""

from __future__ import annotations

from .badges import confidence_meter, confidence_text, format_age, format_left, risk_badge, risk_label
from .bars import QueueBar, UndoBar, UndoPrompt
from .detail import ItemDetail, JsonView, json_view
from .queue_list import QueueList, RowKey, RowProvider
from .safe_text import clean, literal, one_line, safe_content
from .status_bar import StatusBar, status_content

__all__ = [
    "ItemDetail",
    "JsonView",
    "QueueBar",
    "QueueList",
    "RowKey",
    "RowProvider",
    "StatusBar",
    "UndoBar",
    "UndoPrompt",
    "clean",
    "confidence_meter",
    "confidence_text",
    "format_age",
    "format_left",
    "json_view",
    "literal",
    "one_line",
    "risk_badge",
    "risk_label",
    "safe_content",
    "status_content",
]
