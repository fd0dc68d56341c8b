"""Stand-ins for the LangSmith and Langfuse APIs, on a real loopback socket, for the feedback sink tests.

No LangSmith or Langfuse server runs offline, so these answer the two endpoints the sinks call, and nothing else: every
request body is checked against the SDK's own models (`langsmith.schemas.FeedbackCreate`, langfuse's
`CreateScoreRequest`) and the server rules the SDKs leave to the server (Langfuse: exactly one of traceId, sessionId,
datasetRunId), then recorded. Feedback is stored by id, as the real services do: LangSmith answers 409 to an id it
holds, Langfuse updates the score of an id it holds. Tests queue faults (a status to answer the next requests with).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langfuse.api import CreateScoreRequest
from langsmith.schemas import FeedbackCreate

LANGSMITH_KEY = "lsv2-test-key"
LANGFUSE_PUBLIC = "pk-lf-test"
LANGFUSE_SECRET = "sk-lf-test"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@dataclass
class Tool:
    """What the stand-in received and holds; `faults` are answered first, one per request."""

    kind: str  # langsmith | langfuse
    url: str = ""
    requests: list[Any] = field(default_factory=list)  # every checked body, in order (resends included)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # by feedback / score id
    faults: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # bodies the SDK models or the server rules refused
    raw: list[bytes] = field(default_factory=list)
    hold: threading.Event | None = None  # when given: every answer waits until the test sets it
    arrived: int = 0  # requests received, answered or not


def _check_langsmith(tool: Tool, body: Any) -> tuple[int, Any]:
    feedback = FeedbackCreate.model_validate(body)  # raises on a body the SDK's model refuses
    if feedback.run_id is None and feedback.trace_id is None and feedback.session_id is None:
        return 400, {"detail": "One of run_id, trace_id, or project_id must be provided"}
    if feedback.feedback_source is None or feedback.feedback_source.type not in ("api", "model"):
        return 422, {"detail": "feedback_source.type must be api or model"}
    key = str(feedback.id)
    if key in tool.stored:
        return 409, {"detail": "feedback with this id already exists"}
    tool.stored[key] = body
    return 200, body


def _check_langfuse(tool: Tool, body: Any) -> tuple[int, Any]:
    if not isinstance(body, list):
        return 400, {"message": "expected a list of scores"}
    for raw in body:
        score = CreateScoreRequest.model_validate({_snake(k): v for k, v in raw.items()})
        targets = [t for t in (score.trace_id, score.session_id, score.dataset_run_id) if t]
        if len(targets) != 1:
            return 400, {"message": "exactly one of traceId, sessionId or datasetRunId is required"}
        if score.observation_id and not score.trace_id:
            return 400, {"message": "observationId needs a traceId"}
        if score.id is None or score.timestamp is None:
            tool.problems.append("a score without id or timestamp would not update on a resend")
        tool.stored[str(score.id)] = raw  # an id it holds: the score is updated, not added
    return 202, {"message": "Accepted"}


def _authorized(tool: Tool, headers: Any) -> bool:
    if tool.kind == "langsmith":
        return bool(headers.get("x-api-key") == LANGSMITH_KEY)
    expected = base64.b64encode(f"{LANGFUSE_PUBLIC}:{LANGFUSE_SECRET}".encode()).decode()
    return bool(headers.get("Authorization") == f"Basic {expected}")


@contextmanager
def serving(kind: str) -> Iterator[Tool]:
    tool = Tool(kind)
    lock = threading.Lock()
    path = "/feedback" if kind == "langsmith" else "/api/public/scores"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                tool.arrived += 1
            if tool.hold is not None:
                tool.hold.wait(30.0)  # a safety for a test that forgets to let go
            with lock:
                status, answer = self._answer(raw)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, raw: bytes) -> tuple[int, Any]:
            if self.path.split("?")[0].rstrip("/") != path:
                return 404, {"detail": f"not found: {self.path}"}
            tool.raw.append(raw)
            if not _authorized(tool, self.headers):
                return 401, {"detail": "invalid API key"}
            if tool.faults:
                status = tool.faults.pop(0)
                return status, {"detail": f"fault {status}"}
            body = json.loads(raw)
            tool.requests.append(body)
            try:
                return _check_langsmith(tool, body) if kind == "langsmith" else _check_langfuse(tool, body)
            except ValueError as exc:  # pydantic's ValidationError: the SDK's own model refuses the body
                tool.problems.append(str(exc)[:500])
                return 422, {"detail": str(exc)[:500]}

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tool.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tool
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
