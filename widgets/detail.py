"""The item detail: exactly what will be executed, why it was stopped, and what the agent claims.

Every agent-supplied string goes through `safe_text` and into `Content` as plain text; styles are trusted
strings with theme variables, so dark and light themes both work and nothing the agent wrote is ever parsed.
Large values are capped (lines and characters) and the cut is announced, so a megabyte argument cannot freeze
the UI, and the operator is told they are not seeing all of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, ClassVar, Final

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static

from storage.records import Item, Risk, shown_part

from .approvals import approvals_content
from .badges import (
    URGENT_SECONDS,
    confidence_text,
    format_age,
    format_countdown,
    format_left,
    is_low_confidence,
    risk_label,
)
from .diff_view import DiffView
from .safe_text import clean, one_line
from .timefmt import zoned_time
from .why_line import Rank, why_content

__all__ = ["MAX_JSON_CHARS", "MAX_JSON_LINES", "MAX_LINE_CHARS", "MAX_TEXT_CHARS", "ItemDetail", "JsonView"]

MAX_JSON_LINES: Final = 2_000
MAX_JSON_CHARS: Final = 200_000  # highlighting and wrapping stay well under 100 ms
MAX_LINE_CHARS: Final = 20_000  # a long string argument (an SQL statement...) is shown whole up to this
MAX_TEXT_CHARS: Final = 20_000  # per free-text field of the context (summary, reasoning, each evidence)

CHANGE_LINES: Final = 40  # the diff under a "this item changed" notice: enough to see it, not a second document
_TITLE: Final = "bold $text-primary"
_LABEL: Final = "$foreground-muted"
_CLAIM: Final = "italic $foreground-muted"
_WARN: Final = "bold $text-warning"
_RISK_STYLES: Final[dict[Risk, str]] = {
    Risk.critical: "bold reverse $text-error",
    Risk.high: "bold $text-error",
    Risk.medium: "bold $text-warning",
    Risk.low: "bold $foreground-muted",
}


@dataclass
class JsonView:
    """A value as pretty JSON, capped for display: `content` is highlighted, `note` says what was left out."""

    content: Content
    truncated: bool = False
    note: str = ""
    cut_lines: list[int] = field(default_factory=list)


def _unjsonable(value: object) -> str:
    return f"<{type(value).__name__}>"


def _encode_lines(value: Any) -> tuple[list[str], bool]:
    """The first lines of `json.dumps(value, indent=2, ensure_ascii=False)`, encoded lazily.

    Stops once the caps are reached, so the cost follows what is shown, not the size of the value.
    """
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, default=_unjsonable)
    lines = [""]
    chars = 0
    for chunk in encoder.iterencode(value):
        chars += len(chunk)
        first, *rest = chunk.split("\n")
        lines[-1] += first
        lines.extend(rest)
        if len(lines) > MAX_JSON_LINES or chars > MAX_JSON_CHARS:
            return lines[:MAX_JSON_LINES], True
    return lines, False


def _total_size(value: Any) -> int | None:
    try:  # compact JSON through the C encoder: fast, and only computed for a value already found too large
        return len(json.dumps(value, ensure_ascii=False, default=_unjsonable))
    except (ValueError, TypeError, RecursionError):
        return None


def json_view(value: Any) -> JsonView:
    """Pretty, highlighted, cleaned JSON of `value`, capped at MAX_JSON_LINES / MAX_JSON_CHARS / MAX_LINE_CHARS."""
    try:
        raw_lines, truncated = _encode_lines(value)
    except (ValueError, TypeError, RecursionError) as exc:
        text = one_line(f"cannot show this value as JSON ({type(exc).__name__}: {exc})", 500)
        return JsonView(Content.styled(text, _WARN), truncated=True, note=text)

    segments: list[Content] = []
    block: list[str] = []
    cut_lines: list[int] = []

    def flush() -> None:
        if block:
            segments.append(highlight("\n".join(block), language="json").rstrip("\n"))
            block.clear()

    for number, raw in enumerate(raw_lines):
        if len(raw) <= MAX_LINE_CHARS:
            block.append(clean(raw))
            continue
        # A cut line is highlighted on its own: its unterminated string must not colour the lines after it.
        flush()
        cut_lines.append(number)
        head = highlight(clean(raw[:MAX_LINE_CHARS]), language="json").rstrip("\n")
        marker = f" … [+{len(raw) - MAX_LINE_CHARS:,} characters not shown]"
        segments.append(Content.assemble(head, (marker, _WARN)))
    flush()

    note = ""
    if truncated:
        total = _total_size(value)
        of = f" of {total:,} characters (compact JSON)" if total is not None else ""
        note = (
            f"⚠ Too large to show in full: the first {len(raw_lines):,} lines "
            f"(up to {MAX_JSON_CHARS:,} characters) are shown{of}."
        )
    elif cut_lines:
        note = f'⚠ {len(cut_lines):,} long line(s) are cut, each marked "… [+N characters not shown]".'
    content = Content("\n").join(segments)
    if note:
        content = Content.assemble(content, "\n", (note, _WARN))
    return JsonView(content, truncated=truncated or bool(cut_lines), note=note, cut_lines=cut_lines)


def _text(value: str, limit: int = MAX_TEXT_CHARS, style: str = "") -> Content:
    """Agent text, cleaned, capped at `limit` characters with a visible marker."""
    shown = clean(value[:limit])
    if len(value) <= limit:
        return Content.styled(shown, style)
    return Content.assemble((shown, style), (f" … [+{len(value) - limit:,} characters not shown]", _WARN))


def _line(value: str, width: int = 500, style: str = "") -> Content:
    """Agent text as one line (newlines shown as ⏎), cut at `width` cells."""
    return Content.styled(one_line(value, width), style)


class ItemDetail(VerticalScroll, can_focus=True):
    """Shows one item; call `show(item, notice=...)` whenever the selection or the item changes.

    The deadline line (age, time left) repaints every second from the injected clock; nothing else is re-rendered.
    """

    DEFAULT_CSS = """
    ItemDetail {
        height: 1fr;
        padding: 0 1;
        background: $surface;
        & > Static { width: 1fr; height: auto; }
        & > .item-detail--notice {
            display: none;
            background: $warning-muted;
            color: $text;
            border-left: thick $warning;
            text-style: bold;
            padding: 0 1;
            margin: 0 0 1 0;
        }
        & > .item-detail--notice.-shown { display: block; }
        & > .item-detail--changes { margin: 0 0 1 0; border-left: thick $warning; }
        & > .item-detail--section { margin: 1 0 0 0; }
        & > .item-detail--json { background: $boost; padding: 0 1; }
        & > .-hidden { display: none; }
    }
    """

    EMPTY: ClassVar[str] = "No item selected"

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.time,
        operator: str | None = None,
        zone: tzinfo | None = None,
        warning_seconds: float = URGENT_SECONDS,
        extend_key: str = "x",
        id: str | None = None,
    ) -> None:
        """`warning_seconds`: a deadline closer than this is marked near (the config's deadline_warning);
        `extend_key`: the key the detail names where the source allows more time."""
        super().__init__(id=id)
        self._now = now
        self._warning_seconds = warning_seconds
        self._extend_key = extend_key
        self._operator = operator  # a claim by this operator reads "claimed by you"
        self._zone = zone  # times are drawn in it (None: local)
        self._item: Item | None = None
        self._notice: str | None = None
        self._empty = self.EMPTY
        self._timing_text = ""
        self._header = Static(id="item-detail-header")
        self._notice_line = Static(id="item-detail-notice", classes="item-detail--notice")
        self._changes = DiffView(id="item-detail-changes", classes="item-detail--changes")
        self._changed_from: Item | None = None
        self._timing = Static(id="item-detail-timing")
        self._why = Static(id="item-detail-why")  # where it ranks and why, what happens on expiry (why_line.py)
        self._rank: Rank | None = None
        self._why_text = ""
        self._gate = Static(id="item-detail-gate", classes="item-detail--section")
        self._args_title = Static(id="item-detail-args-title", classes="item-detail--section")
        self._args = Static(id="item-detail-args", classes="item-detail--json")
        self._output_title = Static(id="item-detail-output-title", classes="item-detail--section")
        self._output = Static(id="item-detail-output", classes="item-detail--json")
        self._context_view = Static(id="item-detail-context", classes="item-detail--section")

    @property
    def item(self) -> Item | None:
        return self._item

    @property
    def notice(self) -> str | None:
        return self._notice

    def compose(self) -> ComposeResult:
        yield self._notice_line  # first: the operator reads the warning before anything else
        yield self._changes  # then what changed, against the version that was on screen
        yield self._header
        yield self._timing
        yield self._why
        yield self._gate
        yield self._args_title
        yield self._args
        yield self._output_title
        yield self._output
        yield self._context_view

    def on_mount(self) -> None:
        self._render_item()
        self.set_interval(1.0, self._update_timing)
        self.set_interval(1.0, self._update_why)

    def show(
        self,
        item: Item | None,
        *,
        notice: str | None = None,
        empty: str | None = None,
        changed_from: Item | None = None,
    ) -> None:
        """Show `item` (or the empty state: `empty`, default "No item selected"; e.g. "Queue is empty").

        `notice` is shown prominently above everything else (e.g. "This item changed since you opened it").
        `changed_from`: the version of this item the operator had on screen; what changed is shown under the notice.
        The view scrolls to the top when a different item is shown, and keeps its place for the same one.
        """
        previous = self._item
        self._item = item
        self._notice = notice
        self._changed_from = changed_from if item is not None else None
        self._empty = empty or self.EMPTY
        self._render_item()
        same = item is not None and previous is not None and (item.source, item.id) == (previous.source, previous.id)
        if not same:
            self.scroll_home(animate=False)

    # -- rendering --------------------------------------------------------------------------------------

    @property
    def changed_from(self) -> Item | None:
        return self._changed_from

    def _render_item(self) -> None:
        item = self._item
        self._render_notice()
        self._render_changes()
        body = (self._timing, self._why, self._gate, self._args_title, self._args, self._context_view)
        if item is None:
            self._header.update(Content.styled(self._empty, "italic $foreground-muted"))
            for widget in (*body, self._output_title, self._output):
                widget.display = False
            self._timing_text = ""
            return
        for widget in body:
            widget.display = True
        self._header.update(self._header_content(item))
        self._update_timing()
        self._update_why()
        self._gate.update(self._gate_content(item))
        if item.action is None:  # an escalation without an action (R1): only its output is in doubt
            self._args_title.update(Content.assemble(("Action", _TITLE), ("  none: nothing runs on accept", _LABEL)))
            self._args.update("")
        else:
            args = json_view(item.action.args)
            what = "what will be executed" if item.kind == "approval" else "the action the output belongs to"
            self._args_title.update(
                Content.assemble(
                    ("Arguments", _TITLE),
                    (f"  ({what})", _LABEL),
                    *([("\n", ""), (args.note, _WARN)] if args.note else []),
                )
            )
            self._args.update(args.content)
        escalation = item.kind == "escalation"
        self._output_title.display = escalation
        self._output.display = escalation
        if escalation:
            output = json_view(item.output)
            self._output_title.update(
                Content.assemble(
                    ("Output", _TITLE),
                    ("  (what the agent produced: accept, correct or reject it)", _LABEL),
                    *([("\n", ""), (output.note, _WARN)] if output.note else []),
                )
            )
            self._output.update(output.content)
        self._context_view.update(self._context_content(item))

    def _render_changes(self) -> None:
        before, item = self._changed_from, self._item
        self._changes.display = before is not None and item is not None
        if before is not None and item is not None:
            # Everything the operator is shown, both versions: the same diff an edit is reviewed with.
            shown_before = shown_part(before.model_dump(mode="json"))
            shown_now = shown_part(item.model_dump(mode="json"))
            self._changes.show(shown_before, shown_now, values=True, max_lines=CHANGE_LINES)

    def _render_notice(self) -> None:
        if self._notice:
            self._notice_line.update(Content.styled("⚠ " + clean(self._notice)))
            self._notice_line.add_class("-shown")
        else:
            self._notice_line.update("")
            self._notice_line.remove_class("-shown")

    def _header_content(self, item: Item) -> Content:
        kind_style = "bold reverse $text-accent" if item.kind == "escalation" else "bold reverse $text-primary"
        confidence_style = "bold $text-warning" if is_low_confidence(item.confidence) else "$text-primary"
        parts: list[Content | tuple[str, str] | str] = [
            (f" {item.kind.upper()} ", kind_style),
            "  ",
            _line(item.headline, style="bold"),
            "\n",
            (f" {risk_label(item.risk).strip()} ", _RISK_STYLES[item.risk]),
            (" risk   ", _LABEL),
            ("confidence ", _LABEL),
            (confidence_text(item.confidence).strip() or "—", confidence_style),
            ("   (risk, confidence and reasoning are the agent's own claims)", _CLAIM),
            "\n",
            ("agent ", _LABEL),
            _line(item.agent, style="bold"),
            ("   workflow ", _LABEL),
            _line(item.workflow) if item.workflow else ("—", _LABEL),
            ("   source ", _LABEL),
            _line(item.source) if item.source else ("—", _LABEL),
            "\n",
            ("id ", _LABEL),
            _line(item.id),
            ("   version ", _LABEL),
            (item.digest[:19] + "…", _LABEL),
        ]
        if item.claimed_by and item.claimed_by == self._operator:
            parts += [("   claimed by you", _LABEL)]
        elif item.claimed_by:
            parts += [
                ("   ⚑ claimed by ", _WARN),
                _line(item.claimed_by, 100, _WARN),
                (" (someone else may be deciding it)", _CLAIM),
            ]
        progress = approvals_content(item, self._operator, self._zone)  # a two-person item: "1 of 2", who, when
        if progress is not None:
            parts += ["\n", progress]
        return Content.assemble(*parts)

    def _timing_content(self, item: Item, now: float) -> Content:
        """The countdown first (what happens, and when, if nobody decides), then the exact deadline and age."""
        parts: list[Content | tuple[str, str] | str] = []
        if item.expires_at is None:
            parts += [("no deadline", _LABEL), ("   on expiry ", _LABEL), _line(item.on_expiry, 200, "bold")]
        else:
            left = item.expires_at.timestamp() - now
            near = 0 < left <= self._warning_seconds
            style = "bold reverse $text-error" if left <= 0 or near else "bold $text-primary"
            countdown = format_countdown(left)
            parts.append(
                (
                    f" ⚠ {countdown} left: deadline near "
                    if near
                    else f" {countdown} left "
                    if left > 0
                    else f" {countdown} ",
                    style,
                )
            )
            parts += [("   on expiry ", _LABEL), _line(item.on_expiry, 200, "bold")]
            if item.on_expiry == "approve":
                parts += [("  ", ""), (" ✔ APPROVES ITSELF if nobody decides in time ", "bold reverse $text-warning")]
            else:
                parts += [("  (what the agent does if nobody decides in time)", _CLAIM)]
        parts += ["\n", ("created ", _LABEL), f"{format_age(now - item.created_at.timestamp())} ago"]
        if item.expires_at is not None:
            parts += [("   deadline ", _LABEL), zoned_time(item.expires_at, self._zone)]
            more = item.extendable_seconds
            if more > 0:
                parts += [
                    (f"   {self._extend_key} ", "bold $text-accent"),
                    (f"more time (up to {format_left(more)})", _LABEL),
                ]
            else:
                parts += [("   fixed: the source allows no more time", _LABEL)]
        return Content.assemble(*parts)

    def _update_timing(self) -> None:
        item = self._item
        if item is None:
            return
        content = self._timing_content(item, self._now())
        if content.plain != self._timing_text:  # only touch the widget when a number changed
            self._timing_text = content.plain
            self._timing.update(content)

    def show_rank(self, rank: Rank | None) -> None:
        """Where the item shown stands in the view (None: not in it); the why line says it with its reasons."""
        self._rank = rank
        self._update_why()

    def _update_why(self) -> None:
        item = self._item
        if item is None:
            self._why_text = ""
            return
        content = why_content(item, self._rank, self._now())
        if content.plain != self._why_text:
            self._why_text = content.plain
            self._why.update(content)

    def _gate_content(self, item: Item) -> Content:
        policy = _text(item.policy) if item.policy else Content.styled("(no policy given)", _LABEL)
        return Content.assemble(("Why it was stopped (policy)", _TITLE), "\n", policy)

    def _context_content(self, item: Item) -> Content:
        context = item.context
        parts: list[Content | tuple[str, str] | str] = [("Summary", _TITLE), "\n"]
        parts.append(_text(context.summary) if context.summary else Content.styled("(none)", _LABEL))
        parts += ["\n\n", ("Reasoning", _TITLE), ("  (the agent's claim, not verified)", _CLAIM), "\n"]
        parts.append(_text(context.reasoning) if context.reasoning else Content.styled("(none)", _LABEL))
        parts += ["\n\n", ("Evidence", _TITLE), "\n"]
        if context.evidence:
            for entry in context.evidence:
                parts += [("- ", _LABEL), _text(entry), "\n"]
        else:
            parts += [("(none)", _LABEL), "\n"]
        parts += ["\n", ("Links", _TITLE), ("  (shown as text, not clickable)", _LABEL), "\n"]
        if context.links:
            for link in context.links:
                parts += [("- ", _LABEL), _line(link, 2_000), "\n"]
        else:
            parts += [("(none)", _LABEL), "\n"]
        if item.trace:  # where the agent's run is traced: its labels attach there (shown as text, never opened)
            parts += ["\n", ("Trace", _TITLE), ("  (the agent's run in its tracing tool)", _LABEL), "\n"]
            for key, value in item.trace.items():
                parts += [(f"{key}: ", _LABEL), _line(value, 2_000), "\n"]
        allowed = ", ".join(verdict.value for verdict in item.allowed_decisions) or "none"
        parts += ["\n", ("Allowed decisions ", _LABEL), (allowed, "bold")]
        return Content.assemble(*parts)
