"""A LangChain v1 agent gated by HumanInTheLoopMiddleware, driven by a scripted chat model (no LLM).

The first user message holds the tool calls the model "makes", as JSON: `[{"name": ..., "args": {...}}, ...]`. After
the tools answered, the model says "done". `graph` batches the calls in one interrupt; `per_call_graph` asks once per
call with a JSON Schema in `response_schema`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, InterruptOnConfig
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool


class ScriptedChatModel(BaseChatModel):
    """Calls the tools the user message lists, once; then answers "done"."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, HumanMessage):
            calls = json.loads(str(last.content))
            tool_calls = [{"name": c["name"], "args": c["args"], "id": f"call_{i}"} for i, c in enumerate(calls)]
            reply = AIMessage(content="", tool_calls=tool_calls)
        else:
            reply = AIMessage(content="done")
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self  # the script already knows which tools it calls


@tool
def send_email(to: str, subject: str) -> str:
    """Send an email."""
    return f"sent to {to}: {subject}"


@tool
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


TOOLS: list[BaseTool] = [send_email, delete_file]
GATES: dict[str, bool | InterruptOnConfig] = {
    "send_email": {"allowed_decisions": ["approve", "edit", "reject"]},
    "delete_file": {"allowed_decisions": ["approve", "reject"]},
}

graph = create_agent(ScriptedChatModel(), tools=TOOLS, middleware=[HumanInTheLoopMiddleware(interrupt_on=GATES)])
per_call_graph = create_agent(
    ScriptedChatModel(),
    tools=TOOLS,
    middleware=[HumanInTheLoopMiddleware(interrupt_on=GATES, interrupt_mode="per_call")],
)
