"""The TOML config: who the operator is and which sources to poll.

The dataclasses below are the schema: each key's type, default, bounds and doc live on its field, and pydantic checks a
file against them. A bad config is reported in TOML terms (the file, the line, the key and the fix) by `_config_error`;
tokens never live here (see console/engine/secrets.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import getpass
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    PlainValidator,
    Strict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, core_schema

from console.engine.keymap_table import BUILT_IN, KeymapConfig, keymap_table

APP_NAME = "approval-console"
SourceKind = Literal["native", "langgraph", "temporal", "prefect", "airflow"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
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
DEFAULT_THEME = "textual-dark"
DEFAULT_MAX_ITEM_BYTES = 1_048_576  # PROTOCOL.md R10: an item may be 1 MiB of JSON
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_SECRET_KEYS = {"token", "api_key", "password", "secret", "authorization"}
# scheme://userinfo@ : the authority ends at the first / ? # (RFC 3986), userinfo at its last "@".
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")
# pydantic's bound errors: reported as "key = value is out of range" for every number
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_BLOCKS = ("sources", "feedback", "pager", "views")  # the arrays of tables, each [[block]] with keys of its own
# Query parameters that carry a credential (ntfy's ?auth=, ?token=, ?api_key=, a signature): a page URL is logged and
# shown, so a secret has no place in it.
_SECRET_QUERY = re.compile(r"(?i)auth|token|secret|pass|pwd|key|sig|credential|session")


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


def _unique_names(sources: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
    names = [source.name for source in sources]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise _refusal(f"two sources are named {name!r}", "give each source its own name", key="name", source=index)
    return sources


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


@dataclass(frozen=True, kw_only=True)  # keyword-only: `kind`, with its default, is checked before `url`
class SourceConfig(_Table):
    """One [[sources]] block: an agent service to poll."""

    name: Annotated[
        _ShortName,
        _not_a_short_name("source"),
        Field(description="letters, digits, '_' and '-'; it also names the token's environment variable"),
    ]
    kind: Annotated[
        SourceKind,
        Says("unknown source kind {value!r}", f"use one of: {', '.join(SOURCE_KINDS)}"),
        Field(
            description="native: speaks PROTOCOL.md; langgraph: a LangGraph server's interrupted threads;"
            " temporal: Temporal workflows waiting for a human (PROTOCOL.md, Temporal workflows);"
            " prefect: a Prefect server's flow runs paused for input;"
            " airflow: Airflow 3.1+ tasks waiting for a human (HITL operators)"
        ),
    ] = "native"
    url: Annotated[
        str,
        Strict(),
        AfterValidator(_http_url),
        Says("url {value!r} is not an http(s) URL", 'url = "https://agents.example:8700"'),
        Field(description="the service's base URL, http(s), without credentials"),
    ]
    poll_interval: Annotated[
        float, Seconds(0.1, 3600), Field(description="seconds between polls when the source has no long-poll")
    ] = 2.0
    long_poll: Annotated[
        float, Seconds(0, 30), Field(description="seconds a listing may wait at the server for changes; 0: off")
    ] = 25.0
    timeout: Annotated[float, Seconds(0.5, 300), Field(description="seconds a request to the source may take")] = 10.0
    assistant_id: Annotated[_Lookup, Field(description="kind langgraph: only this assistant's threads")] = None
    graph_id: Annotated[_Lookup, Field(description="kind langgraph: only this graph's threads")] = None
    metadata: Annotated[
        tuple[tuple[str, _Plain], ...],
        BeforeValidator(_pairs, json_schema_input_type=dict[str, _Plain]),
        BeforeValidator(_only_for("langgraph")),
        Says(
            "metadata must be a table of plain values (thread metadata to match)", 'metadata = {{ team = "billing" }}'
        ),
        Field(description="kind langgraph: only threads whose metadata has these values"),
    ] = ()
    namespace: Annotated[
        _Words,
        BeforeValidator(_only_for("temporal")),
        Says("{key} must be a non-empty string", 'namespace = "default"'),
        Field(description="kind temporal: the namespace whose workflows are listed"),
    ] = "default"
    ui_url: Annotated[
        Annotated[str, Strict(), AfterValidator(_http_url)] | None,
        BeforeValidator(_only_for("temporal", "prefect")),
        Says("ui_url {value!r} is not an http(s) URL", 'ui_url = "https://temporal.example:8233"'),
        Field(
            description="kinds temporal and prefect: the engine's UI, linked from each item's detail"
            " (prefect: derived from url when not set)"
        ),
    ] = None
    tags: Annotated[
        tuple[str, ...],
        BeforeValidator(_tag_list, json_schema_input_type=list[str]),
        BeforeValidator(_only_for("prefect")),
        Says("tags must be a list of non-empty strings", 'tags = ["approvals"]'),
        Field(description="kind prefect: only flow runs that carry all these tags"),
    ] = ()
    dag_id_pattern: Annotated[
        _Words | None,
        BeforeValidator(_only_for("airflow")),
        Says("{key} must be a non-empty string", 'dag_id_pattern = "billing"'),
        Field(description="kind airflow: only DAGs whose id contains this (Airflow's search, any case, with % and _)"),
    ] = None
    allow_insecure_http: Annotated[
        _Switch,
        Says("{key} must be true or false", "{name} = true"),
        Field(description="plain http to a host other than loopback: it sends the token in clear"),
    ] = False
    max_item_bytes: Annotated[
        int,
        Strict(),
        Field(ge=1_000, le=100_000_000, description="a bigger item is refused (quarantined), never read whole"),
        Says(
            "{key} = {toml} is {kind}, not a whole number",
            f"use a whole number of bytes from 1000 to 100000000 (default {DEFAULT_MAX_ITEM_BYTES})",
        ),
    ] = DEFAULT_MAX_ITEM_BYTES

    @model_validator(mode="wrap")
    @classmethod
    def _encrypted(cls, raw: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """The token crosses the network encrypted unless allow_insecure_http says otherwise."""
        source = handler(raw)
        if isinstance(raw, dict) and isinstance(source, SourceConfig):
            url = raw["url"]  # as written: the message quotes it
            parts = urlsplit(url)
            if parts.scheme == "http" and not source.allow_insecure_http and not is_loopback(parts.hostname or ""):
                raise _refusal(
                    f"url {url!r} is plain http to another machine: the token and every decision would cross the"
                    " network unencrypted",
                    f"use https://{parts.netloc}, or, only on a network you trust, add allow_insecure_http = true"
                    " to this source",
                    key="url",
                )
        return source


def _refuse_plain_http(key: str, url: str, allowed: bool, what: str) -> None:
    """A sink's or a pager's `key` = `url` in plain http to another machine, unless the block allows it."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not allowed and not is_loopback(parts.hostname or ""):
        raise _refusal(
            f"{key} {url!r} is plain http to another machine: {what} would cross the network unencrypted",
            f"use https://{parts.netloc}, or, only on a network you trust, add allow_insecure_http = true",
            key=key,
        )


