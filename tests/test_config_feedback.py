"""[[feedback]] blocks: read, and refused in TOML words (the file, the line, the fix); a sink's API key is stored like a
source's token, by the real command line with a real file-backed keyring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import doctor
from console.engine.config import ConfigError, parse
from console.engine.secrets import Token
from tests.test_cli import Cli, cli, one_line_error  # noqa: F401  (fixture)

SOURCE = '[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:1"\n\n'
SMITH = '[[feedback]]\nname = "smith"\nkind = "langsmith"\nendpoint = "https://api.smith.example"\n'


def test_a_feedback_block_is_read_with_its_defaults() -> None:
    config = parse(SOURCE + SMITH + 'sources = ["billing"]\nredact = ["customer_id"]\n', Path("c.toml"))
    [sink] = config.feedback
    assert (sink.name, sink.kind, sink.endpoint, sink.project) == (
        "smith",
        "langsmith",
        "https://api.smith.example",
        None,
    )
    assert sink.sources == ("billing",) and sink.redact == ("customer_id",) and sink.timeout == 10.0


@pytest.mark.parametrize(
    ("block", "line", "problem", "fix"),
    [
        (SMITH.replace("langsmith", "langsmth"), 7, "unknown feedback kind 'langsmth'", "langsmith, langfuse"),
        (SMITH.replace("https://api", "http://api"), 8, "plain http to another machine", "allow_insecure_http"),
        (SMITH.replace('"smith"', '"billing"'), 6, "name 'billing' is taken", "its own name"),
        (SMITH + 'api_key = "lsv2"\n', 9, "'api_key' must not be in the config", "APPROVAL_CONSOLE_TOKEN_SMITH"),
        (SMITH + 'sources = ["nope"]\n', 9, "names no configured source 'nope'", "(billing)"),
        (SMITH.replace("langsmith", "langfuse"), 5, "kind 'langfuse' needs one", "public_key"),
        (SMITH + "timeout = 0\n", 9, "timeout = 0 is out of range", "0.5 to 300"),
        (SMITH.replace('name = "smith"\n', ""), 5, "feedback sink #1 has no 'name'", "under [[feedback]]"),
    ],
)
def test_a_bad_feedback_block_is_reported_in_toml_words(block: str, line: int, problem: str, fix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(SOURCE + block, Path("c.toml"))
    assert caught.value.line == line and problem in caught.value.problem and fix in caught.value.fix


def test_a_sinks_key_is_stored_like_a_token_and_a_sink_is_no_source(cli: Cli) -> None:  # noqa: F811
    cli.write_config(SOURCE + SMITH)
    assert cli("sources", "token", "smith", stdin="lsv2-from-stdin\n").returncode == 0
    assert "has no source named 'smith'" in one_line_error(cli("sources", "remove", "smith"))
    read = "from console.engine.secrets import get_token; t = get_token('smith'); print(t.origin, t.value)"
    found = subprocess.run(
        [sys.executable, "-c", read], env=cli.env(), capture_output=True, text=True, timeout=60, check=True
    )
    assert found.stdout.split() == ["keyring", "lsv2-from-stdin"], "the session finds it as the sink's key"


def test_doctor_says_whether_a_sink_has_its_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SOURCE + SMITH)
    keyed = {"smith": Token("lsv2-key", "environment")}
    found = {c.subject: c for c in doctor.run(path, tmp_path / "data", "console.db", token_for=keyed.get)}
    sink = found["feedback smith"]
    assert sink.status == doctor.OK and "key from the environment" in sink.detail
    assert "lsv2-key" not in doctor.report(list(found.values())), "a key is never printed"
    missing = {c.subject: c for c in doctor.run(path, tmp_path / "data", "console.db", token_for=lambda _: None)}
    sink = missing["feedback smith"]
    assert sink.status == doctor.FAIL and "APPROVAL_CONSOLE_TOKEN_SMITH" in sink.detail
