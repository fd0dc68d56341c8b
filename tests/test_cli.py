"""The command line in a subprocess, as an operator runs it: every error is one line and a non-zero exit, never a
traceback; credentials in a URL are refused and shown nowhere; tokens are asked for only where they can be kept;
the demo's data is found; counts read as English; every option says what it does.

Each run gets its own config and data dirs (XDG_CONFIG_HOME, XDG_DATA_HOME) and a keyring chosen the way users choose
one (PYTHON_KEYRING_BACKEND): keyrings.alt's file store in a temp dir, or the "fail" backend of a machine with none.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.cli.commands import _parser
from console.cli.doctor import check_source
from console.engine.config import Config, ConfigError, SourceConfig, load, parse, token_env_var, token_fix
from console.engine.session import Session, setup_logging
from console.tui.app import ApprovalApp
from console.tui.screens.first_run import first_run_text
from console.tui.screens.history import remedy
from storage.db import Store
from storage.labels import build_label
from storage.records import Decision, DecisionRow, SyncState, Verdict
from tests import factories
from tests.conftest import eventually, read_log, screen_text
from tests.label_data import SHOWN, decision_on, open_labels_db, store_labels
from tests.servers import Fault, FaultyProxy, closed_port_url, running

CANARY = "canary-pw-4d1b-do-not-leak"
FILE_KEYRING = "keyrings.alt.file.PlaintextKeyring"
NO_KEYRING = "keyring.backends.fail.Keyring"


@dataclass
class Cli:
    """Runs `python -m console.cli` with its own config, data and keyring."""

    home: Path
    keyring: str = FILE_KEYRING

    @property
    def config(self) -> Path:
        return self.home / "config" / "approval-console" / "config.toml"

    @property
    def data(self) -> Path:
        return self.home / "data" / "approval-console"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPROVAL_CONSOLE_TOKEN_")}
        return env | {
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "PYTHON_KEYRING_BACKEND": self.keyring,
        }

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console.cli", *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env(),
        )

    def write_config(self, text: str) -> Path:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text, encoding="utf-8")
        return self.config


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The run failed the way every CLI error must: a non-zero exit and one line on stderr, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def labels_db(data_dir: Path, count: int = 1) -> Path:
    """A real console database with `count` labels in it."""
    path = data_dir / "console.db"
    Store(path).close()
    conn = open_labels_db(path)
    items = [factories.item(f"itm_{n}") for n in range(count)]
    store_labels(conn, [build_label(i, decision_on(i, Verdict.approve), SHOWN) for i in items])
    conn.close()
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


GOOD = 'operator = "alice"\n\n[[sources]]\nname = "crm"\nurl = "http://127.0.0.1:9"\n'


# ---------------------------------------------------------------------------------------------- 4: credentials in URLs


def test_credentials_in_a_url_are_refused_and_shown_nowhere(cli: Cli) -> None:
    url = f"http://ops:{CANARY}@127.0.0.1:9"
    added = cli("sources", "add", "crm", url, stdin="a-token\n")
    line = one_line_error(added)
    assert "credentials" in line and token_env_var("crm") in line and "sources token crm" in line
    assert CANARY not in added.stdout + added.stderr
    assert not cli.config.exists(), "nothing written"

    # The same url written into the config by hand: refused, with the fix, and never echoed.
    cli.write_config(GOOD.replace("http://127.0.0.1:9", url))
    with pytest.raises(ConfigError) as caught:
        load(cli.config)
    assert caught.value.line == 5 and CANARY not in str(caught.value)
    assert token_env_var("crm") in caught.value.fix
    for command in (("sources", "list"), ("doctor",), ("stats",)):
        result = cli(*command)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert CANARY not in result.stdout + result.stderr, command
    assert "credentials" in cli("doctor").stdout


@pytest.mark.usefixtures("isolated_log")
async def test_a_url_with_credentials_made_in_code_is_logged_and_shown_without_them(tmp_path: Path) -> None:
    """A SourceConfig made in code (the config file refuses such a url) still never shows its userinfo: not in the
    error the poller logs, not in the status bar's tooltip, not on screen, not in what the doctor prints."""
    url = closed_port_url().replace("http://", f"http://ops:{CANARY}@")
    source = SourceConfig(name="crm", url=url, poll_interval=0.2, long_poll=0.0, timeout=1.0)
    data_dir = tmp_path / "data"
    setup_logging(data_dir)
    session = Session(Config(operator="alice", sources=(source,)), data_dir, token_for=lambda _n: None)
    app = ApprovalApp(session)
    async with app.run_test(size=(140, 40)):
        bar = app.main.query_one("#status")
        await eventually(lambda: bar.tooltip is not None, what="the source shown as down, with its reason")
        tooltip, screen = str(bar.tooltip), screen_text(app)
    log = read_log(data_dir)
    assert "cannot reach http://127.0.0.1:" in tooltip and "cannot reach http://127.0.0.1:" in log
    assert CANARY not in tooltip + screen + log
    check = await check_source(source, None)
    assert check.status == "FAIL" and "127.0.0.1" in check.detail and CANARY not in check.detail


