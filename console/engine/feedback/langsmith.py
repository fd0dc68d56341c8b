"""LangSmith: each label is feedback on the run its item names, through `langsmith.Client.create_feedback`.

The feedback id is derived from the label id, so a resend is the same feedback (LangSmith answers 409 and keeps one).
The key is `human_verdict`: score 1 approve, 0.5 edit, 0 reject (none for an expiry), the verdict as value, the
operator's edit as the correction, and who, when and what became of it as the source's metadata.
"""

from __future__ import annotations

import uuid
from typing import Any

from langsmith import Client
from langsmith import utils as ls_utils
from urllib3.util.retry import Retry

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
from console.engine.sources.answers import Kind, brief, kind_of
from storage.feedback import FeedbackState
from storage.labels import Label

SCORES = {"approve": 1.0, "edit": 0.5, "reject": 0.0}
NO_RUN = "no LangSmith run: the item's trace names no run_id or trace_id (a UUID), so LangSmith cannot take it"


def _uuid(value: str | None) -> str | None:
    try:
        return None if value is None else str(uuid.UUID(value))
    except ValueError:
        return None


class LangSmithSink:
    def __init__(self, config: FeedbackConfig, key: Token | None) -> None:
        self.config = config
        self._client = Client(
            api_url=config.endpoint,
            api_key=key.value if key is not None else None,
            auto_batch_tracing=False,
            retry_config=Retry(total=0, raise_on_status=False),  # the outbox retries, with its backoff
            timeout_ms=int(config.timeout * 1000),
            info={},  # nothing to discover: feedback goes straight to POST /feedback
        )
        self._keyed = key is not None

    def close(self) -> None:
        self._client.close()

    def send(self, label: Label) -> FeedbackAnswer:
        ready = prepared(self.config, label)
        if isinstance(ready, FeedbackAnswer):
            return ready
        trace = ready.trace or {}
        run_id, trace_id = _uuid(trace.get("run_id")), _uuid(trace.get("trace_id"))
        if run_id is None and trace_id is None:
            return FeedbackAnswer(FeedbackState.local, NO_RUN)
        if not self._keyed:
            return FeedbackAnswer(None, "no API key for this sink", auth_refused=True)
        arguments: dict[str, Any] = {
            "run_id": run_id,
            "trace_id": trace_id,
            "key": FEEDBACK_KEY,
            "score": SCORES.get(ready.verdict),
            "value": ready.verdict,
            "comment": comment_of(ready),
            "correction": {"edited": ready.edited} if ready.verdict == "edit" else None,
            "source_info": metadata_of(ready),
            "feedback_source_type": "api",
            "feedback_id": feedback_id(ready),
            "stop_after_attempt": 1,
            "extend_trace_retention": False,  # a direct POST: its answer is this label's answer
        }
        try:
            self._client.create_feedback(**arguments)
        except ls_utils.LangSmithConflictError:
            return FeedbackAnswer(FeedbackState.sent, "LangSmith already holds this feedback")
        except ls_utils.LangSmithConnectionError as exc:
            return FeedbackAnswer(None, f"LangSmith is unreachable: {brief(exc)}")
        except ls_utils.LangSmithError as exc:
            return _answer(exc)
        except ValueError as exc:  # a value the SDK refuses before sending
            return FeedbackAnswer(FeedbackState.refused, f"the LangSmith SDK refused it: {brief(exc)}")
        return FeedbackAnswer(FeedbackState.sent, "accepted")


def _answer(exc: ls_utils.LangSmithError) -> FeedbackAnswer:
    """The SDK wraps the HTTP answer in an error by status range only: its status is read from the error's cause."""
    response = _response_of(exc)
    status = 0 if response is None else int(response.status_code)
    said = f"LangSmith answered {status or '?'}: {brief(exc)}"
    headers = {} if response is None else dict(response.headers)
    return refusal_answer(kind_of(status) if status else Kind.failing, said, headers)


def _response_of(exc: BaseException) -> Any:
    seen: BaseException | None = exc
    for _ in range(8):  # the chain of causes is short; a cycle must not loop
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if response is not None and isinstance(getattr(response, "status_code", None), int):
            return response
        seen = seen.__cause__ or seen.__context__
    return None
