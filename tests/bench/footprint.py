"""What the app costs the machine: resident memory and launch time, each in a fresh child process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.fixtures import ROOT, queue_dir
from tests.bench.harness import Baseline, Bench, Result, Target, figure, measured, summarize

LAUNCH = (
    "from spawning `python -m tests.bench.child app` (the real app, headless, 120x40, over 100k cached items, no "
    "sources) to its line saying the first interactive frame was handed to the terminal (rows painted, queue focused)"
)
BARE_TEXTUAL = [sys.executable, "-c", "import textual.app; print('ready', flush=True)"]


@dataclass(frozen=True)
class Launch:
    seconds: float
    rss_kb: int
    peak_kb: int


def launch_once(data_dir: Path) -> Launch:
    command = [sys.executable, "-m", "tests.bench.child", "app", str(data_dir)]
    started = time.perf_counter()
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        line = child.stdout.readline()
        ready = time.perf_counter()
        if child.wait(timeout=60) != 0 or not line:
            raise RuntimeError(f"the app child failed (exit {child.returncode})")
    report = json.loads(line)
    return Launch(ready - started, int(report["rss_kb"]), int(report["peak_kb"]))


def bare_import_once() -> float:
    started = time.perf_counter()
    with subprocess.Popen(BARE_TEXTUAL, cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        child.stdout.readline()
        ready = time.perf_counter()
        child.wait(timeout=60)
    return ready - started


@figure(
    "memory",
    (
        "memory_100k",
        "resident memory, 100k items",
        "MB",
        "peak resident memory (VmHWM, /proc/self/status) of a fresh process running the app headless over 100k "
        "cached items, read at its first interactive frame",
        Target("<=", 250.0),
    ),
)
async def memory(bench: Bench) -> list[Result]:
    items = bench.items(100_000, 10_000)
    data_dir = queue_dir(bench, items)
    launches = [launch_once(data_dir) for _ in range(bench.runs(3, 1))]
    return [
        measured(
            "memory",
            "memory_100k",
            [launch.peak_kb / 1024 for launch in launches],
            params={"items": items},
            details={"rss_now_mb": [round(launch.rss_kb / 1024, 1) for launch in launches]},
        )
    ]


@figure(
    "launch",
    ("launch_100k", "launch to interactive, 100k items", "s", LAUNCH, Target("<=", 1.0)),
)
async def launch(bench: Bench) -> list[Result]:
    items = bench.items(100_000, 10_000)
    data_dir = queue_dir(bench, items)
    runs = bench.runs(7, 2)
    bare = [bare_import_once() for _ in range(runs)]
    app = [launch_once(data_dir).seconds for _ in range(runs)]
    return [
        measured(
            "launch",
            "launch_100k",
            app,
            params={"items": items},
            baseline=Baseline("python -c 'import textual.app' (fresh process)", summarize(bare)),
        )
    ]
