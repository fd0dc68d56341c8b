"""The label as an export reads it: every member its stored record holds, and redaction that leaves no trace.

Label version 2 adds `trace`, `inputs`, `reasoning` and `outcome` (README.md "Labels"); records written before it read
them as None (the labels migration fills what it can), so they export alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from storage.json_diff import json_patch
from storage.labels import REDACTED, Label, redact

# Free text the agent or the operator wrote: where --redact-text patterns are masked.
_TEXT_FIELDS = ("context_summary", "policy", "comment", "reasoning")


def label_trace(label: Label) -> dict[str, Any]:
    """The label's trace object (PROTOCOL.md section 1), {} when it has none."""
    return dict(label.trace or {})


class Redaction:
    """What an export hides: argument keys (`--redact`) and patterns in free text (`--redact-text`).

    A digest over a redacted value would give it back to anyone who can guess candidates (an unsalted sha256 of a
    customer id falls to a dictionary in seconds), so a label that redaction changed loses its digests.
    """

    def __init__(self, keys: Sequence[str] = (), patterns: Sequence[str] = (), *, drop: bool = False) -> None:
        self.keys = list(keys)
        self.patterns = [re.compile(p) for p in patterns]
        self.drop = drop

    def __bool__(self) -> bool:
        return bool(self.keys or self.patterns)

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        """Keys masked (or dropped) at any depth, then patterns masked in every string, keys and values."""
        value = redact(value, self.keys, drop=self.drop)
        if not self.patterns:
            return value

        def walk(node: Any) -> Any:
            if isinstance(node, str):
                return self.text(node)
            if isinstance(node, dict):
                return {self.text(k): walk(v) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        return walk(value)

    def label(self, label: Label) -> Label:
        """The label with what it hides hidden; the patch recomputed from the redacted values."""
        if not self:
            return label
        update: dict[str, Any] = {
            "proposed": self.value(label.proposed),
            "edited": self.value(label.edited),
            "inputs": self.value(label.inputs),
        }
        for name in _TEXT_FIELDS:
            text = getattr(label, name, None)
            if isinstance(text, str):
                update[name] = self.text(text)
        if label.verdict == "edit":
            update["patch"] = json_patch(update["proposed"], update["edited"])
        changed = any(update[name] != getattr(label, name, None) for name in update)
        if changed:
            update["edited_digest"] = None
            update["item_digest"] = ""  # a required string: empty, as in drop mode no marker may remain
        return label.model_copy(update=update)


class Skip(StrEnum):
    """Why a label gave no record in a format: counted, and reported in one line each (`Skip.message`)."""

    no_trace = "no_trace"
    conflict_lost = "conflict_lost"
    not_applied = "not_applied"
    uninformative = "uninformative"
    no_input = "no_input"
    redacted_away = "redacted_away"

    def message(self, count: int) -> str:
        one = count == 1
        labels, were, had = f"{count} label{'' if one else 's'}", "was" if one else "were", "it" if one else "they"
        return {
            Skip.no_trace: f"{labels} had no trace and {were} not exported: the item named no run, trace or session"
            " to attach feedback to (PROTOCOL.md section 1, `trace`)",
            Skip.conflict_lost: f"{labels} lost a conflict (another operator decided first): never training data",
            Skip.not_applied: f"{labels} {were} not applied and left out (--applied-only)",
            Skip.uninformative: f"{labels} rejected for a reason that says nothing about the output (duplicate,"
            f" needs_more_context) {were} left out of KTO (--reason CODE keeps them)",
            Skip.no_input: f"{labels} on escalations with no recorded input {were} left out: a prompt without it"
            " would ask the model to judge what it never saw",
            Skip.redacted_away: f"{labels} {were} dropped: redaction hid the whole change {had} recorded (chosen =="
            " rejected, or an edit whose patch became empty)",
        }[self]


@dataclass(frozen=True)
class ExportOptions:
    """How labels become records, beyond which labels (ExportFilter) and in which format."""

    redaction: Redaction = field(default_factory=Redaction)
    chat: bool = False  # training formats: conversational (messages, tool calls, a `tools` column)
    applied_only: bool = False  # only labels whose decision was applied
    # Reason codes asked for by name (export_labels copies them from ExportFilter.reasons): KTO keeps those rejects
    # even when their reason says nothing about the output.
    reasons: Sequence[str] = ()


def emptied_by_redaction(original: Label, redacted: Label) -> bool:
    """An edit whose whole change was hidden: nothing is left to learn from it."""
    return original.verdict == "edit" and bool(original.patch) and not redacted.patch
