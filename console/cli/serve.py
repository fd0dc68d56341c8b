"""`approval-console serve`: run the durable queue server, and `serve token add` to let an agent or an operator in.

approval-console serve --data-dir DIR --port 8800
approval-console serve token add --agent billing-agent --data-dir DIR     (prints the token once)
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from console.cli.text import CliError, plural
from console.engine import config as config_module

LOG_NAME = "serve.log"
DEFAULT_PORT = 8800


def add_parsers(commands: argparse._SubParsersAction[Any], port: Any) -> None:
    serve = commands.add_parser(
        "serve", help="run the native protocol's durable queue: agents post items and wait, consoles decide"
    )
    data_help = f"where serve keeps its database, log and token file (default: {default_data_dir()})"
    config_help = "the token file (default: serve.toml in the data directory)"
    serve.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=data_help)
    serve.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    serve.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; put TLS in front for others)"
    )
    serve_commands = serve.add_subparsers(dest="serve_command", metavar="{token}")
    token = serve_commands.add_parser("token", help="manage the tokens of agents and operators")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="{add}")
    add = token_commands.add_parser(
        "add", help="make a token for an agent or an operator: printed once, only its SHA-256 is kept"
    )
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", metavar="NAME", help="an agent: posts items as NAME and waits on its own items")
    who.add_argument("--operator", metavar="NAME", help="an operator: lists and decides items, as NAME")
    add.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=data_help)
    add.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)


def default_data_dir() -> Path:
    return config_module.default_data_dir() / "serve"


def run(args: argparse.Namespace) -> int:
    from console.servers.serve.tokens import CONFIG_NAME, TokenFileError

    data_dir: Path = args.data_dir or default_data_dir()
    token_file: Path = args.config or data_dir / CONFIG_NAME
    try:
        if args.serve_command == "token":
            return _token_add(token_file, args)
        return _serve(data_dir, token_file, args.host, args.port)
    except TokenFileError as exc:
        raise CliError(f"serve: {exc}") from None


def _token_add(token_file: Path, args: argparse.Namespace) -> int:
    from console.servers.serve.tokens import add_token

    role, name = ("agent", args.agent) if args.agent else ("operator", args.operator)
    token = add_token(token_file, role, name)
    print(token)
    print(f"a token for {role} {name!r}: shown once, only its SHA-256 is kept in {token_file}", file=sys.stderr)
    return 0


def _serve(data_dir: Path, token_file: Path, host: str, port: int) -> int:
    from console.engine.session import SafeFormatter
    from console.servers.serve import Serve
    from console.servers.serve.store import DataDirInUse

    try:
        server = Serve(data_dir, config=token_file)
    except DataDirInUse as exc:
        raise CliError(f"serve: {exc}", 1) from None
    handler = logging.handlers.RotatingFileHandler(
        data_dir / LOG_NAME, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("approval_console.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    try:
        try:
            url = server.start(host, port)
        except OSError as exc:
            raise CliError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another with --port", 1
            ) from exc
        callers = f"{plural(len(server.tokens), 'token')} in {token_file}"
        log.info("serving at %s, data in %s, %s", url, data_dir, callers)
        print(f"serve: PROTOCOL.md v1 at {url}, data in {data_dir}, {callers} (ctrl+c stops it)", flush=True)
        if not len(server.tokens):
            print("serve: no tokens yet: add one with 'approval-console serve token add --agent NAME'", flush=True)
        stop.wait()
        log.info("stopping")
        return 0
    finally:
        server.close()
        log.removeHandler(handler)
        handler.close()
