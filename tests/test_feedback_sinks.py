"""Feedback sinks send labels through the official SDK clients (`langsmith.Client.create_feedback`, the langfuse SDK's
score API), with the outbox's retry and refusal rules.

No LangSmith or Langfuse server runs offline: the SDK clients talk to a stand-in on a real loopback socket
(tests/tracing_tools.py) that checks every request body against the SDK's own models and the server's documented rules,
and records it. The labels live in a real SQLite store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from console.engine.backoff import Backoff
from console.engine.config import FeedbackConfig
from console.engine.feedback import build_sink
from console.engine.feedback.base import NOT_HAPPENED, FeedbackSink
from console.engine.feedback.pusher import FeedbackPusher
from console.engine.secrets import Token
from console.engine.session import Session
from console.servers.fleet import Fleet
from storage.db import DecisionSyncUpdate, Store
from storage.feedback import FeedbackState
from storage.labels import Label, LabelOutcome, build_label, expiry_label, insert_label
from storage.records import SyncState, Verdict, item_digest, now_utc
from tests import factories
from tests.conftest import SOURCE, eventually, make_config
from tests.tracing_tools import LANGFUSE_PUBLIC, LANGFUSE_SECRET, LANGSMITH_KEY, Tool, serving

AUTH_HOLD = 30.0
SECRET_ID = "cus_secret_4471"


def _trace(kind: str) -> dict[str, str]:
    run = str(uuid.uuid4())
    if kind == "langsmith":
        return {"run_id": run, "trace_id": run, "project": "billing-prod"}
    return {"trace_id": uuid.uuid4().hex, "project": "billing-prod"}


def _label(
    item_id: str, trace: dict[str, str] | None, verdict: Verdict = Verdict.approve, outcome: LabelOutcome = "applied"
) -> Label:
    args = {"amount": 1250.0, "customer_id": SECRET_ID}
    item = factories.item(item_id, trace=trace, action={"name": "issue_refund", "args": args})
    edited = {"amount": 625.0, "customer_id": SECRET_ID} if verdict is Verdict.edit else None
    decision = factories.decision(item, verdict, edited=edited, reason_code="wrong_amount" if edited else None)
    return build_label(item, decision, None).model_copy(update={"outcome": outcome})


def _hold(store: Store, labels: list[Label]) -> None:
    conn = store.db.conn
    conn.execute("BEGIN")
    for label in labels:
        insert_label(conn, label)
    conn.execute("COMMIT")


def _sink(tool: Tool, key: str | None = None, **options: Any) -> FeedbackSink:
    extra = {"public_key": LANGFUSE_PUBLIC} if tool.kind == "langfuse" else {}
    config = FeedbackConfig(name="tool", kind=tool.kind, endpoint=tool.url, **extra, **options)  # type: ignore[arg-type]
    secret = key if key is not None else (LANGSMITH_KEY if tool.kind == "langsmith" else LANGFUSE_SECRET)
    return build_sink(config, Token(secret, "environment"))


def _pusher(store: Store, sink: FeedbackSink) -> FeedbackPusher:
    return FeedbackPusher(store.feedback, [sink], backoff=Backoff(0.5, 60.0), auth_hold=AUTH_HOLD)


def _states(store: Store) -> dict[str, FeedbackState]:
    return store.feedback.states("tool")


KINDS = ["langsmith", "langfuse"]


@pytest.mark.parametrize("kind", KINDS)
async def test_labels_are_accepted_once_even_when_sent_again(store: Store, kind: str) -> None:
    labels = [
        _label("itm_a", _trace(kind)),
        _label("itm_e", _trace(kind), Verdict.edit),
        _label("itm_r", _trace(kind), Verdict.reject),
    ]
    _hold(store, labels)
    with serving(kind) as tool:
        sink = _sink(tool)
        assert await _pusher(store, sink).drain_once() == 3
        assert _states(store) == dict.fromkeys((label.label_id for label in labels), FeedbackState.sent)
        assert tool.problems == [] and len(tool.stored) == 3 and len(tool.requests) == 3
        # A crash before the answers were recorded: the same labels go again, under the same ids.
        store.db.conn.execute("DELETE FROM feedback_sends")
        store.db.conn.execute("DELETE FROM feedback_marks")
        assert await _pusher(store, sink).drain_once() == 3
        assert len(tool.requests) == 6 and len(tool.stored) == 3, "a resend is the same feedback, not a second one"
        assert set(_states(store).values()) == {FeedbackState.sent}
        sink.close()
    # "625.0", not "625": an id or a timestamp of another label may hold the digits 625.
    edit = next(body for body in tool.stored.values() if "625.0" in json.dumps(body))
    if kind == "langsmith":
        assert edit["correction"] == {"edited": {"amount": 625.0, "customer_id": SECRET_ID}}
        assert edit["feedback_source"]["type"] == "api" and edit["key"] == "human_verdict"
        assert edit["feedback_source"]["metadata"]["operator"] == "alice"
    else:
        assert edit["dataType"] == "CORRECTION" and edit["timestamp"] and edit["traceId"]
        assert "sessionId" not in edit or edit["sessionId"] is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failing_tool_is_retried_then_takes_the_label(store: Store, kind: str) -> None:
    label = _label("itm_a", _trace(kind))
    _hold(store, [label])
    with serving(kind) as tool:
        tool.faults = [503 if kind == "langsmith" else 500]
        pusher = _pusher(store, _sink(tool))
        await pusher.drain_once()
        assert _states(store) == {label.label_id: FeedbackState.pending} and tool.stored == {}
        [kept] = store.feedback.kept("tool")
        assert (kept.attempts == 1 and "busy" in kept.reason) or "50" in kept.reason
        assert await pusher.drain_once() == 0, "the sink waits out its backoff"
        later = pusher.waiting["tool"] + 1
        pusher.clock = lambda: later
        assert await pusher.drain_once() == 1
        assert _states(store) == {label.label_id: FeedbackState.sent} and len(tool.stored) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_label_is_kept_with_the_reason_and_never_resent(store: Store, kind: str) -> None:
    label = _label("itm_a", _trace(kind))
    _hold(store, [label])
    with serving(kind) as tool:
        tool.faults = [400]
        pusher = _pusher(store, _sink(tool))
        await pusher.drain_once()
        assert _states(store) == {label.label_id: FeedbackState.refused}
        [kept] = store.feedback.kept("tool")
        assert kept.state is FeedbackState.refused and "400" in kept.reason
        assert await pusher.drain_once() == 0 and len(tool.raw) == 1, "never sent again"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_wrong_key_holds_the_sink_and_keeps_the_labels(store: Store, kind: str) -> None:
    labels = [_label("itm_a", _trace(kind)), _label("itm_b", _trace(kind))]
    _hold(store, labels)
    with serving(kind) as tool:
        pusher = _pusher(store, _sink(tool, key="wrong-key"))
        assert await pusher.drain_once() == 1, "one refusal holds the sink: the other label is not tried"
        assert tool.stored == {} and set(_states(store).values()) == {FeedbackState.pending}
        assert pusher.waiting["tool"] - pusher.clock() == pytest.approx(AUTH_HOLD, abs=1.0)
        [kept] = store.feedback.kept("tool")
        assert "401" in kept.reason or "key" in kept.reason
        assert await pusher.drain_once() == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_labels_the_tool_cannot_attach_stay_here_with_a_reason(store: Store, kind: str) -> None:
    untraced = _label("itm_none", None)
    lost = _label("itm_lost", _trace(kind), outcome="conflict_lost")
    elsewhere = _label("itm_other", {**_trace(kind), "project": "another-project"})
    pending = _label("itm_pending", _trace(kind), outcome="pending")
    _hold(store, [untraced, lost, elsewhere, pending])
    with serving(kind) as tool:
        pusher = _pusher(store, _sink(tool, project="billing-prod"))
        assert await pusher.drain_once() == 3, "a decision without a final outcome is not due yet"
        assert tool.raw == [], "nothing reached the tool"
    reasons = {kept.label_id: kept.reason for kept in store.feedback.kept("tool")}
    assert set(_states(store).values()) == {FeedbackState.local}
    assert "cannot take it" in reasons[untraced.label_id]
    assert reasons[lost.label_id] == NOT_HAPPENED
    assert "another-project" in reasons[elsewhere.label_id]


async def test_langfuse_takes_a_session_when_the_trace_names_no_trace_id(store: Store) -> None:
    label = _label("itm_s", {"session_id": "sess-9"})
    expiry = expiry_label(factories.item("itm_x", trace={"session_id": "sess-9"}), now_utc())
    _hold(store, [label, expiry])
    with serving("langfuse") as tool:
        assert await _pusher(store, _sink(tool)).drain_once() == 2
    assert tool.problems == [] and {body[0]["sessionId"] for body in tool.requests} == {"sess-9"}
    assert sorted(body[0]["value"] for body in tool.requests) == ["approve", "timed_out"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_sinks_redact_keys_mask_what_is_sent(store: Store, kind: str) -> None:
    _hold(store, [_label("itm_e", _trace(kind), Verdict.edit)])
    with serving(kind) as tool:
        assert await _pusher(store, _sink(tool, redact=("customer_id",))).drain_once() == 1
    sent = b"".join(tool.raw)
    assert tool.stored and SECRET_ID.encode() not in sent
    edited = {"amount": 625.0, "customer_id": SECRET_ID}
    digests = [item_digest(edited), item_digest(SECRET_ID), hashlib.sha256(SECRET_ID.encode()).hexdigest()]
    assert not [d for d in digests if d.removeprefix("sha256:").encode() in sent], "no digest of a redacted value"


async def test_a_sink_takes_its_sources_labels_once_they_settle(store: Store) -> None:
    item = factories.item("itm_later", trace=_trace("langsmith"))
    store.items.apply_changes("billing", [item], [], None)
    decision = factories.decision(factories.item("itm_later", source="billing", trace=item.trace))
    store.outbox.record(decision)  # its label waits for the source's answer
    other = _label("itm_other", _trace("langsmith")).model_copy(update={"source": "support"})
    _hold(store, [other])
    with serving("langsmith") as tool:
        pusher = _pusher(store, _sink(tool, sources=("billing",)))
        assert await pusher.drain_once() == 1 and tool.raw == [], "another source's label is passed over"
        assert await pusher.drain_once() == 0, "and not looked at again"
        store.outbox.record_results([DecisionSyncUpdate(decision.id, SyncState.applied, "applied", "")])
        assert await pusher.drain_once() == 1
        assert _states(store) == {decision.id: FeedbackState.sent} and len(tool.stored) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_session_pushes_the_fleets_labels_to_its_sink(fleet: Fleet, data_dir: Path, kind: str) -> None:
    """The whole path: the demo fleet on loopback, a Session with a [[feedback]] block, its sync engine's rounds."""
    with serving(kind) as tool:
        extra = {"public_key": LANGFUSE_PUBLIC} if kind == "langfuse" else {}
        sink = FeedbackConfig(name="tool", kind=kind, endpoint=tool.url, **extra)  # type: ignore[arg-type]
        config = dataclasses.replace(make_config(fleet), feedback=(sink,))
        secret = LANGSMITH_KEY if kind == "langsmith" else LANGFUSE_SECRET
        session = Session(
            config, data_dir, token_for=lambda name: Token(secret, "environment") if name == "tool" else None
        )
        try:
            await session.poll_once()
            found = session.store.items.get(SOURCE, fleet.pending()[0]["id"])
            assert found is not None
            item = found[0]
            session.decide(item, Verdict.approve)
            await session.sync.drain_once()  # the decision: applied, so its label settles
            assert session.sync.feedback is not None
            assert await session.sync.feedback.drain_once() == 1
            body = next(iter(tool.stored.values()))
        finally:
            await session.aclose()
    assert tool.problems == [] and len(tool.stored) == 1
    target = body.get("run_id") or body.get("traceId")
    assert target == (item.trace or {}).get("run_id" if kind == "langsmith" else "trace_id")


