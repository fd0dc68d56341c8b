"""Prefect's paused flow runs, translated: pure functions, no HTTP (the transport is prefect.py beside it).

A flow waits for a human with `pause_flow_run(wait_for_input=SomeRunInput.with_initial_data(...), timeout=...)` (or
`suspend_flow_run`). The paused state names three flow-run inputs (`state_details.run_input_keyset`): the RunInput's
JSON Schema, its description, and the key the answer is stored under. Each such paused flow run is one item:

- id `FLOW_RUN_ID:RESPONSE_KEY` (one pause of one flow run; a later pause of the same run has another key);
- the proposed arguments are the schema's defaults (what `with_initial_data` filled in), minus the control fields below;
  the schema without the control fields is the edit schema; the description is the summary;
- the deadline is `pause_timeout` (the flow fails when nobody answers by then);
- tags on the flow run say what Prefect cannot: `agent:NAME`, `action:NAME`, `risk:low|medium|high|critical`,
  `confidence:0.82`, `kind:escalation`, `policy:TEXT`. Without them: agent = the flow's name, action = the RunInput's
  title, risk medium, no confidence, an approval.

Control fields of the RunInput, all optional, filled in by the console when the model declares them:
`approved` (bool: true on approve and edit, false on reject; without it reject is not offered, as the flow could not
tell a rejection from an approval), `reason` (the reject reason and comment), `reviewer` (the operator, informational),
`decision_id` (the console's decision id: read back from the stored answer, it tells a resend after a crash, answered
by us, from an answer given elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from console.engine.sources.base import Rejected, excerpt, validate_items
from storage.labels import Label
from storage.records import Decision, Item, Verdict, item_digest, shown_part

DEFAULT_RISK = "medium"
CONTROL_FIELDS = ("approved", "reason", "reviewer", "decision_id")
PAUSED_TYPES = ("PAUSED",)  # suspend_flow_run is a PAUSED state named "Suspended"
ON_EXPIRY = "fail"  # a pause that times out raises in the flow: the run fails
_TAG_KEYS = ("agent", "action", "risk", "confidence", "kind", "policy")


class InvalidDecision(Exception):
    """The decision cannot become a run input this pause takes: refused here, never sent."""


@dataclass(frozen=True)
class PausedRun:
    """What the listing says about one paused flow run: enough to find its input and to build its item."""

    flow_run_id: str
    state_id: str
    name: str
    flow_id: str
    tags: tuple[str, ...]
    paused_at: str
    pause_timeout: str | None
    schema_key: str
    description_key: str
    response_key: str

    @property
    def item_id(self) -> str:
        return f"{self.flow_run_id}:{self.response_key}"

    @property
    def cache_key(self) -> tuple[str, str]:
        """A pause's input never changes: its schema and description are read once per flow run and state."""
        return (self.flow_run_id, self.state_id)


def paused_run(row: Any) -> PausedRun | Rejected:
    """One row of `POST /flow_runs/filter`, or why it cannot be an item."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
        return Rejected(_anonymous(row), "a flow run without an id", excerpt(row))
    run_id = row["id"]
    state = row.get("state")
    details = state.get("state_details") if isinstance(state, dict) else None
    keyset = details.get("run_input_keyset") if isinstance(details, dict) else None
    if not isinstance(state, dict) or state.get("type") not in PAUSED_TYPES or not isinstance(details, dict):
        return Rejected(run_id, "listed as paused, but its state is not a pause", excerpt(row))
    if not isinstance(keyset, dict) or not all(isinstance(keyset.get(k), str) for k in _KEYSET):
        return Rejected(run_id, "paused without waiting for input (no run_input_keyset): nothing to answer", "")
    timeout = details.get("pause_timeout")
    tags = row.get("tags")
    return PausedRun(
        flow_run_id=run_id,
        state_id=str(state.get("id", "")),
        name=str(row.get("name", "")),
        flow_id=str(row.get("flow_id", "")),
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
        paused_at=str(state.get("timestamp") or row.get("created") or ""),
        pause_timeout=timeout if isinstance(timeout, str) else None,
        schema_key=keyset["schema"],
        description_key=keyset["description"],
        response_key=keyset["response"],
    )


_KEYSET = ("schema", "description", "response")


def tag_values(tags: tuple[str, ...]) -> dict[str, str]:
    """The convention's tags (`risk:high`...), first one of each name wins; other tags are only shown."""
    found: dict[str, str] = {}
    for tag in tags:
        name, sep, value = tag.partition(":")
        if sep and name in _TAG_KEYS and name not in found:
            found[name] = value
    return found