FeedbackKind = Literal["langsmith", "langfuse"]
FEEDBACK_KINDS: tuple[str, ...] = get_args(FeedbackKind)


@dataclass(frozen=True)
class FeedbackConfig(_Table):
    """One [[feedback]] block: a tracing tool that gets every label as feedback on the agent's run (README "Feedback").

    Its API key is found like a source's token, under the sink's name (keyring, or the environment variable).
    """

    name: Annotated[
        _ShortName,
        _not_a_short_name("feedback"),
        Field(description="letters, digits, '_' and '-'; it also names the API key's keyring entry and variable"),
    ]
    kind: Annotated[
        FeedbackKind,
        Says("unknown feedback kind {value!r}", f"use one of: {', '.join(FEEDBACK_KINDS)}"),
        Field(description="langsmith: feedback on runs; langfuse: scores on traces"),
    ]
    endpoint: Annotated[
        str,
        Strict(),
        AfterValidator(_http_url),
        Says("endpoint {value!r} is not an http(s) URL", 'endpoint = "https://api.smith.langchain.com"'),
        Field(description="the tool's API base URL, http(s), without credentials"),
    ]
    project: Annotated[
        _Words | None,
        Says("project must be a non-empty string", 'project = "billing-prod"'),
        Field(description="only labels whose trace names this project (or no project) are sent here"),
    ] = None
    public_key: Annotated[
        _Words | None,
        Says("public_key must be a non-empty string", 'public_key = "pk-lf-..."'),
        Field(description="kind langfuse: the project's public key (the secret key is in the keyring)"),
    ] = None
    sources: Annotated[
        tuple[_ShortName, ...],
        Says("sources must be a list of source names", 'sources = ["billing"]'),
        Field(description="only labels of these sources; empty: every source"),
    ] = ()
    redact: Annotated[
        tuple[_Words, ...],
        Says("redact must be a list of argument names", 'redact = ["customer_id"]'),
        Field(description="argument names masked in what is sent, as `labels export --redact` does"),
    ] = ()
    timeout: Annotated[float, Seconds(0.5, 300), Field(description="seconds one request may take")] = 10.0
    allow_insecure_http: Annotated[
        _Switch,
        Says("{key} must be true or false", "{name} = true"),
        Field(description="plain http to a host other than loopback: it sends the API key in clear"),
    ] = False

    @model_validator(mode="after")
    def _usable(self) -> FeedbackConfig:
        _refuse_plain_http("endpoint", self.endpoint, self.allow_insecure_http, "the API key and every label")
        if (self.kind == "langfuse") != (self.public_key is not None):
            raise _refusal(
                "public_key is for kind 'langfuse' only, and kind 'langfuse' needs one",
                'add public_key = "pk-lf-..." to a langfuse sink; remove it from any other',
                key="public_key",
            )
        return self


