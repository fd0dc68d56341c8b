"""Checking a value against an agent-supplied JSON Schema (PROTOCOL.md R8): one implementation for the editor, the
LangGraph adapter and the demo fleet.

The schema comes from the agent side, so it is untrusted:
- `$schema` picks the draft (draft-07, 2019-09, 2020-12; 2020-12 when absent); any other is unusable.
- Only references inside the schema resolve: the registry refuses every URI it is asked to retrieve, so nothing is ever
  fetched from the operator's machine (the meta-schemas ship with jsonschema and need no fetch).
- Any problem with the schema itself (invalid against its meta-schema, an unknown type, `maximum` as a string, a
  pattern Python cannot compile, an unresolvable or endlessly self-referring `$ref`) is a result, "this item's schema
  cannot check an edit: <reason>", never an exception.
- `check_bounded` runs the check in a worker process under a time bound. Python's `re` holds the GIL while it
  backtracks, so a catastrophic pattern (`^(a+)+$` against 'aaaa…!') would stall every thread of the app, the event
  loop included; a process can be killed. The worker is started once and reused (a check costs a pipe round trip),
  and replaced after a kill.

Headless: no textual here (the editor imports this, not the other way round).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft7Validator, Draft201909Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

log = logging.getLogger(__name__)
TIME_BOUND = 5.0  # seconds a check may take in the worker before the schema is called unusable
STARTUP_BOUND = 30.0  # seconds the worker may take to start (a cold interpreter on a busy machine)
MAX_DETAIL = 300  # characters of a reason or a violation kept in a message

DEFAULT_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_DRAFTS: dict[str, type[Validator]] = {
    "http://json-schema.org/draft-07/schema": Draft7Validator,
    "https://json-schema.org/draft/2019-09/schema": Draft201909Validator,
    DEFAULT_DRAFT: Draft202012Validator,
}


class Outcome(StrEnum):
    valid = "valid"
    invalid = "invalid"  # the value breaks the schema: the operator can fix the value
    unusable = "unusable"  # the schema cannot check anything: an edit is refused, approve and reject stay


@dataclass(frozen=True)
class SchemaCheck:
    outcome: Outcome
    detail: str = ""  # invalid: "<JSON pointer>: <first error>[ (and N more)]"; unusable: the reason

    @property
    def message(self) -> str:
        """What the operator reads ("" when the value is valid)."""
        if self.outcome is Outcome.invalid:
            return f"Schema violation at {self.detail}"
        if self.outcome is Outcome.unusable:
            return f"This item's schema cannot check an edit: {self.detail}"
        return ""


VALID = SchemaCheck(Outcome.valid)


class SchemaUnusable(Exception):
    """The schema cannot check a value; the argument says why."""


def _refuse(uri: str) -> Any:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class mypy cannot see into


_LOCAL_ONLY: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]  # attrs, as above


def validator_for(schema: Any) -> Validator:
    """A validator for the schema's own draft, resolving only references inside it. Raises SchemaUnusable."""
    if isinstance(schema, bool):
        return Draft202012Validator(schema, registry=_LOCAL_ONLY)
    if not isinstance(schema, dict):
        raise SchemaUnusable(f"a schema is a JSON object, not {type(schema).__name__}")
    dialect = schema.get("$schema", DEFAULT_DRAFT)
    cls = _DRAFTS.get(dialect.removesuffix("#")) if isinstance(dialect, str) else None
    if cls is None:
        known = ", ".join(sorted(_DRAFTS))
        raise SchemaUnusable(_clip(f"unknown $schema {dialect!r} (known: {known})"))
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise SchemaUnusable(_clip(f"it is not a valid JSON Schema: {exc.message} (at {exc.json_path})")) from exc
    except RecursionError as exc:
        raise SchemaUnusable("it is nested too deeply to read") from exc
    return cls(schema, registry=_LOCAL_ONLY)


