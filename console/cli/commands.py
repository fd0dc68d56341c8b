"""Command line: run the console (or open it on one item), the demo, the demo fleet alone, the queue server and the MCP
bridge, manage sources and standing approvals, verify the audit trail."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from console.cli import bridges as bridge_commands
from console.cli import labels as label_commands
from console.cli import serve as serve_command
from console.cli.text import ADD_SOURCE_FIX, PROG, CliError, fail, plural, safe_line, unreadable_database
from console.engine import config as config_module
from console.engine.config import Config, ConfigError, SourceConfig, public_url, token_env_var
from storage.db import StorageError
from storage.safe_text import clean

if TYPE_CHECKING:
    from console.tui.app import ApprovalApp

DEMO_SOURCE = "demo-fleet"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error of the command line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    try:
        return metadata.version(PROG)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Approve risky AI-agent actions and triage low-confidence outputs, from the terminal.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    config_help = f"config file (default: {config_module.default_config_path()})"
    data_help = f"data directory (default: {config_module.default_data_dir()})"
    clean_help = "if the database is damaged, keep it aside under a timestamped name and start with an empty one"
    parser.add_argument("--config", type=Path, help=config_help)
    parser.add_argument("--data-dir", type=Path, help=data_help)
    parser.add_argument("--start-clean", action="store_true", help=clean_help)
    # The same options after a command name too: `approval-console demo --data-dir D`.
    common = _Parser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help=data_help)
    common.add_argument("--start-clean", action="store_true", default=argparse.SUPPRESS, help=clean_help)
    # Commands that read the database can read the demo's instead: `approval-console stats --demo`.
    demo_data = _Parser(add_help=False)
    demo_data.add_argument(
        "--demo",
        action="store_true",
        help=f"read the demo's data ({config_module.demo_data_dir()}) instead of the real data",
    )
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
    fleet.add_argument("--port", type=_port, default=8700, help="port to serve on, on 127.0.0.1 (default 8700)")
    fleet.add_argument("--seed", type=int, default=None, help="make the generated items repeatable")
    fleet.add_argument(
        "--interval", type=float, default=None, help="mean seconds between new items (default 60; 0: none)"
    )
    fleet.add_argument("--initial", type=int, default=12, help="items to start with")

    sources = commands.add_parser("sources", parents=[common], help="manage sources")
    source_commands = sources.add_subparsers(dest="sources_command", required=True, metavar="{add,list,token,remove}")
    add = source_commands.add_parser(
        "add", parents=[common], help="add a source to the config and store its token in the keyring"
    )
    add.add_argument("name", help="a short name for the source: letters, digits, '_' and '-'")
    add.add_argument("url", help="the agent service's base URL, without credentials (https://host:port)")
    add.add_argument(
        "--kind",
        default="native",
        choices=config_module.SOURCE_KINDS,
        help="native: speaks PROTOCOL.md; langgraph: a LangGraph server's interrupted threads (default native)",
    )
    add.add_argument(
        "--no-token", action="store_true", help="do not ask for a token (none needed, or it comes from the environment)"
    )
    add.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http to another machine (the token crosses the network unencrypted): trusted networks only",
    )
    source_commands.add_parser(
        "list", parents=[common], help="list configured sources and where their tokens come from"
    )
    token = source_commands.add_parser(
        "token",
        parents=[common],
        help="store a new token for a configured source (or a [[feedback]] sink's API key, a [[pager]]'s secret) in the"
        " keyring"
        " (read from standard input when piped)",
    )
    token.add_argument("name", help="the source's name, as in 'sources list'")
    remove = source_commands.add_parser(
        "remove", parents=[common], help="remove a source from the config and its token from the keyring"
    )
    remove.add_argument("name", help="the source's name, as in 'sources list'")
    open_item = commands.add_parser(
        "open", parents=[common], help="open the console on one item (the link or command line a page carries)"
    )
    open_item.add_argument("target", help="SOURCE/ITEM, or a link approval-console://open/SOURCE/ITEM")
    commands.add_parser(
        "doctor",
        parents=[common],
        help="check the config, keyring, each source's reachability and token, and the database; say what to fix",
    )

    audit = commands.add_parser("audit", parents=[common], help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="{verify}")
    audit_commands.add_parser(
        "verify", parents=[common, demo_data], help="check the hash chain; report OK or the first broken record"
    )
    label_commands.add_parsers(commands, common, demo_data)
    serve_command.add_parsers(commands, _port)
    bridge_commands.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Without a handler, Python prints warnings raw on stderr (server text included); the console's own log file is
    # where they belong, and a subcommand reports what matters itself.
    logging.getLogger().addHandler(logging.NullHandler())
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CliError as exc:
        return fail(exc.message, exc.status)
    except ConfigError as exc:
        where = f"{exc.path}:{exc.line}" if exc.line else str(exc.path)
        return fail(f"bad config: {where}: {exc.problem} (fix: {exc.fix})")
    except StorageError as exc:  # a second console, a damaged database, a disk that refuses writes
        return fail(str(exc), 1)
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except sqlite3.DatabaseError as exc:  # a database that fails under a command's feet
        return fail(f"the database cannot be read ({exc}): 'approval-console doctor' says more", 1)
    except OSError as exc:  # a data dir or output that cannot be made or written, a port in use
        reason = exc.strerror or str(exc) or type(exc).__name__
        return fail(f"{reason}: {exc.filename}" if exc.filename else reason, 1)
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return run_demo(args.data_dir, seed=args.seed, interval=args.interval, start_clean=args.start_clean)
    if args.command == "fleet":
        return run_fleet(args.port, seed=args.seed, interval=args.interval, initial=args.initial)
    if args.command == "serve":
        return serve_command.run(args)
    if args.command == "mcp":
        return bridge_commands.run_mcp(args)
    if args.command == "approvals":
        return bridge_commands.run_approvals(args)
    if args.command == "sources":
        run = {"add": sources_add, "list": sources_list, "token": sources_token, "remove": sources_remove}
        return run[args.sources_command](args)
    if args.command == "doctor":
        return doctor(args.config, args.data_dir)
    if args.command == "audit":
        return audit_verify(_data_dir(args))
    if args.command == "export":
        return label_commands.run_export(args, _data_dir(args))
    if args.command == "stats":
        return label_commands.run_stats(args, _data_dir(args))
    if args.command == "open":
        return open_item(args)
    config_path = args.config or config_module.default_config_path()
    if not config_path.exists():
        return run_first_run(config_path, args.data_dir, config_module.DEFAULT_THEME)
    config = config_module.load(config_path)
    return run_console(config, args.data_dir or config_module.default_data_dir(), start_clean=args.start_clean)


def open_item(args: argparse.Namespace) -> int:
    """The console, opened on one item of a configured source: the target is checked before anything starts."""
    from console.engine.deep_link import BadTarget, parse_target

    try:
        source, item_id = parse_target(args.target)
    except BadTarget as exc:
        raise CliError(str(exc)) from None
    path = _config_path(args)
    if not path.exists():
        raise CliError(f"{path} does not exist yet, so it has no source {source!r}; {ADD_SOURCE_FIX}")
    config = config_module.load(path)
    if source not in {s.name for s in config.sources}:
        names = ", ".join(s.name for s in config.sources) or "none"
        raise CliError(f"{path} has no source named {source!r} (its sources: {names})")
    data_dir = args.data_dir or config_module.default_data_dir()
    return run_console(config, data_dir, start_clean=args.start_clean, open_on=(source, item_id))


def _data_dir(args: argparse.Namespace) -> Path:
    """--data-dir, --demo (the demo's data) or the default data dir."""
    if getattr(args, "demo", False):
        if args.data_dir is not None:
            raise CliError("give --demo or --data-dir, not both")
        return config_module.demo_data_dir()
    return args.data_dir or config_module.default_data_dir()


def _config_path(args: argparse.Namespace) -> Path:
    return args.config or config_module.default_config_path()


def _read_secret(prompt: str, name: str) -> str:
    """A token typed without echo at a terminal, or one line of standard input when it is piped."""
    instead = f"run it in a terminal, pipe the token in, or set {token_env_var(name)}"
    if sys.stdin is None or not sys.stdin.isatty():
        line = sys.stdin.readline() if sys.stdin is not None else ""
        if not line:
            raise CliError(f"no token: standard input is empty or closed; {instead}")
        return line.rstrip("\r\n")
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise CliError(f"no token: the input ended; {instead}") from None


def run_console(
    config: Config, data_dir: Path, *, start_clean: bool = False, open_on: tuple[str, str] | None = None
) -> int:
    """The console over `config`'s sources; `open_on` (source, item id): the item to move to once it is listed."""
    from console.engine.session import LOG_NAME, Session, setup_logging
    from console.tui.app import STOP_SIGNALS, ApprovalApp

    if not config.sources:
        from console.tui.keymap import rebound, resolve

        keys = rebound(resolve(config.keymap, config.path))
        return run_first_run(config.path or config_module.default_config_path(), data_dir, config.theme, keys)
    setup_logging(data_dir)
    session = Session(config, data_dir, start_clean=start_clean, check_later=True)  # checked after the first frame
    if session.set_aside_as is not None:
        print(f"approval-console: the damaged database was kept aside as {session.set_aside_as}", file=sys.stderr)
    return run_app(ApprovalApp(session, stop_signals=STOP_SIGNALS, open_on=open_on), data_dir / LOG_NAME)


def run_app(app: ApprovalApp, log_path: Path) -> int:
    """Run the console app to its end and turn how it ended into an exit status.

    A crash is one line here and a non-zero status; its traceback is in the log (the app keeps it off the terminal).
    A stop signal exits with 128 + its number, after the app sent what it could and logged the rest.
    """
    try:
        app.run()
    except Exception as exc:  # failed outside Textual's own handling (starting the terminal driver, say)
        logging.getLogger(__name__).critical("the console could not run", exc_info=exc)
        app.crashed = app.crashed or exc
    if app.crashed is not None:
        error = app.crashed
        why = clean(f"{type(error).__name__}: {error}", multiline=False)[:200]
        with contextlib.suppress(OSError):  # the terminal may be gone too
            print(
                f"approval-console: stopped by an internal error ({why}); the details are in {log_path}",
                file=sys.stderr,
            )
        return 1
    if app.stopped_by is not None:
        return 128 + app.stopped_by
    return app.return_code or 0


def run_first_run(
    config_path: Path, data_dir: Path | None, theme: str, keys_in_force: Mapping[str, str] | None = None
) -> int:
    """No sources yet: a screen explains how to add one and offers the demo fleet (`keys_in_force`: the config's
    [keymap], as keymap.rebound gives it)."""
    from console.tui.screens.first_run import FirstRunApp

    if FirstRunApp(config_path, theme, keys_in_force).run() == "demo":
        demo_dir = None if data_dir is None else data_dir / "demo"
        return run_demo(demo_dir, seed=None, interval=None)
    return 0


def demo_pace(interval: float | None) -> float | None:
    """The fleet's `interval` for a command-line one: none given is the demo's pace, 0 is no new items."""
    from console.servers.fleet.scenarios import DEMO_GAP

    return DEMO_GAP if interval is None else interval or None


def run_demo(data_dir: Path | None, *, seed: int | None, interval: float | None, start_clean: bool = False) -> int:
    from console.servers.fleet import Fleet

    fleet = Fleet(seed=seed, interval=demo_pace(interval), two_person=True)
    url = fleet.start()
    try:
        config = Config(
            operator=getpass.getuser(),
            sources=(SourceConfig(name=DEMO_SOURCE, url=url, poll_interval=1.0),),
        )
        # Demo data lives apart from real data, so a demo never mixes with a real queue or audit trail.
        return run_console(config, data_dir or config_module.demo_data_dir(), start_clean=start_clean)
    finally:
        fleet.stop()


def run_fleet(port: int, *, seed: int | None, interval: float | None, initial: int) -> int:
    from console.servers.fleet import Fleet

    fleet = Fleet(seed=seed, interval=demo_pace(interval), initial=initial, two_person=True)
    try:
        url = fleet.start(port=port)
    except OSError as exc:
        raise CliError(f"cannot serve on port {port}: {exc.strerror or exc}; choose another with --port", 1) from exc
    print(f"demo fleet serving PROTOCOL.md v1 at {url} (ctrl+c stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.stop()


def sources_add(args: argparse.Namespace) -> int:
    from console.engine.secrets import KeyringUnavailable, keyring_backend, store_token

    path = _config_path(args)
    current = config_module.load(path) if path.exists() else None  # its own problems cite its own lines
    if current is not None and any(s.name == args.name for s in current.sources):
        raise CliError(f"{path} already has a source named {args.name!r}")
    existing = path.read_text(encoding="utf-8") if current is not None else ""
    block = config_module.source_block(args.name, args.url, args.kind, allow_insecure_http=args.allow_insecure_http)
    try:
        config_module.parse(block, path)  # the new source alone: its problems are the command line's, not the file's
    except ConfigError as exc:
        fix = exc.fix.replace("add allow_insecure_http = true to this source", "add --allow-insecure-http")
        raise CliError(f"sources add: {exc.problem} (given on the command line; nothing written; fix: {fix})") from exc
    candidate = existing + block
    try:
        config_module.parse(candidate, path)  # refuse to write a config that would not load
    except ConfigError as exc:  # its problem would cite lines of the combined text, which the file does not have
        raise CliError(
            f"cannot add a [[sources]] block to {path}: the result would not load (are its sources written as an"
            " inline array?); nothing written: add the source by hand"
        ) from exc
    env = token_env_var(args.name)
    if not args.no_token:
        backend = keyring_backend()  # before asking: a token typed for a keyring that is not there would be lost
        if backend is None:
            print(
                f"This machine has no usable keyring, so no token is asked for: give the console the token in the"
                f" environment variable {env}."
            )
        else:
            print(f"The token goes to the system keyring ({backend}); or leave it empty and set {env} instead.")
            token = _read_secret(f"Token for {args.name} (input hidden, empty for none): ", args.name)
            if token:
                try:
                    store_token(args.name, token)
                    print(f"Token stored in the system keyring (service 'approval-console', user {args.name!r}).")
                except KeyringUnavailable as exc:
                    print(f"{PROG}: {safe_line(str(exc))}; the source is added without it", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(candidate, encoding="utf-8")
    print(f"Added source {args.name!r} ({args.kind}, {public_url(args.url)}) to {path}.")
    return 0


def sources_list(args: argparse.Namespace) -> int:
    from console.engine.secrets import get_token

    path = _config_path(args)
    config = config_module.load(path) if path.exists() else None
    if config is None or not config.sources:
        state = "has no sources" if config is not None else "does not exist yet"
        print(f"No sources: {path} {state}; {ADD_SOURCE_FIX}.")
        return 0
    for source in config.sources:
        token = get_token(source.name)
        origin = token.origin if token else f"none (keyring, or {token_env_var(source.name)})"
        print(f"{source.name:<20} {source.kind:<10} {safe_line(public_url(source.url)):<40} token: {origin}")
    return 0


def _configured(path: Path, name: str, *, or_sink: bool = False) -> Config:
    """The config at `path`, which must have a source (or, `or_sink`, a [[feedback]] sink) called `name`."""
    if not path.exists():
        raise CliError(f"{path} does not exist yet, so it has no source {name!r}; {ADD_SOURCE_FIX}")
    config = config_module.load(path)
    sinks = [f.name for f in config.feedback] + [p.name for p in config.pager]
    names_here = [s.name for s in config.sources] + (sinks if or_sink else [])
    if name not in names_here:
        names = ", ".join(s.name for s in config.sources) or "none"
        raise CliError(f"{path} has no source named {name!r} (its sources: {names})")
    return config


def sources_token(args: argparse.Namespace) -> int:
    from console.engine.secrets import KeyringUnavailable, keyring_backend, store_token

    name = args.name
    _configured(_config_path(args), name, or_sink=True)  # a sink's API key, a pager's secret: kept like a token
    if keyring_backend() is None:
        raise CliError(config_module.no_keyring_fix(name), 1)
    token = _read_secret(f"New token for {name} (input hidden): ", name)
    if not token:
        raise CliError("no token given; nothing changed")
    try:
        store_token(name, token)
    except KeyringUnavailable as exc:
        raise CliError(str(exc), 1) from exc
    print(f"Token for {name!r} stored in the system keyring; a running console uses it after a restart.")
    return 0


def sources_remove(args: argparse.Namespace) -> int:
    from console.engine.secrets import delete_token

    path, name = _config_path(args), args.name
    config = _configured(path, name)
    text = path.read_text(encoding="utf-8")
    index = [s.name for s in config.sources].index(name)
    remaining = config_module.without_source(text, index)
    kept = [s for s in config_module.parse(remaining, path).sources]
    if kept != [s for s in config.sources if s.name != name]:
        raise CliError(f"could not take {name!r} out of {path} cleanly; nothing changed: remove its block by hand")
    temp = path.with_name(f".{path.name}.partial")
    temp.write_text(remaining, encoding="utf-8")
    os.replace(temp, path)  # the config is never seen half written
    print(f"Removed source {name!r} from {path}.")
    if delete_token(name):
        print("Its token was deleted from the system keyring.")
    if os.environ.get(token_env_var(name)):
        print(f"{token_env_var(name)} is still set in this environment; unset it where it is set.")
    return 0


def doctor(config_path: Path | None, data_dir: Path | None) -> int:
    from console.cli import doctor as checks
    from console.engine.session import DB_NAME

    found = checks.run(
        config_path or config_module.default_config_path(), data_dir or config_module.default_data_dir(), DB_NAME
    )
    # Details carry what servers said (errors, a redirect's Location): shown, never obeyed by the terminal.
    shown = [dataclasses.replace(c, detail=safe_line(c.detail), fix=safe_line(c.fix)) for c in found]
    print(checks.report(shown))
    return 1 if any(c.status == checks.FAIL for c in found) else 0


def audit_verify(data_dir: Path) -> int:
    from console.engine.session import DB_NAME
    from storage.db import Store

    path = data_dir / DB_NAME
    if not path.exists():
        raise CliError(label_commands.no_database(path))
    store = Store(path, readonly=True)  # verifying evidence must not change it (no migration, no writes)
    try:
        result = store.audit.verify()
    except sqlite3.DatabaseError as exc:
        raise CliError(unreadable_database(path, exc), 1) from exc
    finally:
        store.close()
    if result.ok:
        print(f"OK: {plural(result.records, 'audit record')}, chain intact ({path})")
        return 0
    print(f"BROKEN at record {result.first_bad}: {safe_line(result.problem)} ({path})")
    return 1
