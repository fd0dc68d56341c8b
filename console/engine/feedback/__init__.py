"""Feedback sinks: labels sent to the team's tracing tool (LangSmith, Langfuse) through its official SDK client."""

from __future__ import annotations

from console.engine.config import FeedbackConfig
from console.engine.feedback.base import FeedbackSink
from console.engine.secrets import Token


def build_sink(config: FeedbackConfig, key: Token | None) -> FeedbackSink:
    """The sink of a [[feedback]] block. The SDKs are an optional extra (`pip install approval-console[feedback]`):
    imported here, only when a sink is configured."""
    if config.kind == "langsmith":
        from console.engine.feedback.langsmith import LangSmithSink

        return LangSmithSink(config, key)
    from console.engine.feedback.langfuse import LangfuseSink

    return LangfuseSink(config, key)
