"""Langfuse: each label is a score on the trace (or session) its item names, through the langfuse SDK's score API.

The score id is derived from the label id, so a resend updates the same score instead of adding one. Exactly one of
traceId or sessionId is sent (the server's rule; observationId only with a traceId). The score is `human_verdict`:
CATEGORICAL with the verdict as value, or for an edit a CORRECTION whose value is the edited arguments (JSON), with
the decision's time as its timestamp.
"""

from __future__ import annotations

import json

import httpx
from langfuse import __version__ as langfuse_version
from langfuse.api import CreateScoreRequest, LangfuseAPI, ScoreDataType
from langfuse.api.core.api_error import ApiError

from console.engine.config import FeedbackConfig
from console.engine.feedback.base import (
    FEEDBACK_KEY,
    FeedbackAnswer,
    comment_of,
    feedback_id,
    metadata_of,
    prepared,
    refusal_answer,
)
from console.engine.secrets import Token
from console.engine.sources.answers import brief, kind_of
from storage.feedback import FeedbackState
from storage.labels import Label

NO_TRACE = "no Langfuse trace: the item's trace names no trace_id or session_id, so Langfuse cannot take it"


class LangfuseSink:
    def __init__(self, config: FeedbackConfig, key: Token | None) -> None:
        self.config = config
        self._keyed = key is not None
        # The SDK's REST client, as `Langfuse().api` builds it, but of our own: `Langfuse()` is one shared instance per
        # public key (a second sink would get the first one's endpoint) and starts tracing and queue threads.
        self._http = httpx.Client(timeout=config.timeout, follow_redirects=False)
        self._client = LangfuseAPI(
            base_url=config.endpoint,
            username=config.public_key,
            password=key.value if key is not None else "",
            x_langfuse_sdk_name="python",
            x_langfuse_sdk_version=langfuse_version,
            x_langfuse_public_key=config.public_key,
            httpx_client=self._http,
            timeout=config.timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def request(self, label: Label) -> CreateScoreRequest | FeedbackAnswer:
        """The score this label becomes, or why it stays here."""
        ready = prepared(self.config, label)
        if isinstance(ready, FeedbackAnswer):
            return ready
        trace = ready.trace or {}
        trace_id = trace.get("trace_id")
        session_id = None if trace_id else trace.get("session_id")  # exactly one target (the server's rule)
        if trace_id is None and session_id is None:
            return FeedbackAnswer(FeedbackState.local, NO_TRACE)
        edit = ready.verdict == "edit"
        return CreateScoreRequest(
            id=feedback_id(ready),
            trace_id=trace_id,
            session_id=session_id,
            observation_id=trace.get("observation_id") if trace_id else None,
            name=FEEDBACK_KEY,
            value=json.dumps(ready.edited, sort_keys=True) if edit else ready.verdict,
            data_type=ScoreDataType("CORRECTION" if edit else "CATEGORICAL"),
            comment=comment_of(ready),
            metadata=metadata_of(ready),
            timestamp=ready.decided_at,
        )

    def send(self, label: Label) -> FeedbackAnswer:
        score = self.request(label)
        if isinstance(score, FeedbackAnswer):
            return score
        if not self._keyed:
            return FeedbackAnswer(None, "no secret key for this sink", auth_refused=True)
        try:
            self._client.scores.create(request=[score], request_options={"max_retries": 0})  # the outbox retries
        except ApiError as exc:
            return _answer(exc)
        except httpx.HTTPError as exc:
            return FeedbackAnswer(None, f"Langfuse is unreachable: {brief(exc)}")
        return FeedbackAnswer(FeedbackState.sent, "accepted")


def _answer(exc: ApiError) -> FeedbackAnswer:
    status = exc.status_code or 0
    return refusal_answer(kind_of(status), f"Langfuse answered {status}: {str(exc.body)[:200]}", exc.headers or {})
