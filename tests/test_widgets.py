"""Tests for widgets/: hostile text stays literal and inert, the virtual list stays cheap, the bars tell the truth.

The RowProvider here is an in-memory list: the widget's own harness, not a stand-in for a server.
Screen text is read from the compositor (what the terminal would be sent), with a fixed clock.
"""

from __future__ import annotations

import ast
import sys
import unicodedata
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.reactive import var
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Footer

from storage.records import Item, QueueRow, Risk, SourceHealth, Verdict
from tests.conftest import composed_strips
from widgets import (
    ItemDetail,
    QueueBar,
    QueueList,
    StatusBar,
    UndoBar,
    UndoPrompt,
    clean,
    confidence_meter,
    confidence_text,
    format_age,
    format_left,
    json_view,
    literal,
    one_line,
    risk_badge,
    safe_content,
    status_content,
)
from widgets.detail import MAX_JSON_LINES

NOW = 1_800_000_000.0  # fixed clock: 2027-01-15 08:00:00 UTC
WIDGETS_DIR = Path(__file__).resolve().parent.parent / "widgets"

# Markup that Textual/Rich would act on if it were ever parsed (see notes/textual.md).
MARKUP = ["[bold]x[/]", "[@click=app.quit]y[/]", "[$accent]z", "[/x]", "[bold]x[/bold]"]
ESCAPES = {
    "csi": "\x1b[31mred\x1b[0m",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click me\x1b]8;;\x1b\\",
    "osc52": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "c1_csi": "\x9b31m",
    "c1_osc": "\x9d52;c;eA==\x9c",
    "bidi": "invoice_\u202egpj.exe\u202c",
    "isolate": "\u2066hidden\u2069 \u2067x\u2068y",
    "marks": "\u200e\u200f\u061c",
    "del_nul": "a\x7fb\x00c",
    "tags": "ok\U000e0041\U000e0042",
    "zero_width": "ad\u200bmin",
    "surrogate": "x\ud800y",
}
# Pydantic refuses lone surrogates in str fields, but not inside args/output (Any): those get them.
HOSTILE = " ".join([*MARKUP, *(value for key, value in ESCAPES.items() if key != "surrogate")])
# For the fields capped at 200 characters (ids, names).
SHORT = "[@click=app.quit]y[/] [$accent]z [/x] \x1b[31mR\x1b[0m \x1b]52;c;eA==\x07 \u202eevil\u202c \x9b1m"


def screen_lines(app: App[Any]) -> list[str]:
    """The screen as plain text lines, exactly as the compositor would send them."""
    return ["".join(segment.text for segment in strip) for strip in composed_strips(app)]


def screen_strips(app: App[Any]) -> list[Strip]:
    return composed_strips(app)


def row(index: int, *, source: str = "prod", **overrides: Any) -> QueueRow:
    risks = [Risk.critical, Risk.high, Risk.medium, Risk.low]
    values: dict[str, Any] = {
        "source": source,
        "id": f"item-{index}",
        "kind": "escalation" if index % 3 == 0 else "approval",
        "agent": f"agent-{index}",
        "action": f"deploy.service-{index}",
        "risk": risks[index % 4],
        "confidence": None if index % 5 == 0 else (index % 100) / 100,
        "created_at": NOW - 30,
        "expires_at": NOW + 3600,
    }
    values.update(overrides)
    return QueueRow(**values)


