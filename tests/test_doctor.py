"""What happened is visible: the rotating log records polls, syncs, retries and errors without secrets, and
`approval-console doctor` checks the config, keyring, each source and the database, and says what to fix.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
from pathlib import Path

import pytest

from console.cli import main
from console.engine.config import Config, SourceConfig
from console.engine.secrets import Token
from console.engine.session import DB_NAME, LOG_NAME, Session, setup_logging
from console.servers.fleet import Fleet
from storage.records import Verdict
from tests.conftest import SOURCE, eventually, make_config, read_log
from tests.servers import Fault, FaultyProxy, closed_port_url, running

CANARY = "canary-log-91c2"


@pytest.mark.usefixtures("isolated_log")
async def test_the_log_records_polls_syncs_retries_and_errors_without_secrets(data_dir: Path) -> None:
    secured = Fleet(seed=8, interval=None, initial=3, tokens={CANARY: "erin"})
    secured.start()
    try:
        with running(FaultyProxy(secured.url)) as proxy:
            setup_logging(data_dir)
            config = make_config(proxy.url, operator="erin", long_poll=0.0, poll_interval=0.1, timeout=1.0)
            session = Session(config, data_dir, token_for=lambda _n: Token(CANARY, "environment"))
            proxy.inject(
                Fault(503, b"", {"Retry-After": "0.1"}, path_prefix="/v1/items?"),  # a failed poll
                Fault(502, b"", path_prefix="/v1/items/"),  # a decision to retry
            )
            running_session = asyncio.create_task(session.run())
            try:
                await eventually(lambda: session.store.queue.count() == 3, what="the queue listed")
                row = session.store.queue.rows(0, 1)[0]
                found = session.store.items.get(row.source, row.id)
                assert found is not None
                session.decide(found[0], Verdict.approve)
                await eventually(lambda: session.store.outbox.waiting_count() == 0, what="the decision applied")
            finally:
                running_session.cancel()
            await session.aclose()
    finally:
        secured.stop()
    log = read_log(data_dir)
    assert f"poll {SOURCE} failed (throttled): busy (503)" in log
    assert f"poll {SOURCE}: up again after 1 failed poll(s)" in log
    assert f"poll {SOURCE}: the queue changed" in log
    assert "the source is busy or failing (502); retry in" in log
    assert f"on {SOURCE}/{row.id}: applied (applied)" in log
    assert CANARY not in log


async def test_doctor_checks_each_part_and_says_what_to_fix(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = Fleet(seed=2, interval=None, initial=1, tokens={"right-token": "carol"})
    locked.start()
    try:
        config = tmp_path / "config.toml"
        config.write_text(
            'operator = "alice"\n'
            f'[[sources]]\nname = "fleet"\nurl = "{fleet.url}"\n'
            f'[[sources]]\nname = "down"\nurl = "{closed_port_url()}"\ntimeout = 1.0\n'
            f'[[sources]]\nname = "locked"\nurl = "{locked.url}"\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("APPROVAL_CONSOLE_TOKEN_LOCKED", "wrong-token")
        data_dir = tmp_path / "data"
        session = Session(
            Config(operator="alice", sources=(SourceConfig(name="fleet", url=fleet.url),)),
            data_dir,
            token_for=lambda _n: None,
        )
        await session.poll_once()
        await session.aclose()

        assert await asyncio.to_thread(main, ["doctor", "--config", str(config), "--data-dir", str(data_dir)]) == 1
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert lines[0].startswith("ok    config") and "3 sources, operator alice" in lines[0]
        assert any(line.startswith(("ok    keyring", "warn  keyring")) for line in lines)
        assert any(
            line.startswith("ok    source fleet") and "reachable" in line and "6 items" in line for line in lines
        )
        down = next(i for i, line in enumerate(lines) if line.startswith("FAIL  source down"))
        assert "cannot reach" in lines[down] and "fix: check that the service runs" in lines[down + 1]
        wrong = next(i for i, line in enumerate(lines) if line.startswith("FAIL  source locked"))
        assert "refused the environment token" in lines[wrong]
        assert "fix: run 'approval-console sources token locked'" in lines[wrong + 1]
        assert "wrong-token" not in out
        assert any(line.startswith("ok    database") and "intact" in line for line in lines)
        assert any(line.startswith("ok    audit") and "chain intact" in line for line in lines)
        assert lines[-1] == "2 problems to fix"

        (data_dir / DB_NAME).write_bytes(b"garbage" * 1000)
        for suffix in ("-wal", "-shm"):
            (data_dir / (DB_NAME + suffix)).unlink(missing_ok=True)
        await asyncio.to_thread(main, ["doctor", "--config", str(config), "--data-dir", str(data_dir)])
        out = capsys.readouterr().out
        assert "FAIL  database" in out and "is damaged" in out and "fix: start the console with --start-clean" in out
    finally:
        locked.stop()


def test_doctor_reports_a_bad_config_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('operator = "alice"\npoll_intervall = 3\n', encoding="utf-8")
    assert main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  config") and "unknown key 'poll_intervall' (line 2)" in out
    assert "ok    database             none yet" in out


def test_doctor_checks_the_saved_views_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A view whose filter the console would refuse at start is named with its line; good views are listed."""
    config = tmp_path / "config.toml"
    views = '[[views]]\nname = "Mine"\nfilter = "claimed:alice"\n\n[[views]]\nname = "Bad"\nfilter = "owner:bob"\n'
    config.write_text(f'operator = "alice"\n\n{views}', encoding="utf-8")
    assert main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  views" in out and "view 'Bad'" in out and "unknown field owner: (line 9)" in out
    config.write_text(f'operator = "alice"\n\n{views.replace("owner:bob", "kind:ESC")}', encoding="utf-8")
    main(["doctor", "--config", str(config), "--data-dir", str(tmp_path / "data")])
    assert "ok    views                2 saved views: Mine, Bad" in capsys.readouterr().out


def test_rotating_log_handler_is_bounded(data_dir: Path, isolated_log: object) -> None:
    setup_logging(data_dir)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    mine = [h for h in handlers if Path(h.baseFilename) == data_dir / LOG_NAME]
    assert len(mine) == 1 and mine[0].maxBytes > 0 and mine[0].backupCount > 0
