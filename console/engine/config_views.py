"""The tables of what the console shows: [[views]] (saved views of the queue) and [notifications]."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    Strict,
)

from console.engine.config_base import Says, Seconds, _refusal, _Switch, _Table, _Words

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