def _feedback_names(config: Config) -> Config:
    """A sink's key and a pager's secret share the keyring with source tokens: names are unique across all three;
    named sources exist."""
    sources = {source.name for source in config.sources}
    seen: set[str] = set()
    for index, sink in enumerate(config.feedback):
        if sink.name in sources or sink.name in seen:
            raise _refusal(
                f"the feedback sink name {sink.name!r} is taken (a source or another sink has it)",
                "give each source and each sink its own name: the name finds its key",
                key="name",
                sink=index,
            )
        seen.add(sink.name)
        unknown = [name for name in sink.sources if name not in sources]
        if unknown:
            raise _refusal(
                f"feedback sink {sink.name!r} names no configured source {unknown[0]!r}",
                f"use the name of a [[sources]] block ({', '.join(sorted(sources)) or 'none yet'})",
                key="sources",
                sink=index,
            )
    for index, pager in enumerate(config.pager):
        if pager.name in sources or pager.name in seen:
            raise _refusal(
                f"the pager name {pager.name!r} is taken (a source, a feedback sink or another pager has it)",
                "give each source, sink and pager its own name: the name finds its secret",
                key="name",
                pager=index,
            )
        seen.add(pager.name)
    return config


PagerKind = Literal["webhook", "ntfy"]
PAGER_KINDS: tuple[str, ...] = get_args(PagerKind)
PagerRisk = Literal["low", "medium", "high", "critical"]
PAGER_RISKS: tuple[str, ...] = get_args(PagerRisk)
PagerField = Literal["args", "summary"]
PAGER_FIELDS: tuple[str, ...] = get_args(PagerField)


def _page_url(url: str, info: ValidationInfo) -> str:
    """A page URL is shown and logged: no credential in it, in the userinfo (refused by `_http_url`) or the query."""
    name = info.data.get("name", "NAME")
    for pair in urlsplit(url).query.split("&"):
        key = pair.partition("=")[0]
        if key and _SECRET_QUERY.search(key):
            raise _refusal(
                f"url {public_url(url).split('?')[0]!r} carries a credential in its query ({key}=...): the config"
                " is no place for secrets",
                f"remove ?{key}=... from the url, then {token_fix(name)} (sent as Authorization)",
            )
    return url


