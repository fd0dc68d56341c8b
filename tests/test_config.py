"""The TOML config names the file, line and fix; tokens come from the environment or the keyring, never the TOML."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.engine.config import ConfigError, load, parse, token_env_var
from console.engine.secrets import KeyringUnavailable, get_token, store_token

GOOD = """\
operator = "alice"

[[sources]]
name = "billing"
kind = "native"
url = "http://127.0.0.1:8700"
poll_interval = 2.0
"""


def test_good_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    config = load(path)
    assert config.operator == "alice"
    [source] = config.sources
    assert (source.name, source.kind, source.url, source.poll_interval) == (
        "billing",
        "native",
        "http://127.0.0.1:8700",
        2.0,
    )


@pytest.mark.parametrize(
    ("text", "line", "problem", "fix"),
    [
        (GOOD.replace('url = "http', "url = http"), 6, "not valid TOML", "quot"),
        (
            GOOD.replace("poll_interval", "poll_intervall"),
            7,
            "unknown key 'poll_intervall'",
            "did you mean 'poll_interval'",
        ),
        (GOOD + 'token = "s3cret"\n', 8, "'token' must not be in the config", "APPROVAL_CONSOLE_TOKEN_BILLING"),
        (GOOD.replace('kind = "native"', 'kind = "carrier-pigeon"'), 5, "unknown source kind", "native"),
        (GOOD.replace("2.0", "-1"), 7, "out of range", "seconds"),
        (GOOD.replace('"http://127.0.0.1:8700"', '"ftp://x"'), 6, "not an http(s) URL", "url ="),
        (GOOD.replace('url = "http://127.0.0.1:8700"\n', ""), 3, "has no 'url'", "add url"),
        (
            GOOD + '\n[[sources]]\nname = "billing"\nurl = "https://x"\n',
            10,
            "two sources are named 'billing'",
            "own name",
        ),
        ('operator = ""\n' + GOOD.split("\n", 1)[1], 1, "operator must be", "alice"),
    ],
)
def test_bad_config_names_file_line_and_fix(tmp_path: Path, text: str, line: int, problem: str, fix: str) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as caught:
        parse(text, path)
    error = caught.value
    assert error.line == line
    assert problem in error.problem
    assert fix in error.fix
    assert str(path) in str(error) and f":{line}:" in str(error)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_cli_reports_bad_config_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("poll_interval", "pol"))
    result = subprocess.run(
        [sys.executable, "-m", "console.cli", "--config", str(path), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{path}:7" in result.stderr and "unknown key 'pol'" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_var_name() -> None:
    assert token_env_var("crm-prod") == "APPROVAL_CONSOLE_TOKEN_CRM_PROD"


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real keyring backend (keyrings.alt's file store) in a temp dir, selected the way users select one."""
    import keyring
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(token_env_var("billing"), raising=False)
    keyring.core.init_backend()
    yield tmp_path / "xdg"
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    keyring.core.init_backend()


def test_token_from_keyring_and_env_wins(file_keyring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_token("billing") is None
    store_token("billing", "kr-token-123")
    token = get_token("billing")
    assert token is not None and (token.value, token.origin) == ("kr-token-123", "keyring")
    assert "kr-token-123" not in repr(token) and "kr-token-123" not in str(token)
    monkeypatch.setenv(token_env_var("billing"), "env-token-456")
    token = get_token("billing")
    assert token is not None and (token.value, token.origin) == ("env-token-456", "environment")


def test_no_keyring_backend_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core.init_backend()
    try:
        with pytest.raises(KeyringUnavailable, match="APPROVAL_CONSOLE_TOKEN_BILLING"):
            store_token("billing", "x")
        assert get_token("billing") is None
    finally:
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
        keyring.core.init_backend()


def test_sources_add_writes_a_loadable_config_and_never_the_token(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.toml"
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    command = [
        sys.executable,
        "-m",
        "console.cli",
        "--config",
        str(path),
        "sources",
        "add",
        "crm",
        "http://127.0.0.1:9",
    ]
    result = subprocess.run([*command, "--no-token"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
    config = load(path)
    assert [(s.name, s.url) for s in config.sources] == [("crm", "http://127.0.0.1:9")]
    again = subprocess.run([*command, "--no-token"], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert again.returncode == 2 and "already has a source named 'crm'" in again.stderr
