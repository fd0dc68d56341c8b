"""The keys in force: the bindings' own keys, then a preset's, then the config's [keymap] table, each layer replacing
the keys of the actions it names.

The actions are the bindings' ids, read from every screen, widget and the app: an action added with an id can be
rebound without a list here to keep up. A keymap is refused (a ConfigError on the action's line) when it names an
unknown action or key, gives one key two actions on one screen, or leaves an action only on keys a terminal may
swallow. Textual applies the result by id (App.set_keymap).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import pkgutil
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.keys import REPLACED_KEYS, Keys, _character_to_key, key_to_character
from textual.screen import ModalScreen, Screen

from console.engine.config import ConfigError
from console.engine.keymap_table import KeymapConfig

MODIFIERS = ("alt", "ctrl", "hyper", "meta", "shift", "super")  # Textual names them in this (sorted) order
_NAMED = {k.value for k in Keys if "+" not in k.value and k.value.isidentifier()} - {"return"}  # Textual says enter
# Keys that may never reach the console over SSH, tmux or a plain terminal, and why.
SWALLOWED: Mapping[str, str] = {
    "ctrl+space": "many terminals send nothing for it, or ctrl+@",
    "ctrl+at": "many terminals send nothing for it",
    "ctrl+h": "terminals send it as backspace",
    "ctrl+i": "it is tab to a terminal",
    "ctrl+m": "it is enter to a terminal",
    "ctrl+j": "it is a line feed, which terminals and tmux may turn into enter",
    "ctrl+left_square_bracket": "it is escape to a terminal",
    "ctrl+s": "it is flow control (XOFF): a terminal with flow control on freezes instead",
    "ctrl+q": "it is flow control (XON): a terminal with flow control on swallows it",
    "ctrl+b": "it is tmux's prefix key",
    "shift+enter": "most terminals send plain enter",
    "ctrl+enter": "most terminals send plain enter",
    "alt+enter": "many terminals take it for full screen",
    "shift+space": "most terminals send plain space",
    "ctrl+backspace": "terminals send it as backspace or ctrl+h",
}
# The vim preset: moving as in vim; deciding stays off the keys a vim hand types by habit (a, i, o, y, d, x, p...):
# approving moves from `a` (vim's append) to `!`, which vim's normal mode hardly uses alone. Reject and edit open a
# dialog first, so a stray r or e decides nothing.
PRESETS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "default": {},
    "vim": {
        "approve": ("exclamation_mark",),
        "cursor_down": ("j", "down"),
        "cursor_up": ("k", "up"),
        "cursor_first": ("g", "home"),
        "cursor_last": ("G", "end"),
        "cursor_page_down": ("ctrl+f", "ctrl+d", "pagedown"),
        "cursor_page_up": ("ctrl+u", "pageup"),
        "group": ("z",),  # g is the top now; z as vim folds
        "group_order": ("Z",),  # G is the bottom now
        "filter": ("slash",),
    },
}


@dataclass(frozen=True)
class Scope:
    """The keys one screen answers to: its own bindings, its widgets' and the app's."""

    name: str
    bindings: tuple[Binding, ...]


@dataclass(frozen=True)
class Registry:
    defaults: Mapping[str, tuple[str, ...]]  # each action's built-in keys
    alternates: Mapping[str, frozenset[str]]  # ids sharing a key in one class, told apart by check_action
    scopes: tuple[Scope, ...]
    unnamed: tuple[str, ...]  # bindings without an id: "Class: key -> action"


def _classes() -> Iterator[type[DOMNode]]:
    """Every console screen and widget class that declares bindings, and the app's."""
    import console.tui.screens
    import widgets
    from console.tui.app import ApprovalApp

    for package in (console.tui.screens, widgets):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for value in vars(module).values():
                ours = isinstance(value, type) and value.__module__ == module.__name__
                if ours and issubclass(value, DOMNode) and "BINDINGS" in vars(value):
                    yield value
    yield from _app_classes(ApprovalApp)


def _app_classes(app: type[DOMNode]) -> list[type[DOMNode]]:
    return [cls for cls in app.__mro__ if cls.__module__.startswith("console.") and "BINDINGS" in vars(cls)]


def own_bindings(cls: type[DOMNode]) -> list[Binding]:
    """A class's own bindings, one per key."""
    return list(Binding.make_bindings(vars(cls).get("BINDINGS", ())))


def _scope_name(cls: type[DOMNode]) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()
    return f"the {words}"


