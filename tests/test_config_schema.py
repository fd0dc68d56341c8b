"""The config schema is the one list of the file's keys: what the parser accepts, the keys its hints name and the
bounds it enforces are all read from it, and every key says what it is for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from console.engine.config import Config, ConfigError, parse

SCHEMA = TypeAdapter(Config).json_schema()
SOURCE = '[[sources]]\nname = "billing"\nurl = "http://127.0.0.1:8700"\n'
# Each table of the file: its schema, and how a TOML line `key = value` is placed in it.
TABLES: dict[str, tuple[dict[str, Any], str]] = {
    "top level": (SCHEMA, "{line}\n"),
    "[[sources]]": (SCHEMA["$defs"]["SourceConfig"], SOURCE + "{line}\n"),
    "[notifications]": (SCHEMA["$defs"]["Notifications"], "[notifications]\n{line}\n"),
}


@pytest.mark.parametrize("table", TABLES)
def test_every_key_has_a_description_and_the_hint_lists_exactly_the_schema(table: str, tmp_path: Path) -> None:
    schema, template = TABLES[table]
    keys = schema["properties"]
    assert {key: bool(spec.get("description")) for key, spec in keys.items()} == dict.fromkeys(keys, True)
    with pytest.raises(ConfigError) as caught:
        parse(template.format(line="qqqqqqqq = 1"), tmp_path / "config.toml")
    assert caught.value.fix == f"known keys: {', '.join(sorted(keys))}"


BOUNDED = [
    (table, key, spec["minimum"], spec["maximum"])
    for table, (schema, _template) in TABLES.items()
    for key, spec in schema["properties"].items()
    if "maximum" in spec
]


@pytest.mark.parametrize(("table", "key", "low", "high"), BOUNDED)
def test_the_bounds_in_the_schema_are_the_bounds_enforced(
    table: str, key: str, low: float, high: float, tmp_path: Path
) -> None:
    template = TABLES[table][1]
    for value in (low, high):
        parse(template.format(line=f"{key} = {value!r}"), tmp_path / "config.toml")
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError) as caught:
            parse(template.format(line=f"{key} = {value!r}"), tmp_path / "config.toml")
        assert caught.value.problem.endswith(f"{key} = {value!r} is out of range")


def test_bounded_keys_are_found() -> None:
    assert {key for _table, key, _low, _high in BOUNDED} == {
        "undo_seconds",
        "poll_interval",
        "long_poll",
        "timeout",
        "max_item_bytes",
        "deadline_seconds",
    }


@pytest.mark.parametrize(
    ("table", "key"), [(table, key) for table, (schema, _t) in TABLES.items() for key in schema["properties"]]
)
def test_every_key_refuses_a_wrong_value_in_its_own_words_on_its_line(table: str, key: str, tmp_path: Path) -> None:
    wrong = f"{key} = 1979-05-27"  # a TOML date: no key takes one
    if table == "[[sources]]":
        keys = {"name": 'name = "billing"', "url": 'url = "http://127.0.0.1:8700"', key: wrong}
        text, line = "[[sources]]\n" + "\n".join(keys.values()) + "\n", 2 + list(keys).index(key)
    else:
        text, line = TABLES[table][1].format(line=wrong), 1  # [notifications] problems cite the table's line
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path / "config.toml")
    assert caught.value.line == line
    assert "Input should" not in caught.value.problem  # not pydantic's words, which are not about TOML
