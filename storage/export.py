"""Export labels as JSON Lines, streamed in constant memory, in the formats evaluation and training tools read.

One SELECT walks the labels in time order (a single statement reads one consistent snapshot under WAL) and rows are
fetched a chunk at a time, so a million labels cost what a chunk costs. Redaction happens here, before a record is
formatted, so nothing named leaves the machine in any format, not even as a digest.

Formats (README.md "Feedback" documents each, with what the target tool shows):
- labels: the console's own complete record (storage.labels.Label);
- langsmith: LangSmith feedback, one `FeedbackCreate` body per label, attached to the agent's run or trace;
- langfuse: Langfuse scores (`CreateScoreRequest` bodies) on the agent's trace or session; an edit adds a CORRECTION;
- preference, kto: TRL training data (storage.export_training).
A label a format cannot use (no trace to attach to, a conflict lost, ...) gives no record and is counted by reason.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from storage.export_fields import (
    ExportOptions,
    Redaction,
    Skip,
    emptied_by_redaction,
    label_trace,
)
from storage.export_training import to_kto, to_preference
from storage.labels import TIMED_OUT, Label, record_json

FORMATS = ("labels", "langsmith", "langfuse", "preference", "kto")
TRAINING_FORMATS = ("preference", "kto")
CHUNK = 1000
LANGSMITH_KEY = "human_approval"
LANGFUSE_SCORE = "human_verdict"
LANGFUSE_CORRECTION = "output"  # Langfuse names every correction score "output"
# The correction score of an edit gets a stable id of its own, derived from the label id.
_CORRECTION_NAMESPACE = uuid.UUID("3b0e4a5e-8f61-4c8e-b1a4-2d7c9f0e6a13")


class Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


@dataclass(frozen=True)
class ExportFilter:
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    sources: Sequence[str] = ()
    agents: Sequence[str] = ()
    verdicts: Sequence[str] = ()
    reasons: Sequence[str] = ()  # reason codes

    def where(self) -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.since is not None:
            clauses.append("decided_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("decided_at < ?")
            params.append(self.until)
        columns = (("source", self.sources), ("agent", self.agents), ("verdict", self.verdicts))
        for column, values in (*columns, ("reason_code", self.reasons)):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


@dataclass(frozen=True)
class ExportCount:
    labels: int  # labels read
    records: int  # records written (a format may write none, one or two per label)
    skipped: Mapping[Skip, int] = field(default_factory=dict)  # labels that gave no record, by why


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


Formatter = Callable[[Label, ExportOptions], "list[dict[str, Any]] | Skip"]


def export_labels(
    conn: sqlite3.Connection,
    out: Writable,
    fmt: str = "labels",
    filters: ExportFilter | None = None,
    redact_keys: Sequence[str] = (),
    *,
    drop_redacted: bool = False,
    options: ExportOptions | None = None,
) -> ExportCount:
    """Write the matching labels to `out` as JSON Lines in `fmt`.

    `redact_keys` and `drop_redacted` are a shorthand for `options.redaction` with keys only.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    filters = filters or ExportFilter()
    if options is None:
        options = ExportOptions(redaction=Redaction(redact_keys, drop=drop_redacted))
    options = replace(options, reasons=tuple(filters.reasons))
    convert = FORMATTERS[fmt]
    redaction = options.redaction
    passthrough = fmt == "labels" and not redaction and not options.applied_only
    labels = records = 0
    skipped: Counter[Skip] = Counter()
    lines: list[str] = []
    for text in label_records(conn, filters):
        labels += 1
        if passthrough:
            lines.append(text)  # the stored record is the `labels` format: no need to parse it
        else:
            original = Label.model_validate_json(text)
            label = redaction.label(original)
            made = _records(original, label, convert, options)
            if isinstance(made, Skip):
                skipped[made] += 1
            else:
                lines.extend(record_json(record) for record in made)
        if len(lines) >= CHUNK:
            records += _flush(out, lines)
    records += _flush(out, lines)
    return ExportCount(labels, records, dict(skipped))


def _records(original: Label, label: Label, convert: Formatter, options: ExportOptions) -> list[dict[str, Any]] | Skip:
    if options.applied_only and label.outcome != "applied":
        return Skip.not_applied
    if emptied_by_redaction(original, label):
        return Skip.redacted_away
    return convert(label, options)


def _flush(out: Writable, lines: list[str]) -> int:
    count = len(lines)
    if count:
        out.write("\n".join(lines) + "\n")
        lines.clear()
    return count