@dataclass(frozen=True, kw_only=True)
class PagerConfig(_Table):
    """One [[pager]] block: where new urgent items and close deadlines are posted when the operator is away (README
    "Paging"). Its secret (a bearer token, ntfy credentials) is found like a source's token, under the pager's name."""

    name: Annotated[
        _ShortName,
        Says(
            "pager name {value!r} is not a short name",
            "use letters, digits, '_' and '-' (at most 64), starting with a letter or digit",
        ),
        Field(description="letters, digits, '_' and '-'; it also names the secret's keyring entry and variable"),
    ]
    kind: Annotated[
        PagerKind,
        Says("unknown pager kind {value!r}", f"use one of: {', '.join(PAGER_KINDS)}"),
        Field(description="webhook: POST a JSON object; ntfy: POST text to an ntfy topic URL, with ntfy's headers"),
    ] = "webhook"
    url: Annotated[
        str,
        Strict(),
        AfterValidator(_http_url),
        AfterValidator(_page_url),
        Says("url {value!r} is not an http(s) URL", 'url = "https://ntfy.sh/my-oncall-topic"'),
        Field(description="where pages are posted, http(s), without credentials (in the userinfo or the query)"),
    ]
    risks: Annotated[
        tuple[PagerRisk, ...],
        Says("risks must be a list of risks", 'risks = ["high", "critical"] (any of: low, medium, high, critical)'),
        Field(description="a new item of these risks is paged"),
    ] = ("high", "critical")
    deadline_seconds: Annotated[
        float | None,
        Seconds(0, 86400, "deadline_seconds = 300"),
        Field(description="page when a deadline is this close (default: deadline_warning); 0 turns deadline pages off"),
    ] = None
    per_minute: Annotated[
        int,
        Strict(),
        Field(ge=1, le=600, description="at most this many pages a minute; the rest are summed up in one"),
        Says("{key} = {toml} is {kind}, not a whole number", "use a whole number of pages from 1 to 600"),
    ] = 6
    include: Annotated[
        tuple[PagerField, ...],
        Says(
            "include must be a list of fields to add to a page",
            'include = ["args"] (any of: args, summary; default: none)',
        ),
        Field(description="args: the action's arguments; summary: the agent's summary (agent text); default: neither"),
    ] = ()
    timeout: Annotated[float, Seconds(0.5, 60), Field(description="seconds one post may take")] = 10.0
    allow_insecure_http: Annotated[
        _Switch,
        Says("{key} must be true or false", "{name} = true"),
        Field(description="plain http to a host other than loopback: pages and the secret cross the network in clear"),
    ] = False

    @model_validator(mode="after")
    def _encrypted(self) -> PagerConfig:
        _refuse_plain_http("url", self.url, self.allow_insecure_http, "pages and the secret")
        return self


ViewSort = Literal["urgency", "age", "confidence", "agent"]
ViewGroup = Literal["none", "source", "agent"]
MAX_VIEWS = 9  # one number key each


@dataclass(frozen=True)
class ViewConfig(_Table):
    """One [[views]] block: a saved view of the queue, shown as a tab and switched to with its number key."""

    name: Annotated[
        _Words,
        Says("view name must be a non-empty string of at most 30 characters", 'name = "Critical+high"'),
        Field(max_length=30, description="the tab's label"),
    ]
    filter: Annotated[
        str,
        Strict(),
        AfterValidator(str.strip),  # its syntax is checked where the filter is known (console/engine/views.py)
        Says("{key} must be a string in the filter's syntax", 'filter = "risk:critical,high -agent:test"'),
        Field(description="what the view keeps, in the filter's syntax (README, keys: /); empty: every item"),
    ] = ""
    sort: Annotated[
        ViewSort,
        Says("unknown sort {value!r}", f"use one of: {', '.join(get_args(ViewSort))}"),
        Field(description="the view's order: urgency, age, confidence or agent"),
    ] = "urgency"
    group: Annotated[
        ViewGroup,
        Says("unknown group {value!r}", f"use one of: {', '.join(get_args(ViewGroup))}"),
        Field(description="group the view's rows by source or agent, or none"),
    ] = "none"


def _at_most_nine(views: tuple[ViewConfig, ...]) -> tuple[ViewConfig, ...]:
    if len(views) > MAX_VIEWS:
        raise _refusal(
            f"{len(views)} views: at most {MAX_VIEWS} (keys 1 to {MAX_VIEWS} switch them)",
            f"remove the [[views]] blocks after the {MAX_VIEWS}th",
            key="name",
            view=MAX_VIEWS,
        )
    return views


def default_views(operator: str) -> tuple[ViewConfig, ...]:
    """The views of a config without [[views]]: the whole queue, the urgent part, what I hold, the escalations."""
    me = operator if re.fullmatch(r'[^\s",]+', operator) else '"' + operator.replace('"', "") + '"'
    return (
        ViewConfig(name="All"),
        ViewConfig(name="Critical+high", filter="risk:critical,high"),
        ViewConfig(name="Mine", filter=f"claimed:{me}"),
        ViewConfig(name="Escalations", filter="kind:ESC"),
    )


