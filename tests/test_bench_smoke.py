"""The benchmark harness cannot rot: one cheap figure runs in quick mode and its JSON has the promised shape.

No timing is asserted here: the numbers belong to `make bench`; this checks that they are produced and judged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.bench.harness import Result, Target, summarize

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {"name", "value", "unit", "runs", "spread", "target", "met", "status", "definition"}


def test_quick_figures_write_the_report(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [sys.executable, "-m", "tests.bench", "--quick", "--only", "first_paint", "--only", "export"]
    done = subprocess.run(
        [*command, "--output", str(output)], check=False, cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["quick"] is True and report["machine"]["cpus"] >= 1
    figures = {f["name"]: f for f in report["figures"]}
    assert set(figures) == {
        "first_paint_1k",
        "first_paint_10k",
        "first_paint_flatness",
        "export_labels_rate",
        "export_memory_growth",
    }
    for figure in figures.values():
        assert set(figure) >= FIELDS, figure["name"]
    paint = figures["first_paint_1k"]
    assert paint["status"] == "measured" and paint["unit"] == "s" and paint["runs"] == 3
    assert paint["spread"]["min"] <= paint["value"] <= paint["spread"]["max"]
    assert paint["met"] == (paint["value"] <= paint["target"]["limit"])
    assert "first paint, 1,000 items in storage" in done.stdout, "the table is printed"
    export = figures["export_labels_rate"]
    assert export["status"] == "measured" and export["unit"] == "labels/s" and export["value"] > 0
    assert export["met"] == (export["value"] >= export["target"]["limit"])


def test_a_missed_target_is_reported_as_missed() -> None:
    slow = Result("x", "x", "ms", "x", Target("<=", 5.0, "p99"), summary=summarize([1.0] * 98 + [9.0] * 2))
    assert slow.value == 9.0 and not slow.met
    fast = Result("x", "x", "ms", "x", Target("<=", 5.0, "p99"), summary=summarize([1.0] * 99 + [9.0]))
    assert fast.met
    rate = Result("x", "x", "decisions/s", "x", Target(">=", 1000.0), summary=summarize([400.0, 500.0, 900.0]))
    assert rate.value == 500.0 and not rate.met
    assert not Result("x", "x", "s", "x", Target("<=", 1.0), reason="not available yet: later").met


def test_pytest_does_not_collect_the_bench() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/bench"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "no tests collected" in done.stdout or done.returncode == 5, done.stdout[-2000:]