def check(value: Any, schema: Any) -> SchemaCheck:
    """Check in this thread, with no time bound (see `check_bounded`). Never raises."""
    try:
        validator = validator_for(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    except SchemaUnusable as exc:
        return SchemaCheck(Outcome.unusable, str(exc))
    except Unresolvable as exc:
        ref = _clip(str(getattr(exc, "ref", exc)), 120)
        reason = f"the reference {ref!r} cannot be resolved: only references inside the schema ('#...') are used"
        return SchemaCheck(Outcome.unusable, reason + ", nothing is fetched")
    except RecursionError:
        return SchemaCheck(Outcome.unusable, "it refers to itself without end ($ref recursion)")
    except re.error as exc:
        return SchemaCheck(Outcome.unusable, _clip(f"a pattern in it cannot be used: {exc}"))
    except Exception as exc:  # whatever else an untrusted schema trips inside jsonschema
        return SchemaCheck(Outcome.unusable, _clip(f"{type(exc).__name__}: {exc}"))
    if not errors:
        return VALID
    first = errors[0]
    where = "/" + "/".join(str(p) for p in first.absolute_path)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SchemaCheck(Outcome.invalid, _clip(f"{where}: {first.message}") + more)


async def check_bounded(value: Any, schema: Any, bound: float | None = None) -> SchemaCheck:
    """Check in the worker process, off the event loop; a check that runs past `bound` seconds (TIME_BOUND) is killed
    and the schema called unusable. Never raises."""
    # Its own thread: the loop's default executor may be full of sources' threads waiting on their checks.
    return await asyncio.get_running_loop().run_in_executor(_EDITOR_THREAD, _bounded, _WORKER, value, schema, bound)


def check_blocking(value: Any, schema: Any, bound: float | None = None) -> SchemaCheck:
    """`check_bounded` for synchronous code that runs in a thread (the LangGraph adapter's translation): the calling
    thread waits on a pipe, holding no GIL. Its own worker, so a source's hostile schemas never queue the editor's
    checks. Never raises."""
    return _bounded(_ENGINE_WORKER, value, schema, bound)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` breaks `schema` (first error, with where), or None: what an adapter checks before it sends an edit.
    A schema that cannot check anything (an unknown draft, a remote `$ref`, a check past its time bound...) checks
    nothing here; the editor refuses edits against it. It waits for the checker process: callers run it off the event
    loop."""
    result = check_blocking(value, schema)
    if result.outcome is Outcome.unusable:
        log.warning("unusable schema: %s", result.detail)
        return None
    return result.detail or None


def _bounded(worker: _Worker, value: Any, schema: Any, bound: float | None) -> SchemaCheck:
    try:
        request = json.dumps([schema, value], allow_nan=False).encode() + b"\n"
    except (TypeError, ValueError, RecursionError) as exc:
        return SchemaCheck(Outcome.unusable, _clip(f"it cannot be sent to the checker: {exc}"))
    return worker.run(request, TIME_BOUND if bound is None else bound)


async def warm_up() -> None:
    """Start the worker ahead of the first check (an editor that has a schema calls this when it opens). Never raises:
    a worker that cannot start is reported by the check that needs it."""
    with contextlib.suppress(OSError):
        await asyncio.get_running_loop().run_in_executor(_EDITOR_THREAD, _WORKER.ensure_started)


class _Worker:
    """One long-lived checker process; requests and answers are JSON lines; one check at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def ensure_started(self) -> None:
        with self._lock:
            self._started()

    def run(self, request: bytes, bound: float) -> SchemaCheck:
        with self._lock:
            try:
                proc = self._started()
                stdin, stdout = _pipes(proc)
                stdin.write(request)
                stdin.flush()
                line = _read_line(stdout, bound)
            except OSError as exc:
                self._stop()
                return SchemaCheck(Outcome.unusable, _clip(f"the checker failed: {exc}"))
            if line is None:
                self._stop()
                return SchemaCheck(Outcome.unusable, f"checking took longer than {bound:g} s, so it was stopped")
            try:
                answer = json.loads(line)
                return SchemaCheck(Outcome(answer["outcome"]), str(answer["detail"]))
            except (ValueError, KeyError, TypeError):
                self._stop()
                return SchemaCheck(Outcome.unusable, "the checker stopped unexpectedly")

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        root = str(Path(__file__).resolve().parents[2])  # the child runs this very code, wherever it was loaded from
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "console.engine.schema_check"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._proc = proc
        if _read_line(_pipes(proc)[1], STARTUP_BOUND) != b"ready\n":
            self._stop()
            raise OSError("the checker process did not start")
        return proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        with self._lock:
            self._stop()


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert proc.stdin is not None and proc.stdout is not None
    return proc.stdin, proc.stdout


def _read_line(stream: IO[bytes], bound: float) -> bytes | None:
    """One line, or None when none arrived within `bound` seconds (the child writes whole lines, then waits)."""
    ready, _, _ = select.select([stream], [], [], bound)
    return stream.readline() if ready else None


def _clip(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_WORKER = _Worker()  # the editor's
_EDITOR_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="schema-check")
_ENGINE_WORKER = _Worker()  # sources', started only when one checks
atexit.register(_WORKER.close)
atexit.register(_ENGINE_WORKER.close)


def _serve() -> None:
    """The worker: one JSON line [schema, value] in, one JSON line {outcome, detail} out, until stdin closes."""
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        try:
            schema, value = json.loads(line)
            result = check(value, schema)
        except (ValueError, RecursionError) as exc:
            result = SchemaCheck(Outcome.unusable, _clip(f"the checker could not read the request: {exc}"))
        out.write(json.dumps({"outcome": result.outcome.value, "detail": result.detail}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve()