def proposed_args(schema: dict[str, Any]) -> dict[str, Any]:
    """The values the flow proposes: each non-control property's default (set by `with_initial_data`)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if name not in CONTROL_FIELDS and isinstance(spec, dict) and "default" in spec
    }


def edit_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The RunInput's schema without the control fields: what an operator may edit."""
    edited = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        edited["properties"] = {k: v for k, v in properties.items() if k not in CONTROL_FIELDS}
    required = schema.get("required")
    if isinstance(required, list):
        edited["required"] = [k for k in required if k not in CONTROL_FIELDS]
    edited.pop("title", None)
    return edited


def declared(schema: dict[str, Any], name: str, json_type: str) -> bool:
    properties = schema.get("properties")
    spec = properties.get(name) if isinstance(properties, dict) else None
    return isinstance(spec, dict) and spec.get("type") == json_type


def item_payload(
    source: str, run: PausedRun, flow_name: str, schema: Any, description: Any, ui_url: str
) -> dict[str, Any] | Rejected:
    """The item of one paused flow run, digest included; a schema that is not a JSON object cannot be answered."""
    if not isinstance(schema, dict):
        return Rejected(run.item_id, "the pause's run input schema is not a JSON object", excerpt(schema))
    tags = tag_values(run.tags)
    args = proposed_args(schema)
    editable = [k for k in (schema.get("properties") or {}) if k not in CONTROL_FIELDS]
    allowed = [Verdict.approve]
    if declared(schema, "approved", "boolean"):
        allowed.append(Verdict.reject)
    if editable:
        allowed.append(Verdict.edit)
    title = schema.get("title")
    action_name = tags.get("action") or (title if isinstance(title, str) and title else "answer the flow run")
    kind = "escalation" if tags.get("kind") == "escalation" else "approval"
    link = flow_run_link(ui_url, run.flow_run_id)
    evidence = [f"flow: {flow_name or run.flow_id}", f"flow run: {run.name} ({run.flow_run_id})"]
    if run.tags:
        evidence.append("tags: " + ", ".join(sorted(run.tags)))  # Prefect keeps no order: sorted, for a stable digest
    payload: dict[str, Any] = {
        "id": run.item_id,
        "kind": kind,
        "agent": tags.get("agent") or flow_name or "prefect flow",
        "workflow": flow_name,
        "action": {"name": action_name, "args": args if kind == "approval" else {}, "args_schema": edit_schema(schema)},
        "context": {
            "summary": description if isinstance(description, str) else "",
            "evidence": evidence,
            "links": [link] if link else [],
        },
        "risk": tags.get("risk", DEFAULT_RISK),
        "policy": tags.get("policy", "a Prefect flow run paused for input"),
        "created_at": run.paused_at,
        "expires_at": run.pause_timeout,
        "on_expiry": ON_EXPIRY,
        "allowed_decisions": [v.value for v in allowed],
    }
    if "confidence" in tags:
        payload["confidence"] = _number(tags["confidence"])
    if kind == "escalation":
        payload["output"] = args
    payload["digest"] = item_digest(shown_part(payload))
    return payload