class ListProvider:
    """A RowProvider over a list, recording every call."""

    def __init__(self, rows: list[QueueRow] | None = None, size: int = 0) -> None:
        self._rows = rows
        self._size = size
        self.count_calls = 0
        self.rows_calls: list[tuple[int, int]] = []
        self.index_calls: list[tuple[str, str]] = []

    @property
    def data(self) -> list[QueueRow]:
        assert self._rows is not None
        return self._rows

    def count(self) -> int:
        self.count_calls += 1
        return len(self._rows) if self._rows is not None else self._size

    def rows(self, offset: int, limit: int) -> Sequence[QueueRow]:
        self.rows_calls.append((offset, limit))
        if self._rows is not None:
            return self._rows[offset : offset + limit]
        return [row(i) for i in range(offset, min(self._size, offset + limit))]

    def index_of(self, source: str, item_id: str) -> int | None:
        self.index_calls.append((source, item_id))
        if self._rows is None:
            index = int(item_id.removeprefix("item-"))
            return index if index < self._size else None
        for index, candidate in enumerate(self._rows):
            if (candidate.source, candidate.id) == (source, item_id):
                return index
        return None


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ListApp(App[None]):
    def __init__(self, provider: ListProvider, clock: Clock | None = None) -> None:
        super().__init__()
        self.provider = provider
        self.clock = clock or Clock()
        self.highlights: list[QueueRow | None] = []

    def compose(self) -> ComposeResult:
        yield QueueList(self.provider, now=self.clock)
        yield Footer()

    def on_queue_list_highlighted(self, message: QueueList.Highlighted) -> None:
        self.highlights.append(message.row)


def make_item(**overrides: Any) -> Item:
    values: dict[str, Any] = {
        "source": "prod",
        "id": "item-1",
        "kind": "approval",
        "agent": "billing-agent",
        "workflow": "refunds",
        "action": {"name": "refund.issue", "args": {"amount": 120, "currency": "EUR"}},
        "context": {"summary": "Customer asked for a refund", "reasoning": "Order arrived broken"},
        "confidence": 0.41,
        "risk": Risk.high,
        "policy": "refunds over 100 EUR need a human",
        "created_at": datetime.fromtimestamp(NOW - 600, UTC),
        "expires_at": datetime.fromtimestamp(NOW + 720, UTC),
        "digest": "sha256:" + "0" * 64,
    }
    values.update(overrides)
    return Item(**values)


def hostile_item() -> Item:
    return make_item(
        id="item-" + SHORT,
        kind="escalation",
        agent="agent " + SHORT,
        workflow="wf " + SHORT,
        action={"name": "act " + SHORT, "args": {"cmd": HOSTILE, HOSTILE: [HOSTILE, 1, None, ESCAPES["surrogate"]]}},
        output={"label": HOSTILE, "raw": ESCAPES["surrogate"]},
        context={
            "summary": "summary " + HOSTILE,
            "reasoning": "reasoning " + HOSTILE,
            "evidence": [HOSTILE, "second"],
            "links": ["https://example.com/" + HOSTILE],
        },
        policy="policy " + HOSTILE,
        on_expiry="reject " + SHORT,
        claimed_by="bob " + SHORT,
    )


class DetailApp(App[None]):
    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock or Clock()

    def compose(self) -> ComposeResult:
        yield ItemDetail(now=self.clock)