async def test_a_slow_tool_never_holds_up_a_decision(fleet: Fleet, data_dir: Path) -> None:
    """The sync engine's real loop: the decision is applied at the fleet while the tool still sits on the feedback."""
    with serving("langsmith") as tool:
        tool.hold = threading.Event()
        sink = FeedbackConfig(name="tool", kind="langsmith", endpoint=tool.url, timeout=60.0)  # longer than a wait
        config = dataclasses.replace(make_config(fleet), feedback=(sink,))
        session = Session(config, data_dir, token_for=lambda name: Token(LANGSMITH_KEY, "environment"))
        running = asyncio.create_task(session.sync.run())
        try:
            await session.poll_once()
            first = session.store.items.get(SOURCE, fleet.pending()[0]["id"])
            second = session.store.items.get(SOURCE, fleet.pending()[1]["id"])
            assert first is not None and second is not None
            session.decide(first[0], Verdict.approve)
            await eventually(lambda: tool.arrived == 1, what="the first label waiting at the tool")
            session.decide(second[0], Verdict.reject, reason_code="unsafe")
            await eventually(lambda: len(fleet.applied_decisions()) == 2, what="the second decision applied meanwhile")
            assert tool.stored == {}, "the tool has answered nothing yet"
            tool.hold.set()
            await eventually(lambda: len(tool.stored) == 2, what="both labels at the tool")
        finally:
            tool.hold.set()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await session.aclose()
