"""Interrupts with whatever payload the run's input carries and keeps the resume value as it arrived.

One graph covers every payload family a graph can raise by hand (Agent Inbox `HumanInterrupt` lists, the middleware's
camelCase and older `arguments` forms, unknown shapes): the test reads back `outcome` to see the exact resume value.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class EchoState(TypedDict, total=False):
    payload: Any
    response_schema: dict[str, Any] | None
    outcome: Any


def review(state: EchoState) -> EchoState:
    answer = interrupt(state.get("payload"), response_schema=state.get("response_schema"))
    return {"outcome": answer}


builder = StateGraph(EchoState)
builder.add_node("review", review)
builder.add_edge(START, "review")
builder.add_edge("review", END)
graph = builder.compile()
