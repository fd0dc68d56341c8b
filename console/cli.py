"""Command line: run the console, the demo, the demo fleet alone, manage sources, verify the audit trail."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from console import config as config_module
from console.config import Config, ConfigError, SourceConfig

DEMO_SOURCE = "demo-fleet"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="approval-console",
        description="Approve risky AI-agent actions and triage low-confidence outputs, from the terminal.",
    )
    parser.add_argument("--config", type=Path, help=f"config file (default: {config_module.default_config_path()})")
    parser.add_argument("--data-dir", type=Path, help=f"data directory (default: {config_module.default_data_dir()})")
    # The same options after a command name too: `approval-console demo --data-dir D`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", parents=[common], help="open the console on an embedded demo fleet of agents")
    demo.add_argument("--seed", type=int, default=None, help="make the generated items repeatable")
    demo.add_argument("--interval", type=float, default=4.0, help="seconds between new items (default 4)")

    fleet = commands.add_parser(
        "fleet", parents=[common], help="run the demo fleet alone, as a server for other consoles"
    )
    fleet.add_argument("--port", type=int, default=8700)
    fleet.add_argument("--seed", type=int, default=None)
    fleet.add_argument("--interval", type=float, default=4.0)
    fleet.add_argument("--initial", type=int, default=12, help="items to start with")

    sources = commands.add_parser("sources", parents=[common], help="manage sources")
    source_commands = sources.add_subparsers(dest="sources_command", required=True)
    add = source_commands.add_parser(
        "add", parents=[common], help="add a source to the config and store its token in the keyring"
    )
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--kind", default="native", choices=config_module.SOURCE_KINDS)
    add.add_argument("--no-token", action="store_true", help="the source needs no token")
    source_commands.add_parser(
        "list", parents=[common], help="list configured sources and where their tokens come from"
    )

    audit = commands.add_parser("audit", parents=[common], help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser(
        "verify", parents=[common], help="check the hash chain; report OK or the first broken record"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args.data_dir, seed=args.seed, interval=args.interval)
        if args.command == "fleet":
            return run_fleet(args.port, seed=args.seed, interval=args.interval, initial=args.initial)
        if args.command == "sources":
            return sources_add(args) if args.sources_command == "add" else sources_list(args.config)
        if args.command == "audit":
            return audit_verify(args.data_dir or config_module.default_data_dir())
        config = config_module.load(args.config or config_module.default_config_path())
        return run_console(config, args.data_dir or config_module.default_data_dir())
    except ConfigError as exc:
        print(f"approval-console: bad config: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_console(config: Config, data_dir: Path) -> int:
    from console.app import ApprovalApp
    from console.session import Session, setup_logging

    if not config.sources:
        print(
            f"approval-console: {config.path} lists no sources. Add one with 'approval-console sources add NAME URL',"
            " or try 'approval-console demo'.",
            file=sys.stderr,
        )
        return 2
    setup_logging(data_dir)
    session = Session(config, data_dir)
    ApprovalApp(session).run()
    return 0


def run_demo(data_dir: Path | None, *, seed: int | None, interval: float) -> int:
    from console.fleet import Fleet

    fleet = Fleet(seed=seed, interval=interval)
    url = fleet.start()
    try:
        config = Config(
            operator=getpass.getuser(),
            sources=(SourceConfig(name=DEMO_SOURCE, url=url, poll_interval=1.0),),
        )
        # Demo data lives apart from real data, so a demo never mixes with a real queue or audit trail.
        return run_console(config, data_dir or config_module.default_data_dir() / "demo")
    finally:
        fleet.stop()


def run_fleet(port: int, *, seed: int | None, interval: float, initial: int) -> int:
    from console.fleet import Fleet

    fleet = Fleet(seed=seed, interval=interval, initial=initial)
    url = fleet.start(port=port)
    print(f"demo fleet serving PROTOCOL.md v1 at {url} (ctrl+c stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.stop()


def sources_add(args: argparse.Namespace) -> int:
    from console.secrets import KeyringUnavailable, store_token

    path: Path = args.config or config_module.default_config_path()
    existing = config_module.load(path) if path.exists() else None
    if existing is not None and any(s.name == args.name for s in existing.sources):
        print(f"approval-console: {path} already has a source named {args.name!r}", file=sys.stderr)
        return 2
    candidate = (path.read_text(encoding="utf-8") if path.exists() else "") + config_module.source_block(
        args.name, args.url, args.kind
    )
    config_module.parse(candidate, path)  # refuse to write a config that would not load
    if not args.no_token:
        token = getpass.getpass(f"Token for {args.name} (input hidden, empty for none): ")
        if token:
            try:
                store_token(args.name, token)
                print(f"Token stored in the system keyring (service 'approval-console', user {args.name!r}).")
            except KeyringUnavailable as exc:
                print(f"approval-console: {exc}", file=sys.stderr)
                print("The source is added; the token was not stored.", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(candidate, encoding="utf-8")
    print(f"Added source {args.name!r} ({args.kind}, {args.url}) to {path}.")
    return 0


def sources_list(config_path: Path | None) -> int:
    from console.secrets import get_token

    config = config_module.load(config_path or config_module.default_config_path())
    for source in config.sources:
        token = get_token(source.name)
        origin = token.origin if token else f"none (keyring, or {config_module.token_env_var(source.name)})"
        print(f"{source.name:<20} {source.kind:<10} {source.url:<40} token: {origin}")
    return 0


def audit_verify(data_dir: Path) -> int:
    from console.session import DB_NAME
    from storage.db import Store

    path = data_dir / DB_NAME
    if not path.exists():
        print(f"approval-console: no database at {path}", file=sys.stderr)
        return 2
    store = Store(path)
    try:
        result = store.verify_audit()
    finally:
        store.close()
    if result.ok:
        print(f"OK: {result.records} audit records, chain intact ({path})")
        return 0
    print(f"BROKEN at record {result.first_bad}: {result.problem} ({path})")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
