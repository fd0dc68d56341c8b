"""What a page says: our own sentence about an item (source, agent, action, risk, time left, the deep link), and the
two shapes it is posted in (a JSON object for a generic webhook; text with ntfy's headers for an ntfy topic).

Agent text (agent, action, item id, and the arguments or summary when the pager includes them) is cleaned of control,
bidi and invisible characters first (storage.safe_text.clean), and cut; nothing else of the item is ever put in.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from console.engine.deep_link import item_link, open_command
from storage.records import Item, QueueRow, Risk
from storage.safe_text import clean

PageEvent = Literal["new_item", "deadline", "summary"]
_NAME_CHARS: Final = 80  # an agent's, action's or source's name in a page
_ID_CHARS: Final = 200
_EXTRA_CHARS: Final = 2_000  # the arguments or summary, when included
_PRIORITY: Final = {Risk.critical: 5, Risk.high: 4, Risk.medium: 3, Risk.low: 2}  # ntfy: 5 urgent ... 1 min
_RISK_TAG: Final = {Risk.critical: "rotating_light", Risk.high: "warning", Risk.medium: "bell", Risk.low: "bell"}


@dataclass(frozen=True)
class Page:
    """One page, whatever it is posted to."""

    event: PageEvent
    title: str
    text: str
    priority: int  # ntfy's 1..5
    tags: tuple[str, ...]
    link: str | None  # the deep link (ntfy's Click)
    fields: dict[str, Any] = field(default_factory=dict)  # the JSON webhook's object
    extra: str = ""  # included arguments or summary, as text (ntfy's body after the sentence)


def _short(text: str, limit: int = _NAME_CHARS) -> str:
    line = clean(text, multiline=False)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cleaned(value: Any) -> Any:
    """A JSON value with every string (keys too) cleaned: arguments are agent text."""
    if isinstance(value, str):
        return clean(value, multiline=False)
    if isinstance(value, dict):
        return {clean(str(k), multiline=False): _cleaned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    return value


def time_left(seconds: float | None) -> str:
    """ "14 min left", "42 s left", "2 h 05 min left", "past its deadline", or "no deadline"."""
    if seconds is None or math.isnan(seconds):
        return "no deadline"
    if seconds <= 0:
        return "past its deadline"
    whole = math.ceil(seconds)
    if whole < 60:
        return f"{whole} s left"
    minutes = math.ceil(whole / 60)
    return f"{minutes} min left" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min left"


def item_page(
    event: Literal["new_item", "deadline"],
    row: QueueRow,
    now: float,
    item: Item | None = None,
    include: Collection[str] = (),
) -> Page:
    """The page for a new urgent item or a close deadline: our sentence only, plus the arguments and the agent's
    summary from `item` when `include` names them (a pager's opt-in)."""
    source, agent, action = _short(row.source), _short(row.agent), _short(row.action)
    item_id = _short(row.id, _ID_CHARS)
    left = None if row.expires_at is None else row.expires_at - now
    link, command = item_link(row.source, row.id), clean(open_command(row.source, row.id), multiline=False)
    what = f"{action} proposed by {agent} ({source}), risk {row.risk.value}, {time_left(left)}"
    if event == "new_item":
        title = f"New {row.risk.value} item: {action}"
        tags: tuple[str, ...] = (_RISK_TAG[row.risk], "approval-console")
        priority = _PRIORITY[row.risk]
    else:
        title = f"Deadline about to pass: {action}"
        tags = ("hourglass_flowing_sand", "approval-console")
        priority = max(4, _PRIORITY[row.risk])
    text = f"{what}. Open it: {command}"
    fields: dict[str, Any] = {
        "event": event,
        "title": title,
        "text": text,
        "source": source,
        "item_id": item_id,
        "kind": _short(row.kind),
        "agent": agent,
        "action": action,
        "risk": row.risk.value,
        "expires_at": None if row.expires_at is None else datetime.fromtimestamp(row.expires_at, UTC).isoformat(),
        "seconds_left": None if left is None else max(0, math.floor(left)),
        "link": link,
        "command": command,
    }
    extra = []
    if item is not None and item.action is not None and "args" in include:
        fields["args"] = _cleaned(item.action.args)
        extra.append("args: " + _short(json.dumps(fields["args"], ensure_ascii=False), _EXTRA_CHARS))
    if item is not None and item.context.summary and "summary" in include:
        fields["summary"] = _short(item.context.summary, _EXTRA_CHARS)
        extra.append("summary: " + fields["summary"])
    return Page(event, title, text, priority, tags, link, fields, "\n".join(extra))


def summary_page(count: int, per_minute: int) -> Page:
    """The page that stands for `count` pages held back by the rate limit."""
    title = f"and {count} more"
    text = (
        f"and {count} more urgent item(s) or deadline(s), held back by this pager's limit of {per_minute} a minute."
        " Open the console: approval-console"
    )
    fields = {"event": "summary", "title": title, "text": text, "count": count}
    return Page("summary", title, text, 4, ("approval-console",), None, fields)


def webhook_request(page: Page) -> tuple[bytes, dict[str, str]]:
    """A generic webhook's body: the page's fields as one JSON object (ASCII, so any proxy passes it unchanged)."""
    return json.dumps(page.fields, ensure_ascii=True).encode("ascii"), {"Content-Type": "application/json"}


def ntfy_request(page: Page) -> tuple[bytes, dict[str, str]]:
    """An ntfy publish: the sentence as the body, title, priority, tags and the deep link as ntfy's headers."""
    body = page.text + (f"\n{page.extra}" if page.extra else "")
    headers = {
        "Title": _header(page.title),
        "Priority": str(page.priority),
        "Tags": ",".join(page.tags),
        "Content-Type": "text/plain; charset=utf-8",
    }
    if page.link is not None:
        headers["Click"] = page.link
    return body.encode("utf-8"), headers


def _header(text: str) -> str:
    """A header value: printable ASCII as it is, anything else as an RFC 2047 word (ntfy decodes those)."""
    if text.isascii() and text.isprintable():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="
