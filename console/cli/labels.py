"""`approval-console export` and `approval-console stats`: labels out of the machine, and rates for scripts and cron.

Both read the database through a read-only connection, so they run safely beside a live console.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from console.cli.text import fail, plural, unreadable_database
from storage.connection import open_readonly
from storage.export import FORMATS, TRAINING_FORMATS, ExportCount, ExportFilter, export_labels, has_labels_table
from storage.export_fields import ExportOptions, Redaction
from storage.label_stats import GroupStats, LabelStats, label_stats
from storage.labels import LABEL_VERDICTS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CommandError(Exception):
    """A problem the user can fix; the message says how."""


def parse_duration(text: str) -> float:
    """'90s', '30m', '24h', '7d', '2w' -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_when(text: str, now: float | None = None) -> float:
    """An RFC 3339 / ISO 8601 time (no zone means UTC) or a duration ago ('24h': a day ago) -> epoch seconds."""
    if _DURATION.match(text):
        return (time.time() if now is None else now) - parse_duration(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a time (2026-11-21 or 2026-11-21T23:00:00Z) nor a duration ago (24h, 7d)"
        ) from exc
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def add_parsers(
    commands: argparse._SubParsersAction[Any],
    common: argparse.ArgumentParser,
    demo_data: argparse.ArgumentParser,
) -> None:
    export = commands.add_parser(
        "export",
        parents=[common, demo_data],
        help="stream labels (every decision and timed-out item) as JSON Lines",
        description="Stream labels as JSON Lines, oldest first. Filters combine; a repeated filter matches any value.",
    )
    export.add_argument("--format", choices=FORMATS, default="labels", help="record shape (default: labels)")
    export.add_argument("--since", type=parse_when, help="decided at or after: a time (UTC unless zoned) or 24h, 7d")
    export.add_argument("--until", type=parse_when, help="decided before: a time or a duration ago")
    export.add_argument("--source", action="append", default=[], help="only this source (repeatable)")
    export.add_argument("--agent", action="append", default=[], help="only this agent (repeatable)")
    export.add_argument("--verdict", action="append", default=[], choices=LABEL_VERDICTS, help="repeatable")
    export.add_argument(
        "--redact",
        action="append",
        default=[],
        metavar="KEY",
        help="mask this argument key wherever it occurs, nested too, any case (repeatable)",
    )
    export.add_argument(
        "--redact-mode", choices=("mask", "drop"), default="mask", help="mask the value or drop the key"
    )
    export.add_argument(
        "--redact-text",
        action="append",
        default=[],
        metavar="REGEX",
        type=_regex,
        help="mask matches in free text: summaries, comments, reasoning, prompts, string values (repeatable)",
    )
    export.add_argument("--reason", action="append", default=[], metavar="CODE", help="only this reject or edit reason")
    export.add_argument("--applied-only", action="store_true", help="only decisions the source applied")
    export.add_argument(
        "--chat", action="store_true", help="preference, kto: conversational records (messages, tool calls, tools)"
    )
    export.add_argument("--output", "-o", default="-", help="file to write, or - for stdout (default)")

    stats = commands.add_parser(
        "stats",
        parents=[common, demo_data],
        help="approval, edit, reject and timed-out rates and time to decide, from labels",
    )
    stats.add_argument("--window", type=parse_duration, default=86400.0, help="how far back (default 24h)")
    stats.add_argument("--json", action="store_true", help="one JSON object, for scripts")


def no_database(path: Path) -> str:
    """There is no database at `path`: where the data may be instead (after `make demo`, in the demo's data dir)."""
    from console.engine.config import demo_data_dir
    from console.engine.session import DB_NAME

    demo = demo_data_dir()
    if path != demo / DB_NAME and (demo / DB_NAME).exists():
        return f"no database at {path}; the demo's data is in {demo}: add --demo (or --data-dir DIR)"
    if path == demo / DB_NAME:
        return f"no database at {path}: the demo has not run yet ('approval-console demo')"
    return f"no database at {path}: run the console once, or give --data-dir DIR (--demo for the demo's data)"


