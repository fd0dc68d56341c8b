"""Every badge and column of the queue list reads at WCAG AA (4.5:1) on every row state, in both themes.

The real app over the demo fleet, driven by Pilot; the contrast is computed from what the terminal is sent (the
composed screen's segments: foreground and background of every run of visible text in the list).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rich.color import Color as RichColor
from rich.style import Style
from textual.app import App
from textual.widget import Widget

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from tests.conftest import SOURCE, composed_strips, eventually
from widgets.contrast import AA, contrast, readable

AHEAD = 7200.0  # the list's clock runs two hours ahead: some deadlines have passed, one is minutes away


def hex_color(value: str) -> RichColor:
    return RichColor.parse(value)


@pytest.mark.parametrize(
    ("foreground", "background", "expected"),
    [
        ("#ffffff", "#000000", 21.0),
        ("#777777", "#ffffff", 4.48),  # the classic just-fails-AA grey
        ("#d17e92", "#0178d4", 1.53),  # HIGH on the highlighted row before the fix (textual-dark)
        ("#565656", "#004578", 1.35),  # age on the highlighted row before the fix (textual-light)
    ],
)
def test_contrast_is_the_wcag_ratio(foreground: str, background: str, expected: float) -> None:
    assert round(contrast(hex_color(foreground), hex_color(background)), 2) == expected


@pytest.mark.parametrize(
    ("foreground", "background"), [("#d17e92", "#0178d4"), ("#a86d1c", "#d8d8d8"), ("#0178d4", "#0178d4")]
)
def test_readable_nudges_a_foreground_just_far_enough(foreground: str, background: str) -> None:
    style = readable(Style(color=foreground, bgcolor=background, bold=True))
    assert style.color is not None and style.bgcolor is not None and style.bold
    assert contrast(style.color, style.bgcolor) >= AA
    assert readable(style) == style, "a readable style is left as it is"


@dataclass(frozen=True)
class Cell:
    line: int
    text: str
    ratio: float


def visible_text(app: App[Any], widget: Widget) -> Iterator[Cell]:
    """Every segment with visible text in `widget`'s content region of the composed screen, with its contrast.

    An unresolved colour, or dim text, is a failure: how the terminal draws those is unknown.
    """
    region = widget.scrollable_content_region  # not the scrollbar (a control, not text)
    strips = composed_strips(app)
    for y in range(region.y, region.bottom):
        for segment in strips[y].crop(region.x, region.right):
            if not segment.text.strip() or segment.control:
                continue
            style = segment.style
            assert style is not None and style.color is not None and style.bgcolor is not None, segment
            assert not style.dim, f"{segment.text!r} is dim"
            foreground, background = (style.bgcolor, style.color) if style.reverse else (style.color, style.bgcolor)
            yield Cell(y - region.y, segment.text, contrast(foreground, background))


@pytest.fixture
def varied(fleet: Fleet) -> Fleet:
    """Items in every state a row can show: each risk, confidence high / low / none, an escalation, a claim by someone
    else, a deadline passed, one minutes away, and none."""
    for risk, confidence, kind, deadline in (
        ("critical", 0.9, "approval", AHEAD + 100),
        ("high", 0.2, "approval", 3000),
        ("medium", None, "escalation", None),
        ("low", 0.6, "approval", 86400),
        ("high", 0.45, "escalation", AHEAD + 200),
    ):
        expiry = {"expires_in": deadline} if deadline is not None else {"expires_at": None}
        added = fleet.add_item(risk=risk, confidence=confidence, kind=kind, **expiry)
    granted, _answer = fleet.claim(added["id"], "bob")
    assert granted
    return fleet


async def test_every_row_state_reads_at_aa_in_both_themes(varied: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False, now=lambda: time.time() + AHEAD)
    failures: list[str] = []
    checked: set[str] = set()
    async with app.run_test(size=(120, 30)) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        queue = app.main.queue_list
        rows = queue.row_count
        assert rows == 11
        await eventually(lambda: any(r.claimed_by == "bob" for r in session.store.queue.rows(0, rows)))

        def check(state: str) -> None:
            for cell in visible_text(app, queue):
                checked.add(f"{state}:{cell.text.strip()}")
                if cell.ratio < AA:
                    failures.append(f"{app.theme} {state} line {cell.line} {cell.text.strip()!r}: {cell.ratio:.2f}:1")

        for theme in ("textual-dark", "textual-light"):
            app.theme = theme
            for grouping in ("", "g"):  # flat, then grouped by source (group header lines)
                if grouping:
                    await pilot.press(grouping)
                for focus in ("focused", "blurred"):  # blurred: the cursor while the detail has focus
                    (queue if focus == "focused" else app.main.query_one("#detail")).focus()
                    for row in range(rows):
                        queue.move_to(row)
                        await pilot.pause()
                        check(f"{focus}{'/grouped' if grouping else ''} cursor on row {row}")
            await pilot.press("g", "g")  # back to no grouping
    assert failures == [], "\n".join(failures)
    seen = {key.split(":", 1)[1] for key in checked}
    # The test saw what it claims to check: each risk, a claim, a passed and a close deadline, a group header.
    assert {"CRIT", "HIGH", "MED", "LOW", "ESC", "APPR", "⚑ bob", "expired", "RISK"} <= seen | {
        word for text in seen for word in text.split()
    }
    assert any(text.startswith("▾ ") for text in seen), "a group header"
    assert any(SOURCE in text for text in seen)
