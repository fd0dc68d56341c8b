"""`approval-console mcp --queue URL`: the MCP bridge over stdio; `approval-console approvals list|revoke`: the standing
approvals ("always" answers of ACP clients) an operator can see and take back.

The bridge's token is an agent token of the queue (`approval-console serve token add --agent NAME`), read like a
source's: the environment variable APPROVAL_CONSOLE_TOKEN_<NAME> or the keyring (user NAME), NAME from --token-name.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from console.cli.text import CliError, plural, safe_line
from console.engine.config import is_loopback, public_url, token_env_var

DEFAULT_TOKEN_NAME = "queue"  # noqa: S105 - the name the token is stored under, not a token
DEFAULT_DEADLINE = 300.0


def add_parsers(commands: argparse._SubParsersAction[Any]) -> None:
    mcp = commands.add_parser(
        "mcp",
        help="an MCP server (stdio) whose tools ask the operator through a queue server and wait for the decision",
    )
    mcp.add_argument("--queue", required=True, metavar="URL", help="the queue server (approval-console serve)")
    mcp.add_argument(
        "--token-name",
        default=DEFAULT_TOKEN_NAME,
        metavar="NAME",
        help=f"the agent token's name: from ${token_env_var('NAME')} or the keyring (default {DEFAULT_TOKEN_NAME!r})",
    )
    mcp.add_argument(
        "--deadline",
        type=_seconds,
        default=DEFAULT_DEADLINE,
        metavar="SECONDS",
        help=f"how long a tool call waits for a decision before it is denied (default {DEFAULT_DEADLINE:g})",
    )
    mcp.add_argument(
        "--progress-every",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="while a call waits, a progress notification this often, to clients that ask for them (default 10)",
    )
    mcp.add_argument("--allow-insecure-http", action="store_true", help="allow http:// to a host other than loopback")

    approvals = commands.add_parser("approvals", help="standing approvals: 'always' answers the bridges keep")
    approval_commands = approvals.add_subparsers(dest="approvals_command", required=True, metavar="{list,revoke}")
    data_help = "the bridges' data directory (default: 'bridges' in the console's data directory)"
    listing = approval_commands.add_parser("list", help="the standing approvals and rejections in force")
    listing.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=data_help)
    revoke = approval_commands.add_parser("revoke", help="take a standing approval back: the agent asks again")
    revoke.add_argument("id", type=int, help="the number 'approvals list' shows")
    revoke.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=data_help)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (more than 0, at most 86400)")
    return value


def run_mcp(args: argparse.Namespace) -> int:
    url = _queue_url(args.queue, allow_insecure_http=args.allow_insecure_http)
    from console.engine.secrets import get_token

    token = get_token(args.token_name)
    if token is None:
        raise CliError(
            f"mcp: no token for the queue: set {token_env_var(args.token_name)} to an agent token "
            "('approval-console serve token add --agent NAME' prints one) or store it in the keyring",
            2,
        )
    try:
        from console.bridges.mcp_server import serve_stdio
    except ImportError as exc:
        raise CliError(
            f"mcp: the MCP bridge needs its extra: pip install 'approval-console[mcp]' ({exc.name})"
        ) from None
    asyncio.run(serve_stdio(url, token.value, deadline_seconds=args.deadline, progress_every=args.progress_every))
    return 0


def _queue_url(text: str, *, allow_insecure_http: bool) -> str:
    shown = safe_line(public_url(text))
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"--queue {shown!r} is not an http(s) URL (fix: e.g. http://127.0.0.1:8800)")
    if parts.username is not None or parts.password is not None:
        raise CliError(f"--queue {shown!r} was given with credentials in it: the token comes from the environment")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise CliError(f"--queue {shown!r} is plain http to another machine (fix: https, or --allow-insecure-http)")
    return text


def run_approvals(args: argparse.Namespace) -> int:
    from console.bridges.standing import StandingApprovals

    with StandingApprovals(getattr(args, "data_dir", None)) as store:
        if args.approvals_command == "revoke":
            if not store.revoke(args.id):
                raise CliError(f"approvals: no standing approval number {args.id} (see 'approvals list')", 1)
            print(f"standing approval {args.id} revoked: the agent asks again next time", file=sys.stderr)
            return 0
        rows = store.standing()
        for row in rows:
            print(safe_line(row.describe()))
        print(f"{plural(len(rows), 'standing answer')} in force", file=sys.stderr)
    return 0
