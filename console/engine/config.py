"""The TOML config: who the operator is and which sources to poll.

The dataclasses are the schema: each key's type, default, bounds and doc live on its field, and pydantic checks a file
against them. `Config` is here, its tables beside it (config_sources.py, config_sinks.py, config_views.py, on the
validators of config_base.py); every name is imported from here. A bad config is reported in TOML terms (the file, the
line, the key and the fix) by `_config_error` (config_toml.py); tokens never live here (see console/engine/secrets.py).
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from console.engine.config_base import (
    DEFAULT_DEADLINE_WARNING,
    MAX_DEADLINE_WARNING,
    ConfigError,
    Says,
    Seconds,
    _duration,
    _refusal,
    _ShortName,
    _Table,
    _time_zone,
    _Words,
)
from console.engine.config_sinks import (
    FEEDBACK_KINDS,
    PAGER_FIELDS,
    PAGER_KINDS,
    PAGER_RISKS,
    FeedbackConfig,
    FeedbackKind,
    PagerConfig,
    PagerField,
    PagerKind,
    PagerRisk,
)
from console.engine.config_sources import DEFAULT_MAX_ITEM_BYTES, SOURCE_KINDS, SourceConfig, SourceKind, _unique_names
from console.engine.config_text import (
    is_loopback,
    no_keyring_fix,
    public_url,
    source_block,
    token_env_var,
    token_fix,
)
from console.engine.config_toml import (
    APP_NAME,
    _config_error,
    _Locator,
    block_error,
    default_config_path,
    default_data_dir,
    demo_data_dir,
    without_source,
)
from console.engine.config_views import (
    MAX_VIEWS,
    Notifications,
    ViewConfig,
    ViewGroup,
    ViewSort,
    _at_most_nine,
    default_views,
)
from console.engine.keymap_table import BUILT_IN, KeymapConfig, keymap_table

__all__ = [
    "APP_NAME",
    "DEFAULT_DEADLINE_WARNING",
    "DEFAULT_MAX_ITEM_BYTES",
    "DEFAULT_REJECT_REASONS",
    "DEFAULT_THEME",
    "FEEDBACK_KINDS",
    "MAX_DEADLINE_WARNING",
    "MAX_VIEWS",
    "PAGER_FIELDS",
    "PAGER_KINDS",
    "PAGER_RISKS",
    "SOURCE_KINDS",
    "Config",
    "ConfigError",
    "FeedbackConfig",
    "FeedbackKind",
    "Notifications",
    "PagerConfig",
    "PagerField",
    "PagerKind",
    "PagerRisk",
    "Says",
    "Seconds",
    "SourceConfig",
    "SourceKind",
    "ViewConfig",
    "ViewGroup",
    "ViewSort",
    "block_error",
    "default_config_path",
    "default_data_dir",
    "default_views",
    "demo_data_dir",
    "is_loopback",
    "load",
    "no_keyring_fix",
    "parse",
    "public_url",
    "source_block",
    "token_env_var",
    "token_fix",
    "without_source",
]

DEFAULT_REJECT_REASONS = (
    "wrong_target",
    "unsafe",
    "policy_violation",
    "hallucinated_data",
    "duplicate",
    "needs_more_context",
    "other",
)
DEFAULT_THEME = "textual-dark"


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
    ] = Notifications()  # noqa: RUF009 (a frozen dataclass: one shared default is safe)
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
        raise _config_error(Config, path, _Locator(text.splitlines()), data, exc.errors()[0]) from None
    keymap = config.keymap
    if keymap.keys or keymap.preset != "default":  # where each action is, for the errors the app finds
        where = _Locator(text.splitlines())
        lines = tuple((action, where.table_key_line("keymap", action) or 0) for action, _keys in keymap.keys)
        keymap = dataclasses.replace(keymap, lines=lines, table_line=where.table_key_line("keymap", "preset"))
    return dataclasses.replace(config, path=path, keymap=keymap)
