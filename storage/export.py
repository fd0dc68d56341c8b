"""Export labels as JSON Lines, streamed in constant memory, in the formats evaluation and training tools read.

One SELECT walks the labels in time order (a single statement reads one consistent snapshot under WAL) and rows are
fetched a chunk at a time, so a million labels cost what a chunk costs. Redaction happens here, before a record is
formatted, so nothing named leaves the machine in any format.

Formats (README.md documents each, with the documentation its shape follows):
- labels: the console's own complete record (storage.labels.Label);
- langsmith: LangSmith feedback records (key, score, value, comment, correction, feedback_source);
- langfuse: Langfuse scores (name, value, dataType, comment, metadata);
- preference: prompt / chosen / rejected pairs from edits (the edited action chosen over the proposed one), for DPO;
- kto: prompt / completion / label from every human verdict (an edit gives a false and a true).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from storage.labels import EXPIRED, Label, record_json, redact_label

FORMATS = ("labels", "langsmith", "langfuse", "preference", "kto")
CHUNK = 1000
LANGSMITH_KEY = "human_approval"
LANGFUSE_SCORE = "human_verdict"


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


@dataclass(frozen=True)
class ExportFilter:
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    sources: Sequence[str] = ()
    agents: Sequence[str] = ()
    verdicts: Sequence[str] = ()

    def where(self) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("decided_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("decided_at < ?")
            params.append(self.until)
        for column, values in (("source", self.sources), ("agent", self.agents), ("verdict", self.verdicts)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


@dataclass(frozen=True)
class ExportCount:
    labels: int  # labels read
    records: int  # records written (a format may write none, one or two per label)


def has_labels_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labels'").fetchone()
    return row is not None


def label_records(conn: sqlite3.Connection, filters: ExportFilter, chunk: int = CHUNK) -> Iterator[str]:
    """The stored JSON of each matching label, oldest first, a chunk at a time."""
    where, params = filters.where()
    # rowid breaks ties in decision time; every index holds it, so the order needs no sort.
    cur = conn.execute(f"SELECT record FROM labels{where} ORDER BY decided_at, rowid", params)
    try:
        while rows := cur.fetchmany(chunk):
            for row in rows:
                yield row[0]
    finally:
        cur.close()


def export_labels(
    conn: sqlite3.Connection,
    out: Writable,
    fmt: str = "labels",
    filters: ExportFilter | None = None,
    redact_keys: Sequence[str] = (),
    *,
    drop_redacted: bool = False,
) -> ExportCount:
    """Write the matching labels to `out` as JSON Lines in `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    convert = FORMATTERS[fmt]
    passthrough = fmt == "labels" and not redact_keys
    labels = records = 0
    lines: list[str] = []
    for text in label_records(conn, filters or ExportFilter()):
        labels += 1
        if passthrough:
            lines.append(text)  # the stored record is the `labels` format: no need to parse it
        else:
            label = redact_label(Label.model_validate_json(text), redact_keys, drop=drop_redacted)
            lines.extend(_dumps(record) for record in convert(label))
        if len(lines) >= CHUNK:
            records += _flush(out, lines)
    records += _flush(out, lines)
    return ExportCount(labels, records)


def _flush(out: Writable, lines: list[str]) -> int:
    count = len(lines)
    if count:
        out.write("\n".join(lines) + "\n")
        lines.clear()
    return count


def _dumps(record: dict[str, Any]) -> str:
    return record_json(record)


# --------------------------------------------------------------------------------------------------------- formats


def to_labels(label: Label) -> list[dict[str, Any]]:
    return [label.model_dump(mode="json")]


def _comment(label: Label) -> str | None:
    parts = [p for p in (label.reason_code, label.comment) if p]
    return ": ".join(parts) if parts else None


# Where a label came from: what an importer needs to attach it to the agent's run, and to slice by.
_METADATA = {
    "label_id",
    "decision_id",
    "source",
    "item_id",
    "item_digest",
    "kind",
    "agent",
    "workflow",
    "action_name",
    "confidence",
    "risk",
    "reason_code",
    "operator",
    "decided_at",
    "seconds_to_decide",
}


def _metadata(label: Label) -> dict[str, Any]:
    return label.model_dump(mode="json", include=_METADATA)


def _correction(label: Label) -> dict[str, Any] | None:
    return {"edited": label.edited, "patch": label.patch} if label.verdict == "edit" else None


def to_langsmith(label: Label) -> list[dict[str, Any]]:
    """A LangSmith feedback record: score 1 when the proposal was approved as it was, 0 when it was not."""
    return [
        {
            "id": label.label_id,
            "run_id": None,  # the console does not know the agent's run; metadata names the item to find it by
            "key": LANGSMITH_KEY,
            "score": None if label.verdict == EXPIRED else (1 if label.verdict == "approve" else 0),
            "value": label.verdict,
            "comment": _comment(label),
            "correction": _correction(label),
            "feedback_source": {"type": "app", "user_name": label.operator, "metadata": _metadata(label)},
            "created_at": label.decided_at.isoformat(),
        }
    ]


def to_langfuse(label: Label) -> list[dict[str, Any]]:
    """A Langfuse categorical score whose value is the verdict; the id makes a re-import an update, not a copy."""
    metadata = _metadata(label)
    if label.verdict == "edit":
        metadata["correction"] = _correction(label)
    return [
        {
            "id": label.label_id,
            "name": LANGFUSE_SCORE,
            "value": label.verdict,
            "dataType": "CATEGORICAL",
            "comment": _comment(label),
            "metadata": metadata,
        }
    ]


def prompt_text(label: Label) -> str:
    """What the agent was answering, as far as the console knows it: who, in which workflow, and the context."""
    task = "propose an action" if label.kind == "approval" else "produce an output"
    lines = [f"agent: {label.agent}"]
    if label.workflow:
        lines.append(f"workflow: {label.workflow}")
    lines.append(f"task: {task}")
    if label.context_summary:
        lines.append(f"context: {label.context_summary}")
    return "\n".join(lines)


def completion_text(label: Label, value: Any) -> str:
    """An action call as JSON ({"action", "args"}); an escalation's output as text when it is text, else JSON."""
    if label.kind == "approval":
        value = {"action": label.action_name, "args": value}
    elif isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)  # text inside a record: the record escapes it


def to_preference(label: Label) -> list[dict[str, Any]]:
    if label.verdict != "edit":
        return []
    return [
        {
            "prompt": prompt_text(label),
            "chosen": completion_text(label, label.edited),
            "rejected": completion_text(label, label.proposed),
        }
    ]


def to_kto(label: Label) -> list[dict[str, Any]]:
    if label.verdict == EXPIRED:
        return []  # nobody judged it
    prompt = prompt_text(label)
    proposed = {"prompt": prompt, "completion": completion_text(label, label.proposed)}
    if label.verdict == "edit":
        edited = {"prompt": prompt, "completion": completion_text(label, label.edited)}
        return [{**proposed, "label": False}, {**edited, "label": True}]
    return [{**proposed, "label": label.verdict == "approve"}]


FORMATTERS: dict[str, Callable[[Label], list[dict[str, Any]]]] = {
    "labels": to_labels,
    "langsmith": to_langsmith,
    "langfuse": to_langfuse,
    "preference": to_preference,
    "kto": to_kto,
}
