"""Labels with the members of label version 2 (trace, inputs, reasoning, outcome), for the export tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storage.db import Store
from storage.labels import Label, build_label, insert_label
from storage.records import Verdict
from tests import factories
from tests.label_data import decision_on, open_labels_db

# The escalations' real inputs: what the agent was given, which its summary only describes.
TICKET = {"ticket": "T-118", "text": "I was charged twice for order 5521, please refund one."}


def trace_of(label: Label) -> dict[str, str]:
    """A trace whose ids are stable per label: a LangSmith run and trace, a Langfuse observation."""
    run = uuid.uuid5(uuid.NAMESPACE_URL, f"run/{label.label_id}")
    trace = uuid.uuid5(uuid.NAMESPACE_URL, f"trace/{label.label_id}")
    return {"run_id": str(run), "trace_id": str(trace), "project": "agents", "observation_id": f"obs-{run.hex[:12]}"}


def with_v2(label: Label, **fields: Any) -> Label:
    """The label as version 2 records it; `fields` override (trace=None: an item that sent no trace)."""
    inputs = {"action": label.action_name, "args": label.proposed} if label.kind == "approval" else TICKET
    members: dict[str, Any] = {
        "trace": trace_of(label),
        "inputs": inputs,
        # the agent's reasoning as a version-2 console records it from the item, else one made up here
        "reasoning": label.reasoning or "two captures of the same amount",
        "outcome": "timed_out" if label.verdict == "timed_out" else "applied",  # synced: the source answered
    }
    return Label.model_validate({**label.model_dump(mode="json"), **members, **fields})


CUSTOMER = "cus_8842_private"  # a value --redact customer_id must remove, digests included
EMAIL = "jane.roe@example.com"  # a value --redact-text must remove from free text
SUMMARY_ANSWER = "INV-92917"  # the agent's summary states its (rejected) answer; no prompt may carry it


def invoice_labels() -> list[Label]:
    """Labels over one tool, whose summaries state the proposed answer, with a customer id and an email to hide."""
    args = {"customer_id": CUSTOMER, "invoice": SUMMARY_ANSWER, "note": f"ask {EMAIL}"}
    match = factories.item(
        "itm_match",
        action={"name": "match_payment", "args": args},
        context={"summary": f"matched it to {SUMMARY_ANSWER}", "reasoning": f"{EMAIL} wrote", "evidence": []},
    )
    edited = {**args, "invoice": "INV-92918"}
    only_customer = {**args, "customer_id": "cus_other"}
    decisions = [
        decision_on(match, Verdict.approve, seconds=1),
        decision_on(match, Verdict.edit, edited=edited, seconds=2, reason_code="wrong_target"),
        decision_on(match, Verdict.reject, seconds=3, reason_code="duplicate"),
        decision_on(match, Verdict.reject, seconds=4, reason_code="wrong_target", comment=f"mail {EMAIL}"),
        decision_on(match, Verdict.edit, edited=only_customer, seconds=5, reason_code="wrong_target"),
    ]
    return [build_label(match, decision, None) for decision in decisions]


def write_db(directory: Path, labels: Sequence[Label]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    Store(directory / "console.db").close()
    conn = open_labels_db(directory / "console.db")
    conn.execute("BEGIN")
    for label in labels:
        insert_label(conn, label)
    conn.execute("COMMIT")
    conn.close()
    return directory