@dataclass(frozen=True)
class Notifications(_Table):
    """How a new high or critical item, or a deadline about to pass, gets the operator's attention."""

    bell: Annotated[_Switch, Field(description="ring the terminal bell")] = True
    toast: Annotated[_Switch, Field(description="show a notification in the console")] = True
    desktop: Annotated[
        _Switch, Field(description="notify-send, or an OSC 9 / OSC 777 escape where the terminal supports one")
    ] = True
    deadline_seconds: Annotated[
        float | None,
        Seconds(0, 86400, "deadline_seconds = 120"),
        Field(description="the older name of deadline_warning (the top-level key): use one of the two"),
    ] = None


@dataclass(frozen=True)
class Config(_Table):
    operator: Annotated[
        _Words,
        Says("operator must be a non-empty string", 'operator = "alice"'),
        Field(validate_default=True, description="who decides, recorded with each decision (default: the login)"),
    ] = field(default_factory=getpass.getuser)
    reject_reasons: Annotated[
        tuple[_ShortName, ...],
        Says(
            "reject_reasons must be a non-empty list of short codes (letters, digits, _ and -)",
            'reject_reasons = ["wrong_target", "unsafe", "other"]',
        ),
        Field(min_length=1, description="the codes a rejection picks from"),
    ] = DEFAULT_REJECT_REASONS
    sources: Annotated[
        tuple[
            Annotated[
                SourceConfig, Says("each source must be a table", "use a [[sources]] block with name, kind and url")
            ],
            ...,
        ],
        AfterValidator(_unique_names),
        Says("sources must be an array of tables", "use [[sources]] blocks"),
        Field(description="the agent services to poll, one [[sources]] block each"),
    ] = ()
    path: SkipJsonSchema[Path | None] = field(default=None, metadata={"in_file": False})  # where it was read from
    undo_seconds: Annotated[
        float,
        Seconds(0, 60, "use a number of seconds from 0 (no undo window) to 60"),
        Field(description="a decision waits this long before it is sent; `u` takes it back meanwhile; 0: off"),
    ] = 5.0
    theme: Annotated[
        _Words, Says("theme must be a theme name", 'theme = "textual-light"'), Field(description="any Textual theme")
    ] = DEFAULT_THEME
    display_timezone: Annotated[
        str,
        Strict(),
        AfterValidator(_time_zone),
        Says(
            "display_timezone = {value!r} is not a time zone",
            'use "local", "UTC" or an IANA name such as "Europe/Paris"',
        ),
        Field(description='times on screen: "local" (TZ, else the system\'s), "UTC" or an IANA name'),
    ] = "local"
    deadline_warning: Annotated[
        float | None,
        BeforeValidator(_duration, json_schema_input_type=float | str),
        Says(
            "{key} = {toml} is not a duration from 0 s to 24 h",
            'deadline_warning = "5m" (seconds, or a number with s, m or h: "90s", "1h30m"; 0: no warning)',
        ),
        Field(
            description="how close a deadline is near: the queue and the detail mark it, and alerts and pages say"
            ' so (default 2 minutes; "5m", "90s" or seconds; 0: off)'
        ),
    ] = None
    notifications: Annotated[
        Notifications,
        Says("notifications must be a table", "use a [notifications] block"),
        Field(description="how new urgent items and close deadlines get attention"),
    ] = Notifications()
    feedback: Annotated[
        tuple[
            Annotated[
                FeedbackConfig,
                Says("each feedback sink must be a table", "use a [[feedback]] block with name, kind and endpoint"),
            ],
            ...,
        ],
        Says("feedback must be an array of tables", "use [[feedback]] blocks"),
        Field(description="tracing tools that get every label as feedback, one [[feedback]] block each"),
    ] = ()
    pager: Annotated[
        tuple[
            Annotated[PagerConfig, Says("each pager must be a table", "use a [[pager]] block with name, kind and url")],
            ...,
        ],
        Says("pager must be an array of tables", "use [[pager]] blocks"),
        Field(description="webhooks for new urgent items and close deadlines, one [[pager]] block each; none: off"),
    ] = ()
    keymap: Annotated[
        KeymapConfig,
        PlainValidator(keymap_table, json_schema_input_type=dict[str, str | list[str]]),
        Field(description='the keys of each action: preset = "default" or "vim", then lines like approve = ["a"]'),
    ] = BUILT_IN

    views: Annotated[
        tuple[
            Annotated[ViewConfig, Says("each view must be a table", "use a [[views]] block with name and filter")],
            ...,
        ],
        AfterValidator(_at_most_nine),
        Says("views must be an array of tables", "use [[views]] blocks"),
        Field(
            description="saved views of the queue, tabs switched with 1 to 9;"
            " none: All, Critical+high, Mine, Escalations"
        ),
    ] = ()

    def saved_views(self) -> tuple[ViewConfig, ...]:
        """The views the tabs show: the config's, else the default few."""
        return self.views or default_views(self.operator)

    @model_validator(mode="after")
    def _feedback_refers(self) -> Config:
        return _feedback_names(self)

    @model_validator(mode="after")
    def _one_deadline_window(self) -> Config:
        if self.deadline_warning is not None and self.notifications.deadline_seconds is not None:
            raise _refusal(
                "deadline_warning and notifications.deadline_seconds both say when a deadline is near",
                "keep deadline_warning and remove deadline_seconds from [notifications]",
                key="deadline_warning",
            )
        return self

    @property
    def deadline_window(self) -> float:
        """Seconds before a deadline that count as near: the queue's and the detail's warning, the alerts and (unless
        a pager says otherwise) the pages. One home: deadline_warning, or its older name in [notifications]."""
        if self.deadline_warning is not None:
            return self.deadline_warning
        older = self.notifications.deadline_seconds
        return DEFAULT_DEADLINE_WARNING if older is None else older


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


