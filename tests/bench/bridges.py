"""A bridge's round trip: an MCP tool call, the item visible in a console, the operator's decision, the tool's answer.

`serve` runs as the real command in a child process; the MCP bridge (`approval-console mcp`) is spawned by the MCP
SDK's own stdio client; the console is a real Session polling serve as a native source (long-poll on) with an operator
token. Human time is left out: the operator decides the moment the item is listed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from storage.records import Verdict
from tests.bench.harness import Bench, Result, Target, figure, measured
from tests.bridge_operator import Operator
from tests.queue_servers import OPERATOR, ROOT, ServeProcess, fixed_token, write_token_file

AGENT = "bench-agent"


@figure(
    "mcp_bridge",
    (
        "mcp_bridge_round_trip",
        "MCP bridge: tool call to tool answer, the operator deciding at once",
        "ms",
        "approval-console serve in a child process; approval-console mcp spawned by the MCP SDK's stdio client; a "
        "console Session polling serve (long-poll) with an operator token. From call_tool('permission_prompt') to its "
        "answer: the item posted, listed by the console, approved there as soon as it is listed, sent, heard by the "
        "bridge's long-poll, returned. Human time excluded",
        Target("<=", 100.0),
    ),
)
async def mcp_bridge_round_trip(bench: Bench) -> list[Result]:
    rounds = bench.runs(40, 5)
    data_dir = bench.workdir / "mcp-bridge-serve"
    data_dir.mkdir(parents=True)
    write_token_file(data_dir / "serve.toml", [AGENT], [OPERATOR])
    server = ServeProcess(data_dir)
    url = server.start()
    samples: list[float] = []
    try:
        operator = Operator(url, bench.workdir / "mcp-bridge-console")
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "console.cli", "mcp", "--queue", url, "--deadline", "60"],
            env={"APPROVAL_CONSOLE_TOKEN_QUEUE": fixed_token("agent", AGENT), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as mcp:
                await mcp.initialize()
                for n in range(rounds + 1):  # the first round warms up connections and caches: not counted
                    arguments = {"tool_name": "Bash", "input": {"command": f"make deploy-{n}"}, "tool_use_id": f"t{n}"}
                    started = time.perf_counter()
                    call = asyncio.create_task(mcp.call_tool("permission_prompt", arguments))
                    await operator.decide_next(Verdict.approve)
                    answer = json.loads((await call).content[0].text)  # type: ignore[union-attr]
                    elapsed = (time.perf_counter() - started) * 1000
                    if answer.get("behavior") != "allow":
                        raise RuntimeError(f"round {n} was answered {answer}")
                    if n:
                        samples.append(elapsed)
        finally:
            await operator.aclose()
    finally:
        server.stop()
    return [measured("mcp_bridge", "mcp_bridge_round_trip", samples, params={"rounds": rounds})]