# -- safe_text --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ESCAPES))
@pytest.mark.parametrize("multiline", [True, False])
def test_clean_neutralises_escapes_and_invisible_characters(name: str, multiline: bool) -> None:
    cleaned = clean(ESCAPES[name], multiline=multiline)
    assert cleaned != ESCAPES[name]
    assert not any(unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"} for char in cleaned)
    cleaned.encode("utf-8")  # a lone surrogate would raise here, and in the terminal driver


def test_clean_uses_visible_stand_ins() -> None:
    assert clean("\x1b[31m") == "␛[31m"
    assert clean("\x1b]52;c;eA==\x07") == "␛]52;c;eA==␇"
    assert clean("\x9b") == "⟨U+009B⟩"
    assert clean("a\u202eb") == "a⟨U+202E⟩b"
    assert clean("\u2066\u2069\u200e\u200f\u061c") == "⟨U+2066⟩⟨U+2069⟩⟨U+200E⟩⟨U+200F⟩⟨U+061C⟩"
    assert clean("\x7f\x00") == "␡␀"
    assert clean("x\ud800") == "x⟨U+D800⟩"


@pytest.mark.parametrize("markup", [*MARKUP, "[b]Agent:[/b] $x", "\\[escaped]", "@click"])
def test_clean_leaves_markup_looking_text_alone(markup: str) -> None:
    assert clean(markup) == markup
    assert literal(markup).plain == markup
    assert literal(markup).spans == []
    assert safe_content(markup).plain == markup


def test_clean_multiline_and_single_line() -> None:
    assert clean("a\nb\tc") == "a\nb\tc"
    assert clean("a\r\nb") == "a\nb"
    assert clean("a\rb") == "a␍b"
    assert clean("a\nb\tc\r\nd", multiline=False) == "a⏎b␉c⏎d"
    assert clean("héllo 世界 🙂 – ok") == "héllo 世界 🙂 – ok"


def test_clean_covers_every_control_and_format_character() -> None:
    # Guards the hand-written character class against the running Python's Unicode tables.
    missed = []
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        hidden = unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"} and char not in "\n\t"
        if hidden and char in (clean(char), clean(char, multiline=False)):
            missed.append(f"U+{code:04X}")
    assert missed == []
    assert clean("\n\t", multiline=False) == "⏎␉"


def test_one_line_truncates_by_cell_width() -> None:
    assert one_line("abc", 5) == "abc"
    assert one_line("abcdefgh", 5) == "abcd…"
    assert cell_len(one_line("世界世界世界", 5)) == 5
    assert one_line("世界世界世界", 5).endswith("…")
    assert one_line("a\nb", 10) == "a⏎b"
    assert one_line("\x1b[2J", 10) == "␛[2J"
    assert one_line("anything", 0) == ""
    huge = one_line("x" * 1_000_000, 10)
    assert huge == "x" * 9 + "…"


# -- badges -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "0s"),
        (0, "0s"),
        (45.9, "45s"),
        (60, "1m"),
        (12 * 60 + 59, "12m"),
        (3900, "1h05m"),
        (3 * 86400 + 4 * 3600, "3d04h"),
    ],
)
def test_format_age(seconds: float, expected: str) -> None:
    assert format_age(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, "—"), (-1, "expired"), (0, "expired"), (0.2, "1s"), (45, "45s"), (720, "12m"), (3900, "1h05m")],
)
def test_format_left(seconds: float | None, expected: str) -> None:
    assert format_left(seconds) == expected


def test_badges() -> None:
    assert confidence_text(0.41) == "▰▰▱▱▱ 0.41"
    assert confidence_text(1.0) == "▰▰▰▰▰ 1.00"
    assert confidence_text(0.0) == "▱▱▱▱▱ 0.00"
    assert "—" in confidence_text(None)
    assert len(confidence_text(None)) == len(confidence_text(0.5))
    meter = confidence_meter(0.41, style="bold", empty_style="dim")
    assert meter.plain == "▰▰▱▱▱ 0.41"
    assert [str(span.style) for span in meter.spans] == ["bold", "dim", "bold"]
    assert risk_badge(Risk.critical, "red").plain == "CRIT"
    assert {risk_badge(risk).plain.strip() for risk in Risk} == {"CRIT", "HIGH", "MED", "LOW"}
    assert len({len(risk_badge(risk).plain) for risk in Risk}) == 1


# -- item detail ------------------------------------------------------------------------------------------


async def test_detail_renders_hostile_item_literally() -> None:
    app = DetailApp()
    async with app.run_test(size=(120, 120)) as pilot:
        detail = app.query_one(ItemDetail)
        detail.show(hostile_item(), notice="This item changed since you opened it")
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        for markup in MARKUP:
            assert markup in text, markup
        assert "\x1b" not in text
        assert "\x9b" not in text
        assert "\u202e" not in text
        assert "␛[31mred" in text  # free text: control pictures
        assert "\\u001b[31mred" in text  # JSON: escaped by json.dumps, shown as such
        assert "gpj.exe⟨U+202C⟩" in text
        assert "⟨U+202E⟩" in text
        # Nothing clickable: markup was never parsed, so no @click/link meta reached the screen.
        for strip in screen_strips(app):
            for segment in strip:
                if segment.style is not None:
                    assert "@click" not in segment.style.meta
                    assert segment.style.link is None
        # The notice comes first, before the header.
        first = next(index for index, line in enumerate(lines) if line.strip())
        assert "This item changed since you opened it" in lines[first]
        assert "ESCALATION" in text
        assert "Output" in text
        assert "the agent's claim" in text
        assert "not clickable" in text
        svg = app.export_screenshot()
        assert "\x1b" not in svg
        assert "[@click=app.quit]y[/]" in svg.replace("&#160;", " ") or "@click=app.quit" in svg
        await pilot.click(ItemDetail, offset=(30, 20))  # clicking agent text must not run actions
        await pilot.pause()
        assert app.is_running
        assert app.return_code is None