# -------------------------------------------------------------------------------------- 6: one line, never a traceback


def test_a_token_prompt_with_closed_input_is_an_error_not_a_traceback(cli: Cli) -> None:
    cli.write_config(GOOD)
    line = one_line_error(cli("sources", "token", "crm"))
    assert "no token" in line and token_env_var("crm") in line
    line = one_line_error(cli("sources", "add", "billing", "http://127.0.0.1:8"))
    assert "no token" in line
    assert load(cli.config).sources[-1].name == "crm", "a failed add writes nothing"


@pytest.mark.parametrize("command", [["audit", "verify"], ["export"], ["stats"]])
def test_a_file_that_is_not_a_database_is_one_line_that_points_at_doctor(cli: Cli, command: list[str]) -> None:
    cli.data.mkdir(parents=True)
    (cli.data / "console.db").write_bytes(b"not a database, " * 256)
    line = one_line_error(cli(*command))
    assert "cannot be read as a database" in line and "'approval-console doctor' says more" in line


def test_export_to_a_missing_directory_says_so(cli: Cli) -> None:
    labels_db(cli.data)
    line = one_line_error(cli("export", "--output", "/nonexistent/dir/x.jsonl"))
    assert "no directory /nonexistent/dir" in line


BAD_INPUT = {
    "console on an unusable data dir": ["--data-dir", "{file}/sub"],
    "demo on an unusable data dir": ["demo", "--interval", "0", "--data-dir", "{file}/sub"],
    "demo with a bad seed": ["demo", "--seed", "x"],
    "fleet on a port out of range": ["fleet", "--port", "99999"],
    "fleet on a port in use": ["fleet", "--port", "{busy_port}", "--interval", "0"],
    "sources with no subcommand": ["sources"],
    "sources add with a bad name": ["sources", "add", "bad name", "http://127.0.0.1:9", "--no-token"],
    "sources add with a bad url": ["sources", "add", "new", "ftp://x", "--no-token"],
    "sources add of a name taken": ["sources", "add", "crm", "http://127.0.0.1:9", "--no-token"],
    "sources add to a config it cannot extend": ["sources", "add", "new", "http://x:1", "--config", "{inline}"],
    "sources list of a bad config": ["sources", "list", "--config", "{bad_config}"],
    "sources token of an unknown source": ["sources", "token", "nope"],
    "sources remove of an unknown source": ["sources", "remove", "nope"],
    "audit verify with no database": ["audit", "verify", "--data-dir", "{home}/empty"],
    "audit verify of a file that is no database": ["audit", "verify", "--data-dir", "{garbage_dir}"],
    "export of a file that is no database": ["export", "--data-dir", "{garbage_dir}"],
    "stats of a file that is no database": ["stats", "--data-dir", "{garbage_dir}"],
    "export with a bad time": ["export", "--since", "yesterday-ish"],
    "export with no database": ["export", "--data-dir", "{home}/empty"],
    "export with --demo and --data-dir": ["export", "--demo", "--data-dir", "{home}"],
    "stats with a bad window": ["stats", "--window", "forever"],
    "stats with no database": ["stats", "--data-dir", "{home}/empty"],
    "an unknown command": ["frobnicate"],
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_every_subcommand_refuses_bad_input_in_one_line(cli: Cli, busy_port: int, args: list[str]) -> None:
    cli.write_config(GOOD)
    a_file = cli.home / "a-file"
    a_file.write_text("not a directory")
    bad_config = cli.home / "bad.toml"
    bad_config.write_text("undo_seconds = 99\n" + GOOD)
    inline = cli.home / "inline.toml"
    inline.write_text('sources = [{ name = "crm", url = "http://127.0.0.1:9" }]\n')
    garbage_dir = cli.home / "garbage"
    garbage_dir.mkdir()
    (garbage_dir / "console.db").write_bytes(b"garbage" * 1000)
    values = {
        "file": a_file,
        "busy_port": busy_port,
        "bad_config": bad_config,
        "home": cli.home,
        "garbage_dir": garbage_dir,
        "inline": inline,
    }
    one_line_error(cli(*(arg.format(**values) for arg in args)))


def test_doctor_with_a_bad_config_reports_without_a_traceback(cli: Cli) -> None:
    cli.write_config("undo_seconds = 99\n" + GOOD)
    result = cli("doctor")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.startswith("FAIL  config") and "out of range (line 1)" in result.stdout


# ------------------------------------------------------------------------------------ 15: the keyring before the token


def test_sources_add_without_a_keyring_names_the_variable_and_asks_nothing(cli: Cli) -> None:
    cli.keyring = NO_KEYRING
    result = cli("sources", "add", "crm", "http://127.0.0.1:9", stdin="typed-in-vain\n")
    assert result.returncode == 0, result.stderr
    assert token_env_var("crm") in result.stdout and "no usable keyring" in result.stdout
    assert "Token for" not in result.stdout + result.stderr, "no token is asked for when it cannot be kept"
    assert [s.name for s in load(cli.config).sources] == ["crm"]


def test_sources_add_with_a_keyring_names_the_variable_then_stores_the_token(cli: Cli) -> None:
    result = cli("sources", "add", "crm", "http://127.0.0.1:9", stdin="kr-token-1\n")
    assert result.returncode == 0, result.stderr
    before_asking, _, after = result.stdout.partition("Token stored in the system keyring")
    assert token_env_var("crm") in before_asking and after
    assert "kr-token-1" not in result.stdout + result.stderr + cli.config.read_text()
    assert "token: keyring" in cli("sources", "list").stdout


# --------------------------------------------------------------------------------------------- 16: the demo's data


def test_data_commands_point_at_the_demo_data_and_read_it_with_demo(cli: Cli) -> None:
    labels_db(cli.data / "demo", count=2)
    for command in (["stats"], ["export"], ["audit", "verify"]):
        line = one_line_error(cli(*command))
        assert str(cli.data / "demo") in line and "--demo" in line, command
    stats = cli("stats", "--demo", "--window", "3650d")
    assert stats.returncode == 0 and "all agents" in stats.stdout
    exported = cli("export", "--demo")
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2
    verified = cli("audit", "verify", "--demo")
    assert verified.returncode == 0 and verified.stdout.startswith("OK")


# ------------------------------------------------------------------- 17: where a value came from, not a made-up line


def test_a_bad_value_from_the_command_line_is_not_blamed_on_a_config_line(cli: Cli) -> None:
    path = cli.write_config(GOOD)  # five lines
    line = one_line_error(cli("sources", "add", "new", "ftp://x", "--no-token"))
    assert "command line" in line and "not an http(s) URL" in line
    assert not re.search(rf"{re.escape(str(path))}:\d", line), line
    assert path.read_text() == GOOD


# --------------------------------------------------------------------------------------------------- 25: polish


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.returncode == 0 and re.fullmatch(r"approval-console \S+\n", result.stdout)


def test_sources_remove_takes_out_one_block_and_its_token(cli: Cli) -> None:
    text = (
        'operator = "alice"  # who decides\n\n'
        '[[sources]]\nname = "crm"\nurl = "http://127.0.0.1:9"\n\n'
        '# billing: the payments team\n[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:8"\npoll_interval = 3\n\n'
        "[notifications]\nbell = false\n"
    )
    cli.write_config(text)
    assert cli("sources", "token", "billing", stdin="kr-billing\n").returncode == 0
    assert "billing              native     http://127.0.0.1:8" in cli("sources", "list").stdout

    result = cli("sources", "remove", "billing")
    assert result.returncode == 0, result.stderr
    assert "token was deleted" in result.stdout
    config = load(cli.config)
    assert [s.name for s in config.sources] == ["crm"] and config.notifications.bell is False
    kept = cli.config.read_text()
    assert "# who decides" in kept and "# billing: the payments team" in kept
    again = cli("sources", "add", "billing", "http://127.0.0.1:8", stdin="\n")
    assert again.returncode == 0, again.stderr
    assert "billing" in cli("sources", "list").stdout and "token: keyring" not in cli("sources", "list").stdout

    assert cli("sources", "remove", "crm").returncode == 0
    assert cli("sources", "remove", "billing").returncode == 0
    assert load(cli.config).sources == () and load(cli.config).notifications.bell is False


def named_command(fix: str) -> list[str]:
    """The arguments of the `approval-console ...` command a fix text tells the operator to run."""
    named = re.search(r"approval-console ([a-z][^,;'\"]*)", fix)
    assert named is not None, fix
    return named[1].split()


def test_every_fix_for_a_refused_token_names_a_command_that_works(cli: Cli) -> None:
    """The doctor, the source error, the toast and the history screen all tell the operator to run one command."""
    cli.write_config(GOOD)
    decision = Decision(
        id="d", source="crm", item_id="x", item_digest="sha256:x", verdict=Verdict.approve, operator="alice",
        decided_at=datetime(2026, 11, 21, 23, 0, tzinfo=UTC),
    )  # fmt: skip
    waiting = DecisionRow(
        decision=decision, sync_state=SyncState.pending, attempts=1, outcome=None, detail="", item_action="a",
        item_agent="b",
    )  # fmt: skip
    for fix in (token_fix("crm"), remedy(waiting, auth_refused={"crm"}) or ""):
        assert token_env_var("crm") in fix, fix
        result = cli(*named_command(fix), stdin="kr-crm\n")
        assert result.returncode == 0, (fix, result.stderr)
    assert "token: keyring" in cli("sources", "list").stdout


@pytest.mark.parametrize(
    "secret",
    [GOOD + 'token = "s3cret"\n', GOOD.replace("http://127.0.0.1:9", "http://user:s3cret@127.0.0.1:9")],
    ids=["token line", "credentials in the url"],
)
def test_the_fix_for_a_secret_in_the_config_names_a_command_that_works_once_it_is_removed(
    cli: Cli, secret: str
) -> None:
    cli.write_config(secret)
    with pytest.raises(ConfigError) as refused:
        load(cli.config)
    fix = refused.value.fix
    assert fix.startswith("remove") and token_env_var("crm") in fix, fix
    cli.write_config(GOOD)  # what the fix's first half says
    result = cli(*named_command(fix), stdin="kr-crm\n")
    assert result.returncode == 0, (fix, result.stderr)


def test_a_number_given_as_text_is_a_type_error(tmp_path: Path) -> None:
    for text, key in (
        ('undo_seconds = "five"\n', "undo_seconds"),
        (GOOD + 'poll_interval = "2"\n', "poll_interval"),
        ("[notifications]\ndeadline_seconds = true\n", "notifications.deadline_seconds"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse(text, tmp_path / "config.toml")
        assert caught.value.problem.startswith(key) and "not a number" in caught.value.problem
        assert "out of range" not in caught.value.problem
    with pytest.raises(ConfigError, match="undo_seconds = 99 is out of range"):
        parse("undo_seconds = 99\n", tmp_path / "config.toml")


def test_counts_read_as_english(cli: Cli) -> None:
    labels_db(cli.data, count=1)
    exported = cli("export", "--output", str(cli.home / "x.jsonl"))
    assert "exported 1 label as 1 record (labels format)" in exported.stderr
    Store(cli.home / "one" / "console.db").close()
    verified = cli("audit", "verify", "--data-dir", str(cli.home / "one"))
    assert re.match(r"OK: (0 audit records|1 audit record), ", verified.stdout), verified.stdout


def _actions(parser: argparse.ArgumentParser, prog: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prog} {name}")
        else:
            yield prog, action


def test_every_option_and_argument_says_what_it_does() -> None:
    missing = [f"{prog} {action.dest}" for prog, action in _actions(_parser(), "approval-console") if not action.help]
    assert missing == []


def test_the_first_run_text_breaks_lines_only_between_paragraphs(tmp_path: Path) -> None:
    paragraphs = first_run_text(tmp_path / "config.toml").plain.split("\n\n")
    assert len(paragraphs) >= 4
    assert [p for p in paragraphs if "\n" in p] == []


def test_with_no_config_sources_list_and_doctor_say_how_to_add_one(cli: Cli) -> None:
    listed = cli("sources", "list")
    assert listed.returncode == 0 and "No sources" in listed.stdout and "sources add NAME URL" in listed.stdout
    assert "bad config" not in listed.stdout + listed.stderr
    doctor = cli("doctor")
    first, fix = doctor.stdout.splitlines()[:2]
    assert first.startswith("FAIL  config") and "does not exist" in first
    assert "sources add NAME URL" in fix and "README" not in doctor.stdout


# ----------------------------------------------------------------------- 32: server text reaches the terminal shown


def test_doctor_shows_control_characters_from_a_redirect_never_sends_them(cli: Cli) -> None:
    proxy = FaultyProxy()
    proxy.default = Fault(302, headers={"Location": "http://elsewhere/\x9b2J\x9d52;c;aGk=\x9c\x85next"})
    with running(proxy):
        cli.write_config(GOOD.replace("http://127.0.0.1:9", proxy.url))
        result = cli("doctor")
    assert "a redirect to http://elsewhere/" in result.stdout
    raw = [c for c in result.stdout if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F)]
    assert raw == [], result.stdout
    assert "⟨U+009B⟩2J" in result.stdout
