"""Snapshots of each operator screen and dialog: fixed clock, fixed items, fixed size, no cursor blink.

`pytest tests/test_snapshots.py --snapshot-update` rewrites tests/__snapshots__/ after a deliberate change; look at
the report (or the SVGs) before committing them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from console.engine.config import Config
from console.engine.session import Session
from console.tui.app import ApprovalApp
from console.tui.screens.first_run import FirstRunApp
from tests.conftest import eventually
from tests.factories import item

NOW = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
SIZE = (120, 36)
SnapCompare = Callable[..., bool]


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def app_over_fixed_items(data_dir: Path) -> ApprovalApp:
    """The real app over a Store holding fixed items, with no sources (nothing polls) and a stopped clock."""
    session = Session(Config(operator="alice", undo_seconds=5), data_dir, token_for=lambda _name: None)
    refund = {"customer_id": "cus_1042", "amount": 1250.0, "currency": "EUR", "reason": "double charge"}
    billing = [
        item(
            "itm_crit",
            agent="infra-agent",
            workflow="databases",
            risk="critical",
            confidence=0.62,
            action={"name": "drop_table", "args": {"database": "orders", "table": "orders_2019"}},
            policy="destructive schema changes need a human",
            created_at=at(-3),
            expires_at=at(4),
        ),
        item(
            "itm_refund",
            risk="high",
            confidence=0.81,
            action={"name": "issue_refund", "args": refund},
            created_at=at(-8),
            expires_at=at(22),
        ),
        item(
            "itm_disc",
            risk="medium",
            confidence=0.44,
            created_at=at(-12),
            expires_at=at(40),
            action={"name": "apply_discount", "args": {"customer_id": "cus_7", "percent": 15}},
        ),
        item(
            "itm_lead",
            kind="escalation",
            agent="crm-agent",
            workflow="leads",
            risk="low",
            confidence=0.38,
            action={"name": "score_lead", "args": {"lead_id": "ld_9"}},
            output={"score": 41, "tier": "cold"},
            created_at=at(-2),
            expires_at=None,
            claimed_by="bob",
        ),
    ]
    support = [
        item("itm_reply", agent="support-agent", workflow="tickets", risk="medium", confidence=0.55,
             action={"name": "send_reply", "args": {"ticket": "T-88", "body": "We have refunded you."}},
             created_at=at(-6), expires_at=at(15)),
        item("itm_close", agent="support-agent", workflow="tickets", risk="low", confidence=0.91,
             action={"name": "close_ticket", "args": {"ticket": "T-12"}}, created_at=at(-30), expires_at=at(90)),
    ]  # fmt: skip
    session.store.items.apply_changes("billing", billing, [], "c1")
    session.store.items.apply_changes("support", support, [], "c1")
    return ApprovalApp(session, now=NOW.timestamp, background=False)


async def no_blink(pilot: Pilot[Any]) -> None:
    main = getattr(pilot.app, "main", None)
    if main is not None:  # the view tabs are counted in a thread: drawn once counted
        await eventually(lambda: all(tab.count is not None for tab in main.view_tabs), what="the views counted")
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    for area in pilot.app.screen.query(TextArea):
        area.cursor_blink = False
    await pilot.pause()


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("main", ()),
        ("filter", ("slash", *"agent:billing")),
        ("grouped_by_source", ("g",)),
        ("sorted_by_confidence", ("o", "o")),
        ("reject", ("j", "r", "2", *"wrong amount")),
        ("critical_confirm", ("a", *"drop_")),
        ("help", ("question_mark",)),
        ("claimed_escalation", ("end",)),
        ("view_tabs", ("2",)),
        ("filter_error", ("slash", *"owner:bob kind:job refund")),
    ],
)
def test_main_screen_and_dialogs(snap_compare: SnapCompare, tmp_path: Path, name: str, keys: tuple[str, ...]) -> None:
    assert snap_compare(app_over_fixed_items(tmp_path), press=keys, terminal_size=SIZE, run_before=no_blink)


def test_main_screen_light_theme(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(app_over_fixed_items(tmp_path), press=("ctrl+t",), terminal_size=SIZE, run_before=no_blink)


def test_edit_shows_the_diff_before_submitting(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def edit(pilot: Pilot[Any]) -> None:
        await pilot.press("j", "e")
        await pilot.pause()
        editor = pilot.app.screen.query_one(TextArea)
        editor.text = json.dumps({**json.loads(editor.text), "amount": 625.0}, indent=2)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await eventually(lambda: not getattr(pilot.app.screen, "checking", False), what="the schema check")
        await no_blink(pilot)

    assert snap_compare(app_over_fixed_items(tmp_path), terminal_size=SIZE, run_before=edit)


def test_first_run(snap_compare: SnapCompare, tmp_path: Path) -> None:
    # The path is shown on screen: a fixed one, so the snapshot does not depend on the temp dir.
    assert snap_compare(FirstRunApp(Path("/home/alice/.config/approval-console/config.toml")), terminal_size=SIZE)
