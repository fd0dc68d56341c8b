"""Training data from labels, in TRL's dataset formats: `preference` (DPO) and `kto`, standard or conversational.

The prompt is what the agent was asked, as far as the console knows it: the agent, the workflow, the tool it calls
(approvals) or the input it was given (an escalation's `inputs`, such as the ticket or the clause). Never the agent's
summary or reasoning: those are its own account of its answer and often state it. An approval's arguments are the
answer being judged, so they are never in its prompt. A standard prompt ends with PROMPT_END, so no tokenizer merges
the prompt's last characters with the completion's first.

Extra columns (label_id, agent, reason_code, trace) ride along: TRL's trainers ignore columns they do not use.
"""

from __future__ import annotations

import json
from typing import Any

from storage.export_fields import ExportOptions, Skip, label_trace
from storage.labels import TIMED_OUT, Label

PROMPT_END = "\n\nAssistant:\n"  # a blank line and a role marker: the completion starts on a line of its own
# Reject reasons that say nothing about the output itself: not evidence that the completion was bad.
UNINFORMATIVE_REASONS = frozenset({"duplicate", "needs_more_context"})


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)  # text inside a record: the record escapes it


def _is_proposal(label: Label, inputs: Any) -> bool:
    """Inputs that are the proposal itself (an approval's action and arguments): the answer, not the question."""
    return inputs in (label.proposed, {"action": label.action_name, "args": label.proposed})


def prompt_body(label: Label) -> str | None:
    """What the agent was asked, as text; None for an escalation whose input was not recorded."""
    inputs = label.inputs
    lines = [f"agent: {label.agent}"]
    if label.workflow:
        lines.append(f"workflow: {label.workflow}")
    if label.kind == "approval":
        lines.append(f"task: call {label.action_name}")
        if inputs is not None and not _is_proposal(label, inputs):
            lines.append(f"input: {_json(inputs)}")
        return "\n".join(lines)
    if inputs is None:
        return None
    if isinstance(inputs, dict) and set(inputs) == {"action", "args"}:
        lines.append(f"task: the output of {inputs['action']}")
        lines.append(f"input: {_json(inputs['args'])}")
    else:
        lines.append(f"input: {inputs if isinstance(inputs, str) else _json(inputs)}")
    return "\n".join(lines)


def completion_text(label: Label, value: Any) -> str:
    """An action call as JSON ({"action", "args"}); an escalation's output as text when it is text, else JSON."""
    if label.kind == "approval":
        return _json({"action": label.action_name, "args": value})
    return value if isinstance(value, str) else _json(value)


def _assistant(label: Label, value: Any) -> list[dict[str, Any]]:
    """The completion as one assistant message: a tool call for an approval, the output as content otherwise."""
    if label.kind == "approval":
        call = {"type": "function", "function": {"name": label.action_name, "arguments": value}}
        return [{"role": "assistant", "content": "", "tool_calls": [call]}]
    return [{"role": "assistant", "content": completion_text(label, value)}]


def _tools(label: Label) -> list[dict[str, Any]]:
    if label.kind != "approval":
        return []
    function = {"name": label.action_name, "description": f"{label.action_name}", "parameters": {"type": "object"}}
    return [{"type": "function", "function": function}]


def _extra(label: Label) -> dict[str, Any]:
    return {
        "label_id": label.label_id,
        "agent": label.agent,
        "reason_code": label.reason_code,
        "trace": label_trace(label) or None,
    }


class _Shape:
    """Prompt and completions in the standard (text) or conversational (messages) form."""

    def __init__(self, label: Label, options: ExportOptions, body: str) -> None:
        self.label = label
        self.chat = options.chat
        self.text = options.redaction.text
        self.prompt: Any = [{"role": "user", "content": body}] if self.chat else body + PROMPT_END

    def completion(self, value: Any) -> Any:
        return _assistant(self.label, value) if self.chat else self.text(completion_text(self.label, value))

    def extra(self) -> dict[str, Any]:
        return {**({"tools": _tools(self.label)} if self.chat else {}), **_extra(self.label)}


def _shape(label: Label, options: ExportOptions) -> _Shape | Skip:
    if label.outcome == "conflict_lost":
        return Skip.conflict_lost
    body = prompt_body(label)
    if body is None:
        return Skip.no_input
    return _Shape(label, options, options.redaction.text(body))


def to_preference(label: Label, options: ExportOptions) -> list[dict[str, Any]] | Skip:
    """An edit gives a pair: the edited answer chosen over the proposed one."""
    if label.verdict != "edit":
        return []
    shape = _shape(label, options)
    if isinstance(shape, Skip):
        return shape
    chosen, rejected = shape.completion(label.edited), shape.completion(label.proposed)
    if chosen == rejected:
        return Skip.redacted_away
    return [{"prompt": shape.prompt, "chosen": chosen, "rejected": rejected, **shape.extra()}]


def to_kto(label: Label, options: ExportOptions) -> list[dict[str, Any]] | Skip:
    """Approve: the proposal is desirable; reject: undesirable; edit: the proposal undesirable, the edit desirable."""
    if label.verdict == TIMED_OUT:
        return []  # nobody judged it
    if label.verdict == "reject" and label.reason_code in UNINFORMATIVE_REASONS - set(options.reasons):
        return Skip.uninformative
    shape = _shape(label, options)
    if isinstance(shape, Skip):
        return shape
    proposed = shape.completion(label.proposed)
    records = [{"prompt": shape.prompt, "completion": proposed, "label": label.verdict == "approve", **shape.extra()}]
    if label.verdict == "edit":
        edited = shape.completion(label.edited)
        if edited == proposed:
            return Skip.redacted_away
        records.append({"prompt": shape.prompt, "completion": edited, "label": True, **shape.extra()})
    return records
