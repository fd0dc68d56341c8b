"""What every feedback sink shares: its answer, the rules a label must meet before it is sent, and stable ids.

A sink's `send` is blocking (the SDK clients are): the pusher runs it in a thread. Its answer uses the decision
path's words: final (sent, refused with the tool's reason, local when the tool cannot take the label) or, state None,
retried later with the shared backoff, at the tool's pace when it gave a Retry-After, or held when the key is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

from console.engine.config import FeedbackConfig
from console.engine.sources.answers import Kind, retry_after_seconds
from storage.feedback import FeedbackState
from storage.labels import Label, redact_label

# A label's id at a tool: derived from the label id, so every resend names the same feedback (no second score).
_FEEDBACK_NAMESPACE = uuid.UUID("9d3a6c1e-4f2b-4b8e-a7d0-5e1c2b3f4a60")
FEEDBACK_KEY = "human_verdict"  # the feedback key (LangSmith) / score name (Langfuse) every label is sent under
NOT_HAPPENED = "another operator decided first: this verdict did not happen, so it is not feedback on the run"


@dataclass(frozen=True)
class FeedbackAnswer:
    state: FeedbackState | None  # None: not answered for good, sent again later
    detail: str = ""
    retry_after: float | None = None
    auth_refused: bool = False


class FeedbackSink(Protocol):
    config: FeedbackConfig

    def send(self, label: Label) -> FeedbackAnswer:
        """Send one label (blocking); never raises for an answer of the tool."""
        ...

    def close(self) -> None: ...


def feedback_id(label: Label) -> str:
    return str(uuid.uuid5(_FEEDBACK_NAMESPACE, label.label_id))


def prepared(config: FeedbackConfig, label: Label) -> Label | FeedbackAnswer:
    """The label as this sink sends it (its `redact` keys applied), or why it stays here (a final answer)."""
    if label.outcome == "conflict_lost":
        return FeedbackAnswer(FeedbackState.local, NOT_HAPPENED)
    project = (label.trace or {}).get("project")
    if config.project is not None and project not in (None, config.project):
        return FeedbackAnswer(
            FeedbackState.local, f"the trace is in project {project!r}; this sink takes {config.project!r}"
        )
    return redact_label(label, config.redact) if config.redact else label


def comment_of(label: Label) -> str | None:
    parts = [part for part in (label.reason_code or "", label.comment) if part]
    return " · ".join(parts) or None


def metadata_of(label: Label) -> dict[str, object]:
    """What the tool keeps beside the verdict: who, when, what became of it, and the change for an edit."""
    return {
        "label_id": label.label_id,
        "operator": label.operator,
        "decided_at": label.decided_at.isoformat(),
        "outcome": label.outcome,
        "reason_code": label.reason_code,
        "agent": label.agent,
        "action": label.action_name,
        "item": f"{label.source}/{label.item_id}",
        "patch": label.patch,
        "seconds_to_decide": label.seconds_to_decide,
    }


def refusal_answer(kind: Kind, said: str, headers: Mapping[str, str]) -> FeedbackAnswer:
    """A tool's error answer (`kind` of its status; `said`: what it answered): refused credentials are held, busy or
    failing is sent again (at the tool's pace, from its Retry-After in `headers`), anything else is refused for good."""
    if kind is Kind.auth:
        return FeedbackAnswer(None, said, auth_refused=True)
    if kind in (Kind.throttled, Kind.failing):
        retry_after = retry_after_seconds(httpx.Response(500, headers=headers))  # only its headers are read
        return FeedbackAnswer(None, said, retry_after=retry_after)
    return FeedbackAnswer(FeedbackState.refused, said)
