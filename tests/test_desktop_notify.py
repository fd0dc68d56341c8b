"""Desktop notifications go through the real `notify-send` call path: a stand-in executable on PATH records its argv."""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path

import pytest

from console.tui.alerts import notify_send


def _fake_notify_send(directory: Path, record: Path) -> None:
    script = directory / "notify-send"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\nopen({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def _recorded(record: Path) -> list[str]:
    deadline = time.monotonic() + 20  # notify-send is started, not waited for
    while not record.exists() or not record.read_text(encoding="utf-8"):
        if time.monotonic() > deadline:
            raise AssertionError("the stand-in notify-send never ran")
        time.sleep(0.02)
    argv = json.loads(record.read_text(encoding="utf-8"))
    assert isinstance(argv, list)
    return [str(arg) for arg in argv]


def test_agent_text_starting_with_dashes_stays_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "argv.json"
    _fake_notify_send(tmp_path, record)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("DISPLAY", ":0")
    title = "--urgency=low"
    body = "--icon=/tmp/x.png --expire-time=1 (refund-agent, fleet)"
    assert notify_send(title, body)
    argv = _recorded(record)
    # Everything after "--" is a positional argument to notify-send: the agent's text cannot become an option.
    assert "--" in argv
    assert argv[argv.index("--") + 1 :] == [title, body]
    assert argv[: argv.index("--")] == ["--app-name=approval-console"]
