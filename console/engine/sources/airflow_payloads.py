"""Airflow's human-in-the-loop answers, read: pure functions, no HTTP (the transport is airflow.py beside it).

A task of Airflow 3.1+ that waits for a human (ApprovalOperator, HITLOperator, HITLEntryOperator, HITLBranchOperator)
writes a HITL detail: a subject, a body, the options offered (`multiple`: several may be chosen), the `defaults`
Airflow takes when the wait times out, a form of `params` (each with its JSON Schema) and the `assigned_users` who
may answer. The REST API v2 lists them (`GET /api/v2/dags/~/dagRuns/~/hitlDetails`) and takes one answer each
(`PATCH .../taskInstances/{task}/{map_index}/hitlDetails` with `chosen_options` and `params_input`).

Items. One per waiting detail, id `DAG_ID:TASK_ID:MAP_INDEX:RUN_ID` (Airflow keeps ':' out of DAG and task ids; a
run id may hold anything, so it comes last). The action is the answer that approving sends:
`{"chosen_options": [...], "params_input": {...}}`, and its schema is what Airflow accepts: options it offers (one
unless `multiple`), every param with its own schema. So the console's three decisions map onto Airflow's options:
- approve: the proposed answer as shown. Its options are the one named "Approve" (any case) when there is one, else
  the request's `defaults`, else the only option that is not "Reject"; approve is not offered when none is proposed.
- edit: another answer (other options, other param values), checked against the schema before it is sent. It is an
  approval of a different action (PROTOCOL.md section 3), so the "Reject" option is not among its choices. Offered
  when there is something to change: params, more than one other option, or `multiple`.
- reject: the option named "Reject" (any case), with no params input; not offered when there is no such option.
Subject and body are the agent's claims (summary, reasoning), shown literally; the engine's names (DAG, run, task,
map index, operator, options, assigned users) go to `context.evidence` and a link to the task's "required actions"
page in the Airflow UI to `context.links`. Airflow's REST API does not publish the deadline it enforces (the task's
`response_timeout`), so `expires_at` is null and `on_expiry` says what Airflow does then (takes the defaults, or
fails the task). Risk: Airflow has no such field, every item is `medium`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from console.engine.sources.base import DecisionAnswer, Rejected, excerpt, read_rows, validate_items
from console.engine.sources.native_payloads import describe_outcome
from storage.records import Decision, Item, Outcome, SyncState, Verdict, item_digest, shown_part

RISK = "medium"
APPROVE, REJECT = "approve", "reject"  # the options, compared case-insensitively, that mean the console's verdicts
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,250}")  # Airflow's DAG and task ids (KEY_REGEX), never ':'


@dataclass(frozen=True)
class Detail:
    """One HITL detail as the listing (or the detail answer) shows it: the engine's names, and the raw detail."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    created_at: str
    raw: dict[str, Any]
    size: int  # bytes of its JSON as Airflow sent it (re-encoded compactly)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def answered(self) -> bool:
        return self.raw.get("response_received") is True

    @property
    def responded_by(self) -> tuple[str, str]:
        """(id, name) of who answered, ("", "") when nobody has."""
        user = self.raw.get("responded_by_user")
        if not isinstance(user, dict):
            return "", ""
        return str(user.get("id", ""))[:200], str(user.get("name", ""))[:200]

    @property
    def chosen_options(self) -> list[str]:
        chosen = self.raw.get("chosen_options")
        return [str(option) for option in chosen] if isinstance(chosen, list) else []

    @property
    def fingerprint(self) -> str:
        """What the item is made of: a detail whose fingerprint is unchanged is not translated again."""
        shown = {k: self.raw.get(k) for k in ("options", "subject", "body", "defaults", "multiple", "params")}
        shown |= {"assigned_users": self.raw.get("assigned_users"), "created_at": self.created_at}
        return json.dumps(shown, sort_keys=True, default=repr)


@dataclass(frozen=True)
class Pending:
    """A waiting detail translated: the item, and the options each verdict sends."""

    item: Item
    detail: Detail
    reject_option: str | None


