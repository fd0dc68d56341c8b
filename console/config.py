"""The TOML config: who the operator is and which sources to poll.

A bad config is reported with the file, the line and the fix; tokens never live here (see console/secrets.py).
"""

from __future__ import annotations

import difflib
import getpass
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

APP_NAME = "approval-console"
SOURCE_KINDS = ("native",)
DEFAULT_REJECT_REASONS = (
    "wrong_target",
    "unsafe",
    "policy_violation",
    "hallucinated_data",
    "duplicate",
    "needs_more_context",
    "other",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_TOP_KEYS = {"operator", "sources", "reject_reasons"}
_SOURCE_KEYS = {"name", "kind", "url", "poll_interval", "long_poll", "timeout"}
_SECRET_KEYS = {"token", "api_key", "password", "secret", "authorization"}


class ConfigError(Exception):
    """A config problem, with where it is and how to fix it."""

    def __init__(self, path: Path, line: int | None, problem: str, fix: str) -> None:
        self.path, self.line, self.problem, self.fix = path, line, problem, fix
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


@dataclass(frozen=True)
class SourceConfig:
    name: str
    url: str
    kind: str = "native"
    poll_interval: float = 2.0
    long_poll: float = 25.0  # seconds a listing may wait for changes on servers that support it; 0 turns it off
    timeout: float = 10.0


@dataclass(frozen=True)
class Config:
    operator: str
    sources: tuple[SourceConfig, ...] = ()
    reject_reasons: tuple[str, ...] = DEFAULT_REJECT_REASONS
    path: Path | None = None


@dataclass
class _Locator:
    """Finds the line of a key in the TOML text: tomllib parses values but forgets positions."""

    lines: list[str]
    source_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.source_starts = [i + 1 for i, s in enumerate(self.lines) if s.strip().startswith("[[sources]]")]

    def key_line(self, key: str, source_index: int | None = None) -> int | None:
        if source_index is None:
            start, end = 1, self.source_starts[0] if self.source_starts else len(self.lines) + 1
        else:
            start = self.source_starts[source_index] if source_index < len(self.source_starts) else 1
            later = [s for s in self.source_starts if s > start]
            end = later[0] if later else len(self.lines) + 1
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return start if source_index is not None else None


def default_config_path() -> Path:
    return platformdirs.user_config_path(APP_NAME) / "config.toml"


def default_data_dir() -> Path:
    return platformdirs.user_data_path(APP_NAME)


def load(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            path, None, "the file does not exist", "create it (see README.md), or run 'approval-console demo'"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, "the file is not UTF-8 text", "save it as UTF-8") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ConfigError(
            path,
            int(match.group(1)) if match else None,
            f"not valid TOML: {exc}",
            "check quoting and brackets on that line (strings need double quotes)",
        ) from exc
    where = _Locator(text.splitlines())
    _check_keys(path, where, data, _TOP_KEYS, None)

    operator = data.get("operator", getpass.getuser())
    if not isinstance(operator, str) or not operator.strip():
        raise ConfigError(path, where.key_line("operator"), "operator must be a non-empty string", 'operator = "alice"')

    reasons = data.get("reject_reasons", list(DEFAULT_REJECT_REASONS))
    if not isinstance(reasons, list) or not reasons or not all(isinstance(r, str) and _NAME.match(r) for r in reasons):
        raise ConfigError(
            path,
            where.key_line("reject_reasons"),
            "reject_reasons must be a non-empty list of short codes (letters, digits, _ and -)",
            'reject_reasons = ["wrong_target", "unsafe", "other"]',
        )

    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list):
        raise ConfigError(
            path, where.key_line("sources"), "sources must be an array of tables", "use [[sources]] blocks"
        )
    sources = [_source(path, where, i, raw) for i, raw in enumerate(raw_sources)]
    seen: set[str] = set()
    for i, source in enumerate(sources):
        if source.name in seen:
            raise ConfigError(
                path,
                where.key_line("name", i),
                f"two sources are named {source.name!r}",
                "give each source its own name",
            )
        seen.add(source.name)
    return Config(operator=operator.strip(), sources=tuple(sources), reject_reasons=tuple(reasons), path=path)


def _check_keys(path: Path, where: _Locator, data: dict[str, Any], allowed: set[str], index: int | None) -> None:
    for key in data:
        if key in allowed:
            continue
        line = where.key_line(key, index)
        if key.lower() in _SECRET_KEYS:
            name = data.get("name", "NAME") if index is not None else "NAME"
            raise ConfigError(
                path,
                line,
                f"{key!r} must not be in the config: secrets live in the system keyring or the environment",
                f"remove the line, then run 'approval-console sources add {name} URL' to store the token in the "
                f"keyring, or set {token_env_var(str(name))}",
            )
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
        raise ConfigError(path, line, f"unknown key {key!r}", hint)


def _source(path: Path, where: _Locator, index: int, raw: Any) -> SourceConfig:
    line = where.source_starts[index] if index < len(where.source_starts) else None
    if not isinstance(raw, dict):
        raise ConfigError(path, line, "each source must be a table", "use a [[sources]] block with name, kind and url")
    _check_keys(path, where, raw, _SOURCE_KEYS, index)
    for key in ("name", "url"):
        if key not in raw:
            raise ConfigError(path, line, f"source #{index + 1} has no {key!r}", f'add {key} = "..." under [[sources]]')
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            path,
            where.key_line("name", index),
            f"source name {name!r} is not a short name",
            "use letters, digits, '_' and '-' (at most 64), starting with a letter or digit",
        )
    kind = raw.get("kind", "native")
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            path,
            where.key_line("kind", index),
            f"unknown source kind {kind!r}",
            f"use one of: {', '.join(SOURCE_KINDS)}",
        )
    url = raw["url"]
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            path,
            where.key_line("url", index),
            f"url {url!r} is not an http(s) URL",
            'url = "https://agents.example:8700"',
        )
    numbers: dict[str, float] = {}
    for key, low, high in (("poll_interval", 0.1, 3600.0), ("long_poll", 0.0, 30.0), ("timeout", 0.5, 300.0)):
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(
                path,
                where.key_line(key, index),
                f"{key} = {value!r} is out of range",
                f"use a number of seconds from {low:g} to {high:g}",
            )
        numbers[key] = float(value)
    return SourceConfig(name=name, url=url.rstrip("/"), kind=kind, **numbers)


def token_env_var(source_name: str) -> str:
    return "APPROVAL_CONSOLE_TOKEN_" + source_name.upper().replace("-", "_")


def source_block(name: str, url: str, kind: str) -> str:
    """A [[sources]] block to append to a config file (json.dumps quoting is valid TOML for these strings)."""
    return f"\n[[sources]]\nname = {json.dumps(name)}\nkind = {json.dumps(kind)}\nurl = {json.dumps(url)}\n"
