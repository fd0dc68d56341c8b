"""LangGraph's interrupt payloads, translated: pure functions, no HTTP (the transport is langgraph.py beside it).

It reads three payload families (and shows any other shape raw):

- Agent Inbox `HumanInterrupt`: `[{"action_request": {"action", "args"}, "config": {"allow_accept", "allow_edit",
  "allow_respond", "allow_ignore"}, "description"}]`, answered with a list of `{"type": accept|edit|response|ignore,
  "args"}`, one per request, in order.
- LangChain v1 `HumanInTheLoopMiddleware`, batched: `{"action_requests": [...], "review_configs": [...]}` (or
  camelCase from JS agents, or the older `arguments` key in place of `args`), answered with `{"decisions": [...]}`,
  one per action, in order, in the same spelling.
- The same middleware per call: `{"type": "tool_approval", "name", "args", ...}` with a JSON Schema of the answer in the
  interrupt's `response_schema`, answered with one decision.

Items. Every pending interrupt of every interrupted thread is an item; an interrupt that asks about several actions at
once (a batched middleware request, an Agent Inbox list) is one item per action, so the operator reads and decides each
tool call on its own. The graph needs all of them in one resume, so the adapter holds the decisions of such a request
until the last one arrives and then sends them together (a decision waiting for its siblings stays in the outbox as
"waiting"; after a restart the outbox sends it again, so nothing held in memory can be lost). An unknown shape is an
escalation whose output is the raw payload: the operator answers by editing it (the edited value, e.g. a JSON string,
is the resume value, checked against the interrupt's `response_schema` when it has one), or leaves it alone.

Item ids are `THREAD:INTERRUPT` (plus `:INDEX` for one action of a multi-action request). The digest covers exactly what
is shown, computed here as the native protocol's server would, so a decision binds to the version the operator saw.

Answers. Each item carries how each verdict is answered in its family; an interrupt combines its items' answers into the
one resume value the graph takes. A decision the interrupt cannot take raises `InvalidDecision` (refused here, never
sent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from console.engine.schema_check import schema_problem
from console.engine.sources.base import Rejected, validate_items
from storage.records import Decision, Item, Verdict, item_digest, shown_part

DEFAULT_RISK = "medium"  # LangGraph payloads carry no risk; the operator reads the action itself


@dataclass(frozen=True)
class Request:
    """One decidable action of a pending interrupt, and how each verdict is answered in its family."""

    payload: dict[str, Any]  # the item as the operator sees it, digest included
    answer: Callable[[Decision], Any]  # one answer for this action (raises InvalidDecision)


@dataclass(frozen=True)
class Interrupt:
    """A pending interrupt: its requests, and how their answers combine into one resume value."""

    thread_id: str
    interrupt_id: str
    requests: list[Request]
    combine: Callable[[list[Any]], Any]
    response_schema: dict[str, Any] | None
    run: RaisedBy | None = None  # the run that raised it, and when
    node: str = ""  # the graph node it waits in


class InvalidDecision(Exception):
    """The decision cannot be turned into a resume the graph accepts: refused here, never sent."""


# -------------------------------------------------------------- translation
def translate_state(
    source: str, row: dict[str, Any], state: dict[str, Any], first_seen: Mapping[str, RaisedBy] | None = None
) -> list[Interrupt]:
    """Every pending interrupt of a thread's state, each with one request per decidable action.

    `first_seen`: the run and time already recorded for an interrupt id. Should a later checkpoint (written by a run
    that resumed only some interrupts) raise the others again, what raised them first stays, so their items keep their
    version. (LangGraph 1.2 keeps the interrupted checkpoint until every interrupt of the step is answered.)
    """
    current = raised_by(state)
    nodes: dict[str, str] = {}
    tasks = state.get("tasks")
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict) and isinstance(task.get("interrupts"), list):
            for pending in task["interrupts"]:
                if isinstance(pending, dict) and isinstance(pending.get("id"), str):
                    nodes[pending["id"]] = str(task.get("name", ""))
    seen = first_seen or {}
    return _translated(
        source, row, state.get("interrupts"), nodes, lambda interrupt_id: seen.get(interrupt_id) or current
    )


def translate_listed(
    source: str, row: dict[str, Any], nodes: Mapping[str, str], first_seen: Mapping[str, RaisedBy]
) -> list[Interrupt]:
    """Every pending interrupt of a thread as the thread search answers it (`interrupts`: task id -> list).

    The search names neither the node, nor the run, nor the time of an interrupt (its thread state does): an interrupt
    whose state was read before (`nodes`, `first_seen`) keeps what it said, any other one is provisional, shown with no
    node, no trace and its thread's creation time, as a state that names neither would be, until its state is read.
    """
    listed = row.get("interrupts")
    pending = [i for task in as_dict(listed).values() if isinstance(task, list) for i in task]
    return _translated(source, row, pending, nodes, first_seen.get)


def provisional(source: str, row: dict[str, Any], state: dict[str, Any]) -> list[Interrupt]:
    """A state's interrupts as the listing shows them before the state is read (see `translate_listed`)."""
    return _translated(source, row, state.get("interrupts"), {}, lambda _interrupt_id: None)