# ------------------------------------------------------------------ reading
def read_detail(raw: Any) -> Detail | None:
    """A detail of a listing (or of `GET .../hitlDetails`); None when it does not say which task it belongs to."""
    if not isinstance(raw, dict):
        return None
    ti = raw.get("task_instance")
    if not isinstance(ti, dict):
        return None
    dag_id, run_id, task_id, map_index = ti.get("dag_id"), ti.get("dag_run_id"), ti.get("task_id"), ti.get("map_index")
    if not all(isinstance(v, str) and v for v in (dag_id, run_id, task_id)):
        return None
    if isinstance(map_index, bool) or not isinstance(map_index, int):
        return None
    created = raw.get("created_at")
    size = len(json.dumps(raw, separators=(",", ":"), default=repr).encode())
    created_at = created if isinstance(created, str) else ""
    return Detail(str(dag_id), str(run_id), str(task_id), map_index, created_at, raw, size)


def read_collection(body: Any) -> tuple[list[Detail], list[Rejected], int]:
    """A listing answer: its details, the ones without task names (rejected), and `total_entries`.

    Raises ValueError when the answer is not a listing of HITL details at all.
    """
    if not isinstance(body, dict):
        raise ValueError("answered a HITL listing with something that is not a JSON object")
    rows, total = body.get("hitl_details"), body.get("total_entries")
    if not isinstance(rows, list) or isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError("answered a HITL listing with the wrong shape")
    details, rejected = read_rows(rows, read_detail, "?hitl", "a HITL detail without its DAG, run, task and map index")
    return details, rejected, total


# -------------------------------------------------------------- translation
def item_id(dag_id: str, task_id: str, map_index: int, run_id: str) -> str:
    return f"{dag_id}:{task_id}:{map_index}:{run_id}"


def parse_item_id(value: str) -> tuple[str, str, str, int] | None:
    """(DAG id, run id, task id, map index) of an item id of this source; None for any other id."""
    parts = value.split(":", 3)
    if len(parts) != 4 or not parts[3] or not _NAME.fullmatch(parts[0]) or not _NAME.fullmatch(parts[1]):
        return None
    if not re.fullmatch(r"-?[0-9]{1,9}", parts[2]):
        return None
    return parts[0], parts[3], parts[1], int(parts[2])


def ui_link(ui_url: str, detail: Detail) -> str:
    """The task's "required actions" page, where Airflow's own UI answers it."""
    dag, run, task = (quote(part, safe="") for part in (detail.dag_id, detail.run_id, detail.task_id))
    return f"{ui_url}/dags/{dag}/runs/{run}/tasks/{task}/required_actions?" + urlencode({"map_index": detail.map_index})


def translate(source: str, detail: Detail, *, ui_url: str, max_item_bytes: int) -> Pending | Rejected:
    """A waiting detail as an item, or why it cannot be one (quarantined with the reason)."""
    raw = detail.raw
    where = item_id(detail.dag_id, detail.task_id, detail.map_index, detail.run_id)[:200]
    if detail.size > max_item_bytes:
        reason = f"the HITL detail is {detail.size:,} bytes, over this source's cap of {max_item_bytes:,}"
        return Rejected(where, reason + " (max_item_bytes)", "")
    if not _NAME.fullmatch(detail.dag_id) or not _NAME.fullmatch(detail.task_id):
        return Rejected(where, "a DAG or task id Airflow would not have made (letters, digits, '_.-')", excerpt(raw))
    problem = _shape_problem(raw)
    if problem:
        return Rejected(where, problem, excerpt(raw))
    options: list[str] = raw["options"]
    params: dict[str, Any] = raw.get("params") or {}
    multiple = raw.get("multiple") is True
    defaults: list[str] = raw.get("defaults") or []
    reject = _named(options, REJECT)
    others = [option for option in options if option != reject]
    proposed = _proposed(options, defaults, reject)
    allowed = [APPROVE] if proposed else []
    if others and (params or len(others) > 1 or multiple):
        allowed.append("edit")
    if reject is not None:
        allowed.append(REJECT)
    if not allowed:
        return Rejected(where, f"no answer of Airflow's maps onto a decision here (options {options})", excerpt(raw))
    values = {name: param.get("value") for name, param in params.items()}
    payload: dict[str, Any] = {
        "id": where,
        "kind": "approval",
        "agent": _display(raw, detail),
        "workflow": detail.dag_id,
        "action": {
            "name": detail.task_id,
            "args": {"chosen_options": proposed, "params_input": values},
            "args_schema": answer_schema(others, multiple, params),
        },
        "context": {
            "summary": raw.get("subject", ""),
            "reasoning": raw.get("body") or "",
            "evidence": _names(detail, defaults),
            "links": [ui_link(ui_url, detail)] if ui_url else [],
        },
        "risk": RISK,
        "policy": f"an Airflow human-in-the-loop task ({_operator(raw)})",
        "created_at": detail.created_at,
        "expires_at": None,
        "on_expiry": _on_expiry(defaults, reject, options),
        "allowed_decisions": allowed,
    }
    try:
        payload["digest"] = item_digest(shown_part(payload))
    except (ValueError, TypeError, RecursionError) as exc:  # rfc8785's errors are ValueErrors
        return Rejected(where, f"the HITL detail cannot be canonicalised: {str(exc)[:160]}", excerpt(raw))
    items, rejected = validate_items(source, [payload])
    if rejected:
        return rejected[0]
    return Pending(items[0], detail, reject)


