"""[[pager]] blocks: read with their defaults (off without one), and refused in TOML words (the file, the line, the
fix), a credential in the URL above all; the real command line says it in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import doctor
from console.cli.commands import main
from console.engine.config import ConfigError, parse
from console.engine.secrets import Token
from tests.test_cli import Cli, cli  # noqa: F401  (fixture)

SOURCE = '[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:1"\n\n'
PHONE = '[[pager]]\nname = "phone"\nkind = "ntfy"\nurl = "https://ntfy.example/oncall"\n'


def test_paging_is_off_by_default_and_a_block_has_safe_defaults() -> None:
    assert parse(SOURCE, Path("c.toml")).pager == ()
    [pager] = parse(SOURCE + PHONE, Path("c.toml")).pager
    assert (pager.kind, pager.risks, pager.include) == ("ntfy", ("high", "critical"), ()), "no arguments by default"
    assert (pager.deadline_seconds, pager.per_minute, pager.timeout) == (None, 6, 10.0), "deadlines: the shared window"


@pytest.mark.parametrize(
    ("block", "line", "problem", "fix"),
    [
        (PHONE.replace("oncall", "oncall?auth=tk_abc"), 8, "carries a credential in its query (auth=...)",
         "APPROVAL_CONSOLE_TOKEN_PHONE"),
        (PHONE.replace("https://", "https://me:pw@"), 8, "credentials in it", "APPROVAL_CONSOLE_TOKEN_PHONE"),
        (PHONE + 'token = "tk_abc"\n', 9, "'token' must not be in the config", "APPROVAL_CONSOLE_TOKEN_PHONE"),
        (PHONE.replace('"ntfy"', '"nfty"'), 7, "unknown pager kind 'nfty'", "webhook, ntfy"),
        (PHONE + "per_minut = 3\n", 9, "unknown key 'per_minut'", "did you mean 'per_minute'?"),
        (PHONE + "per_minute = 0\n", 9, "per_minute = 0 is out of range", "from 1 to 600"),
        (PHONE + 'risks = ["urgent"]\n', 9, "risks must be a list of risks", "low, medium, high, critical"),
        (PHONE + 'include = ["arguments"]\n', 9, "include must be a list", 'include = ["args"]'),
        (PHONE.replace("https://", "http://"), 8, "plain http to another machine", "allow_insecure_http"),
        (PHONE.replace('"phone"', '"billing"'), 6, "pager name 'billing' is taken", "its own name"),
        (PHONE.replace('url = "https://ntfy.example/oncall"\n', ""), 5, "pager #1 has no 'url'", "under [[pager]]"),
    ],
)  # fmt: skip
def test_a_bad_pager_block_is_reported_in_toml_words(block: str, line: int, problem: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(SOURCE + block, Path("c.toml"))
    assert caught.value.line == line and problem in caught.value.problem and fix in caught.value.fix
    assert "tk_abc" not in str(caught.value) and "pw@" not in str(caught.value), "a secret is never repeated"


def test_the_command_line_names_the_file_line_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(SOURCE + PHONE.replace("oncall", "oncall?token=tk_abc"))
    status = main(["--config", str(config), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert f"bad config: {config}:8: url " in err and "(fix: remove ?token=... from the url" in err
    assert "tk_abc" not in err


def test_the_readme_pager_block_is_a_valid_config() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    paging = readme.split("## Paging", 1)[1]
    block = paging.split("```toml\n", 1)[1].split("```", 1)[0]
    [pager] = parse(SOURCE + block, Path("README.md")).pager
    assert (pager.name, pager.kind, pager.include) == ("phone", "ntfy", ())


def test_doctor_names_each_pager_without_its_topic_or_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SOURCE + PHONE)
    keyed = {"phone": Token("tk_secret", "keyring")}
    found = {c.subject: c for c in doctor.run(path, tmp_path / "data", "console.db", token_for=keyed.get)}
    pager = found["pager phone"]
    assert (
        pager.status == doctor.OK
        and "ntfy at ntfy.example" in pager.detail
        and "secret from the keyring" in pager.detail
    )
    printed = doctor.report(list(found.values()))
    assert "tk_secret" not in printed and "oncall" not in printed, "neither the secret nor the topic is printed"
    bare = {c.subject: c for c in doctor.run(path, tmp_path / "data", "console.db", token_for=lambda _: None)}
    assert "no secret, posted without Authorization" in bare["pager phone"].detail


def test_a_pagers_secret_is_stored_like_a_token(cli: Cli) -> None:  # noqa: F811
    cli.write_config(SOURCE + PHONE)
    assert cli("sources", "token", "phone", stdin="tk-from-stdin\n").returncode == 0
    read = "from console.engine.secrets import get_token; t = get_token('phone'); print(t.origin, t.value)"
    found = subprocess.run(
        [sys.executable, "-c", read], env=cli.env(), capture_output=True, text=True, timeout=60, check=True
    )
    assert found.stdout.split() == ["keyring", "tk-from-stdin"], "the session finds it as the pager's secret"
