"""The TOML config: who the operator is and which sources to poll.

A bad config is reported with the file, the line and the fix; tokens never live here (see console/secrets.py).
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

APP_NAME = "approval-console"
SOURCE_KINDS = ("native", "langgraph")
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
_TOP_KEYS = {"operator", "sources", "reject_reasons", "undo_seconds", "notifications", "theme", "display_timezone"}
_NOTIFICATION_KEYS = {"bell", "toast", "desktop", "deadline_seconds"}
DEFAULT_THEME = "textual-dark"
_SOURCE_KEYS = {
    "name",
    "kind",
    "url",
    "poll_interval",
    "long_poll",
    "timeout",
    "allow_insecure_http",
    "max_item_bytes",
}
DEFAULT_MAX_ITEM_BYTES = 1_048_576  # PROTOCOL.md R10: an item may be 1 MiB of JSON
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_LANGGRAPH_KEYS = {"assistant_id", "graph_id", "metadata"}  # kind "langgraph" only: which threads to list
_SECRET_KEYS = {"token", "api_key", "password", "secret", "authorization"}
# scheme://userinfo@ : the authority ends at the first / ? # (RFC 3986), userinfo at its last "@".
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


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
    allow_insecure_http: bool = False  # plain http to a host other than loopback sends the token in clear
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES  # a bigger item is refused (quarantined), never read whole
    # kind "langgraph": list only the threads of this assistant / graph, and whose metadata has these values
    assistant_id: str | None = None
    graph_id: str | None = None
    metadata: tuple[tuple[str, str | int | float | bool], ...] = ()


@dataclass(frozen=True)
class Notifications:
    """How a new high or critical item, or a deadline about to pass, gets the operator's attention."""

    bell: bool = True
    toast: bool = True
    desktop: bool = True  # notify-send, or an OSC 9 / OSC 777 escape where the terminal supports one
    deadline_seconds: float = 120.0  # alert when a deadline is this close; 0 turns deadline alerts off


@dataclass(frozen=True)
class Config:
    operator: str
    sources: tuple[SourceConfig, ...] = ()
    reject_reasons: tuple[str, ...] = DEFAULT_REJECT_REASONS
    path: Path | None = None
    undo_seconds: float = 5.0  # a decision waits this long before it is sent; `u` takes it back meanwhile; 0: off
    notifications: Notifications = Notifications()
    theme: str = DEFAULT_THEME
    display_timezone: str = "local"  # times on screen: "local" (TZ, else the system's), "UTC" or an IANA name


@dataclass
class _Locator:
    """Finds the line of a key in the TOML text: tomllib parses values but forgets positions."""

    lines: list[str]
    source_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.source_starts = [i + 1 for i, s in enumerate(self.lines) if s.strip().startswith("[[sources]]")]

    def table_line(self, name: str) -> int | None:
        for number, line in enumerate(self.lines, start=1):
            if line.strip() == f"[{name}]":
                return number
        return None

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