async def test_detail_shows_fields_and_counts_down() -> None:
    clock = Clock()
    app = DetailApp(clock)
    async with app.run_test(size=(110, 60)) as pilot:
        detail = app.query_one(ItemDetail)
        item = make_item(allowed_decisions=(Verdict.approve, Verdict.reject))
        detail.show(item)
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "APPROVAL" in text
        assert "refund.issue" in text
        assert "HIGH" in text
        assert "▰▰▱▱▱ 0.41" in text
        assert "billing-agent" in text
        assert "refunds over 100 EUR need a human" in text
        assert '"amount": 120' in text
        assert "12m left" in text
        assert "on expiry reject" in text
        assert "approve, reject" in text
        assert "approve, reject, edit" not in text
        assert "changed since" not in text
        assert "Output" not in text  # approvals have no output section
        clock.now += 11 * 60
        await pilot.pause(1.3)
        text = "\n".join(screen_lines(app))
        assert "1m00s left" in text  # the last ten minutes count down to the second
        clock.now += 120
        await pilot.pause(1.3)
        assert "expired" in "\n".join(screen_lines(app))


async def test_detail_empty_states() -> None:
    app = DetailApp()
    async with app.run_test(size=(80, 20)) as pilot:
        detail = app.query_one(ItemDetail)
        detail.show(make_item())
        await pilot.pause()
        assert "Arguments" in "\n".join(screen_lines(app))
        detail.show(None)
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "No item selected" in text
        assert "Arguments" not in text
        detail.show(None, empty="Queue is empty")
        await pilot.pause()
        assert "Queue is empty" in "\n".join(screen_lines(app))


async def test_detail_caps_huge_arguments() -> None:
    big = {"rows": [{"id": i, "name": "n" * 20, "tags": ["a", "b"]} for i in range(200_000)]}
    long_line = {"sql": "SELECT 1; " * 10_000 + "DROP TABLE users"}
    view = json_view(big)  # how fast is `make bench`'s business; here: capped, and the app lives
    assert view.truncated
    assert view.content.plain.count("\n") <= MAX_JSON_LINES + 2
    assert "Too large to show in full" in view.note
    cut = json_view(long_line)
    assert cut.cut_lines == [1]
    assert "characters not shown" in cut.content.plain
    assert "characters not shown]\n}" in cut.content.plain  # the line after the cut is still there

    app = DetailApp()
    async with app.run_test(size=(100, 40)) as pilot:
        app.query_one(ItemDetail).show(make_item(action={"name": "bulk", "args": big}))
        await pilot.pause()
        text = "\n".join(screen_lines(app))
        assert "Too large to show in full" in text
        assert app.is_running


# -- queue list -------------------------------------------------------------------------------------------


def body_lines(app: App[Any]) -> list[str]:
    """The queue list's lines (header first); the footer is the last screen line."""
    return screen_lines(app)[:-1]


@asynccontextmanager
async def listed(
    provider: ListProvider, size: tuple[int, int]
) -> AsyncIterator[tuple[ListApp, Pilot[None], QueueList]]:
    """A ListApp on `provider`, laid out, and its queue list."""
    app = ListApp(provider)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        yield app, pilot, app.query_one(QueueList)


