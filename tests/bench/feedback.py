"""Labels pushed per second to a feedback sink, through the official SDK client of each tool.

No LangSmith or Langfuse server runs offline: the SDK clients talk to the stand-in of the sink tests on a real loopback
socket (tests/tracing_tools.py), which checks every request against the SDK's own models before it answers. The labels
live in a real SQLite store; the pusher is the one a session runs beside the sync loop.
"""

from __future__ import annotations

import time
import uuid

from console.engine.backoff import Backoff
from console.engine.config import FeedbackConfig
from console.engine.feedback import build_sink
from console.engine.feedback.pusher import FeedbackPusher
from console.engine.secrets import Token
from storage.db import Store
from storage.feedback import FeedbackState
from storage.labels import build_label, insert_label
from storage.records import Verdict
from tests import factories
from tests.bench.harness import Bench, Result, Target, figure, measured
from tests.tracing_tools import LANGFUSE_PUBLIC, LANGFUSE_SECRET, LANGSMITH_KEY, serving

KINDS = ("langsmith", "langfuse")
SETUP = (
    "N settled labels in a fresh SQLite store, each with a trace; FeedbackPusher.drain_once until every one is sent, "
    "through the tool's official SDK client to a loopback stand-in that validates each request with the SDK's models"
)


def _stored_labels(store: Store, count: int, kind: str) -> None:
    conn = store.db.conn
    conn.execute("BEGIN")
    for n in range(count):
        run = str(uuid.uuid4())
        trace = {"run_id": run, "trace_id": run} if kind == "langsmith" else {"trace_id": uuid.uuid4().hex}
        item = factories.item(f"itm_{n}", trace=trace)
        label = build_label(item, factories.decision(item, Verdict.approve), None)
        insert_label(conn, label.model_copy(update={"outcome": "applied"}))
    conn.execute("COMMIT")


async def _push_rate(bench: Bench, kind: str, run: int, count: int) -> float:
    store = Store(bench.workdir / f"feedback-{kind}-{run}.db")
    try:
        _stored_labels(store, count, kind)
        with serving(kind) as tool:
            extra = {"public_key": LANGFUSE_PUBLIC} if kind == "langfuse" else {}
            config = FeedbackConfig(name="tool", kind=kind, endpoint=tool.url, **extra)  # type: ignore[arg-type]
            secret = LANGSMITH_KEY if kind == "langsmith" else LANGFUSE_SECRET
            sink = build_sink(config, Token(secret, "environment"))
            pusher = FeedbackPusher(store.feedback, [sink], backoff=Backoff(0.5, 60.0), auth_hold=30.0)
            started = time.perf_counter()
            while sum(state is FeedbackState.sent for state in store.feedback.states("tool").values()) < count:
                if await pusher.drain_once() == 0:
                    raise RuntimeError(f"{kind}: the pusher stopped with labels unsent ({tool.problems[:1]})")
            elapsed = time.perf_counter() - started
            sink.close()
            if tool.problems:
                raise RuntimeError(f"{kind}: the stand-in refused a request: {tool.problems[0]}")
        return count / elapsed
    finally:
        store.close()


@figure(
    "feedback",
    *(
        (
            f"feedback_{kind}_rate",
            f"labels pushed to {kind} per second",
            "labels/s",
            SETUP,
            Target(">=", 50.0),  # a team of 50 operators decides a few items a second
        )
        for kind in KINDS
    ),
)
async def feedback_figures(bench: Bench) -> list[Result]:
    count = bench.items(500, 50)
    results: list[Result] = []
    for kind in KINDS:
        rates = [await _push_rate(bench, kind, run, count) for run in range(bench.runs(3, 1))]
        results.append(measured("feedback", f"feedback_{kind}_rate", rates, params={"labels": count}))
    return results