# --------------------------------------------------------------------------------------------------------- formats


def to_labels(label: Label, options: ExportOptions) -> list[dict[str, Any]]:
    return [label.model_dump(mode="json")]


def _comment(label: Label) -> str | None:
    parts = [p for p in (label.reason_code, label.comment) if p]
    return ": ".join(parts) if parts else None


# Where a label came from: what an importer needs to find the item, and to slice by.
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
    "verdict",
    "reason_code",
    "operator",
    "decided_at",
    "seconds_to_decide",
}


def _metadata(label: Label) -> dict[str, Any]:
    return {**label.model_dump(mode="json", include=_METADATA), "outcome": label.outcome}


def _correction(label: Label) -> dict[str, Any] | None:
    return {"edited": label.edited, "patch": label.patch} if label.verdict == "edit" else None


def _uuid(value: Any) -> str | None:
    """A LangSmith id (a UUID) in canonical form, or None when the value is none."""
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def to_langsmith(label: Label, options: ExportOptions) -> list[dict[str, Any]] | Skip:
    """A LangSmith feedback body (`FeedbackCreate`) on the agent's run, else its trace: score 1 approved as proposed.

    `create_feedback` keeps only `feedback_source.metadata` of the source, so the operator and the time are there too.
    """
    trace = label_trace(label)
    run_id, trace_id = _uuid(trace.get("run_id")), _uuid(trace.get("trace_id"))
    if run_id is None and trace_id is None:
        return Skip.no_trace
    return [
        {
            "id": label.label_id,
            "run_id": run_id,
            "trace_id": trace_id,
            "key": LANGSMITH_KEY,
            "score": None if label.verdict == TIMED_OUT else (1 if label.verdict == "approve" else 0),
            "value": label.verdict,
            "comment": _comment(label),
            "correction": _correction(label),
            "feedback_source": {"type": "api", "user_name": label.operator, "metadata": _metadata(label)},
            "created_at": label.decided_at.isoformat(),
        }
    ]


def langsmith_feedback_kwargs(record: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of langsmith's `Client.create_feedback` that send one `langsmith` record as it is."""
    source = record["feedback_source"]
    return {
        "run_id": record["run_id"],
        "trace_id": record["trace_id"],
        "key": record["key"],
        "score": record["score"],
        "value": record["value"],
        "comment": record["comment"],
        "correction": record["correction"],
        "source_info": source["metadata"],
        "feedback_source_type": source["type"],
        "feedback_id": record["id"],
    }


def _langfuse_target(label: Label) -> dict[str, str] | None:
    """Where a score attaches: exactly one of a trace (optionally one of its observations) or a session."""
    trace = label_trace(label)
    if trace.get("trace_id"):
        target = {"traceId": str(trace["trace_id"])}
        if trace.get("observation_id"):
            target["observationId"] = str(trace["observation_id"])
        return target
    if trace.get("session_id"):
        return {"sessionId": str(trace["session_id"])}
    return None


def to_langfuse(label: Label, options: ExportOptions) -> list[dict[str, Any]] | Skip:
    """A categorical score whose value is the verdict; an edit adds the edited output as a CORRECTION score.

    Each score's id is derived from the label id and its timestamp is the decision's, so a re-import updates it.
    """
    target = _langfuse_target(label)
    if target is None:
        return Skip.no_trace
    metadata = _metadata(label)
    if label.verdict == "edit":
        metadata["correction"] = _correction(label)
    common = {**target, "comment": _comment(label), "timestamp": label.decided_at.isoformat()}
    verdict = {"id": label.label_id, "name": LANGFUSE_SCORE, "value": label.verdict, "dataType": "CATEGORICAL"}
    scores = [{**verdict, **common, "metadata": metadata}]
    if label.verdict == "edit":
        edited = label.edited if isinstance(label.edited, str) else record_json(label.edited)
        correction_id = str(uuid.uuid5(_CORRECTION_NAMESPACE, label.label_id))
        correction = {"id": correction_id, "name": LANGFUSE_CORRECTION, "value": edited, "dataType": "CORRECTION"}
        scores.append({**correction, **common, "metadata": metadata})
    return scores


FORMATTERS: dict[str, Formatter] = {
    "labels": to_labels,
    "langsmith": to_langsmith,
    "langfuse": to_langfuse,
    "preference": to_preference,
    "kto": to_kto,
}