async def test_queue_list_100k_rows_keys_and_highlight() -> None:
    provider = ListProvider(size=100_000)
    async with listed(provider, (120, 30)) as (app, pilot, queue):
        lines = body_lines(app)
        assert "RISK" in lines[0]
        assert "AGENT" in lines[0]
        assert "LEFT" in lines[0]
        assert "agent-0" in lines[1]
        assert lines[1].startswith(">")
        assert app.highlights[-1] is not None
        assert app.highlights[-1].id == "item-0"
        # j / k move (below) but stay out of the footer: the main screen needs its width; `?` lists them.
        assert "j Down" not in screen_lines(app)[-1]

        async def press(key: str) -> QueueRow:
            await pilot.press(key)
            await pilot.pause()
            last = app.highlights[-1]
            assert last is not None
            assert queue.highlighted == last
            return last

        assert (await press("j")).id == "item-1"
        assert (await press("down")).id == "item-2"
        assert (await press("k")).id == "item-1"
        page = queue.scrollable_content_region.height - 1
        assert (await press("pagedown")).id == f"item-{1 + page}"
        assert (await press("end")).id == "item-99999"
        lines = body_lines(app)
        assert "RISK" in lines[0]  # the header stays put
        assert "agent-99999" in lines[-1]
        assert ">" in lines[-1][:1]
        assert (await press("pageup")).id == f"item-{99999 - page}"
        assert (await press("home")).id == "item-0"
        assert "agent-0" in body_lines(app)[1]
        assert provider.count_calls == 1
        assert provider.rows_calls
        assert all(limit <= 200 for _, limit in provider.rows_calls)
        assert len(provider.rows_calls) <= 6


async def test_queue_list_click_selects_row() -> None:
    provider = ListProvider([row(i) for i in range(50)])
    app = ListApp(provider)
    async with app.run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        await pilot.click(QueueList, offset=(20, 4))  # line 0 is the header, so this is row 3
        await pilot.pause()
        assert app.highlights[-1] is not None
        assert app.highlights[-1].id == "item-3"
        assert body_lines(app)[4].startswith(">")


async def test_queue_list_wheel_scroll_keeps_cursor_visible() -> None:
    provider = ListProvider([row(i) for i in range(500)])
    async with listed(provider, (100, 20)) as (app, pilot, queue):
        queue.scroll_to(y=100, animate=False)
        await pilot.pause()
        top = queue.scroll_offset.y
        assert top > 0
        assert top <= queue.cursor < top + queue.scrollable_content_region.height - 1
        assert app.highlights[-1] == queue.highlighted
        assert any(line.startswith(">") for line in body_lines(app)[1:])


async def test_queue_list_refresh_keeps_the_same_item() -> None:
    provider = ListProvider([row(i) for i in range(100)])
    async with listed(provider, (100, 20)) as (app, pilot, queue):
        queue.move_to(50)
        await pilot.pause()
        assert app.highlights[-1] is not None
        assert app.highlights[-1].id == "item-50"
        posted = len(app.highlights)

        provider.data[0:0] = [row(1000 + i, source="other") for i in range(10)]
        queue.refresh_rows()
        await pilot.pause()
        assert queue.cursor == 60
        assert queue.highlighted is not None
        assert queue.highlighted.id == "item-50"
        assert len(app.highlights) == posted  # same item: no new Highlighted
        assert any(line.startswith(">") and "agent-50 " in line for line in body_lines(app))

        del provider.data[60]  # the highlighted item was decided elsewhere
        queue.refresh_rows()
        await pilot.pause()
        assert queue.cursor == 60
        assert app.highlights[-1] is not None
        assert app.highlights[-1].id == "item-51"

        provider.data.clear()
        queue.refresh_rows()
        await pilot.pause()
        assert app.highlights[-1:] == [None]
        assert queue.highlighted is None
        assert "Queue is empty" in "\n".join(body_lines(app))

        provider.data.extend(row(i) for i in range(3))
        queue.refresh_rows()
        await pilot.pause()
        assert app.highlights[-1] is not None
        assert app.highlights[-1].id == "item-0"


async def test_queue_list_time_columns_tick_without_refetch() -> None:
    clock = Clock()
    provider = ListProvider([row(i, created_at=NOW - 5, expires_at=NOW + 400) for i in range(40)])
    app = ListApp(provider, clock)
    async with app.run_test(size=(100, 20)) as pilot:
        await pilot.pause()
        first = body_lines(app)[1]
        assert first.rstrip().endswith("5s      6m")
        calls = (provider.count_calls, list(provider.rows_calls))
        clock.now += 60
        await pilot.pause(1.3)
        first = body_lines(app)[1]
        assert first.rstrip().endswith("1m      5m")
        clock.now += 400
        await pilot.pause(1.3)
        assert body_lines(app)[1].rstrip().endswith("expired")
        assert (provider.count_calls, provider.rows_calls) == calls