@contextmanager
def _labels_db(data_dir: Path) -> Iterator[sqlite3.Connection]:
    from console.engine.session import DB_NAME

    path = data_dir / DB_NAME
    if not path.exists():
        raise CommandError(no_database(path))
    conn = open_readonly(path)
    try:
        try:
            labelled = has_labels_table(conn)
        except sqlite3.DatabaseError as exc:
            raise CommandError(unreadable_database(path, exc)) from exc
        if not labelled:
            raise CommandError(f"{path} holds no labels yet: open it once with this version of approval-console")
        yield conn
    finally:
        conn.close()


@contextmanager
def _output(target: str) -> Iterator[TextIO]:
    """stdout, or a file that appears only complete: written beside it, then renamed over it."""
    if target == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(target)
    if not path.parent.is_dir():
        raise CommandError(f"cannot write {path}: there is no directory {path.parent}")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent.resolve())
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            yield out
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from exc
    return text


def run_export(args: argparse.Namespace, data_dir: Path) -> int:
    if args.chat and args.format not in TRAINING_FORMATS:
        return fail(f"--chat shapes training data: use it with --format {' or '.join(TRAINING_FORMATS)}")
    filters = ExportFilter(
        since=args.since,
        until=args.until,
        sources=args.source,
        agents=args.agent,
        verdicts=args.verdict,
        reasons=args.reason,
    )
    redaction = Redaction(args.redact, args.redact_text, drop=args.redact_mode == "drop")
    options = ExportOptions(redaction=redaction, chat=args.chat, applied_only=args.applied_only)
    try:
        with _labels_db(data_dir) as conn, _output(args.output) as out:
            count = export_labels(conn, out, args.format, filters, options=options)
            for skip, skipped in count.skipped.items():
                print(skip.message(skipped), file=sys.stderr)
            if count.records == 0 and args.format in TRAINING_FORMATS:
                raise CommandError(_nothing_to_train_on(args.format, count))
    except CommandError as exc:
        return fail(str(exc))
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error; keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    where = "stdout" if args.output == "-" else args.output
    records = plural(count.records, "record")
    print(f"exported {plural(count.labels, 'label')} as {records} ({args.format} format) to {where}", file=sys.stderr)
    return 0


def _nothing_to_train_on(fmt: str, count: ExportCount) -> str:
    """Why a training export is empty: a file with no records is no dataset `load_dataset` can read."""
    what = "edits" if fmt == "preference" else "human verdicts"
    return (
        f"no {fmt} records: of {plural(count.labels, 'matching label')}, none gave training data"
        f" ({fmt} takes {what}); nothing written"
    )


def run_stats(args: argparse.Namespace, data_dir: Path) -> int:
    now = time.time()
    try:
        with _labels_db(data_dir) as conn:
            stats = label_stats(conn, since=now - args.window, until=None)
    except CommandError as exc:
        return fail(str(exc))
    print(json.dumps(stats.as_dict(), ensure_ascii=True) if args.json else format_stats(stats))
    return 0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _stats_line(name: str, group: GroupStats) -> str:
    from widgets.safe_text import one_line  # agent names come from agents: never raw to the terminal

    times = group.seconds_to_decide
    return (
        f"{one_line(name, 24):<24} {group.total:>7}  approve {_pct(group.approve_rate):>4}"
        f"  edit {_pct(group.edit_rate):>4}  reject {_pct(group.reject_rate):>4}"
        f"  timed_out {_pct(group.timed_out_rate):>4}  escalations {_pct(group.escalation_rate):>4}"
        f"  decide median {_secs(times.median)} p90 {_secs(times.p90)}  conflicts lost {group.conflicts_lost}"
    )


def format_stats(stats: LabelStats) -> str:
    """Plain text for people and cron mail: a header, a line for all agents, one per agent (names made safe)."""
    header = (
        f"{'agent':<24} {'labels':>7}  rates of human verdicts; timed_out and escalations of all labels;"
        " conflicts lost: decided here, but another operator was first (in no rate)"
    )
    rows = [header, _stats_line("all agents", stats.overall)]
    rows.extend(_stats_line(agent, group) for agent, group in stats.by_agent.items())
    return "\n".join(rows)
