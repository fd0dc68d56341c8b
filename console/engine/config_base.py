"""What every table of the config shares: the error, how a bad value is reported (Says, Seconds, `_refusal`), the
validators of names, URLs, durations and time zones, and `_Table`, which refuses unknown and missing keys."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    GetCoreSchemaHandler,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from console.engine.config_text import is_loopback, public_url, token_fix

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ConfigError(Exception):
    """A config problem, with where it is and how to fix it."""

    def __init__(self, path: Path, line: int | None, problem: str, fix: str) -> None:
        self.path, self.line, self.problem, self.fix = path, line, problem, fix
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


@dataclass(frozen=True)
class Says:
    """How a bad value of a key is reported. Formatted with {key} (dotted), {name} (bare), {value} (as given),
    {toml} (as TOML writes it) and {kind} (its TOML type); a number out of its bounds gets "{key} = {value} is out of
    range" and the fix."""

    problem: str
    fix: str


@dataclass(frozen=True)
class Seconds:
    """A number of seconds from `low` to `high`: an integer or a fraction in TOML, never a string or true/false."""

    low: float
    high: float
    fix: str = "use a number of seconds from {low:g} to {high:g}"

    @property
    def says(self) -> Says:
        return Says("{key} = {toml} is {kind}, not a number", self.fix.format(low=self.low, high=self.high))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.float_schema(strict=True, ge=self.low, le=self.high)


def _refusal(problem: str, fix: str, **where: Any) -> PydanticCustomError:
    """An error whose words are final; `where` may name the key (and source) whose line it cites."""
    return PydanticCustomError("toml", "{problem}", {"problem": problem, "fix": fix, **where})


def _short_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("not a short name")
    return value


def _stripped(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value.strip()


def _time_zone(zone: str) -> str:
    if zone not in ("local", "UTC"):
        try:
            ZoneInfo(zone)  # a malformed name raises ValueError, which pydantic reports like this one
        except ZoneInfoNotFoundError as exc:  # a KeyError: pydantic would let it through
            raise ValueError("not a time zone") from exc
    return zone


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
DEFAULT_DEADLINE_WARNING = 120.0  # seconds before a deadline that count as near, unless the config says otherwise
MAX_DEADLINE_WARNING = 86400.0


def _duration(value: Any) -> Any:
    """Seconds: a number, or a duration such as "90s", "5m", "1h30m"; from 0 to a day."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        found = _DURATION.fullmatch(text)
        if text and found is not None and any(found.groups()):
            hours, minutes, secs = (float(g) if g else 0.0 for g in found.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or not 0 <= seconds <= MAX_DEADLINE_WARNING:
        raise ValueError("not a duration")
    return seconds


def _http_url(url: str, info: ValidationInfo) -> str:
    if public_url(url) != url:
        # Refused like `token =`; the message shows the url without what it carries.
        name = info.data.get("name", "NAME")
        raise _refusal(
            f"{info.field_name} {public_url(url)!r} was given with credentials in it (user:password@): the config is"
            " no place for secrets",
            f"remove them from the url, then {token_fix(name)}",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return url.rstrip("/")


def _pairs(value: Any) -> Any:
    """A TOML table of thread metadata as sorted (key, value) pairs: hashable, and equal for equal tables."""
    if not isinstance(value, dict):
        raise ValueError("not a table")
    return tuple(sorted(value.items()))


def _only_for(*kinds: str) -> Callable[[Any, ValidationInfo], Any]:
    """A key that belongs to sources of these kinds only: on another kind it is refused, naming the kinds."""
    named = " or ".join(repr(k) for k in kinds)

    def check(value: Any, info: ValidationInfo) -> Any:
        if info.data.get("kind", kinds[0]) not in kinds:  # no kind: its own problem is reported first
            raise _refusal(
                f"{info.field_name!r} is only for sources of kind {named}", f'remove it, or set kind = "{kinds[0]}"'
            )
        return value

    return check


def _tag_list(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag.strip() for tag in value):
        raise ValueError("not a list of tags")
    return tuple(value)


_ShortName = Annotated[str, Strict(), AfterValidator(_short_name)]


def _not_a_short_name(what: str) -> Says:
    """How a source's or a sink's name that is not a short name is reported (`what`: "source")."""
    return Says(
        what + " name {value!r} is not a short name",
        "use letters, digits, '_' and '-' (at most 64), starting with a letter or digit",
    )


_Words = Annotated[str, Strict(), AfterValidator(_stripped)]  # not blank; kept without surrounding spaces
_Switch = Annotated[bool, Strict(), Says("{key} must be true or false", "{name} = false")]
# kind "langgraph": list only the threads of this assistant / graph, and whose metadata has these values
_Lookup = Annotated[
    _Words | None, BeforeValidator(_only_for("langgraph")), Says("{key} must be a non-empty string", '{name} = "agent"')
]
_Plain = StrictStr | StrictInt | StrictFloat | StrictBool


class _Table:
    """A TOML table: a key that is not a field is refused, then a field without a default that is not there, before
    any value is looked at. The fields are in the order their values are checked."""

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            known = sorted(f.name for f in fields if f.metadata.get("in_file", True))
            for key in raw:
                if key not in known:
                    raise PydanticCustomError("unknown_key", "unknown key {key}", {"key": key, "known": known})
            for f in fields:
                if f.default is f.default_factory is dataclasses.MISSING and f.name not in raw:
                    raise PydanticCustomError("missing", "no {key}", {"key": f.name})
        return raw


def _refuse_plain_http(key: str, url: str, allowed: bool, what: str) -> None:
    """A sink's or a pager's `key` = `url` in plain http to another machine, unless the block allows it."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not allowed and not is_loopback(parts.hostname or ""):
        raise _refusal(
            f"{key} {url!r} is plain http to another machine: {what} would cross the network unencrypted",
            f"use https://{parts.netloc}, or, only on a network you trust, add allow_insecure_http = true",
            key=key,
        )