async def test_queue_list_renders_agent_text_literally() -> None:
    provider = ListProvider([row(0, agent=HOSTILE, action="act " + HOSTILE), row(1)])
    app = ListApp(provider)
    async with app.run_test(size=(200, 10)) as pilot:
        await pilot.pause()
        line = body_lines(app)[1]
        assert "[bold]x[/]" in line
        assert "\x1b" not in "\n".join(screen_lines(app))
        assert "⏎" not in line or "\n" not in line
        assert len(body_lines(app)[1]) == len(body_lines(app)[2])  # hostile text did not break the columns
        for strip in screen_strips(app):
            for segment in strip:
                if segment.style is not None:
                    assert "@click" not in segment.style.meta
        await pilot.click(QueueList, offset=(40, 1))
        await pilot.pause()
        assert app.is_running


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_queue_list_colours_come_from_the_theme(theme: str) -> None:
    provider = ListProvider([row(i) for i in range(10)])
    app = ListApp(provider)
    async with app.run_test(size=(100, 12)) as pilot:
        app.theme = theme
        await pilot.pause()
        strips = screen_strips(app)

        def background(strip: Strip, text: str) -> Any:
            return next(seg.style.bgcolor for seg in strip if seg.style is not None and text in seg.text)

        cursor_bg = background(strips[1], "agent-0")
        plain_bg = background(strips[2], "agent-1")
        assert cursor_bg != plain_bg
        surface = app.get_css_variables()["surface"]
        assert plain_bg.triplet.hex.lower() == surface.lower()
        crit = background(strips[1], "CRIT")
        assert crit not in (cursor_bg, plain_bg)  # the critical badge keeps its own colour on the cursor row


# -- status bar -------------------------------------------------------------------------------------------


