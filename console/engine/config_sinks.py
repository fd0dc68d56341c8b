"""The tables that send things out: [[feedback]] (labels to a tracing tool) and [[pager]] (pages to a webhook)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    Strict,
    ValidationInfo,
    model_validator,
)

from console.engine.config_base import (
    Says,
    Seconds,
    _http_url,
    _not_a_short_name,
    _refusal,
    _refuse_plain_http,
    _ShortName,
    _Switch,
    _Table,
    _Words,
)
from console.engine.config_text import public_url, token_fix

# Query parameters that carry a credential (ntfy's ?auth=, ?token=, ?api_key=, a signature): a page URL is logged and
# shown, so a secret has no place in it.
_SECRET_QUERY = re.compile(r"(?i)auth|token|secret|pass|pwd|key|sig|credential|session")


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
