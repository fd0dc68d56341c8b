"""The [[sources]] block: an agent service to poll, and the rule that no two sources share a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    Strict,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from console.engine.config_base import (
    Says,
    Seconds,
    _http_url,
    _Lookup,
    _not_a_short_name,
    _only_for,
    _pairs,
    _Plain,
    _refusal,
    _ShortName,
    _Switch,
    _Table,
    _tag_list,
    _Words,
)
from console.engine.config_text import is_loopback

SourceKind = Literal["native", "langgraph", "temporal", "prefect", "airflow"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
DEFAULT_MAX_ITEM_BYTES = 1_048_576  # PROTOCOL.md R10: an item may be 1 MiB of JSON


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


def _unique_names(sources: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
    names = [source.name for source in sources]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise _refusal(f"two sources are named {name!r}", "give each source its own name", key="name", source=index)
    return sources
