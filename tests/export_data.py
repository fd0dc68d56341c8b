"""Labels with the members of label version 2 (trace, inputs, reasoning, outcome), for the export tests.

`StoredLabel` keeps members the `Label` model may not declare yet, so these records carry them into the labels table
exactly as a console of version 2 writes them.
"""

from __future__ import annotations

import uuid
from typing import Any

from storage.export_fields import StoredLabel
from storage.labels import Label

# The escalations' real inputs: what the agent was given, which its summary only describes.
TICKET = {"ticket": "T-118", "text": "I was charged twice for order 5521, please refund one."}


def trace_of(label: Label) -> dict[str, str]:
    """A trace whose ids are stable per label: a LangSmith run and trace, a Langfuse observation."""
    run = uuid.uuid5(uuid.NAMESPACE_URL, f"run/{label.label_id}")
    trace = uuid.uuid5(uuid.NAMESPACE_URL, f"trace/{label.label_id}")
    return {"run_id": str(run), "trace_id": str(trace), "project": "agents", "observation_id": f"obs-{run.hex[:12]}"}


def with_v2(label: Label, **fields: Any) -> StoredLabel:
    """The label as version 2 records it; `fields` override (trace=None: an item that sent no trace)."""
    inputs = {"action": label.action_name, "args": label.proposed} if label.kind == "approval" else TICKET
    members: dict[str, Any] = {
        "trace": trace_of(label),
        "inputs": inputs,
        "reasoning": "two captures of the same amount",
        "outcome": "expired" if label.verdict == "expired" else "applied",
    }
    return StoredLabel.model_validate({**label.model_dump(mode="json"), **members, **fields})
