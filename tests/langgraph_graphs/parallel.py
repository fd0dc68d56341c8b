"""Two branches that interrupt in the same step, so one thread holds two pending interrupts at once."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class ParallelState(TypedDict, total=False):
    payment: Any
    refund: Any


def _inbox_request(action: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    config = {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": False}
    return [{"action_request": {"action": action, "args": args}, "config": config, "description": f"{action}?"}]


def approve_payment(state: ParallelState) -> ParallelState:
    return {"payment": interrupt(_inbox_request("pay_invoice", {"invoice": "INV-7", "amount": 120}))[0]}


def approve_refund(state: ParallelState) -> ParallelState:
    return {"refund": interrupt(_inbox_request("refund", {"order": "A-19", "amount": 35}))[0]}


builder = StateGraph(ParallelState)
builder.add_node("approve_payment", approve_payment)
builder.add_node("approve_refund", approve_refund)
builder.add_edge(START, "approve_payment")
builder.add_edge(START, "approve_refund")
builder.add_edge("approve_payment", END)
builder.add_edge("approve_refund", END)
graph = builder.compile()
