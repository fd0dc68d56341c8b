"""The protocol's rules (PROTOCOL.md), shared by the demo fleet and `serve`: limits, JSON conventions, idempotency,
the checks a decision, an edit or a label batch must pass, and what a decided item answers. Pure: the state and the
transport live elsewhere."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from console.engine import schema_check
from storage.json_diff import pointer, unique_members
from storage.records import item_digest

if TYPE_CHECKING:
    from console.servers.protocol.state import Record

PROTOCOL = "approval-console/1"
MAX_WAIT = 30.0
DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
MAX_BODY = 16 * 1024 * 1024
MAX_ERRORS = 50
CLAIM_LEASE = 60.0  # seconds a claim lasts unless renewed (PROTOCOL.md section 5)
VERDICTS = ("approve", "reject", "edit")
# Filled in by the server, never by the agent (`approvals`: who approved a two-person item so far).
SERVER_FIELDS = ("id", "digest", "seq", "claimed_by", "source", "approvals")

Answer = tuple[int, bytes, dict[str, str]]


def rfc3339(ts: float) -> str:
    """UTC RFC 3339; whole seconds unless the time has a fraction (then milliseconds)."""
    if ts == int(ts):
        return _whole_seconds(int(ts))
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=4096)  # a bulk load formats the same few thousand seconds over and over
def _whole_seconds(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_answer(status: int, value: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, encode(value), headers or {}


def error_answer(status: int, name: str, detail: str, **extra: Any) -> Answer:
    return json_answer(status, {"error": name, "detail": detail, **extra})


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


# PROTOCOL.md conventions: a body with a duplicate member name is refused, never read one way or the other.
_unique_names = unique_members(lambda _name: ValueError("duplicate member name"))


def parse_json(raw: bytes) -> tuple[Any, bool]:
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite, object_pairs_hook=_unique_names
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, False
    return value, True


def remote_refs(schema: Any) -> list[str]:
    """The `$ref`s of a schema that point outside it: PROTOCOL.md allows only local ones (`#...`)."""
    if isinstance(schema, list):
        return [ref for part in schema for ref in remote_refs(part)]
    if not isinstance(schema, dict):
        return []
    own = [schema["$ref"]] if isinstance(schema.get("$ref"), str) and not schema["$ref"].startswith("#") else []
    return own + [ref for value in schema.values() for ref in remote_refs(value)]


def request_fingerprint(*parts: Any) -> str:
    """What "the same request" means for an idempotency key: the same JSON values, whatever their spelling."""
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


def loads_object(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def parse_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:
        raise ValueError("timestamps need a time zone")
    return moment.timestamp()


def issue(where: str, path: str, message: str) -> dict[str, str]:
    return {"in": where, "path": path, "message": message}


def apply_overrides(payload: dict[str, Any], overrides: Mapping[str, Any], now: float) -> None:
    for name, value in overrides.items():
        if name == "expires_in":
            payload["expires_at"] = rfc3339(now + float(value))
        elif name in ("digest", "seq"):
            continue  # computed by the fleet; a wrong digest is what inject_garbage is for
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone")
            payload[name] = rfc3339(value.timestamp())
        else:
            payload[name] = value


def invalid(problems: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
    first = problems[0]
    return 422, {"outcome": "invalid", "detail": f"{first['path'] or '/'}: {first['message']}", "errors": problems}


def final_answer(rec: Record) -> tuple[int, dict[str, Any]]:
    removal = rec.removal
    if rec.state == "decided":
        detail = f"decided by {removal['decided_by']} ({removal['verdict']}) at {removal['decided_at']}"
        fields = {k: removal[k] for k in ("decided_by", "verdict", "decided_at")}
        return 409, {"outcome": "conflict", "detail": detail, **fields}
    if rec.state == "expired":
        detail = f"the deadline passed; on_expiry {removal['on_expiry']!r} was applied"
        return 410, {"outcome": "expired", "detail": detail, **{k: removal[k] for k in ("on_expiry", "expired_at")}}
    if rec.state == "superseded":
        return 410, {
            "outcome": "superseded",
            "detail": f"replaced by {removal['superseded_by']}",
            "superseded_by": removal["superseded_by"],
        }
    return 410, {"outcome": "withdrawn", "detail": "the agent withdrew this item"}


def body_problems(body: dict[str, Any]) -> list[dict[str, str]]:
    """The checks that do not depend on the item."""
    problems = []
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        problems.append(issue("body", "/verdict", "must be one of approve, reject, edit"))
    if not isinstance(body.get("item_digest"), str):
        problems.append(issue("body", "/item_digest", "the digest of the version shown is required"))
    for name in ("reason_code", "comment", "operator", "decided_at", "edited_digest"):
        if body.get(name) is not None and not isinstance(body[name], str):
            problems.append(issue("body", f"/{name}", "must be a string or null"))
    if verdict == "reject" and not (isinstance(body.get("reason_code"), str) and body["reason_code"].strip()):
        problems.append(issue("body", "/reason_code", "a reject needs a reason_code"))
    if verdict == "edit":
        if "edited" not in body:
            problems.append(issue("body", "/edited", "an edit carries the edited value"))
        else:
            try:
                actual = item_digest(body["edited"])
            except (ValueError, RecursionError) as exc:
                problems.append(issue("body", "/edited", f"cannot be canonicalised: {exc}"))
            else:
                if body.get("edited_digest") != actual:
                    problems.append(issue("body", "/edited_digest", "does not match the edited value"))
    elif verdict in VERDICTS:
        for name in ("edited", "edited_digest"):
            if body.get(name) is not None:
                problems.append(issue("body", f"/{name}", "only an edit carries an edited value"))
    return problems


def label_problems(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
        return [issue("body", "/labels", "a batch is an object with a 'labels' array")]
    problems = []
    for index, label in enumerate(body["labels"]):
        if not isinstance(label, dict):
            problems.append(issue("body", f"/labels/{index}", "a label is an object"))
            continue
        for name in ("label_id", "item_id"):
            if not isinstance(label.get(name), str) or not label[name]:
                problems.append(issue("body", f"/labels/{index}/{name}", "a non-empty string is required"))
        if label.get("verdict") not in VERDICTS:
            problems.append(issue("body", f"/labels/{index}/verdict", "must be one of approve, reject, edit"))
    return problems[:MAX_ERRORS]


def keyed_request(
    store: dict[str, tuple[str, int, bytes]], key: str | None, raw: bytes, who: str | None
) -> tuple[Any, str, Answer | None]:
    """Idempotency (PROTOCOL.md section 3): a keyed request read against the answers `store` keeps.

    Returns (body, fingerprint, the answer when there is nothing more to do).
    """
    if not key:
        return None, "", error_answer(400, "idempotency_key_required", "send an Idempotency-Key header")
    body, ok = parse_json(raw)
    if not ok:
        return None, "", error_answer(400, "bad_json", "the body is not valid JSON")
    fingerprint = request_fingerprint(who, body)
    stored = store.get(key)
    if stored is None:
        return body, fingerprint, None
    if stored[0] == fingerprint:
        return body, fingerprint, (stored[1], stored[2], {})
    return body, fingerprint, error_answer(409, "idempotency_conflict", "this key was used with another body")


def edit_problems(rec: Record, edited: Any) -> list[dict[str, str]]:
    """Why an edited value does not fit the item (its kind, its `args_schema`), as 422 errors."""
    if rec.item.get("kind") != "escalation" and not isinstance(edited, dict):
        return [issue("body", "/edited", "edited arguments must be a JSON object")]
    action = rec.item.get("action")
    schema = action.get("args_schema") if isinstance(action, dict) else None
    if not isinstance(schema, dict):
        return []
    try:
        if rec.validator is None:
            rec.validator = schema_check.validator_for(schema)  # its own draft; local `$ref`s only (R8)
        errors = sorted(rec.validator.iter_errors(edited), key=lambda e: pointer(e.absolute_path))
    except schema_check.SchemaUnusable as exc:
        return [issue("edited", "", f"the item's args_schema cannot check an edit: {exc}")]
    except Exception as exc:  # e.g. an unresolvable $ref: final for this edit, never a 500 to retry
        return [issue("edited", "", f"the item's args_schema cannot be applied: {type(exc).__name__}")]
    problems = []
    for error in errors[:MAX_ERRORS]:
        path = pointer(error.absolute_path)
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [k for k in error.validator_value if k not in error.instance and repr(k) in error.message]
            path += pointer(missing[:1])
        problems.append(issue("edited", path, error.message))
    return problems


def route_params(pattern: tuple[str, ...], route: list[str]) -> list[str] | None:
    """The path segments a route pattern's `*`s stand for, or None when the path is not this route."""
    if len(pattern) != len(route) or any(p not in ("*", r) for p, r in zip(pattern, route, strict=True)):
        return None
    return [r for p, r in zip(pattern, route, strict=True) if p == "*"]