@functools.cache
def registry() -> Registry:
    classes = list(dict.fromkeys(_classes()))
    defaults: dict[str, list[str]] = {}
    alternates: dict[str, set[str]] = {}
    unnamed: list[str] = []
    for cls in classes:
        by_key: dict[str, set[str]] = {}
        for binding in own_bindings(cls):
            if binding.id is None:
                unnamed.append(f"{cls.__name__}: {binding.key} -> {binding.action}")
                continue
            keys = defaults.setdefault(binding.id, [])
            keys += [binding.key] if binding.key not in keys else []
            by_key.setdefault(binding.key, set()).add(binding.id)
        for ids in by_key.values():
            for binding_id in ids:
                alternates.setdefault(binding_id, set()).update(ids - {binding_id})
    app = [b for cls in classes if issubclass(cls, App) for b in own_bindings(cls)]
    widget_bindings = [b for cls in classes if cls.__module__.startswith("widgets.") for b in own_bindings(cls)]
    scopes = []
    for cls in classes:
        if not issubclass(cls, Screen):
            continue
        inherited = [b for base in cls.__mro__ if base.__module__.startswith("console.") for b in own_bindings(base)]
        if issubclass(cls, ModalScreen):  # a dialog stops the app's keys, except priority ones
            scope = [*inherited, *(b for b in app if b.priority)]
        else:
            scope = [*inherited, *widget_bindings, *app]
        scopes.append(Scope(_scope_name(cls), tuple(b for b in scope if b.id is not None)))
    return Registry(
        {k: tuple(v) for k, v in defaults.items()},
        {k: frozenset(v) for k, v in alternates.items()},
        tuple(scopes),
        tuple(unnamed),
    )


def key_problem(key: str) -> tuple[str, str] | None:
    """Why `key` (as normalized) is not a key Textual can report, and the fix; None when it is one."""
    *modifiers, base = key.split("+") if len(key) > 1 else [key]
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if unknown:
        return f"{unknown[0]!r} is not a modifier", f"use {', '.join(MODIFIERS)} in lower case, e.g. ctrl+r"
    if modifiers != sorted(set(modifiers)):
        return "the modifiers are out of order", f"write it {'+'.join([*sorted(set(modifiers)), base])}"
    if len(base) == 1 and base.isprintable() and not base.isspace():
        return None
    if base in _NAMED or (len(base) > 1 and key_to_character(REPLACED_KEYS.get(base, base)) is not None):
        return None
    return f"{base!r} is not a key name", 'use a character ("a", "?"), or a name such as enter, escape, tab, f2, up'


def normalize(key: str) -> str:
    return _character_to_key(key) if len(key) == 1 else key