@functools.cache
def _schema() -> TypeAdapter[Config]:
    return TypeAdapter(Config)


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
    try:
        config = _schema().validate_python(data)
    except ValidationError as exc:
        # from None: pydantic's own text repeats the values as given, a url's credentials included
        raise _config_error(path, _Locator(text.splitlines()), data, exc.errors()[0]) from None
    keymap = config.keymap
    if keymap.keys or keymap.preset != "default":  # where each action is, for the errors the app finds
        where = _Locator(text.splitlines())
        lines = tuple((action, where.table_key_line("keymap", action) or 0) for action, _keys in keymap.keys)
        keymap = dataclasses.replace(keymap, lines=lines, table_line=where.table_key_line("keymap", "preset"))
    return dataclasses.replace(config, path=path, keymap=keymap)


def _config_error(path: Path, where: _Locator, data: dict[str, Any], error: ErrorDetails) -> ConfigError:
    """pydantic's first error in TOML terms: the line of the key, and the words its field declares."""
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
    says = _says(loc)
    if says is None:  # a key declared without its words: pydantic's, which never repeat the value
        return ConfigError(path, line, f"{dotted}: {error['msg']}", "see the config example in README.md")
    if error["type"] in _RANGE_ERRORS:
        return ConfigError(path, line, f"{dotted} = {value!r} is out of range", says.fix)
    words = {"key": dotted, "name": key, "value": value, "toml": _toml_value(value), "kind": _toml_type(value)}
    return ConfigError(path, line, says.problem.format(**words), says.fix.format(**words))


def _says(loc: tuple[int | str, ...]) -> Says | None:
    """The innermost Says along `loc`: a source's key, else the source, else the `sources` array itself."""
    hint: Any = Config
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


def token_env_var(source_name: str) -> str:
    return "APPROVAL_CONSOLE_TOKEN_" + source_name.upper().replace("-", "_")


def token_fix(source_name: str) -> str:
    """How the operator gives a source a new token: what an auth failure tells them to do."""
    return (
        f"run 'approval-console sources token {source_name}' to store a new token in the keyring,"
        f" or set {token_env_var(source_name)}"
    )


def no_keyring_fix(source_name: str) -> str:
    """What to do when a token cannot be stored because this machine has no keyring."""
    return f"this machine has no usable keyring; set the environment variable {token_env_var(source_name)} instead"


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
