"""A LangGraph item names the run that raised its interrupt and carries the interrupt's own time, checked against a real
LangGraph API server on loopback (the one tests/test_langgraph.py starts), and in pure translation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from console.engine.sources.langgraph import LangGraphSource
from console.engine.sources.langgraph_payloads import RaisedBy, pending_items, translate_state
from storage.records import SyncState, Verdict
from tests import factories
from tests.test_langgraph import (  # noqa: F401  (fixtures: one real server for this module)
    api,
    case,
    inbox,
    interrupted_thread,
    langgraph_url,
    lg_config,
    listed,
    settled,
)

ROW = {"thread_id": "thr_1", "created_at": "2026-11-21T23:00:00Z", "updated_at": "2026-11-21T23:09:00Z"}
REQUEST = inbox("send_email", {"to": "bob@example.com"}, allow_accept=True)


def _state(run_id: Any, created_at: Any, interrupt_id: str = "int_1") -> dict[str, Any]:
    return {
        "metadata": {"run_id": run_id, "graph_id": "mailer"},
        "created_at": created_at,
        "interrupts": [{"id": interrupt_id, "value": REQUEST}],
    }


def test_the_state_names_the_run_and_the_time_of_the_interrupt() -> None:
    [interrupt] = translate_state("graphs", ROW, _state("run-7", "2026-11-21T23:08:30Z"))
    [item], rejected = pending_items("graphs", [interrupt])
    assert rejected == [] and item.trace == {"run_id": "run-7"}
    assert item.created_at == datetime.fromisoformat("2026-11-21T23:08:30+00:00"), "not the thread's creation time"


def test_a_state_without_run_or_time_falls_back_to_the_thread() -> None:
    for state in (_state(None, None), _state(7, ["x"]), {"interrupts": [{"id": "int_1", "value": REQUEST}]}):
        [interrupt] = translate_state("graphs", ROW, state)
        [item], _ = pending_items("graphs", [interrupt])
        assert item.trace is None and item.created_at == datetime.fromisoformat("2026-11-21T23:00:00+00:00")


def test_an_interrupt_raised_again_by_a_later_run_keeps_its_first_run_and_version() -> None:
    [first] = translate_state("graphs", ROW, _state("run-1", "2026-11-21T23:01:00Z"))
    later = _state("run-2", "2026-11-21T23:05:00Z")
    [again] = translate_state("graphs", ROW, later, {"int_1": RaisedBy("run-1", "2026-11-21T23:01:00Z")})
    assert again.requests[0].payload == first.requests[0].payload
    [fresh] = translate_state("graphs", ROW, later)
    assert fresh.requests[0].payload["trace"] == {"run_id": "run-2"}


async def test_a_real_server_item_names_the_run_that_raised_it(
    api: httpx.AsyncClient,  # noqa: F811
    langgraph_url: str,  # noqa: F811
    case: str,  # noqa: F811
) -> None:
    thread_id = await interrupted_thread(api, case, "echo", {"payload": REQUEST})
    [run] = (await api.get(f"/threads/{thread_id}/runs")).json()
    thread = (await api.get(f"/threads/{thread_id}")).json()
    state = (await api.get(f"/threads/{thread_id}/state")).json()
    source = LangGraphSource(lg_config(langgraph_url, case), None)
    [item] = await listed(source)
    assert item.trace == {"run_id": run["run_id"]}
    assert item.created_at == datetime.fromisoformat(state["created_at"])
    assert item.created_at > datetime.fromisoformat(thread["created_at"]), "the interrupt came after the thread"
    assert (await source.send_decision(factories.decision(item, Verdict.approve))).state is SyncState.applied
    await settled(api, thread_id)
    await source.aclose()
