"""Every export loads in the real tools: the langsmith and langfuse SDKs' own models, and `datasets.load_dataset`.

No LangSmith or Langfuse server runs offline, so each line is checked against the SDK's own request models (and the
keyword arguments of langsmith's `Client.create_feedback`, by its signature), plus the server rules Langfuse documents.
The exports come from the CLI over a real console database.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import datasets
import pytest
from langfuse.api import CreateScoreRequest, ScoreDataType
from langfuse.api.core.pydantic_utilities import parse_obj_as
from langsmith import Client
from langsmith.schemas import FeedbackCreate, FeedbackSourceType

from console import cli
from storage.export import langsmith_feedback_kwargs
from storage.export_training import PROMPT_END
from storage.labels import Label
from tests.export_data import CUSTOMER, EMAIL, SUMMARY_ANSWER, TICKET, invoice_labels, with_v2, write_db
from tests.label_data import SECRET, open_labels_db, sample_labels


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The sample labels and the invoice labels as version 2 records them; one lost a conflict, one has no trace."""
    invoices = [with_v2(label, reasoning=f"{EMAIL} wrote about {SUMMARY_ANSWER}") for label in invoice_labels()]
    labels = [*(with_v2(label) for label in sample_labels()), *invoices]
    labels[1] = with_v2(labels[1], trace=None)  # the support reject: its source sent no trace
    labels[-2] = with_v2(labels[-2], outcome="conflict_lost")  # another operator decided first
    return write_db(tmp_path / "data", labels)


Run = Callable[..., tuple[int, list[Any], str]]


