"""Where the config file lives, and the TOML side of its errors: `_Locator` finds a key's line (tomllib forgets
positions), `_config_error` turns pydantic's first error into the file, the line, the key and the fix."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin, get_type_hints

import platformdirs
from pydantic_core import ErrorDetails

from console.engine.config_base import ConfigError, Says, Seconds
from console.engine.config_text import token_fix

if TYPE_CHECKING:
    from console.engine.config import Config

APP_NAME = "approval-console"
_SECRET_KEYS = {"token", "api_key", "password", "secret", "authorization"}
# pydantic's bound errors: reported as "key = value is out of range" for every number
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_BLOCKS = ("sources", "feedback", "pager", "views")  # the arrays of tables, each [[block]] with keys of its own


@dataclass
class _Locator:
    """Finds the line of a key in the TOML text: tomllib parses values but forgets positions."""

    lines: list[str]
    block_starts: dict[str, list[int]] = field(default_factory=dict)  # the lines of each [[block]], by block name

    def __post_init__(self) -> None:
        self.block_starts = {
            block: [i + 1 for i, s in enumerate(self.lines) if s.strip().startswith(f"[[{block}]]")]
            for block in _BLOCKS
        }

    @property
    def source_starts(self) -> list[int]:
        return self.block_starts["sources"]

    def starts(self, block: str) -> list[int]:
        return self.block_starts[block]

    def table_line(self, name: str) -> int | None:
        for number, line in enumerate(self.lines, start=1):
            if line.strip() == f"[{name}]":
                return number
        return None

    def table_key_line(self, table: str, key: str) -> int | None:
        """The line of `key` in [table] (bare or quoted), else the table's own line."""
        start = self.table_line(table)
        if start is None:
            return self.key_line(table)  # an inline table: `table = { ... }`
        pattern = re.compile(rf'^\s*(?:{re.escape(key)}|"{re.escape(key)}")\s*=')
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1].strip()
            if line.startswith("["):
                break
            if pattern.match(line):
                return number
        return start

    def key_line(self, key: str, source_index: int | None = None, block: str = "sources") -> int | None:
        blocks = sorted(start for starts in self.block_starts.values() for start in starts)
        if source_index is None:
            start, end = 1, blocks[0] if blocks else len(self.lines) + 1
        else:
            own = self.starts(block)
            start = own[source_index] if source_index < len(own) else 1
            later = [s for s in blocks if s > start]
            end = later[0] if later else len(self.lines) + 1
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return start if source_index is not None else None

    def source_line(self, index: int, block: str = "sources") -> int | None:
        own = self.starts(block)
        return own[index] if index < len(own) else None


def block_error(config: Config, block: str, index: int, key: str, problem: str, fix: str) -> ConfigError:
    """A problem in `key` of the `index`th [[block]] found by a check beyond the schema, cited like the schema's."""
    path, line = config.path or Path("config.toml"), None
    if config.path is not None:
        try:
            line = _Locator(config.path.read_text(encoding="utf-8").splitlines()).key_line(key, index, block)
        except (OSError, UnicodeDecodeError):
            line = None
    return ConfigError(path, line, problem, fix)


def default_config_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def default_data_dir() -> Path:
    return platformdirs.user_data_path(APP_NAME)


def demo_data_dir() -> Path:
    """Where `approval-console demo` keeps its data: apart, so a demo never mixes with a real queue or audit trail."""
    return default_data_dir() / "demo"