def _error(config: KeymapConfig, path: Path | None, action: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(path or Path("config.toml"), config.line_of(action), f"[keymap] {problem}", fix)


def key_label(key: str) -> str:
    """A key as the help writes it: "?" not question_mark, esc, ctrl+r."""
    if key == "escape":
        return "esc"
    character = key_to_character(REPLACED_KEYS.get(key, key)) if len(key) > 1 else None
    return character if character and character.isprintable() and not character.isspace() else key


def rebound(in_force: Mapping[str, str]) -> dict[str, str]:
    """Only the actions whose keys differ from the built-in ones: what the app hands Textual (App.set_keymap), so a
    binding not rebound keeps its own class's keys exactly."""
    defaults = registry().defaults
    return {action: keys for action, keys in in_force.items() if keys != ",".join(defaults.get(action, ()))}


def key_in_force(app: object, binding_id: str) -> str:
    """The first key of `binding_id` as the help writes it ("u"): as the app's keymap rebinds it, else built in."""
    return hint(app, f"{{{binding_id}:1}}")


def shown(keys: Iterable[str]) -> str:
    return " / ".join(key_label(key) for key in keys)


_ARROWS: Mapping[str, str] = {"up": "↑", "down": "↓", "left": "←", "right": "→"}


class _Keys(tuple[str, ...]):
    """An action's keys in force, formatted as a hint writes them: "n / esc"; with `:1` the first key only, with
    `:or` joined by "or", with `:arrow` the first key only, an arrow key drawn as an arrow ("↑")."""

    def __format__(self, spec: str) -> str:
        if spec == "or":
            return " or ".join(key_label(key) for key in self)
        if spec == "arrow":
            return _ARROWS.get(self[0], key_label(self[0]))
        return shown(self[: int(spec)] if spec else self)


class _KeysOf(dict[str, _Keys]):
    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__()
        self._keymap = keymap

    def __missing__(self, binding_id: str) -> _Keys:
        if binding_id not in registry().defaults:
            raise KeyError(f"no binding has the id {binding_id!r}")
        keys = self._keymap.get(binding_id) or ",".join(registry().defaults[binding_id])
        return _Keys(keys.split(","))


def keys_text(template: str, keymap: Mapping[str, str]) -> str:
    """`template` with each {binding_id} replaced by its keys in force ("{leave_it} no" -> "n / esc no"), as the
    keymap (binding id -> "k1,k2") has them, else the binding's own: a hint never names a key the operator rebound."""
    return template.format_map(_KeysOf(keymap))


def hint(app: object, template: str) -> str:
    """keys_text with the app's keymap in force."""
    return keys_text(template, getattr(app, "keys_in_force", {}))


def resolve(config: KeymapConfig, path: Path | None = None) -> dict[str, str]:
    """Every binding id and its keys in force ("k1,k2"), or a ConfigError citing the line of the action at fault."""
    known = registry()
    keys: dict[str, tuple[str, ...]] = dict(known.defaults)
    changed: dict[str, str] = {}  # action -> the action of the config's table (or preset) that set its keys
    for layer in (PRESETS[config.preset], dict(config.keys)):
        named: dict[str, tuple[str, ...]] = {}
        for action, wanted in layer.items():
            if action not in known.defaults:
                close = difflib.get_close_matches(action, list(known.defaults), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known actions: {', '.join(sorted(known.defaults))}"
                raise _error(config, path, action, f"unknown action {action!r}", hint)
            normalized = tuple(dict.fromkeys(normalize(key) for key in wanted))
            for key in normalized:
                problem = key_problem(key)
                if problem is not None:
                    raise _error(config, path, action, f"{action}: {problem[0]}", problem[1])
            named[action] = normalized
        for action, wanted in named.items():
            keys[action] = wanted
            changed[action] = action
            for follower in known.alternates.get(action, ()):  # accept follows approve unless named itself
                if follower not in named:
                    keys[follower] = wanted
                    changed[follower] = action
    _refuse_swallowed_only(config, path, keys, changed)
    _refuse_clashes(config, path, known, keys, changed)
    return {action: ",".join(action_keys) for action, action_keys in keys.items()}


def _refuse_swallowed_only(
    config: KeymapConfig, path: Path | None, keys: Mapping[str, tuple[str, ...]], changed: Mapping[str, str]
) -> None:
    for action, cause in changed.items():
        if all(key in SWALLOWED for key in keys[action]):
            key = keys[action][0]
            raise _error(
                config,
                path,
                cause,
                f"{action} would only be on {shown(keys[action])}: {SWALLOWED[key]} (over SSH or tmux too)",
                f"add a key every terminal sends, e.g. {action} = {json.dumps([*keys[action], 'f2'])}",
            )


def _refuse_clashes(
    config: KeymapConfig,
    path: Path | None,
    known: Registry,
    keys: Mapping[str, tuple[str, ...]],
    changed: Mapping[str, str],
) -> None:
    """One key, two actions on one screen: refused unless the built-in keys already had it so (a screen's key over
    the app's, or alternates that check_action tells apart)."""
    written = dict(config.keys)
    for scope in known.scopes:
        on_key: dict[str, dict[str, str]] = {}  # key -> binding id -> its action on this screen
        for binding in scope.bindings:
            assert binding.id is not None  # scopes hold bindings with ids only
            for key in keys[binding.id]:
                on_key.setdefault(key, {})[binding.id] = binding.action
        for key, ids in on_key.items():
            for first in ids:
                for second in ids:
                    if first >= second or ids[first] == ids[second]:  # one action on two ids: h closes history
                        continue
                    if second in known.alternates.get(first, ()):
                        continue
                    if key in known.defaults[first] and key in known.defaults[second]:
                        continue
                    # the action the file set (its line is cited), else the preset's
                    in_file = [i for i in (first, second) if changed.get(i) in written]
                    cause = in_file[0] if in_file else first if first in changed else second
                    other = second if cause == first else first
                    raise _error(
                        config,
                        path,
                        changed.get(cause, cause),
                        f"{shown([key])} would do two things on {scope.name}: {cause} and {other}",
                        f"choose another key for {cause}, or move {other} to another key too",
                    )