@pytest.fixture
def run(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """`approval-console export ARGS` to a file: (exit code, records, stderr)."""

    def call(*args: str) -> tuple[int, list[Any], str]:
        out = tmp_path / f"export-{len(list(tmp_path.iterdir()))}.jsonl"
        code = cli.main(["export", "--data-dir", str(data_dir), "--output", str(out), *args])
        err = capsys.readouterr().err
        records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        return code, records, err

    return call


# ------------------------------------------------------------------------------------------------------- LangSmith


def test_langsmith_lines_are_feedback_the_sdk_accepts(run: Run) -> None:
    code, records, err = run("--format", "langsmith")
    assert code == 0 and len(records) == 9
    assert err.count("had no trace") == 1 and "1 label had no trace and was not exported:" in err
    parameters = inspect.signature(Client.create_feedback).parameters
    for record in records:
        feedback = FeedbackCreate.model_validate(record)
        assert set(record) <= set(FeedbackCreate.model_fields), "nothing the SDK would drop"
        assert feedback.feedback_source is not None
        assert feedback.feedback_source.type in {t.value for t in FeedbackSourceType}
        assert feedback.trace_id is not None and feedback.run_id is not None
        assert feedback.created_at == datetime.fromisoformat(record["created_at"])
        kwargs = langsmith_feedback_kwargs(record)
        inspect.signature(Client.create_feedback).bind(None, **kwargs)  # every argument is one it takes
        assert set(kwargs) <= set(parameters) and kwargs["feedback_id"] == record["id"]
        # create_feedback keeps the source only as its metadata: the operator and the time must be there.
        kept = kwargs["source_info"]
        assert kept["operator"] == record["feedback_source"]["user_name"]
        assert datetime.fromisoformat(kept["decided_at"]) == feedback.created_at
    conflict = next(r for r in records if r["feedback_source"]["metadata"]["outcome"] == "conflict_lost")
    assert conflict["value"] == "reject", "feedback keeps a conflict lost, marked as such"


# -------------------------------------------------------------------------------------------------------- Langfuse


def test_langfuse_lines_are_scores_the_sdk_and_server_rules_accept(run: Run) -> None:
    code, records, err = run("--format", "langfuse")
    assert code == 0 and "1 label had no trace" in err
    edits = 0
    for record in records:
        score = parse_obj_as(CreateScoreRequest, record)
        assert score.model_extra == {}, "every member is one the SDK knows"
        targets = [t for t in (score.trace_id, score.session_id, score.dataset_run_id) if t is not None]
        assert len(targets) == 1, "the server takes exactly one of traceId, sessionId, datasetRunId"
        assert score.observation_id is None or score.trace_id is not None, "an observation only with its trace"
        assert score.id and score.timestamp is not None, "a stable id and a timestamp: a re-import updates"
        if score.data_type is ScoreDataType.CORRECTION:
            edits += 1
            assert score.name == "output" and isinstance(score.value, str)
        else:
            assert score.data_type is ScoreDataType.CATEGORICAL and score.value == record["metadata"]["verdict"]
    assert edits == 4
    _, again, _ = run("--format", "langfuse")
    assert [(r["id"], r["timestamp"]) for r in again] == [(r["id"], r["timestamp"]) for r in records]
    assert len({r["id"] for r in records}) == len(records)


def test_a_trace_with_only_a_session_scores_the_session(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [label] = sample_labels()[:1]
    directory = write_db(tmp_path / "d", [with_v2(label, trace={"session_id": "sess-1", "observation_id": "o-1"})])
    out = tmp_path / "scores.jsonl"
    assert cli.main(["export", "--data-dir", str(directory), "--format", "langfuse", "-o", str(out)]) == 0
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["sessionId"] == "sess-1" and "traceId" not in record and "observationId" not in record
    assert parse_obj_as(CreateScoreRequest, record).session_id == "sess-1"
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------------------- TRL


def load(records: list[Any], tmp_path: Path, name: str) -> datasets.Dataset:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    datasets.disable_progress_bars()
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(loaded, datasets.Dataset)
    return loaded


def test_preference_and_kto_load_and_prompt_from_the_agents_input(run: Run, tmp_path: Path) -> None:
    code, pairs, _ = run("--format", "preference")
    assert code == 0
    loaded = load(pairs, tmp_path, "preference")
    assert loaded.num_rows == 4 and {"prompt", "chosen", "rejected", "label_id", "trace"} <= set(loaded.column_names)
    for row in loaded:
        assert row["prompt"].endswith(PROMPT_END)
        assert SUMMARY_ANSWER not in row["prompt"], "never the agent's summary of its own answer"
        assert "double charge" not in row["prompt"] and "two captures" not in row["prompt"]
    invoice = next(r for r in loaded if "match_payment" in r["prompt"])
    assert json.loads(invoice["chosen"])["args"]["invoice"] == "INV-92918"
    reply = next(r for r in loaded if r["agent"] == "support-agent")
    assert TICKET["text"] in reply["prompt"], "an escalation's prompt carries what the agent was given"

    code, kto, err = run("--format", "kto")
    assert code == 0 and "1 label lost a conflict" in err
    assert "1 label rejected for a reason that says nothing about the output" in err
    loaded = load(kto, tmp_path, "kto")
    assert loaded.num_rows == len(kto) == 11
    assert all(isinstance(label, bool) for label in loaded["label"])
    assert "duplicate" not in loaded["reason_code"]
    code, kept, _ = run("--format", "kto", "--reason", "duplicate")
    assert code == 0 and [r["reason_code"] for r in kept] == ["duplicate"], "named, it is kept"


def test_chat_variant_loads_with_messages_tool_calls_and_tools(run: Run, tmp_path: Path) -> None:
    for fmt in ("preference", "kto"):
        code, records, _ = run("--format", fmt, "--chat", "--agent", "billing-agent")
        assert code == 0 and records
        loaded = load(records, tmp_path, f"{fmt}-chat")
        assert "tools" in loaded.column_names
        for row in loaded:
            [user] = row["prompt"]
            assert user["role"] == "user" and SUMMARY_ANSWER not in user["content"]
            for message in row["chosen"] + row["rejected"] if fmt == "preference" else row["completion"]:
                assert message["role"] == "assistant"
                [call] = message["tool_calls"]
                assert call["function"]["name"] == row["tools"][0]["function"]["name"]
    code, _, err = run("--format", "labels", "--chat")
    assert code != 0 and "--chat" in err and len(err.strip().splitlines()) == 1


def test_filters_and_an_empty_training_export(run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, records, _ = run("--format", "labels", "--applied-only")
    assert code == 0 and {r["outcome"] for r in records} == {"applied"}
    code, records, _ = run("--format", "labels", "--reason", "wrong_target")
    assert code == 0 and {r["reason_code"] for r in records} == {"wrong_target"} and len(records) == 3
    with pytest.raises(SystemExit):
        run("--redact-text", "(unclosed")
    assert "is not a regular expression" in capsys.readouterr().err
    code, records, err = run("--format", "preference", "--verdict", "approve")
    assert code != 0 and records == [] and list(tmp_path.glob("*.partial")) == []
    assert err.strip().endswith("nothing written") and "no preference records" in err


# ------------------------------------------------------------------------------------------------------- redaction


def digests(value: str) -> list[str]:
    hexed = hashlib.sha256(value.encode()).hexdigest()
    return [hexed, f"sha256:{hexed}"]


def test_redaction_leaves_no_value_and_no_digest_in_any_format(data_dir: Path, run: Run) -> None:
    stored = open_labels_db(data_dir / "console.db")
    labels = [Label.model_validate_json(r[0]) for r in stored.execute("SELECT record FROM labels")]
    stored.close()
    secrets = [SECRET, f"{SECRET}-edited", CUSTOMER, EMAIL]
    # the digests of everything that held a secret: the items shown and the edited values
    holding = [label for label in labels if any(s in label.model_dump_json() for s in secrets)]
    held = [d for label in holding for d in (label.item_digest, label.edited_digest) if d]
    needles = [*secrets, *(d for s in secrets for d in digests(s)), *held, *(d.removeprefix("sha256:") for d in held)]
    redact = ["--redact", "api_key", "--redact", "customer_id", "--redact-text", r"[\w.]+@example\.com"]
    variants = [["--format", fmt] for fmt in ("labels", "langsmith", "langfuse", "preference", "kto")]
    variants += [["--format", "preference", "--chat"], ["--format", "kto", "--chat"]]
    for variant in variants:
        code, records, err = run(*variant, *redact)
        text = json.dumps(records)
        assert code == 0 and records, variant
        assert [n for n in needles if n in text] == [], f"{variant}: a redacted value or its digest left"
        assert "[redacted]" in text, variant
        # the edit that changed only the customer id has nothing left once it is hidden: dropped and counted
        assert "1 label was dropped: redaction hid the whole change" in err, variant
    code, records, _ = run("--format", "labels")
    assert code == 0 and CUSTOMER in json.dumps(records), "unredacted, the values are there to be hidden"


def test_a_label_recorded_before_version_2_still_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # As a console before version 2 recorded them: no trace, inputs, reasoning nor outcome.
    v2_members = {"label_version": 1, "trace": None, "inputs": None, "reasoning": None, "outcome": None}
    old = [label.model_copy(update=v2_members) for label in sample_labels()]
    directory = write_db(tmp_path / "old", old)
    out = tmp_path / "kto.jsonl"
    assert cli.main(["export", "--data-dir", str(directory), "--format", "kto", "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in records] == [True, False, True], "approvals train; escalations without input do not"
    assert "2 labels on escalations with no recorded input were left out" in capsys.readouterr().err
    assert cli.main(["export", "--data-dir", str(directory), "--format", "langsmith", "-o", str(out)]) == 0
    assert out.read_text() == "" and "5 labels had no trace" in capsys.readouterr().err
    since = (old[0].decided_at + timedelta(days=1)).isoformat()
    assert cli.main(["export", "--data-dir", str(directory), "--format", "kto", "--since", since]) != 0
    assert "of 0 matching labels" in capsys.readouterr().err