def _translated(
    source: str,
    row: dict[str, Any],
    raw: Any,
    nodes: Mapping[str, str],
    run_of: Callable[[str], RaisedBy | None],
) -> list[Interrupt]:
    found: list[Interrupt] = []
    for pending in raw if isinstance(raw, list) else []:
        if not isinstance(pending, dict) or not isinstance(pending.get("id"), str) or not pending["id"]:
            continue
        schema = pending.get("response_schema")
        run = run_of(pending["id"])
        where = Where(source, row, pending["id"], nodes.get(pending["id"], ""), run)
        translated = translate(where, pending.get("value"), schema if isinstance(schema, dict) else None)
        found.append(dataclasses.replace(translated, run=run, node=where.node))
    return found


@dataclass(frozen=True)
class RaisedBy:
    """The run that raised a thread's pending interrupts, as its state says: the checkpoint's metadata names the run
    (`run_id`), and the state's `created_at` is when that checkpoint, the interrupt, was written."""

    run_id: str | None
    raised_at: str | None


def raised_by(state: dict[str, Any]) -> RaisedBy | None:
    """The run and time of a thread state, or None when it names neither (values of another type are ignored)."""
    run_id = as_dict(state.get("metadata")).get("run_id")
    raised_at = state.get("created_at")
    found = RaisedBy(
        run_id if isinstance(run_id, str) and run_id else None,
        raised_at if isinstance(raised_at, str) and raised_at else None,
    )
    return None if found == RaisedBy(None, None) else found


@dataclass(frozen=True)
class Where:
    """What an item says about where its interrupt lives: graph, thread, node, interrupt."""

    source: str
    row: dict[str, Any]
    interrupt_id: str
    node: str
    run: RaisedBy | None = None

    @property
    def thread_id(self) -> str:
        return str(self.row["thread_id"])

    @property
    def agent(self) -> str:
        metadata = as_dict(self.row.get("metadata"))
        name = metadata.get("graph_id") or metadata.get("assistant_id") or self.source
        return str(name)

    def item(
        self,
        index: int | None,
        total: int,
        *,
        kind: str = "approval",
        name: str,
        args: Any,
        description: Any,
        allowed: Iterable[Verdict],
        family: str,
        args_schema: dict[str, Any] | None = None,
        output: Any = None,
    ) -> dict[str, Any]:
        evidence = [f"graph: {self.agent}", f"thread: {self.thread_id}", f"node: {self.node or 'unknown'}"]
        evidence.append(f"interrupt: {self.interrupt_id}")
        if index is not None:
            evidence.append(f"action {index + 1} of {total} in one request: the agent gets all answers together")
        action: dict[str, Any] = {"name": name, "args": args}
        if args_schema is not None:
            action["args_schema"] = args_schema
        payload: dict[str, Any] = {
            "id": f"{self.thread_id}:{self.interrupt_id}" + (f":{index}" if index is not None else ""),
            "kind": kind,
            "agent": self.agent,
            "workflow": self.node,
            "action": action,
            "context": {"summary": description if isinstance(description, str) else "", "evidence": evidence},
            "risk": DEFAULT_RISK,
            "policy": family,
            # When the interrupt was raised; the thread's own creation time only for a state that does not say.
            "created_at": self.run.raised_at if self.run and self.run.raised_at else self.row.get("created_at"),
            "allowed_decisions": [v.value for v in Verdict if v in set(allowed)],
        }
        if self.run is not None and self.run.run_id:
            payload["trace"] = {"run_id": self.run.run_id}
        if kind == "escalation":
            payload["output"] = output
        payload["digest"] = item_digest(shown_part(payload))
        return payload