def demo_data_dir() -> Path:
    """Where `approval-console demo` keeps its data: apart, so a demo never mixes with a real queue or audit trail."""
    return default_data_dir() / "demo"


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
    undo = data.get("undo_seconds", 5.0)
    problem = number_problem("undo_seconds", undo, 0, 60)
    if problem:
        raise ConfigError(
            path, where.key_line("undo_seconds"), problem, "use a number of seconds from 0 (no undo window) to 60"
        )
    theme = data.get("theme", DEFAULT_THEME)
    if not isinstance(theme, str) or not theme.strip():
        raise ConfigError(path, where.key_line("theme"), "theme must be a theme name", 'theme = "textual-light"')
    zone = data.get("display_timezone", "local")
    if not isinstance(zone, str) or (zone not in ("local", "UTC") and not _known_zone(zone)):
        raise ConfigError(
            path,
            where.key_line("display_timezone"),
            f"display_timezone = {zone!r} is not a time zone",
            'use "local", "UTC" or an IANA name such as "Europe/Paris"',
        )
    return Config(
        operator=operator.strip(),
        sources=tuple(sources),
        reject_reasons=tuple(reasons),
        path=path,
        undo_seconds=float(undo),
        notifications=_notifications(path, where, data.get("notifications", {})),
        theme=theme.strip(),
        display_timezone=zone,
    )


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _notifications(path: Path, where: _Locator, raw: Any) -> Notifications:
    line = where.key_line("notifications") or where.table_line("notifications")
    if not isinstance(raw, dict):
        raise ConfigError(path, line, "notifications must be a table", "use a [notifications] block")
    for key in raw:
        if key not in _NOTIFICATION_KEYS:
            close = difflib.get_close_matches(key, sorted(_NOTIFICATION_KEYS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(_NOTIFICATION_KEYS))}"
            raise ConfigError(path, line, f"unknown key {key!r} in [notifications]", hint)
    switches: dict[str, bool] = {}
    for key in ("bell", "toast", "desktop"):
        value = raw.get(key, True)
        if not isinstance(value, bool):
            raise ConfigError(path, line, f"notifications.{key} must be true or false", f"{key} = false")
        switches[key] = value
    deadline = raw.get("deadline_seconds", 120.0)
    problem = number_problem("notifications.deadline_seconds", deadline, 0, 86400)
    if problem:
        raise ConfigError(path, line, problem, "deadline_seconds = 120")
    return Notifications(**switches, deadline_seconds=float(deadline))


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
    _check_keys(path, where, raw, _SOURCE_KEYS | _LANGGRAPH_KEYS, index)
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
    if isinstance(url, str) and public_url(url) != url:
        # Refused like `token =`; the message shows the url without what it carries.
        raise ConfigError(
            path,
            where.key_line("url", index),
            f"url {public_url(url)!r} was given with credentials in it (user:password@): the config is no place for"
            " secrets",
            f"remove them from the url, then give the source its token with 'approval-console sources token {name}'"
            f" (the system keyring) or set {token_env_var(name)}",
        )
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
        problem = number_problem(key, value, low, high)
        if problem:
            raise ConfigError(
                path, where.key_line(key, index), problem, f"use a number of seconds from {low:g} to {high:g}"
            )
        numbers[key] = float(value)
    options: dict[str, Any] = {**numbers, **_langgraph_selection(path, where, index, raw, kind)}
    insecure = raw.get("allow_insecure_http", False)
    if not isinstance(insecure, bool):
        raise ConfigError(
            path,
            where.key_line("allow_insecure_http", index),
            "allow_insecure_http must be true or false",
            "allow_insecure_http = true",
        )
    if parts.scheme == "http" and not insecure and not is_loopback(parts.hostname):
        raise ConfigError(
            path,
            where.key_line("url", index),
            f"url {url!r} is plain http to another machine: the token and every decision would cross the network"
            " unencrypted",
            f"use https://{parts.netloc}, or, only on a network you trust, add allow_insecure_http = true"
            " to this source",
        )
    max_bytes = raw.get("max_item_bytes", DEFAULT_MAX_ITEM_BYTES)
    problem = number_problem("max_item_bytes", max_bytes, 1_000, 100_000_000, whole=True)
    if problem:
        raise ConfigError(
            path,
            where.key_line("max_item_bytes", index),
            problem,
            f"use a whole number of bytes from 1000 to 100000000 (default {DEFAULT_MAX_ITEM_BYTES})",
        )
    options |= {"allow_insecure_http": insecure, "max_item_bytes": max_bytes}
    return SourceConfig(name=name, url=url.rstrip("/"), kind=kind, **options)


def number_problem(key: str, value: Any, low: float, high: float, *, whole: bool = False) -> str | None:
    """What is wrong with a numeric setting: its type (a string, a boolean) or its range; None when it is fine."""
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        wanted = "a whole number" if whole else "a number"
        return f"{key} = {_toml_value(value)} is {_toml_type(value)}, not {wanted}"
    if not low <= value <= high:
        return f"{key} = {value!r} is out of range"
    return None


def _toml_type(value: Any) -> str:
    names = {bool: "true/false", str: "a string", float: "a fraction", list: "a list", dict: "a table"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def public_url(text: str) -> str:
    """`text` with the userinfo (user:password@) of every URL in it removed: the only way a source URL is shown."""
    return _USERINFO.sub(r"\1", text)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the loopback names: traffic that never leaves this machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _langgraph_selection(path: Path, where: _Locator, index: int, raw: dict[str, Any], kind: str) -> dict[str, Any]:
    """assistant_id, graph_id and the metadata filter of a LangGraph source, checked."""
    present = sorted(k for k in _LANGGRAPH_KEYS if k in raw)
    if present and kind != "langgraph":
        raise ConfigError(
            path,
            where.key_line(present[0], index),
            f"{present[0]!r} is only for sources of kind 'langgraph'",
            'remove it, or set kind = "langgraph"',
        )
    selection: dict[str, Any] = {}
    for key in ("assistant_id", "graph_id"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    path, where.key_line(key, index), f"{key} must be a non-empty string", f'{key} = "agent"'
                )
            selection[key] = value.strip()
    metadata = raw.get("metadata", {})
    scalars = (str, int, float, bool)
    if not isinstance(metadata, dict) or not all(isinstance(v, scalars) for v in metadata.values()):
        raise ConfigError(
            path,
            where.key_line("metadata", index),
            "metadata must be a table of plain values (thread metadata to match)",
            'metadata = { team = "billing" }',
        )
    if metadata:
        selection["metadata"] = tuple(sorted(metadata.items()))
    return selection


def token_env_var(source_name: str) -> str:
    return "APPROVAL_CONSOLE_TOKEN_" + source_name.upper().replace("-", "_")


def token_fix(source_name: str) -> str:
    """How the operator gives a source a new token: what an auth failure tells them to do."""
    return (
        f"run 'approval-console sources token {source_name}' to store a new token in the keyring,"
        f" or set {token_env_var(source_name)}"
    )


def source_block(name: str, url: str, kind: str, *, allow_insecure_http: bool = False) -> str:
    """A [[sources]] block to append to a config file (json.dumps quoting is valid TOML for these strings)."""
    insecure = "allow_insecure_http = true\n" if allow_insecure_http else ""
    return f"\n[[sources]]\nname = {json.dumps(name)}\nkind = {json.dumps(kind)}\nurl = {json.dumps(url)}\n{insecure}"


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
