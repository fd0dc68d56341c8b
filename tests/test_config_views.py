"""[[views]]: saved views of the queue (tabs, number keys). A view's filter is the filter's own syntax (checked by
console/engine/views.py, which knows it, before the console starts); a bad block names the file, the line and the fix
like every other config error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter

from console.engine.config import Config, ConfigError, ViewConfig, default_views, load, parse
from console.engine.views import check_views, saved_views
from storage.queue import QueueView

TOP = 'operator = "alice"\n'


def test_views_are_read_with_their_filter_order_and_grouping(tmp_path: Path) -> None:
    text = TOP + '[[views]]\nname = "Hot"\nfilter = " risk:high -agent:test "\nsort = "age"\ngroup = "agent"\n'
    text += '\n[[views]]\nname = "Everything"\n'
    config = parse(text, tmp_path / "config.toml")
    assert config.saved_views() == (
        ViewConfig(name="Hot", filter="risk:high -agent:test", sort="age", group="agent"),
        ViewConfig(name="Everything"),
    )


def test_without_views_the_default_few_are_shown() -> None:
    config = parse(TOP, Path("config.toml"))
    assert [(v.name, v.filter) for v in config.saved_views()] == [
        ("All", ""),
        ("Critical+high", "risk:critical,high"),
        ("Mine", "claimed:alice"),
        ("Escalations", "kind:ESC"),
    ]
    # Each default is a valid filter, and "Mine" names the operator even when the name has a space.
    for view in default_views("mary ann"):
        assert not QueueView(filter_text=view.filter).filter.problems
    mine = QueueView(filter_text=default_views("mary ann")[2].filter).filter
    assert [term.values for term in mine.fields] == [("mary ann",)]


@pytest.mark.parametrize(
    ("block", "line", "problem", "fix"),
    [
        ('name = "Hot"\nsort = "newest"\n', 4, "unknown sort 'newest'", "urgency, age, confidence, agent"),
        ('name = "Hot"\ngroup = "team"\n', 4, "unknown group 'team'", "none, source, agent"),
        ('filter = "risk:high"\n', 2, "view #1 has no 'name'", "under [[views]]"),
        ('name = "Hot"\ncolour = "red"\n', 4, "unknown key 'colour'", "filter, group, name, sort"),
        ('name = ""\n', 3, "view name must be a non-empty string", 'name = "Critical+high"'),
        ('name = "Hot"\nfilter = 3\n', 4, "filter must be a string in the filter's syntax", "filter ="),
    ],
)
def test_a_bad_view_names_its_line_and_the_fix(block: str, line: int, problem: str, fix: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(TOP + "[[views]]\n" + block, tmp_path / "config.toml")
    assert caught.value.line == line, str(caught.value)
    assert problem in caught.value.problem and fix in caught.value.fix, str(caught.value)


@pytest.mark.parametrize(
    ("filter_text", "problem", "fix"),
    [
        ("owner:bob", "unknown field owner:", "agent:, action:, source:, kind:, risk:, workflow:, id:, claimed:"),
        ("risk:high kind:job", "'job' is not a kind", "kind: takes APPR, ESC"),
    ],
)
def test_a_view_filter_the_filter_would_refuse_names_its_line(
    filter_text: str, problem: str, fix: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TOP + f'[[views]]\nname = "Fine"\n\n[[views]]\nname = "Hot"\nfilter = "{filter_text}"\n')
    with pytest.raises(ConfigError) as caught:
        check_views(load(path))
    assert (caught.value.path, caught.value.line) == (path, 7)
    assert problem in caught.value.problem and "'Hot'" in caught.value.problem and fix in caught.value.fix
    path.write_text(TOP + '[[views]]\nname = "Hot"\nfilter = "risk:high,crit -kind:ESC claimed:bob"\n')
    check_views(load(path))
    [hot] = saved_views(load(path))
    assert hot.view == QueueView(filter_text="risk:high,crit -kind:ESC claimed:bob")


def test_at_most_nine_views_one_per_number_key(tmp_path: Path) -> None:
    nine = "".join(f'[[views]]\nname = "v{n}"\n' for n in range(9))
    assert len(parse(TOP + nine, tmp_path / "config.toml").saved_views()) == 9
    with pytest.raises(ConfigError) as caught:
        parse(TOP + nine + '[[views]]\nname = "tenth"\n', tmp_path / "config.toml")
    assert caught.value.line == 21 and "at most 9" in caught.value.problem


def test_every_view_key_says_what_it_is_for() -> None:
    keys = TypeAdapter(Config).json_schema()["$defs"]["ViewConfig"]["properties"]
    assert {key: bool(spec.get("description")) for key, spec in keys.items()} == dict.fromkeys(keys, True)


def test_the_console_does_not_start_on_a_view_filter_it_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from console.cli.commands import main

    path = tmp_path / "config.toml"
    source = '[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:9"\n\n'
    path.write_text(TOP + source + '[[views]]\nname = "Hot"\nfilter = "owner:bob"\n')
    assert main(["--config", str(path), "--data-dir", str(tmp_path / "data")]) != 0
    error = capsys.readouterr().err
    assert f"bad config: {path}:8: view 'Hot'" in error and "unknown field owner:" in error
    assert not list((tmp_path / "data").glob("*.db")), "nothing started"