async def test_status_bar_shows_health_backlog_and_operator() -> None:
    class StatusApp(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusBar()

    sources = [
        SourceHealth(name="[b]prod", state="up", last_poll_at=NOW - 3, quarantined=2),
        SourceHealth(
            name="staging",
            state="down",
            last_poll_at=NOW - 1,
            last_ok_at=NOW - 125,
            error="cannot reach http://u:pw@staging:8700: connection refused \x1b[2J",
        ),
        SourceHealth(name="lab", state="auth", last_poll_at=NOW - 7),
        SourceHealth(name="new", state="starting"),
    ]
    app = StatusApp()
    async with app.run_test(size=(200, 5)) as pilot:
        bar = app.query_one(StatusBar)
        bar.update_status(sources, waiting=3, conflicts=2, operator="alice", now=NOW)
        await pilot.pause()
        text = " ".join(screen_lines(app))
        for expected in [
            "[b]prod",
            " up ",
            "polled 3s ago",
            "2 malformed",
            "staging",
            " down ",
            "cannot reach: connection refused ␛[2J",  # the short reason, without the address
            "last good poll 2m ago",  # not "polled 1s ago": that read like a good poll
            "auth failed",
            "never answered",
            "never polled",
            "starting",
            "3 to sync",
            "2 conflicts",
            "operator: alice",
        ]:
            assert expected in text, expected
        assert "\x1b" not in text
        assert bar.tooltip is not None
        assert "␛[2J" in str(bar.tooltip)

        bar.update_status(sources[:1], waiting=0, conflicts=0, operator="bob", now=NOW + 10)
        await pilot.pause()
        text = " ".join(screen_lines(app))
        assert "conflict" not in text
        assert "all synced" in text
        assert "polled 13s ago" in text
        assert "operator: bob" in text
        assert "malformed" in text


def test_status_content_colours_states_by_theme_variables() -> None:
    content = status_content(
        [SourceHealth(name="a", state="up", last_poll_at=NOW), SourceHealth(name="b", state="down")],
        waiting=1,
        conflicts=1,
        operator="x",
        now=NOW,
    )
    plain = content.plain
    styles = {plain[span.start : span.end]: str(span.style) for span in content.spans}
    assert "$text-success" in styles[" up "]
    assert "$text-error" in styles[" down "]
    assert "$text-error" in styles[" 1 conflict "]
    assert "$text-warning" in styles["1 to sync"]


# -- layering ---------------------------------------------------------------------------------------------


def test_widgets_import_only_what_the_layering_allows() -> None:
    forbidden = {"httpx", "sqlite3", "sqlite_utils", "console", "keyring"}
    # records, the pure text cleaning the log shares, and the JSON diff the labels share
    allowed_storage = {"storage.records", "storage.safe_text", "storage.json_diff"}
    problems = []
    for path in sorted(WIDGETS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                if root in forbidden or (root == "storage" and name not in allowed_storage):
                    problems.append(f"{path.name}: {name}")
    assert problems == []


# -- queue bar, undo bar, and state bound from a parent ------------------------------------------------


class BarApp(App[None]):
    def __init__(self, bar: Widget) -> None:
        super().__init__()
        self.bar = bar

    def compose(self) -> ComposeResult:
        yield self.bar


async def test_queue_bar_draws_the_count_order_and_filter_it_is_given() -> None:
    app = BarApp(QueueBar())
    async with app.run_test(size=(120, 3)) as pilot:
        bar = app.query_one(QueueBar)
        bar.count, bar.description = 1234, "most urgent first"
        await pilot.pause()
        line = screen_lines(app)[0]
        assert "QUEUE 1,234 items  ·  most urgent first" in line and "filter" not in line.split("(")[0]
        bar.count, bar.filter_text = 1, "deploy\x1b[2J"
        await pilot.pause()
        line = screen_lines(app)[0]
        assert "QUEUE 1 item  ·" in line
        assert "filter deploy␛[2J" in line, "the filter as typed, escapes shown, not sent"


async def test_undo_bar_is_hidden_without_a_prompt_and_counts_down_the_one_it_is_given() -> None:
    app = BarApp(UndoBar())
    async with app.run_test(size=(100, 3)) as pilot:
        bar = app.query_one(UndoBar)
        assert not bar.display, "nothing to undo: no bar"
        bar.prompt = UndoPrompt("Approved: Restart web (deployer)", seconds_left=4, more=2)
        await pilot.pause()
        assert bar.display
        line = screen_lines(app)[0]
        assert "↶ Approved: Restart web (deployer)  —  press  u  to undo (4s)  (+2 more)" in line
        bar.prompt = UndoPrompt("Rejected: Drop table (dba)", seconds_left=1)
        await pilot.pause()
        line = screen_lines(app)[0]
        assert "Rejected: Drop table (dba)" in line and "(1s)" in line and "more" not in line
        bar.prompt = None
        await pilot.pause()
        assert not bar.display


async def test_status_bar_follows_state_bound_from_its_screen() -> None:
    """The main screen's way: the bar's reactives bound with data_bind to the parent's, never set by hand."""

    class StatusScreen(Screen[None]):
        health: var[tuple[SourceHealth, ...] | None] = var(None)
        waiting: var[int] = var(0)
        clock: var[float] = var(NOW)

        def compose(self) -> ComposeResult:
            yield StatusBar().data_bind(
                sources=StatusScreen.health, waiting=StatusScreen.waiting, now=StatusScreen.clock
            )

    class StatusApp(App[None]):
        def on_mount(self) -> None:
            self.push_screen(StatusScreen())

    app = StatusApp()
    async with app.run_test(size=(120, 3)) as pilot:
        screen = app.screen
        assert isinstance(screen, StatusScreen)
        await pilot.pause()
        assert screen_lines(app)[0].strip() == "", "blank until the first status, not 'no sources configured'"
        screen.health = (SourceHealth(name="prod", state="up", last_poll_at=NOW - 3),)
        screen.waiting = 2
        await pilot.pause()
        assert "prod  up   polled 3s ago  |  2 to sync" in screen_lines(app)[0]
        screen.clock = NOW + 60
        await pilot.pause()
        assert "polled 1m ago" in screen_lines(app)[0], "the clock moves the ages on"
        screen.health = (SourceHealth(name="prod", state="down", last_ok_at=NOW, error="connection refused"),)
        await pilot.pause()
        bar = screen.query_one(StatusBar)
        assert "connection refused" in screen_lines(app)[0]
        assert bar.tooltip is not None and "prod: connection refused" in str(bar.tooltip)