def _number(text: str) -> Any:
    """A tag's number, or the text itself: the item check then refuses it with its reason (never a guess)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def run_items(
    source: str, payloads: list[dict[str, Any] | Rejected], max_item_bytes: int
) -> tuple[list[Item], list[Rejected]]:
    """Validate built payloads like any listed item; a payload the item checks refuse, or one over the source's
    size cap (a huge schema or description), is quarantined with its reason."""
    rejected = [p for p in payloads if isinstance(p, Rejected)]
    kept = []
    for payload in payloads:
        if isinstance(payload, Rejected):
            continue
        size = len(json.dumps(payload, separators=(",", ":")).encode())
        if size > max_item_bytes:
            reason = f"the item is {size:,} bytes, over this source's cap of {max_item_bytes:,} (max_item_bytes)"
            rejected.append(Rejected(payload["id"], reason, excerpt({"id": payload["id"], "agent": payload["agent"]})))
        else:
            kept.append(payload)
    items, bad = validate_items(source, kept)
    return items, rejected + bad


# ---------------------------------------------------------------- answers
def run_input(decision: Decision, schema: dict[str, Any]) -> dict[str, Any]:
    """What `POST /flow_runs/{id}/resume` carries for a decision (the server checks it against the schema)."""
    values = proposed_args(schema)
    if decision.verdict is Verdict.edit:
        if not isinstance(decision.edited, dict):
            raise InvalidDecision("edited values must be a JSON object")
        values = {**values, **{k: v for k, v in decision.edited.items() if k not in CONTROL_FIELDS}}
    approved = decision.verdict is not Verdict.reject
    if declared(schema, "approved", "boolean"):
        values["approved"] = approved
    elif not approved:
        raise InvalidDecision("this pause has no 'approved' field: a rejection cannot be told from an approval")
    if declared(schema, "reason", "string"):
        values["reason"] = reason_text(decision)
    if declared(schema, "reviewer", "string"):
        values["reviewer"] = decision.operator
    if declared(schema, "decision_id", "string"):
        values["decision_id"] = decision.id
    return values


def reason_text(decision: Decision) -> str:
    if decision.verdict is Verdict.reject:
        reason = decision.reason_code or "rejected"
        return f"{reason}: {decision.comment}" if decision.comment else reason
    return decision.comment


def answered_by_us(stored: Any, decision_id: str, sent: dict[str, Any] | None) -> bool:
    """Whether the answer stored for a pause is this decision: by its `decision_id` when the model has one, else
    (a model without it) by being exactly the run input this decision makes."""
    if not isinstance(stored, dict):
        return False
    if "decision_id" in stored:
        return bool(stored["decision_id"] == decision_id)
    return sent is not None and stored == sent


def parse_item_id(item_id: str) -> tuple[str, str] | None:
    """`FLOW_RUN_ID:RESPONSE_KEY` -> (flow run id, response key)."""
    run_id, sep, key = item_id.partition(":")
    return (run_id, key) if sep and run_id and key else None


def input_value(raw: Any) -> Any:
    """A flow-run input's value: the input endpoint answers the stored JSON (a filter row holds it as text)."""
    if isinstance(raw, dict) and isinstance(raw.get("value"), str) and "key" in raw:
        try:
            return json.loads(raw["value"])
        except ValueError:
            return None
    return raw


LABEL_METADATA = "approval_console_label_id"  # an artifact's metadata: which label it holds


def label_artifact(flow_run_id: str, label: Label) -> dict[str, Any]:
    """A label as a markdown artifact of its flow run (the JSON in a code block: JSON strings cannot end the block)."""
    body = json.dumps(label.wire_body(), indent=2, ensure_ascii=True, default=str)
    return {
        "type": "markdown",
        "flow_run_id": flow_run_id,
        "description": f"approval-console: {label.verdict} by {label.operator or 'nobody (expired)'}"[:500],
        "data": f"```json\n{body}\n```",
        "metadata_": {LABEL_METADATA: label.label_id},
    }


def labels_held(artifacts: Any) -> set[str]:
    """The label ids a flow run's artifacts hold already (so a resent label is not stored twice)."""
    held: set[str] = set()
    for artifact in artifacts if isinstance(artifacts, list) else []:
        metadata = artifact.get("metadata_") if isinstance(artifact, dict) else None
        label_id = metadata.get(LABEL_METADATA) if isinstance(metadata, dict) else None
        if isinstance(label_id, str):
            held.add(label_id)
    return held


def authorization(token: str) -> str:
    """The Authorization header for a token: a server's auth string (`user:password`, as PREFECT_API_AUTH_STRING)
    goes as HTTP Basic, a Prefect Cloud API key as a bearer token."""
    if ":" in token:
        return "Basic " + base64.b64encode(token.encode()).decode()
    return f"Bearer {token}"


# ------------------------------------------------------------------ links
def ui_base(api_url: str) -> str:
    """The UI's base URL for an API URL: a server's `.../api` -> `...`; Prefect Cloud's API -> its app."""
    parts = urlsplit(api_url)
    path = parts.path.rstrip("/")
    if parts.hostname == "api.prefect.cloud":
        segments = path.split("/")  # /api/accounts/A/workspaces/W
        if len(segments) >= 6 and segments[2] == "accounts" and segments[4] == "workspaces":
            return f"https://app.prefect.cloud/account/{segments[3]}/workspace/{segments[5]}"
        return "https://app.prefect.cloud"
    return f"{parts.scheme}://{parts.netloc}{path.removesuffix('/api')}"


def flow_run_link(ui_url: str, flow_run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/flow-run/{quote(flow_run_id, safe='')}" if ui_url else ""


def deadline_passed(pause_timeout: str | None, now: datetime) -> bool:
    if pause_timeout is None:
        return False
    try:
        when = datetime.fromisoformat(pause_timeout)
    except ValueError:
        return False
    return when.tzinfo is not None and when <= now


def _anonymous(row: Any) -> str:
    return "?" + hashlib.sha256(excerpt(row).encode()).hexdigest()[:12]