def answer_schema(options: list[str], multiple: bool, params: dict[str, Any]) -> dict[str, Any]:
    """What Airflow accepts as an answer other than the reject option: offered options, every param by its schema."""
    chosen: dict[str, Any] = {"type": "array", "items": {"enum": options}, "minItems": 1, "uniqueItems": True}
    if not multiple:
        chosen["maxItems"] = 1
    form = {
        "type": "object",
        "properties": {name: param.get("schema") or {} for name, param in params.items()},
        "required": sorted(params),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"chosen_options": chosen, "params_input": form},
        "required": ["chosen_options", "params_input"],
        "additionalProperties": False,
    }


def _shape_problem(raw: dict[str, Any]) -> str:
    """Why a detail is not one Airflow makes (its own API models say what it sends), or ""."""
    options = raw.get("options")
    if not isinstance(options, list) or not options or not all(isinstance(o, str) and o for o in options):
        return "options must be a non-empty list of names"
    if len(set(options)) != len(options):
        return "options name the same choice twice"
    if not isinstance(raw.get("subject"), str):
        return "the subject must be text"
    if raw.get("body") is not None and not isinstance(raw.get("body"), str):
        return "the body must be text or null"
    defaults = raw.get("defaults")
    if defaults is not None and (
        not isinstance(defaults, list) or not all(isinstance(d, str) and d in options for d in defaults)
    ):
        return "defaults must be a list of the options offered"
    if not isinstance(raw.get("multiple", False), bool):
        return "multiple must be true or false"
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        return "params must be an object"
    for name, param in params.items():
        if not isinstance(param, dict) or not isinstance(param.get("schema", {}), dict):
            return f"param {name[:60]!r} must be an object with a schema object"
    if not isinstance(raw.get("created_at"), str):
        return "a HITL detail without created_at"
    return ""


def _named(options: list[str], name: str) -> str | None:
    return next((option for option in options if option.casefold() == name), None)


def _proposed(options: list[str], defaults: list[str], reject: str | None) -> list[str]:
    approve = _named(options, APPROVE)
    if approve is not None:
        return [approve]
    chosen = [option for option in defaults if option != reject]
    if chosen:
        return chosen
    others = [option for option in options if option != reject]
    return others if len(others) == 1 else []


def _on_expiry(defaults: list[str], reject: str | None, options: list[str]) -> str:
    if not defaults:
        return "Airflow fails the task (it has no defaults)"
    if defaults == [reject]:
        return REJECT
    if defaults == [_named(options, APPROVE)]:
        return APPROVE
    return "Airflow chooses " + ", ".join(defaults)