def translate(where: Where, value: Any, response_schema: dict[str, Any] | None) -> Interrupt:
    """One interrupt value in whichever family it belongs to; an unknown shape becomes an escalation."""
    for reader in (_inbox, _middleware_batch, _tool_approval):
        interrupt = reader(where, value, response_schema)
        if interrupt is not None:
            return interrupt
    return _unknown(where, value, response_schema)


def _reject_message(decision: Decision) -> str:
    """What the agent reads when the operator rejects: the reason code and the comment."""
    reason = decision.reason_code or "rejected"
    return f"Rejected by the operator ({reason}): {decision.comment}" if decision.comment else f"Rejected ({reason})"


def _edited_args(decision: Decision, schema: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(decision.edited, dict):
        raise InvalidDecision("edited arguments must be a JSON object")
    if schema is not None:
        problem = schema_problem(decision.edited, schema)
        if problem is not None:
            raise InvalidDecision(f"edited arguments break the schema: {problem}")
    return decision.edited


def _single(answers: list[Any]) -> Any:
    return answers[0]


def _inbox(where: Where, value: Any, response_schema: dict[str, Any] | None) -> Interrupt | None:
    """Agent Inbox `HumanInterrupt`, as the usual one-element list (or a bare one)."""
    requests = value if isinstance(value, list) else [value]
    if not requests or not all(_is_inbox_request(r) for r in requests):
        return None
    built: list[Request] = []
    for index, request in enumerate(requests):
        name = request["action_request"]["action"]
        config = as_dict(request.get("config"))
        allow = {
            key: config.get(key) is True for key in ("allow_accept", "allow_edit", "allow_respond", "allow_ignore")
        }
        allowed = [Verdict.approve] * allow["allow_accept"] + [Verdict.edit] * allow["allow_edit"]
        allowed += [Verdict.reject] * (allow["allow_respond"] or allow["allow_ignore"])

        def answer(decision: Decision, name: str = name, allow: dict[str, bool] = allow) -> Any:
            if decision.verdict is Verdict.approve and allow["allow_accept"]:
                return {"type": "accept", "args": None}
            if decision.verdict is Verdict.edit and allow["allow_edit"]:
                return {"type": "edit", "args": {"action": name, "args": _edited_args(decision, None)}}
            if decision.verdict is Verdict.reject and allow["allow_respond"]:
                return {"type": "response", "args": _reject_message(decision)}
            if decision.verdict is Verdict.reject and allow["allow_ignore"]:
                return {"type": "ignore", "args": None}
            raise InvalidDecision(f"{decision.verdict.value} is not allowed by this interrupt's config")

        payload = where.item(
            index if len(requests) > 1 else None,
            len(requests),
            name=name,
            args=request["action_request"]["args"],
            description=request.get("description"),
            allowed=allowed,
            family="Agent Inbox interrupt (HumanInterrupt)",
        )
        built.append(Request(payload, answer))
    combine = list if isinstance(value, list) else _single
    return Interrupt(where.thread_id, where.interrupt_id, built, combine, response_schema)


def _is_inbox_request(raw: Any) -> bool:
    if not isinstance(raw, dict) or not isinstance(raw.get("action_request"), dict):
        return False
    action = raw["action_request"]
    return isinstance(action.get("action"), str) and isinstance(action.get("args"), dict)


_SNAKE = {
    "requests": "action_requests",
    "configs": "review_configs",
    "allowed": "allowed_decisions",
    "action": "action_name",
    "schema": "args_schema",
    "edited": "edited_action",
}
_CAMEL = {
    "requests": "actionRequests",
    "configs": "reviewConfigs",
    "allowed": "allowedDecisions",
    "action": "actionName",
    "schema": "argsSchema",
    "edited": "editedAction",
}


def _middleware_batch(where: Where, value: Any, response_schema: dict[str, Any] | None) -> Interrupt | None:
    """`HumanInTheLoopMiddleware` batched: one decision per action request, in order, in the payload's spelling."""
    if not isinstance(value, dict):
        return None
    keys = _SNAKE if "action_requests" in value else _CAMEL if "actionRequests" in value else None
    if keys is None:
        return None
    requests, configs = value.get(keys["requests"]), value.get(keys["configs"])
    if not isinstance(requests, list) or not requests or not isinstance(configs, list):
        return None
    built: list[Request] = []
    for index, request in enumerate(requests):
        if not isinstance(request, dict) or not isinstance(request.get("name"), str):
            return None
        args_key = "args" if "args" in request else "arguments"
        args = request.get(args_key)
        config = _review_config(configs, index, request["name"], keys)
        if not isinstance(args, dict) or config is None:
            return None  # without its review config nobody knows which answers the graph takes
        kinds = {d for d in config[keys["allowed"]] if isinstance(d, str)}
        schema = config.get(keys["schema"]) if isinstance(config.get(keys["schema"]), dict) else None
        payload = where.item(
            index if len(requests) > 1 else None,
            len(requests),
            name=request["name"],
            args=args,
            description=request.get("description"),
            allowed=_verdicts(kinds),
            family="LangChain human-in-the-loop middleware",
            args_schema=schema,
        )
        edited = {"key": keys["edited"], "args": args_key}
        built.append(Request(payload, _decision_answer(request["name"], kinds, schema, edited)))
    return Interrupt(
        where.thread_id, where.interrupt_id, built, lambda answers: {"decisions": answers}, response_schema
    )


def _review_config(configs: list[Any], index: int, name: str, keys: dict[str, str]) -> dict[str, Any] | None:
    candidates = [configs[index]] if index < len(configs) else []
    candidates += configs
    for config in candidates:
        if (
            isinstance(config, dict)
            and config.get(keys["action"]) == name
            and isinstance(config.get(keys["allowed"]), list)
        ):
            return config
    return None


def _verdicts(kinds: set[str]) -> list[Verdict]:
    allowed = [Verdict.approve] * ("approve" in kinds) + [Verdict.edit] * ("edit" in kinds)
    return allowed + [Verdict.reject] * bool(kinds & {"reject", "respond"})


def _decision_answer(
    name: str, kinds: set[str], schema: dict[str, Any] | None, edited: dict[str, str]
) -> Callable[[Decision], Any]:
    """How the middleware's decision types answer each verdict (reject prefers `reject`, else `respond`)."""

    def answer(decision: Decision) -> Any:
        if decision.verdict is Verdict.approve and "approve" in kinds:
            return {"type": "approve"}
        if decision.verdict is Verdict.edit and "edit" in kinds:
            return {"type": "edit", edited["key"]: {"name": name, edited["args"]: _edited_args(decision, schema)}}
        if decision.verdict is Verdict.reject and "reject" in kinds:
            return {"type": "reject", "message": _reject_message(decision)}
        if decision.verdict is Verdict.reject and "respond" in kinds:
            return {"type": "respond", "message": _reject_message(decision)}
        raise InvalidDecision(
            f"{decision.verdict.value} is not among the allowed decisions ({', '.join(sorted(kinds))})"
        )

    return answer


def _tool_approval(where: Where, value: Any, response_schema: dict[str, Any] | None) -> Interrupt | None:
    """The middleware's per-call mode: the allowed decisions are the ones `response_schema` accepts."""
    if not isinstance(value, dict) or value.get("type") != "tool_approval":
        return None
    name, args = value.get("name"), value.get("args")
    if not isinstance(name, str) or not isinstance(args, dict):
        return None
    probes = {
        "approve": {"type": "approve"},
        "edit": {"type": "edit", "edited_action": {"name": name, "args": args}},
        "reject": {"type": "reject", "message": "-"},
        "respond": {"type": "respond", "message": "-"},
    }
    if response_schema is None:
        kinds = {"approve", "edit", "reject"}
    else:
        kinds = {kind for kind, probe in probes.items() if schema_problem(probe, response_schema) is None}
    args_schema = _edit_args_schema(response_schema) if "edit" in kinds else None
    payload = where.item(
        None,
        1,
        name=name,
        args=args,
        description=value.get("description"),
        allowed=_verdicts(kinds),
        family="LangChain human-in-the-loop middleware (per call)",
        args_schema=args_schema,
    )
    answer = _decision_answer(name, kinds, args_schema, {"key": "edited_action", "args": "args"})
    return Interrupt(where.thread_id, where.interrupt_id, [Request(payload, answer)], _single, response_schema)


def _edit_args_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema of an edit's `args` inside a per-call `response_schema`, so the editor checks edits as typed."""
    if schema is None:
        return None
    definitions = as_dict(schema.get("$defs"))

    def resolve(node: Any) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return definitions.get(ref.removeprefix("#/$defs/"))
        return node

    branches = [resolve(b) for b in schema.get("oneOf", schema.get("anyOf", [schema]))]
    for branch in branches:
        properties = branch.get("properties") if isinstance(branch, dict) else None
        if isinstance(properties, dict) and "edited_action" in properties:
            action = resolve(properties["edited_action"])
            args = action.get("properties", {}).get("args") if isinstance(action, dict) else None
            if isinstance(args, dict):
                return {**args, "$defs": definitions} if definitions else args
    return None


def _unknown(where: Where, value: Any, response_schema: dict[str, Any] | None) -> Interrupt:
    """A shape nobody knows: shown raw; the operator's edited value is the answer, or they leave it alone."""

    def answer(decision: Decision) -> Any:
        if decision.verdict is not Verdict.edit:
            raise InvalidDecision("an unknown interrupt can only be answered by editing the answer")
        return decision.edited

    payload = where.item(
        None,
        1,
        kind="escalation",
        name="answer interrupt",
        args={},
        description="The agent asked something in a shape this console does not know. Edit the output into your "
        "answer (any JSON value, e.g. a string) to resume the agent with it, or leave it.",
        allowed=[Verdict.edit],
        family="LangGraph interrupt of an unknown shape",
        args_schema=response_schema,
        output=value,
    )
    return Interrupt(where.thread_id, where.interrupt_id, [Request(payload, answer)], _single, response_schema)


# ------------------------------------------------------------------ helpers
def parse_item_id(item_id: str) -> tuple[str, str, int] | None:
    """`THREAD:INTERRUPT[:INDEX]` -> (thread, interrupt, index)."""
    parts = item_id.split(":")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1], 0
    if len(parts) == 3 and parts[0] and parts[1] and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: payload fields are read without trusting their shape."""
    return value if isinstance(value, dict) else {}


def pending_items(source: str, interrupts: list[Interrupt]) -> tuple[list[Item], list[Rejected]]:
    """The items of a thread's pending interrupts; a payload the item checks refuse is quarantined with its reason."""
    return validate_items(source, [r.payload for i in interrupts for r in i.requests])
