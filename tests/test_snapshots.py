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

from console.engine.config import Config, Notifications
from console.engine.keymap_table import BUILT_IN, KeymapConfig
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


def app_over_fixed_items(data_dir: Path, keymap: KeymapConfig = BUILT_IN) -> ApprovalApp:
    """The real app over a Store holding fixed items, with no sources (nothing polls) and a stopped clock."""
    config = Config(operator="alice", undo_seconds=5, keymap=keymap)
    return app_over(Session(config, data_dir, token_for=lambda _name: None))


def app_over(session: Session) -> ApprovalApp:
    """The app over `session`'s store, with the fixed items added."""
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
        ("marked", ("space", "space", "j", "space")),
        ("bulk_confirm", ("asterisk", "a")),
        ("view_tabs", ("2",)),
        ("filter_error", ("slash", *"owner:bob kind:job refund")),
    ],
)
def test_main_screen_and_dialogs(snap_compare: SnapCompare, tmp_path: Path, name: str, keys: tuple[str, ...]) -> None:
    assert snap_compare(app_over_fixed_items(tmp_path), press=keys, terminal_size=SIZE, run_before=no_blink)


def test_help_under_the_vim_preset(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """The help names the keys in force: vim's g / G, `!` to approve, z to group, and undo on U as the table says."""
    keymap = KeymapConfig(preset="vim", keys=(("undo", ("U",)),))
    app = app_over_fixed_items(tmp_path, keymap)
    assert snap_compare(app, press=("question_mark",), terminal_size=SIZE, run_before=no_blink)


def app_with_deadlines(data_dir: Path) -> ApprovalApp:
    """Deadlines that bend: a 5-minute warning window, an item inside it that may get more time, one that approves
    itself when nobody decides, and one whose source allows no more time."""
    # No toasts: the deadline alert comes at the app's first tick, which a snapshot may or may not catch.
    quiet = Notifications(bell=False, toast=False, desktop=False)
    config = Config(operator="alice", undo_seconds=5, deadline_warning=300.0, notifications=quiet)
    session = Session(config, data_dir, token_for=lambda _name: None)
    items = [
        item(
            "itm_restart",
            agent="infra-agent",
            workflow="deploys",
            risk="high",
            confidence=0.7,
            action={"name": "restart_service", "args": {"service": "checkout", "region": "eu-west-1"}},
            created_at=at(-6),
            expires_at=at(3),
            extend={"max_seconds": 3600, "used_seconds": 900},
        ),
        item(
            "itm_rotate",
            agent="infra-agent",
            workflow="secrets",
            risk="medium",
            confidence=0.9,
            action={"name": "rotate_key", "args": {"key": "billing-api"}},
            created_at=at(-4),
            expires_at=at(12),
            on_expiry="approve",
        ),
        item(
            "itm_note",
            risk="low",
            confidence=0.95,
            action={"name": "add_note", "args": {"customer_id": "cus_7", "note": "called back"}},
            created_at=at(-9),
            expires_at=at(45),
        ),
    ]
    session.store.items.apply_changes("infra", items, [], "c1")
    return ApprovalApp(session, now=NOW.timestamp, background=False)


@pytest.mark.parametrize(
    ("name", "keys"), [("deadline_near", ()), ("extend_dialog", ("x",)), ("self_approves", ("j",))]
)
def test_deadlines(snap_compare: SnapCompare, tmp_path: Path, name: str, keys: tuple[str, ...]) -> None:
    assert snap_compare(app_with_deadlines(tmp_path), press=keys, terminal_size=SIZE, run_before=no_blink)


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


def test_two_person_item_one_of_two(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """A two-person item bob approved, as alice sees it: "1 of 2", who approved and when, and that hers completes it."""
    app = app_over_fixed_items(tmp_path)
    purge = item(
        "itm_purge",
        agent="crm-agent",
        workflow="privacy",
        risk="critical",
        confidence=0.93,
        action={"name": "delete_account", "args": {"account_id": "acct_40211", "hard_delete": True}},
        policy="irreversible deletions need two different operators to approve",
        created_at=at(-4),
        expires_at=at(2),
        allowed_decisions=["approve", "reject"],
        approvals_required=2,
        approvals=[{"operator": "bob", "at": at(-1), "verdict": "approve"}],
    )
    app.session.store.items.apply_changes("crm", [purge], [], "c1")
    assert snap_compare(app, terminal_size=SIZE, run_before=no_blink)


def test_first_run(snap_compare: SnapCompare, tmp_path: Path) -> None:
    # The path is shown on screen: a fixed one, so the snapshot does not depend on the temp dir.
    assert snap_compare(FirstRunApp(Path("/home/alice/.config/approval-console/config.toml")), terminal_size=SIZE)


def test_why_line_when_sorted_by_age(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """The detail's why line follows the view's order: by age, the oldest item is ranked first, for its age."""
    assert snap_compare(app_over_fixed_items(tmp_path), press=("o", "j"), terminal_size=SIZE, run_before=no_blink)


def test_source_health(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """`H` over fixed health (set by hand: nothing polls): one source up, one down with its error and next retry, and
    quarantined items with their reasons (one acknowledged). Source text carries escapes: shown cleaned."""
    from storage.records import SourceHealth

    now = NOW.timestamp()
    app = app_over_fixed_items(tmp_path)
    session = app.session
    session.store.quarantine.add("billing", "itm_bad", "risk: 'severe' is not one of low, medium, high", "{}")
    session.store.quarantine.add("support", "itm_\x1b[31mred", "id: holds control characters\x1b]52;c;x\x07", "{}")
    session.store.quarantine.acknowledge([("billing", "itm_bad")])
    session.poller.health.update(
        billing=SourceHealth(name="billing", state="up", last_poll_at=now - 2, last_ok_at=now - 2, quarantined=0),
        support=SourceHealth(
            name="support",
            state="down",
            last_poll_at=now - 40,
            last_ok_at=now - 600,
            error="cannot reach http://127.0.0.1:9: ConnectError: [Errno 111] Connection refused\x1b[2J",
            next_retry_at=now + 25,
            quarantined=1,
        ),
    )
    assert snap_compare(app, press=("H",), terminal_size=SIZE)


WIDE = (180, 40)


def test_wide_terminal_puts_the_detail_beside_the_queue(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(app_over_fixed_items(tmp_path), terminal_size=WIDE, run_before=no_blink)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("collapsed_group", ("g", "c")),  # billing collapsed, the cursor on its header
        ("claimed_column_gone", ("slash", *"agent:support", "enter")),  # nobody else holds an item on screen
        ("groups_most_urgent_first", ("g", "g", "G")),
    ],
)
def test_queue_layout(snap_compare: SnapCompare, tmp_path: Path, name: str, keys: tuple[str, ...]) -> None:
    assert snap_compare(app_over_fixed_items(tmp_path), press=keys, terminal_size=SIZE, run_before=no_blink)