def _display(raw: dict[str, Any], detail: Detail) -> str:
    ti = raw.get("task_instance") or {}
    shown = ti.get("dag_display_name")
    return shown if isinstance(shown, str) and shown.strip() else detail.dag_id


def _operator(raw: dict[str, Any]) -> str:
    operator = (raw.get("task_instance") or {}).get("operator")
    return operator[:100] if isinstance(operator, str) and operator else "a HITL operator"


def _names(detail: Detail, defaults: list[str]) -> list[str]:
    """The engine's own names, so the operator can find the task in Airflow."""
    raw = detail.raw
    names = [
        f"Airflow DAG id: {detail.dag_id}",
        f"DAG run id: {detail.run_id}",
        f"task id: {detail.task_id}",
        f"map index: {detail.map_index}",
        f"options offered: {', '.join(raw['options'])}" + (" (several may be chosen)" if raw.get("multiple") else ""),
    ]
    if defaults:
        names.append(f"defaults on timeout: {', '.join(defaults)}")
    users = raw.get("assigned_users")
    if isinstance(users, list) and users:
        shown = [str(u.get("name") or u.get("id")) if isinstance(u, dict) else str(u) for u in users]
        names.append(f"assigned to: {', '.join(shown)}")
    return names


# ------------------------------------------------------------------ deciding
def answer_for(decision: Decision, pending: Pending) -> dict[str, Any]:
    """The PATCH body a decision sends: the item's proposed answer (approve), the edited one, or the reject option."""
    if decision.verdict is Verdict.reject:
        return {"chosen_options": [pending.reject_option], "params_input": {}}
    answer = decision.edited if decision.verdict is Verdict.edit else pending.item.action.args  # type: ignore[union-attr]
    if not isinstance(answer, dict):
        return {"chosen_options": [], "params_input": {}}
    return {"chosen_options": answer.get("chosen_options"), "params_input": answer.get("params_input", {})}


def answered_answer(detail: Detail, sent: dict[str, Any] | None, user: str) -> DecisionAnswer:
    """A decision for a detail that has its answer already: ours (a resend after a crash) is applied, another's is a
    conflict, by whom Airflow says, and the defaults Airflow took when the wait timed out (no responder) expired."""
    by_id, by_name = detail.responded_by
    chosen = detail.chosen_options
    if not by_id and not by_name:  # nobody: Airflow's timeout answered with the defaults
        on_expiry = {"on_expiry": ", ".join(chosen)}
        return DecisionAnswer(SyncState.conflict, Outcome.expired.value, describe_outcome("expired", {}), on_expiry)
    shown: dict[str, Any] = {"decided_by": by_name or by_id, "verdict": ", ".join(chosen)}
    shown["decided_at"] = detail.raw.get("responded_at")
    if user and by_id == user and sent is not None and chosen == sent.get("chosen_options"):
        return DecisionAnswer(SyncState.applied, Outcome.applied.value, "applied", shown)
    who = by_name or by_id
    detail_text = f"already answered in Airflow by {who} ({', '.join(chosen) or 'no option'})"
    return DecisionAnswer(SyncState.conflict, Outcome.conflict.value, detail_text, shown)


def refusal_answer(status: int, body: dict[str, Any] | None) -> DecisionAnswer | None:
    """What a 400 or 403 to the PATCH means, or None for any other status. Airflow's reason stays data."""
    reason = _reason(body)
    if status in {400, 422}:  # an option not offered, several where one is allowed, a malformed body
        shown = {"detail": reason, "errors": [{"in": "body", "path": "/chosen_options", "message": reason}]}
        return DecisionAnswer(SyncState.conflict, Outcome.invalid.value, f"Airflow refused the answer: {reason}", shown)
    if status == 403 and "not a respondent" in reason:  # credentials fine, but not among assigned_users: not ours
        detail = f"not yours: Airflow lets only the task's assigned users answer it ({reason})"
        return DecisionAnswer(SyncState.conflict, Outcome.unauthorized.value, detail, {"detail": reason})
    return None


def _reason(body: dict[str, Any] | None) -> str:
    detail = (body or {}).get("detail")
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in detail[:3])
    return str(detail if detail is not None else "no reason given")[:300]