def _config_error(
    root: type[Config], path: Path, where: _Locator, data: dict[str, Any], error: ErrorDetails
) -> ConfigError:
    """pydantic's first error in TOML terms: the line of the key, and the words its field declares (`root`: the
    schema the error's place starts from)."""
    loc, ctx, value = error["loc"], error.get("ctx", {}), error["input"]
    named = "feedback" if "sink" in ctx else "pager" if "pager" in ctx else "views" if "view" in ctx else "sources"
    block = str(loc[0]) if loc[:1] in (("feedback",), ("pager",), ("views",)) else named
    in_source, in_notifications = len(loc) > 1 and loc[0] in _BLOCKS, loc[:1] == ("notifications",)
    index: int | None = (
        int(loc[1]) if in_source else ctx.get("source", ctx.get("sink", ctx.get("pager", ctx.get("view"))))
    )
    inner = loc[2:] if in_source else loc[1:] if in_notifications else loc  # the key's place in its table
    key = str(ctx.get("key") or (inner[0] if inner else ""))  # "": the table itself
    dotted = f"notifications.{key}" if in_notifications else key
    if "table" in ctx:  # a key of a table whose keys are not fields ([keymap])
        line = where.table_key_line(ctx["table"], key)
    elif in_notifications:  # every problem in [notifications] cites the table
        line = where.key_line("notifications") or where.table_line("notifications")
    elif index is not None:  # a key of a source, else the source itself (not a table, or a key it lacks)
        line = (
            where.key_line(key, index, block) if key and error["type"] != "missing" else where.source_line(index, block)
        )
    else:
        line = where.key_line(key) if key else None
    if error["type"] == "toml":
        return ConfigError(path, line, ctx["problem"], ctx["fix"])
    if error["type"] == "unknown_key" and key.lower() in _SECRET_KEYS and not in_notifications:
        name = data[block][index].get("name", "NAME") if index is not None else "NAME"
        return ConfigError(
            path,
            line,
            f"{key!r} must not be in the config: secrets live in the system keyring or the environment",
            f"remove the line, then {token_fix(str(name))}",
        )
    if error["type"] == "unknown_key":
        close = difflib.get_close_matches(key, ctx["known"], n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(ctx['known'])}"
        return ConfigError(
            path, line, f"unknown key {key!r}" + (" in [notifications]" if in_notifications else ""), hint
        )
    if error["type"] == "missing":
        what = {"feedback": "feedback sink", "pager": "pager", "views": "view"}.get(block, "source")
        return ConfigError(
            path, line, f"{what} #{(index or 0) + 1} has no {key!r}", f'add {key} = "..." under [[{block}]]'
        )
    says = _says(root, loc)
    if says is None:  # a key declared without its words: pydantic's, which never repeat the value
        return ConfigError(path, line, f"{dotted}: {error['msg']}", "see the config example in README.md")
    if error["type"] in _RANGE_ERRORS:
        return ConfigError(path, line, f"{dotted} = {value!r} is out of range", says.fix)
    words = {"key": dotted, "name": key, "value": value, "toml": _toml_value(value), "kind": _toml_type(value)}
    return ConfigError(path, line, says.problem.format(**words), says.fix.format(**words))


def _says(root: type[Config], loc: tuple[int | str, ...]) -> Says | None:
    """The innermost Says along `loc`: a source's key, else the source, else the `sources` array itself."""
    hint: Any = root
    found: Says | None = None
    for part in loc:
        base = hint.__origin__ if get_origin(hint) is Annotated else hint
        if isinstance(part, str) and dataclasses.is_dataclass(base) and isinstance(base, type):
            hint = get_type_hints(base, include_extras=True)[part]
        elif isinstance(part, int) and get_args(base):
            hint = get_args(base)[0]
        else:
            break
        if get_origin(hint) is Annotated:
            said = [m.says if isinstance(m, Seconds) else m for m in hint.__metadata__ if isinstance(m, Says | Seconds)]
            found = said[-1] if said else found  # an alias's words give way to the field's own
    return found


def _toml_type(value: Any) -> str:
    names = {bool: "true/false", str: "a string", float: "a fraction", list: "a list", dict: "a table"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def without_source(text: str, index: int) -> str:
    """The config text without its `index`th [[sources]] block (up to the next table that is not one of its own);
    every other line, comments included, stays as it was."""
    lines = text.splitlines(keepends=True)
    starts = _Locator([line.rstrip("\r\n") for line in lines]).source_starts
    start = starts[index] - 1
    end = start + 1
    while end < len(lines):
        head = lines[end].strip()
        if head.startswith("[") and not head.startswith(("[sources.", "[ sources.")):
            break
        end += 1
    if end < len(lines):  # comments just above the next table are about that table: they stay
        tail = end
        while tail > start + 1 and (not lines[tail - 1].strip() or lines[tail - 1].lstrip().startswith("#")):
            tail -= 1
        while tail < end and not lines[tail].strip():  # the blank lines that ended this block go with it
            tail += 1
        end = tail
    else:  # the last block: the blank lines that set it apart go with it
        while start > 0 and not lines[start - 1].strip():
            start -= 1
    return "".join(lines[:start] + lines[end:])
