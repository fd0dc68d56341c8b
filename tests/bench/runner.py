"""Runs the figures, prints the table, writes the JSON report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tests.bench import (
    airflow_engine,
    bridges,
    decisions,
    feedback,
    footprint,
    marks,
    network,
    pending,
    polling,
    prefect_engine,
    screen,
    serve,
    temporal_engine,
)
from tests.bench.harness import FIGURES, Bench, Result

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "bench-results.json"
MODULES = (
    screen,
    marks,
    network,
    footprint,
    decisions,
    polling,
    pending,
    temporal_engine,
    prefect_engine,
    airflow_engine,
    serve,
    feedback,
    bridges,
)  # importing them registers their figures
ORDER = (
    "first_paint",
    "keystroke",
    "keystroke_faults",
    "mark_all",
    "memory",
    "launch",
    "durable_commit",
    "decision_applied",
    "sync_throughput",
    "idle_poll",
    "item_visible",
    "langgraph",
    "temporal",
    "prefect",
    "airflow",
    "serve",
    "feedback",
    "mcp_bridge",
    "export",
)


def run(names: Sequence[str], *, quick: bool, workdir: Path) -> list[Result]:
    """Measure the named figures (all when empty); a figure that fails reports its error and the rest still run."""
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")
    bench = Bench(quick=quick, workdir=workdir)
    results: list[Result] = []
    for name in names or sorted(FIGURES, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        started = time.perf_counter()
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        try:
            measured = asyncio.run(FIGURES[name].measure(bench))
        except Exception as exc:
            traceback.print_exc()
            measured = FIGURES[name].unmeasured(f"error: {type(exc).__name__}: {exc}")
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        results.extend(measured)
    return results


def report(results: Sequence[Result], *, quick: bool, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "textual": version("textual"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "met": sum(r.met for r in results),
        "figures": [r.to_json() for r in results],
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(results: Sequence[Result]) -> str:
    rows = [("figure", "value", "spread (min..max)", "runs", "target", "met", "baseline ratio")]
    for r in results:
        spread = r.summary.spread() if r.summary else None
        rows.append(
            (
                r.title,
                f"{_number(r.value)} {r.unit}" if r.summary else r.status,
                f"{_number(spread['min'])}..{_number(spread['max'])}" if spread else "-",
                str(len(r.summary.samples)) if r.summary else "0",
                r.target.describe(r.unit),
                "yes" if r.met else "NO",
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for r in results:
        if r.reason:
            lines.append(f"{r.name}: {r.reason}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller queues: a smoke check")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help=f"one of {', '.join(FIGURES)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON report goes")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="approval-console-bench-") as scratch:
        results = run(args.only, quick=args.quick, workdir=Path(scratch))
    args.output.write_text(json.dumps(report(results, quick=args.quick, load_before=load_before), indent=2) + "\n")
    print(table(results))
    print(f"\n{sum(r.met for r in results)} of {len(results)} targets met; report: {args.output}")
    return 0
