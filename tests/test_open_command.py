"""`approval-console open SOURCE/ITEM`, the deep link a page carries: the app (under Pilot, on the demo fleet) starts
on the named item, or says why it cannot; a bad target is one line on the command line, before anything starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from console.cli.commands import main
from console.engine.deep_link import BadTarget, item_link, open_command, parse_target
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from tests.conftest import SOURCE, eventually, screen_text

SIZE = (120, 40)


async def test_the_console_opens_on_the_named_item(fleet: Fleet, make_session: Callable[..., Session]) -> None:
    wanted = fleet.add_item(risk="low", kind="approval", expires_at=None, action={"name": "open_me", "args": {}})
    session = make_session()
    app = ApprovalApp(session, open_on=(SOURCE, wanted["id"]))
    async with app.run_test(size=SIZE) as pilot:
        await eventually(lambda: app.main.shown is not None and app.main.shown.id == wanted["id"], what="the item")
        await pilot.pause(0.1)
        assert session.store.queue.rows(0, 1)[0].id != wanted["id"], "not the one the console would open on anyway"
        assert app.main.queue_list.highlighted is not None and app.main.queue_list.highlighted.id == wanted["id"]
        assert "open_me" in screen_text(app)


@pytest.mark.parametrize("gone", ["decided", "decided since the last poll", "never listed"])
async def test_an_item_that_is_not_pending_is_said(
    fleet: Fleet, make_session: Callable[..., Session], gone: str
) -> None:
    session = make_session()
    item_id = "no-such-item"
    if gone != "never listed":
        item_id = fleet.add_item(risk="high", kind="approval", action={"name": "gone_already", "args": {}})["id"]
        await session.poll_once()
        fleet.decide_elsewhere(item_id, by="bob")
    if gone == "decided":
        await session.poll_once()
    app = ApprovalApp(session, open_on=(SOURCE, item_id))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        why = "does not list it" if gone == "never listed" else "decided elsewhere"
        # Still pending in the cache: opened, and the detail says it left as the first poll finds out.
        parts = ["left the queue (decided elsewhere)"] if gone == "decided since the last poll" else []
        parts = parts or ["Cannot open that item", item_id, "is not pending", why]

        def said() -> bool:  # a toast wraps its text: each part on its own
            text = screen_text(app)
            return all(part in text for part in parts)

        await eventually(said, what="the notice")
        await pilot.pause(0.1)
        assert app.main.shown is not None and app.main.shown.id != item_id, "the console works on as usual"


def test_links_and_commands_name_the_item_in_any_characters() -> None:
    item_id = "run 7/step two;$(rm -rf ~)"
    link = item_link("billing", item_id)
    assert link == "approval-console://open/billing/run%207%2Fstep%20two%3B%24%28rm%20-rf%20~%29"
    assert parse_target(link) == ("billing", item_id)
    assert parse_target(f"billing/{item_id}") == ("billing", item_id)
    assert open_command("billing", item_id) == "approval-console open 'billing/run 7/step two;$(rm -rf ~)'"
    for bad in ("billing", "billing/", "/item", "bill ing/x", "approval-console://open/billing"):
        with pytest.raises(BadTarget):
            parse_target(bad)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("nonsense", "'nonsense' is not SOURCE/ITEM"),
        ("elsewhere/item-1", "has no source named 'elsewhere' (its sources: billing)"),
    ],
)
def test_a_bad_target_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, says: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text('operator = "alice"\n\n[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:9"\n')
    status = main(["--config", str(config), "--data-dir", str(tmp_path / "data"), "open", target])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("approval-console: ") and says in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists(), "nothing started"
