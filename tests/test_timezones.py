"""Times on screen are in the operator's zone and say which (TZ, or the config's display_timezone); exports and the
audit keep UTC. The real app over the demo fleet, driven by Pilot; export in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from console.engine.config import ConfigError, parse
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.app import ApprovalApp
from console.tui.screens.history import HistoryScreen
from storage.db import Store
from tests.conftest import decide_key, eventually, make_config, screen_text

SIZE = (140, 40)
STAMP = "%Y-%m-%d %H:%M:%S %Z"


async def _history_after_one_decision(fleet: Fleet, data_dir: Path, display_timezone: str) -> tuple[str, datetime]:
    """Decide the top item, open the history; returns what the history shows and the decision's (UTC) time."""
    config = replace(make_config(fleet), display_timezone=display_timezone)
    session = Session(config, data_dir, token_for=lambda _name: None)
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        await decide_key(pilot, "a")
        [row] = session.store.outbox.decisions()
        await pilot.press("h")
        await eventually(lambda: isinstance(app.screen, HistoryScreen) and "APPROVE" in screen_text(app))
        return screen_text(app), row.decision.decided_at


async def test_tz_in_the_environment_sets_the_zone_history_shows(
    fleet: Fleet, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    shown, decided_at = await _history_after_one_decision(fleet, data_dir, "local")
    assert decided_at.utcoffset() == timedelta(0), "stored in UTC"
    tokyo = decided_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime(STAMP)
    assert tokyo.endswith(" JST") and tokyo in shown
    assert decided_at.strftime("%Y-%m-%d %H:%M:%S") not in shown, "not the UTC wall time"


async def test_display_timezone_overrides_tz(fleet: Fleet, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    shown, decided_at = await _history_after_one_decision(fleet, data_dir, "America/New_York")
    expected = decided_at.astimezone(ZoneInfo("America/New_York")).strftime(STAMP)
    assert expected in shown and " JST" not in shown
    shown, decided_at = await _history_after_one_decision(fleet, data_dir / "utc", "UTC")
    assert decided_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC" in shown


async def test_the_detail_deadline_is_in_the_same_zone(
    fleet: Fleet, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    fleet.add_item(risk="critical", expires_in=90)  # on top: critical, and the closest deadline
    session = Session(make_config(fleet), data_dir, token_for=lambda _name: None)
    app = ApprovalApp(session, background=False)
    async with app.run_test(size=SIZE) as pilot:
        await session.poll_once()
        await pilot.pause(0.1)
        shown = app.main.shown
        assert shown is not None and shown.expires_at is not None
        deadline = shown.expires_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime(STAMP)
        assert f"deadline {deadline}" in screen_text(app)


def test_exports_and_the_audit_stay_in_utc_whatever_the_zone(
    fleet: Fleet, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    _shown, decided_at = asyncio.run(_history_after_one_decision(fleet, data_dir, "local"))
    out = tmp_path / "labels.jsonl"
    env = {**os.environ, "TZ": "Asia/Tokyo", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "--data-dir", str(data_dir), "export", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    [label] = [json.loads(line) for line in out.read_text().splitlines()]
    exported = datetime.fromisoformat(label["decided_at"])
    assert exported == decided_at and exported.utcoffset() == timedelta(0), label["decided_at"]
    store = Store(data_dir / "console.db", readonly=True)
    try:
        [(body,)] = store.db.execute("SELECT body FROM audit WHERE kind = 'decision'").fetchall()
        audited = datetime.fromisoformat(json.loads(body)["decided_at"])
        assert audited == decided_at and audited.utcoffset() == timedelta(0)
    finally:
        store.close()


@pytest.mark.parametrize("zone", ["local", "UTC", "Europe/Paris"])
def test_display_timezone_accepts_local_utc_and_iana_names(tmp_path: Path, zone: str) -> None:
    config = parse(f'operator = "alice"\ndisplay_timezone = "{zone}"\n', tmp_path / "config.toml")
    assert config.display_timezone == zone


@pytest.mark.parametrize("zone", ['"Mars/Olympus"', '"../../etc/passwd"', "3"])
def test_an_unknown_display_timezone_names_the_line_and_the_fix(tmp_path: Path, zone: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f'operator = "alice"\ndisplay_timezone = {zone}\n', tmp_path / "config.toml")
    assert caught.value.line == 2 and "Europe/Paris" in caught.value.fix
