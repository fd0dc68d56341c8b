"""Export: every format against its target shape, filters, redaction everywhere, the CLI, and a million labels."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from jsonpatch import apply_patch  # an independent RFC 6902 implementation

from console import cli
from storage.connection import open_readonly
from storage.db import Store
from storage.export import FORMATS, ExportFilter, export_labels
from storage.labels import REDACTED, Label, build_label, create_labels_table, record_json
from storage.records import Verdict
from tests import factories
from tests.export_data import with_v2
from tests.label_data import SECRET, SHOWN, decision_on, open_labels_db, sample_labels, store_labels

# Issue 12: the trace id is required (FeedbackCreate) and "app" is no source type the SDK knows.
LANGSMITH_FIELDS = {
    *("id", "run_id", "trace_id", "key", "score", "value", "comment", "correction", "feedback_source", "created_at")
}
LANGSMITH_SOURCE_TYPES = {"api", "model"}  # langsmith FeedbackSourceType
# Issue 12: a target (traceId, with the observation) and a timestamp, so a re-import updates the score.
LANGFUSE_FIELDS = {"id", "traceId", "observationId", "name", "value", "dataType", "comment", "metadata", "timestamp"}
LANGFUSE_DATA_TYPES = {"NUMERIC", "CATEGORICAL", "BOOLEAN", "CORRECTION"}  # Langfuse ScoreDataType
TRL_EXTRA_COLUMNS = {"label_id", "agent", "reason_code", "trace"}  # issue 12: extra columns TRL ignores


@pytest.fixture
def labelled(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, list[Label]]]:
    conn = open_labels_db(tmp_path / "labels.db")
    labels = [with_v2(label) for label in sample_labels()]  # what a version-2 console records: traces, inputs
    store_labels(conn, labels)
    yield conn, labels
    conn.close()


def export(conn: sqlite3.Connection, fmt: str, filters: ExportFilter | None = None, **options: Any) -> list[Any]:
    out = io.StringIO()
    count = export_labels(conn, out, fmt, filters, **options)
    lines = out.getvalue().splitlines()
    assert count.records == len(lines)
    assert all(line.isascii() for line in lines), "records are ASCII: safe to send to a terminal"
    return [json.loads(line) for line in lines]


def test_labels_format_is_the_complete_record(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled
    exported = [Label.model_validate(r) for r in export(conn, "labels")]
    assert exported == labels, "every label, oldest first, exactly as recorded"
    documented = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    undocumented = [name for name in Label.model_fields if f"`{name}`" not in documented]
    assert undocumented == [], "README.md documents every field of the labels format"


def test_langsmith_records_are_feedback(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled
    records = export(conn, "langsmith")
    assert len(records) == len(labels)
    for record, label in zip(records, labels, strict=True):
        assert set(record) == LANGSMITH_FIELDS
        assert str(uuid.UUID(record["id"])) == record["id"] == label.label_id
        assert isinstance(record["key"], str) and record["key"]
        assert record["score"] == {"approve": 1, "reject": 0, "edit": 0, "timed_out": None}[label.verdict]
        assert record["value"] == label.verdict
        assert record["comment"] is None or isinstance(record["comment"], str)
        assert record["feedback_source"]["type"] in LANGSMITH_SOURCE_TYPES
        assert record["feedback_source"]["metadata"]["item_id"] == label.item_id
        assert datetime.fromisoformat(record["created_at"]) == label.decided_at
        if label.verdict == "edit":
            assert apply_patch(label.proposed, record["correction"]["patch"]) == record["correction"]["edited"]
        else:
            assert record["correction"] is None
    rejected = next(r for r in records if r["value"] == "reject")
    assert rejected["comment"] == "unsafe: wrong tone"


def test_langfuse_records_are_scores(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled
    records = export(conn, "langfuse")
    corrections = [r for r in records if r["dataType"] == "CORRECTION"]  # issue 12: an edit adds a CORRECTION score
    records = [r for r in records if r["dataType"] != "CORRECTION"]
    assert len(corrections) == sum(label.verdict == "edit" for label in labels)
    assert len(records) == len(labels)
    for record, label in zip(records, labels, strict=True):
        assert set(record) == LANGFUSE_FIELDS
        assert record["dataType"] in LANGFUSE_DATA_TYPES
        assert record["dataType"] == "CATEGORICAL" and record["value"] == label.verdict, "categorical: a string"
        assert isinstance(record["name"], str) and record["name"]
        assert record["id"] == label.label_id and record["metadata"]["agent"] == label.agent
        assert ("correction" in record["metadata"]) == (label.verdict == "edit")


def test_preference_pairs_come_from_edits(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled
    records = export(conn, "preference")
    edits = [label for label in labels if label.verdict == "edit"]
    assert len(records) == len(edits) == 2
    for record, label in zip(records, edits, strict=True):
        assert set(record) == {"prompt", "chosen", "rejected", *TRL_EXTRA_COLUMNS}
        assert all(isinstance(record[k], str) and record[k] for k in ("prompt", "chosen", "rejected"))
        assert f"agent: {label.agent}" in record["prompt"]
    action, reply = records
    assert json.loads(action["chosen"]) == {"action": "issue_refund", "args": edits[0].edited}
    assert json.loads(action["rejected"]) == {"action": "issue_refund", "args": edits[0].proposed}
    assert (reply["chosen"], reply["rejected"]) == (edits[1].edited, edits[1].proposed), "text stays text"


def test_kto_labels_every_human_verdict(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled
    records = export(conn, "kto")
    for record in records:
        assert set(record) == {"prompt", "completion", "label", *TRL_EXTRA_COLUMNS}
        assert isinstance(record["label"], bool) and isinstance(record["prompt"], str)
    # approve: true; reject: false; each edit: false for the proposal and true for the edit; the expiry: nothing.
    assert [r["label"] for r in records] == [True, False, False, True, False, True]
    edit = next(label for label in labels if label.verdict == "edit")
    assert json.loads(records[2]["completion"])["args"] == edit.proposed
    assert json.loads(records[3]["completion"])["args"] == edit.edited


def test_filters_select_by_time_source_agent_and_verdict(labelled: tuple[sqlite3.Connection, list[Label]]) -> None:
    conn, labels = labelled

    def ids(**filters: Any) -> list[str]:
        return [r["label_id"] for r in export(conn, "labels", ExportFilter(**filters))]

    at = [label.decided_at.timestamp() for label in labels]
    assert ids(since=at[1], until=at[3]) == [labels[1].label_id, labels[2].label_id], "since inclusive, until not"
    assert ids(sources=["support"]) == [label.label_id for label in labels if label.source == "support"]
    assert ids(agents=["billing-agent"]) == [labels[0].label_id, labels[2].label_id]
    assert ids(verdicts=["edit", "timed_out"]) == [label.label_id for label in labels[2:]]
    assert ids(sources=["support"], verdicts=["reject"], since=at[0]) == [labels[1].label_id]
    assert ids(agents=["nobody"]) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_redaction_removes_named_keys_everywhere_in_every_format(
    labelled: tuple[sqlite3.Connection, list[Label]], fmt: str
) -> None:
    conn, _ = labelled
    assert SECRET in json.dumps(export(conn, fmt)), "unredacted, the secret is there to be removed"
    masked = json.dumps(export(conn, fmt, redact_keys=["api_key"]))
    assert SECRET not in masked, "not in what was proposed, what was edited, nor the patch"
    assert "api_key" in masked.lower() and REDACTED in masked, "masked keys stay, with their values hidden"
    dropped = json.dumps(export(conn, fmt, redact_keys=["API_KEY"], drop_redacted=True))
    assert SECRET not in dropped and "api_key" not in dropped.lower() and REDACTED not in dropped


def test_redacted_labels_still_patch_their_proposal_into_their_edit(
    labelled: tuple[sqlite3.Connection, list[Label]],
) -> None:
    conn, _ = labelled
    for record in export(conn, "labels", ExportFilter(verdicts=["edit"]), redact_keys=["api_key"]):
        assert apply_patch(record["proposed"], record["patch"]) == record["edited"]
    [edit, _reply] = export(conn, "labels", ExportFilter(verdicts=["edit"]), redact_keys=["api_key"])
    assert edit["proposed"]["auth"] == {"API_KEY": REDACTED, "scopes": [{"api_key": REDACTED}]}


# ------------------------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A console data dir whose database has labels, one of them from an agent with a hostile name."""
    directory = tmp_path / "data"
    Store(directory / "console.db").close()
    conn = open_labels_db(directory / "console.db")
    hostile = factories.item("itm_h", agent="evil\x1b[2J\u202eagent")
    labels = [*sample_labels(), build_label(hostile, decision_on(hostile, Verdict.approve, seconds=9), None)]
    store_labels(conn, [with_v2(label) for label in labels])
    conn.close()
    return directory


