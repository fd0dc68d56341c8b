"""The config's [keymap] table as written: a preset and, per action, the keys the operator wants.

Only its shape is checked here (the engine knows no key names and no screens): which actions exist, which key names
a terminal sends, clashes and swallowed keys are checked by console/tui/keymap.py against the bindings themselves,
and reported with the line each action is on (`lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic_core import PydanticCustomError

Preset = Literal["default", "vim"]
PRESETS: tuple[str, ...] = get_args(Preset)
EXAMPLE = 'approve = ["a"]'


@dataclass(frozen=True)
class KeymapConfig:
    """[keymap]: `preset` ("default" or "vim"), then `action = ["key", ...]` lines that replace the preset's keys."""

    preset: Preset = "default"
    keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (action, its keys), in the file's order
    # The line of each action in the file (filled in once the text is parsed), for the errors the app finds.
    lines: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    table_line: int | None = field(default=None, compare=False)

    def line_of(self, action: str) -> int | None:
        return dict(self.lines).get(action, self.table_line)


BUILT_IN = KeymapConfig()  # no [keymap] table: the bindings' own keys


def _refusal(problem: str, fix: str, key: str) -> PydanticCustomError:
    # the config's own error kind ("toml"): final words, on the line of `key` in [keymap]
    return PydanticCustomError("toml", "{problem}", {"problem": problem, "fix": fix, "key": key, "table": "keymap"})


def keymap_table(raw: Any) -> KeymapConfig:
    """The [keymap] table, or a refusal naming the key whose value is wrong."""
    if isinstance(raw, KeymapConfig):
        return raw
    if not isinstance(raw, dict):
        raise PydanticCustomError(
            "toml",
            "{problem}",
            {"problem": "keymap must be a table", "fix": f"use a [keymap] block: {EXAMPLE}", "key": "keymap"},
        )
    preset = raw.get("preset", "default")
    if preset not in PRESETS:
        raise _refusal(
            f"preset = {preset!r} is not a keymap preset", f"use one of: {', '.join(map(repr, PRESETS))}", "preset"
        )
    keys: list[tuple[str, tuple[str, ...]]] = []
    for action, value in raw.items():
        if action == "preset":
            continue
        listed = [value] if isinstance(value, str) else value
        if not isinstance(listed, list) or not listed:
            raise _refusal(
                f"{action} must be a non-empty list of key names", f'{action} = ["a"] (several: ["a", "enter"])', action
            )
        for key in listed:
            if not isinstance(key, str) or not key.strip() or "," in key or " " in key.strip():
                raise _refusal(
                    f"{action}: {key!r} is not a key name",
                    'one key per string, without spaces or commas, e.g. "a", "ctrl+r", "enter", "f2"',
                    action,
                )
        keys.append((action, tuple(key.strip() for key in listed)))
    return KeymapConfig(preset=preset, keys=tuple(keys))
