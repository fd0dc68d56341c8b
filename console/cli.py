"""Command line: run the console, the demo, the demo fleet alone, manage sources, verify the audit trail."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from console import config as config_module
from console import label_commands
from console.config import Config, ConfigError, SourceConfig
from storage.db import StorageError

DEMO_SOURCE = "demo-fleet"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="approval-console",
        description="Approve risky AI-agent actions and triage low-confidence outputs, from the terminal.",
    )
    parser.add_argument("--config", type=Path, help=f"config file (default: {config_module.default_config_path()})")
    parser.add_argument("--data-dir", type=Path, help=f"data directory (default: {config_module.default_data_dir()})")
    parser.add_argument(
        "--start-clean",
        action="store_true",
        help="if the database is damaged, keep it aside under a timestamped name and start with an empty one",
    )
    # The same options after a command name too: `approval-console demo --data-dir D`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    common.add_argument("--start-clean", action="store_true", default=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", parents=[common], help="open the console on an embedded demo fleet of agents")
    demo.add_argument("--seed", type=int, default=None, help="make the generated items repeatable")
    demo.add_argument(
        "--interval",
        type=float,
        default=None,
        help="mean seconds between new items, besides a burst now and then (default 60, a busy shift; 0: none)",
    )

    fleet = commands.add_parser(
        "fleet", parents=[common], help="run the demo fleet alone, as a server for other consoles"
    )
    fleet.add_argument("--port", type=int, default=8700)
    fleet.add_argument("--seed", type=int, default=None)
    fleet.add_argument(
        "--interval", type=float, default=None, help="mean seconds between new items (default 60; 0: none)"
    )
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
    token = source_commands.add_parser(
        "token", parents=[common], help="store a new token for a configured source in the keyring"
    )
    token.add_argument("name")
    commands.add_parser(
        "doctor",
        parents=[common],
        help="check the config, keyring, each source's reachability and token, and the database; say what to fix",
    )

    audit = commands.add_parser("audit", parents=[common], help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser(
        "verify", parents=[common], help="check the hash chain; report OK or the first broken record"
    )
    label_commands.add_parsers(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args.data_dir, seed=args.seed, interval=args.interval, start_clean=args.start_clean)
        if args.command == "fleet":
            return run_fleet(args.port, seed=args.seed, interval=args.interval, initial=args.initial)
        if args.command == "sources" and args.sources_command == "token":
            return sources_token(args.config, args.name)
        if args.command == "sources":
            return sources_add(args) if args.sources_command == "add" else sources_list(args.config)
        if args.command == "doctor":
            return doctor(args.config, args.data_dir)
        if args.command == "audit":
            return audit_verify(args.data_dir or config_module.default_data_dir())
        if args.command == "export":
            return label_commands.run_export(args, args.data_dir or config_module.default_data_dir())
        if args.command == "stats":
            return label_commands.run_stats(args, args.data_dir or config_module.default_data_dir())
        config_path = args.config or config_module.default_config_path()
        if not config_path.exists():
            return run_first_run(config_path, args.data_dir, config_module.DEFAULT_THEME)
        config = config_module.load(config_path)
        return run_console(config, args.data_dir or config_module.default_data_dir(), start_clean=args.start_clean)
    except ConfigError as exc:
        print(f"approval-console: bad config: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:  # a second console, a damaged database, a disk that refuses writes
        print(f"approval-console: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_console(config: Config, data_dir: Path, *, start_clean: bool = False) -> int:
    from console.app import ApprovalApp
    from console.session import Session, setup_logging

    if not config.sources:
        return run_first_run(config.path or config_module.default_config_path(), data_dir, config.theme)
    setup_logging(data_dir)
    session = Session(config, data_dir, start_clean=start_clean)
    if session.set_aside_as is not None:
        print(f"approval-console: the damaged database was kept aside as {session.set_aside_as}", file=sys.stderr)
    ApprovalApp(session).run()
    return 0


def run_first_run(config_path: Path, data_dir: Path | None, theme: str) -> int:
    """No sources yet: a screen explains how to add one and offers the demo fleet."""
    from console.screens.first_run import FirstRunApp

    if FirstRunApp(config_path, theme).run() == "demo":
        demo_dir = None if data_dir is None else data_dir / "demo"
        return run_demo(demo_dir, seed=None, interval=None)
    return 0


def demo_pace(interval: float | None) -> float | None:
    """The fleet's `interval` for a command-line one: none given is the demo's pace, 0 is no new items."""
    from console.fleet.scenarios import DEMO_GAP

    return DEMO_GAP if interval is None else interval or None


def run_demo(data_dir: Path | None, *, seed: int | None, interval: float | None, start_clean: bool = False) -> int:
    from console.fleet import Fleet

    fleet = Fleet(seed=seed, interval=demo_pace(interval))
    url = fleet.start()
    try:
        config = Config(
            operator=getpass.getuser(),
            sources=(SourceConfig(name=DEMO_SOURCE, url=url, poll_interval=1.0),),
        )
        # Demo data lives apart from real data, so a demo never mixes with a real queue or audit trail.
        return run_console(config, data_dir or config_module.default_data_dir() / "demo", start_clean=start_clean)
    finally:
        fleet.stop()


def run_fleet(port: int, *, seed: int | None, interval: float | None, initial: int) -> int:
    from console.fleet import Fleet

    fleet = Fleet(seed=seed, interval=demo_pace(interval), initial=initial)
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


def sources_token(config_path: Path | None, name: str) -> int:
    from console.secrets import KeyringUnavailable, store_token

    config = config_module.load(config_path or config_module.default_config_path())
    if not any(s.name == name for s in config.sources):
        print(f"approval-console: {config.path} has no source named {name!r}", file=sys.stderr)
        return 2
    token = getpass.getpass(f"New token for {name} (input hidden): ")
    if not token:
        print("approval-console: no token given; nothing changed", file=sys.stderr)
        return 2
    try:
        store_token(name, token)
    except KeyringUnavailable as exc:
        print(f"approval-console: {exc}", file=sys.stderr)
        return 1
    print(f"Token for {name!r} stored in the system keyring; a running console uses it after a restart.")
    return 0


def doctor(config_path: Path | None, data_dir: Path | None) -> int:
    from console import doctor as checks
    from console.session import DB_NAME

    found = checks.run(
        config_path or config_module.default_config_path(), data_dir or config_module.default_data_dir(), DB_NAME
    )
    print(checks.report(found))
    return 1 if any(c.status == checks.FAIL for c in found) else 0


def audit_verify(data_dir: Path) -> int:
    from console.session import DB_NAME
    from storage.db import Store

    path = data_dir / DB_NAME
    if not path.exists():
        print(f"approval-console: no database at {path}", file=sys.stderr)
        return 2
    store = Store(path, readonly=True)  # verifying evidence must not change it (no migration, no writes)
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
