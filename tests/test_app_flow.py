"""The whole loop on real parts: the demo fleet on loopback, SQLite in a temp dir, the real app driven by Pilot."""

from __future__ import annotations

import json
from collections.abc import Callable

from textual.widgets import TextArea

from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.edit import EditScreen
from storage.records import SyncState
from tests.conftest import SOURCE, composed_strips, decide_key, eventually, first_shown, screen_text

SIZE = (120, 40)


def applied(fleet: Fleet, item_id: str) -> list[dict[str, object]]:
    return [d for d in fleet.applied_decisions() if d["item_id"] == item_id]


async def test_new_item_appears_without_a_key_press(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        reading = await first_shown(app, pilot)
        assert reading is not None and reading.id == session.store.queue.rows(0, 1)[0].id, "the most urgent is selected"
        added = fleet.add_item(risk="critical", action={"name": "drop_production_table", "args": {"table": "orders"}})
        await eventually(lambda: "drop_production_table" in screen_text(app), what="the new item on screen")
        # Critical is the most urgent: it goes on top, but the item being read stays selected.
        assert session.store.queue.rows(0, 1)[0].id == added["id"]
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id == reading.id
        await pilot.press("home")
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id == added["id"]


async def test_approve_reaches_the_server_exactly_once(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)
        await decide_key(pilot, "a")
        await eventually(lambda: len(applied(fleet, top.id)) == 1, what="the approval at the server")
        [record] = applied(fleet, top.id)
        assert record["verdict"] == "approve" and record["operator"] == "alice"
        await eventually(lambda: session.store.outbox.waiting_count() == 0, what="the outcome recorded")
        [row] = session.store.outbox.decisions()
        assert row.sync_state is SyncState.applied
        assert fleet.decision_requests(top.id) == 1
        assert session.store.queue.index_of(SOURCE, top.id) is None
        assert session.store.audit.verify().ok
        # Its label follows: the same verdict, with how long the operator looked, at the source's feedback endpoint.
        await eventually(lambda: any(label["label_id"] == row.decision.id for label in fleet.feedback()))
        [label] = [label for label in fleet.feedback() if label["label_id"] == row.decision.id]
        assert (label["verdict"], label["item_id"], label["item_digest"]) == ("approve", top.id, top.digest)
        assert label["seconds_to_decide"] is not None and label["seconds_to_decide"] >= 0


async def test_reject_with_reason_and_comment(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        top = await first_shown(app, pilot)
        await pilot.press("r", "2")
        await pilot.press(*"wrong customer")
        await pilot.press("enter")
        await eventually(lambda: len(applied(fleet, top.id)) == 1)
        [record] = applied(fleet, top.id)
        expected_reason = session.config.reject_reasons[1]
        assert (record["verdict"], record["reason_code"], record["comment"]) == (
            "reject",
            expected_reason,
            "wrong customer",
        )


async def test_edit_validates_then_sends_the_edited_value(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    item = fleet.add_item(
        risk="critical",
        kind="approval",
        allowed_decisions=["approve", "reject", "edit"],
        action={
            "name": "issue_refund",
            "args": {"customer_id": "cus_9", "amount": 900},
            "args_schema": {
                "type": "object",
                "required": ["customer_id", "amount"],
                "properties": {"amount": {"type": "number", "maximum": 1000}, "customer_id": {"type": "string"}},
            },
        },
    )
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: session.store.queue.count() == 7)
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id == item["id"]
        await pilot.press("e")
        await pilot.pause(0.1)
        editor = app.screen.query_one(TextArea)

        editor.text = '{"customer_id": "cus_9", "amount": 900'
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "Invalid JSON at line 1" in screen_text(app)

        editor.text = json.dumps({"customer_id": "cus_9", "amount": 5000})
        await pilot.press("ctrl+s")  # the schema check runs in a worker process: its answer arrives later
        await eventually(lambda: "Schema violation at /amount" in screen_text(app), what="the schema's answer")
        assert fleet.decision_requests() == 0

        editor.text = json.dumps({"customer_id": "cus_9", "amount": 450})
        await pilot.press("ctrl+s")
        await eventually(lambda: isinstance(app.screen, EditScreen) and app.screen.reviewing, what="the diff")
        await pilot.pause()
        assert "/amount" in screen_text(app) and fleet.decision_requests() == 0  # the diff, before anything is sent
        await decide_key(pilot, "enter")  # submits the edit; a critical item then asks for the typed confirmation
        await eventually(lambda: len(applied(fleet, item["id"])) == 1)
        [record] = applied(fleet, item["id"])
        assert record["verdict"] == "edit"
        assert record["edited"] == {"customer_id": "cus_9", "amount": 450}


async def test_conflict_is_shown(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    session = make_session()
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        top = app.main.shown
        assert top is not None
        await decide_key(pilot, "a")
        fleet.decide_elsewhere(top.id, by="bob", verdict="reject")
        assert await session.sync_once() == 1
        await eventually(lambda: "already decided elsewhere" in screen_text(app), what="the conflict toast")
        assert "by bob (reject)" in screen_text(app)
        [row] = session.store.outbox.decisions()
        assert (row.sync_state, row.outcome) == (SyncState.conflict, "conflict")
        assert applied(fleet, top.id) and applied(fleet, top.id)[0]["operator"] == "bob"
        await pilot.pause(1.1)
        assert "1 conflict" in screen_text(app)
        await pilot.press("p")
        await pilot.pause(0.1)
        assert "already decided elsewhere by bob (reject)" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert len(session.store.outbox.unseen_problems()) == 1, "it stays until acknowledged"


async def test_decision_survives_a_restart_and_is_sent_once(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    first = make_session()
    app = ApprovalApp(first, background=False)  # no sync: the decision must wait in the outbox
    async with app.run_test(size=SIZE) as pilot:
        await first.poll_once()
        await pilot.pause(0.1)
        top = app.main.shown
        assert top is not None
        await decide_key(pilot, "a")
        await pilot.pause(0.1)
        assert first.store.outbox.waiting_count() == 1
    assert fleet.decision_requests() == 0

    second = make_session()
    app = ApprovalApp(second)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: len(applied(fleet, top.id)) == 1, what="the decision after restart")
        await eventually(lambda: second.store.outbox.waiting_count() == 0)
        await pilot.pause(0.5)
        assert second.store.queue.index_of(SOURCE, top.id) is None
    third = make_session()
    app = ApprovalApp(third)
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: third.store.queue.count() == 5)
        await pilot.pause(0.5)
    assert fleet.decision_requests(top.id) == 1


async def test_markup_and_escapes_from_agents_are_shown_literally(
    fleet: Fleet, make_session: Callable[..., Session]
) -> None:
    hostile = fleet.add_item(
        risk="critical",
        agent="[bold red]root[/]",
        action={
            "name": "[@click=app.quit]steal[/]",
            "args": {"note": "[$accent]x[/] [/nope] \x1b[2J\x1b]52;c;ZXZpbA==\x07 \u202eevil"},
        },
        context={"summary": "[link=https://evil.example]click[/link]", "reasoning": "[b]trust me[/b]"},
    )
    session = make_session()
    app = ApprovalApp(session)
    async with app.run_test(size=(140, 90)) as pilot:
        await eventually(lambda: session.store.queue.index_of(SOURCE, hostile["id"]) == 0)
        await pilot.pause(0.2)
        text = screen_text(app)
        for literal in ("[bold red]root[/]", "[@click=app.quit]steal[/]", "[$accent]x[/] [/nope]", "[b]trust me[/b]"):
            assert literal in text, literal
        assert "[link=https://evil.example]click[/link]" in text
        strips = composed_strips(app)
        assert not any("\x1b" in segment.text or "\u202e" in segment.text for strip in strips for segment in strip)
        await pilot.click("#detail")
        await pilot.pause(0.1)
        assert app.is_running
