"""[keymap]: the bindings' keys, then a preset's, then the config's table; a keymap that names an unknown action or key,
gives one key two actions on a screen, or leaves an action only on keys a terminal swallows is a config error naming
the file, the line and the fix. The rebound keys decide on the demo fleet, and the help shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.engine.config import ConfigError, parse
from console.engine.keymap_table import PRESETS as PRESET_NAMES
from console.engine.session import Session
from console.servers.fleet import Fleet
from console.tui.keymap import PRESETS, SWALLOWED, _classes, own_bindings, registry, resolve
from console.tui.screens.help import HelpScreen
from tests.conftest import decide_key, eventually, running_app, screen_text

SOURCE_BLOCK = '\n[[sources]]\nname = "billing"\nurl = "{url}"\n'


def keys_in_force(text: str, path: Path) -> dict[str, str]:
    config = parse(text + SOURCE_BLOCK.format(url="http://127.0.0.1:8700"), path)
    return resolve(config.keymap, config.path)


def test_every_binding_has_an_id_and_an_id_has_the_same_keys_everywhere() -> None:
    known = registry()
    assert known.unnamed == (), "give every Binding an id= (the action's name) so [keymap] can rebind it"
    by_class: dict[str, dict[str, set[str]]] = {}
    for cls in _classes():
        own: dict[str, set[str]] = {}
        settings: dict[str, set[tuple[bool, bool]]] = {}
        for binding in own_bindings(cls):
            assert binding.id is not None
            own.setdefault(binding.id, set()).add(binding.key)
            settings.setdefault(binding.id, set()).add((binding.priority, binding.show))
        for binding_id, keys in own.items():
            by_class.setdefault(binding_id, {})[cls.__name__] = keys
            # Textual gives every key of an id the first binding's settings: one id, one priority, shown or not.
            assert len(settings[binding_id]) == 1, f"{cls.__name__}: {binding_id} mixes priority or show"
    for binding_id, classes in by_class.items():
        assert len({frozenset(keys) for keys in classes.values()}) == 1, f"{binding_id} has other keys in {classes}"
    assert {"approve", "reject", "edit", "undo", "filter", "help", "cursor_down", "cursor_first"} <= set(known.defaults)


def test_no_built_in_action_is_only_on_keys_a_terminal_swallows() -> None:
    for binding_id, keys in registry().defaults.items():
        assert not all(key in SWALLOWED for key in keys), f"{binding_id} is only on {keys}"


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_preset_is_a_valid_keymap_of_known_actions(preset: str, tmp_path: Path) -> None:
    assert set(PRESETS) == set(PRESET_NAMES)
    assert set(PRESETS[preset]) <= set(registry().defaults)
    in_force = keys_in_force(f'[keymap]\npreset = "{preset}"\n', tmp_path / "config.toml")
    assert set(in_force) == set(registry().defaults), "every action is in the keymap: none loses its keys"


def test_layers_merge_default_then_preset_then_the_table(tmp_path: Path) -> None:
    text = '[keymap]\npreset = "vim"\ncursor_first = ["home"]\nreject = ["R", "r"]\n'
    in_force = keys_in_force(text, tmp_path / "config.toml")
    assert in_force["cursor_first"] == "home", "the table over the preset (vim has g)"
    assert in_force["cursor_last"] == "G,end", "the preset over the built-in keys"
    assert in_force["undo"] == "u", "neither names it: the built-in key"
    assert in_force["reject"] == "R,r"
    assert in_force["approve"] == in_force["accept"] == "exclamation_mark", "accept follows approve"
    assert keys_in_force("", tmp_path / "config.toml")["approve"] == "a"
    # "?" as written is question_mark, as Textual names it
    assert keys_in_force('[keymap]\nhelp = ["?", "f1"]\n', tmp_path / "config.toml")["help"] == "question_mark,f1"
    # close on h is no clash on the history screen: its h (the id "history") closes it too
    assert keys_in_force('[keymap]\nclose = ["escape", "h"]\n', tmp_path / "config.toml")["close"] == "escape,h"


@pytest.mark.parametrize(
    ("table", "line", "problem", "fix"),
    [
        ('approve = ["r"]', 5, "r would do two things on the main screen: approve and reject", "another key"),
        ('reject = ["a"]', 5, "a would do two things on the main screen", "another key"),
        ('cursor_down = ["slash"]', 5, "/ would do two things on the main screen: cursor_down and filter", "filter"),
        ('aprove = ["v"]', 5, "unknown action 'aprove'", "did you mean 'approve'?"),
        ('approve = ["ctrl+spcae"]', 5, "approve: 'spcae' is not a key name", "enter, escape"),
        ('approve = ["Ctrl+v"]', 5, "'Ctrl' is not a modifier", "lower case"),
        ('approve = ["shift+ctrl+v"]', 5, "out of order", "ctrl+shift+v"),
        ('approve = ["ctrl+s"]', 5, "approve would only be on ctrl+s: it is flow control", '["ctrl+s", "f2"]'),
        ('filter = ["ctrl+i", "ctrl+m"]', 5, "filter would only be on ctrl+i / ctrl+m: it is tab", "f2"),
        ('undo = ["shift+enter"]', 5, "most terminals send plain enter", "f2"),
        ('preset = "emacs"', 5, "preset = 'emacs' is not a keymap preset", "'vim'"),
        ("approve = []", 5, "approve must be a non-empty list of key names", 'approve = ["a"]'),
        ('approve = ["a,b"]', 5, "'a,b' is not a key name", "one key per string"),
        # the vim preset moves group to z: z for something else clashes, cited on that action's line
        ('preset = "vim"\nstats = ["z"]', 6, "z would do two things on the main screen: stats and group", "for stats"),
    ],
)
def test_a_bad_keymap_names_file_line_and_fix(tmp_path: Path, table: str, line: int, problem: str, fix: str) -> None:
    path = tmp_path / "config.toml"
    text = f'operator = "alice"\n\n# keys\n[keymap]\n{table}\n'
    with pytest.raises(ConfigError) as caught:
        keys_in_force(text, path)
    error = caught.value
    assert (error.path, error.line) == (path, line)
    assert problem in error.problem and fix in error.fix
    assert f"{path}:{line}: " in str(error)


def test_keymap_that_is_not_a_table_is_refused_on_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        keys_in_force('operator = "alice"\nkeymap = "vim"\n', tmp_path / "config.toml")
    assert caught.value.line == 2 and "keymap must be a table" in caught.value.problem


async def test_a_rebound_key_decides_on_the_demo_fleet_and_the_old_one_no_longer_does(
    fleet: Fleet, data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    keymap = '[keymap]\napprove = ["w"]\nsort = ["O"]\n'
    text = f'operator = "alice"\nundo_seconds = 0\n\n{keymap}{SOURCE_BLOCK.format(url=fleet.url)}'
    session = Session(parse(text, path), data_dir, token_for=lambda _name: None)
    async with running_app(session) as (app, pilot):
        await pilot.pause(0.1)
        first = app.main.shown
        assert first is not None
        await pilot.press("a")
        await pilot.pause(0.2)
        assert session.store.outbox.decisions() == [], "a no longer approves"
        assert app.screen is app.main, "nor opens a confirmation"
        await decide_key(pilot, "w")
        await eventually(lambda: len(session.store.outbox.decisions()) == 1, what="the decision")
        [row] = session.store.outbox.decisions()
        assert (row.decision.item_id, row.decision.verdict.value) == (first.id, "approve")
        assert "(O sort · g group · / filter · space mark · ? help)" in screen_text(app), (
            "the queue bar names the keys in force"
        )
        palette = {command.title: command.help for command in app.get_system_commands(app.main)}
        assert palette.get("Approve", palette.get("Accept")) == "key w", "the command palette names the key in force"
        footer = screen_text(app).splitlines()[-1]
        assert " w " in footer and ("Approve" in footer or "Accept" in footer)
        await pilot.press("question_mark")
        await eventually(lambda: isinstance(app.screen, HelpScreen), what="the help")
        await pilot.pause(0.1)
        approve = next(line for line in screen_text(app).splitlines() if "Approve" in line)
        assert " w " in f"{approve} " and " a " not in f"{approve} "


def test_a_bad_keymap_stops_the_cli_before_the_terminal_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from console.cli.commands import main

    path = tmp_path / "config.toml"
    path.write_text(f'[keymap]\nundo = ["ctrl+q"]\n{SOURCE_BLOCK.format(url="http://127.0.0.1:9")}')
    assert main(["--config", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    assert f"bad config: {path}:2: [keymap] undo would only be on ctrl+q" in capsys.readouterr().err


async def test_the_vim_preset_moves_as_vim_and_approves_only_on_its_own_key(
    fleet: Fleet, data_dir: Path, tmp_path: Path
) -> None:
    text = f'operator = "alice"\nundo_seconds = 0\n\n[keymap]\npreset = "vim"\n{SOURCE_BLOCK.format(url=fleet.url)}'
    session = Session(parse(text, tmp_path / "config.toml"), data_dir, token_for=lambda _name: None)
    async with running_app(session) as (app, pilot):
        rows = session.store.queue.rows(0, 100, session.queue.view)
        assert len(rows) > 2
        await pilot.press("G")
        await eventually(lambda: getattr(app.main.shown, "id", None) == rows[-1].id, what="G: the last item")
        await pilot.press("g")
        await eventually(lambda: getattr(app.main.shown, "id", None) == rows[0].id, what="g: the first item")
        for habit in ("a", "i", "o", "y", "d", "d", "x", "p", "escape"):  # vim's keys for typing and deleting
            await pilot.press(habit)
            await pilot.pause()
            if app.screen is not app.main:  # p opens the problems, which esc closes
                await pilot.press("escape")
        await pilot.pause(0.2)
        assert session.store.outbox.decisions() == [], "no vim habit decides"
        first = app.main.shown
        assert first is not None
        await decide_key(pilot, "exclamation_mark")
        await eventually(lambda: len(session.store.outbox.decisions()) == 1, what="the decision")
        assert session.store.outbox.decisions()[0].decision.item_id == first.id
