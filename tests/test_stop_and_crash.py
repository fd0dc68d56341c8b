"""How the console ends outside the quit dialog, each in a real terminal (a pseudo-terminal) in a subprocess.

- A stop signal (SIGTERM to the console started by the real CLI) sends the decisions it can within a short bound and
  logs, by id, the ones it could not send.
- A crash (an exception in a handler) leaves one clear line on the terminal, a non-zero status and the traceback in
  console.log, not on the terminal.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from console.engine.config import token_env_var
from console.engine.session import DB_NAME, LOG_NAME
from console.servers.fleet import Fleet
from storage.db import StorageError, Store
from tests.crashing_console import FAILURE
from tests.terminal import Terminal

ROOT = Path(__file__).resolve().parent.parent


def _env(*sources: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "TEXTUAL")}
    env.update({"TERM": "xterm-256color", "PYTHONPATH": str(ROOT), "COLUMNS": "100", "LINES": "30"})
    env.update({token_env_var(name): "unused" for name in sources})  # no keyring lookups in the child
    return env


def _until(predicate: Callable[[], bool], what: str, terminal: Terminal, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if terminal.process.poll() is not None:
            raise AssertionError(f"the console ended while waiting for {what}:\n{terminal.text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{terminal.text()[-3000:]}")
        time.sleep(0.05)


def _read(data_dir: Path, read: Callable[[Store], int]) -> int:
    """Read the console's database from outside, as doctor does; 0 while it is still being created."""
    path = data_dir / DB_NAME
    if not path.exists():
        return 0
    try:
        store = Store(path, readonly=True)
    except StorageError:
        return 0
    try:
        return read(store)
    except sqlite3.Error:  # the schema is not there yet
        return 0
    finally:
        store.close()


def test_sigterm_sends_what_it_can_and_logs_what_is_left(tmp_path: Path) -> None:
    up = Fleet(seed=3, interval=None, initial=0, name="fleet")
    away = Fleet(seed=4, interval=None, initial=0, name="away")
    up.start()
    away.start()
    terminal: Terminal | None = None
    try:
        kept = up.add_item(risk="low")["id"]
        lost = away.add_item(risk="low")["id"]
        data_dir = tmp_path / "data"
        config = tmp_path / "config.toml"
        blocks = "".join(
            f'\n[[sources]]\nname = "{name}"\nurl = "{url}"\npoll_interval = 0.2\nlong_poll = 1.0\n'
            for name, url in (("fleet", up.url), ("away", away.url))
        )
        # A long undo window: both decisions are still in it when the signal comes.
        config.write_text(f'operator = "alice"\nundo_seconds = 60\n{blocks}', encoding="utf-8")
        terminal = Terminal(
            [sys.executable, "-m", "console.cli", "--config", str(config), "--data-dir", str(data_dir)],
            env=_env("fleet", "away"),
            cwd=ROOT,
        )
        _until(lambda: _read(data_dir, lambda s: s.queue.count()) == 2, "both items listed", terminal)
        decisions = 0
        for _ in range(100):  # a press right after a decision is held back on purpose: press until it counts
            if decisions == 2:
                break
            terminal.type("a")
            pressed = time.monotonic()
            while time.monotonic() - pressed < 1.0 and decisions == _read(
                data_dir, lambda s: s.outbox.decision_count()
            ):
                time.sleep(0.05)
            decisions = _read(data_dir, lambda s: s.outbox.decision_count())
        assert _read(data_dir, lambda s: len(s.outbox.unsent())) == 2, "both wait in their undo window"
        assert up.applied_decisions() == []
        away.stop()  # one agent service goes away before the console is stopped

        terminal.process.send_signal(signal.SIGTERM)
        status = terminal.wait()
        assert status == 128 + signal.SIGTERM, terminal.text()[-3000:]
        # The reachable source has the decision; the other one is still in the outbox, and the log names it.
        [applied] = up.applied_decisions()
        assert applied["item_id"] == kept
        store = Store(data_dir / DB_NAME, readonly=True)
        try:
            [left] = store.outbox.unsent()
            assert store.audit.verify().ok
        finally:
            store.close()
        assert (left.source, left.item_id) == ("away", lost)
        log = (data_dir / LOG_NAME).read_text(encoding="utf-8")
        assert "stopped on SIGTERM with 1 decision(s) unsent" in log
        assert f"unsent: decision {left.decision_id} (approve away/{lost})" in log
        assert applied["decision_id"] not in log.split("stopped on SIGTERM")[1], "only what is left is named as left"
    finally:
        if terminal is not None and terminal.process.poll() is None:
            terminal.close()
        up.stop()
        away.stop()


def test_a_crash_is_one_line_a_failure_status_and_a_logged_traceback(tmp_path: Path) -> None:
    fleet = Fleet(seed=6, interval=None, initial=3)
    fleet.start()
    try:
        data_dir = tmp_path / "data"
        terminal = Terminal(
            [sys.executable, "-m", "tests.crashing_console", str(data_dir), fleet.url], env=_env("fleet"), cwd=ROOT
        )
        status = terminal.wait()
    finally:
        fleet.stop()
    assert status == 1, terminal.text()[-3000:]
    raw = terminal.raw()
    text = terminal.text()
    lines = [line for line in text.splitlines() if "approval-console:" in line]
    assert len(lines) == 1, text[-3000:]
    assert "stopped by an internal error (RuntimeError: the queue handler failed" in lines[0]
    assert str(data_dir / LOG_NAME) in lines[0], "it says where the details are"
    assert "Traceback" not in text and "on_queue_changed" not in text, "no traceback on the terminal"
    assert "\x1b]52" not in raw, "the message's escapes are not replayed"
    log = (data_dir / LOG_NAME).read_text(encoding="utf-8")
    assert "CRITICAL console.tui.app: the console crashed: RuntimeError" in log
    assert "Traceback (most recent call last)" in log and "on_queue_changed" in log
    assert FAILURE not in log and "␛]52;c;" in log, "the log has it too, cleaned"