def test_cli_export_writes_a_file_or_stdout(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "kto.jsonl"
    target.parent.mkdir()
    assert cli.main(["export", "--data-dir", str(data_dir), "--format", "kto", "--output", str(target)]) == 0
    assert len(target.read_text().splitlines()) == 7
    assert list(target.parent.iterdir()) == [target], "no partial file left beside it"
    assert "exported 6 labels as 7 records (kto format)" in capsys.readouterr().err

    code = cli.main(
        ["export", "--data-dir", str(data_dir), "--verdict", "edit", "--source", "billing", "--redact", "api_key"]
    )
    out = capsys.readouterr().out
    assert code == 0 and SECRET not in out
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record["verdict"] == "edit" and record["source"] == "billing"

    since = (SHOWN + timedelta(seconds=3)).isoformat()
    assert cli.main(["export", "--data-dir", str(data_dir), "--since", since, "--agent", "support-agent"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    assert cli.main(["export", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "no database at" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", "--data-dir", str(data_dir), "--since", "yesterday-ish"])
    assert "neither a time" in capsys.readouterr().err


def test_cli_stats_in_text_and_json(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stats", "--data-dir", str(data_dir), "--window", "3650d", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["overall"]["total"] == 6
    assert stats["overall"]["counts"] == {"approve": 2, "reject": 1, "edit": 2, "timed_out": 1}
    assert stats["overall"]["approve_rate"] == 0.4 and stats["overall"]["timed_out_rate"] == round(1 / 6, 4)
    assert set(stats["by_agent"]) == {"billing-agent", "support-agent", "evil\x1b[2J\u202eagent"}

    assert cli.main(["stats", "--data-dir", str(data_dir), "--window", "3650d"]) == 0
    text = capsys.readouterr().out
    assert "all agents" in text and "approve  40%" in text and "billing-agent" in text
    assert "\x1b" not in text and "\u202e" not in text, "agent names never reach the terminal raw"

    assert cli.main(["stats", "--data-dir", str(data_dir), "--window", "1h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["total"] == 0, "labels from long ago are outside the window"


# ------------------------------------------------------------------------------------------------ a million labels


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRss:
    """Samples this process's resident memory in the background: the peak, whatever allocates it (SQLite too)."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class CountingSink:
    def __init__(self) -> None:
        self.lines = 0
        self.last = ""

    def write(self, text: str) -> None:
        self.lines += text.count("\n")
        self.last = text


def generate(path: Path, count: int) -> None:
    """`count` labels in the real labels table, written in one transaction (test data: no journal, no fsync).

    The generating connection is closed before the export is measured, so its cache is not counted.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MB: six b-trees grow at once; a small cache thrashes
    create_labels_table(sqlite_utils.Database(conn))
    item = factories.item()
    label = build_label(item, decision_on(item, Verdict.approve), SHOWN)
    template = record_json({**label.model_dump(mode="json"), "label_id": "@ID@"})
    fixed = (label.source, label.item_id, label.item_digest, label.kind, label.agent, label.action_name, label.verdict)
    start = SHOWN.timestamp()
    tail = ("sent", 1, "", 0.0, 0.0, label.outcome)  # sync state, attempts, last error, next attempt, updated, outcome

    def rows() -> Iterator[tuple[Any, ...]]:
        for n in range(count):
            label_id = f"{n:08x}-0000-4000-8000-000000000000"
            record = template.replace("@ID@", label_id)
            yield (label_id, label_id, *fixed, None, "alice", start + n, 3.0, record, *tail)

    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO labels VALUES ({', '.join('?' * 20)})", rows())
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.slow
def test_a_million_labels_export_in_constant_memory(tmp_path: Path) -> None:
    count = 1_000_000
    path = tmp_path / "million.db"
    generate(path, count)
    conn = open_readonly(path)
    sink = CountingSink()
    before = rss_bytes()
    started = time.perf_counter()
    with PeakRss() as memory:
        exported = export_labels(conn, sink, "labels")
    seconds = time.perf_counter() - started
    conn.close()
    growth = (memory.peak - before) / 1e6
    print(f"exported {count:,} labels in {seconds:.1f} s: {count / seconds:,.0f} labels/s, peak RSS +{growth:.1f} MB")
    assert exported.labels == exported.records == sink.lines == count
    assert json.loads(sink.last.splitlines()[-1])["label_id"] == f"{count - 1:08x}-0000-4000-8000-000000000000"
    assert growth < 50, f"memory grew by {growth:.0f} MB while streaming"
