"""Figures, targets, statistics and the report: what every benchmark module shares.

A figure measures something several times and returns `Result`s; each result carries its samples, its target and
whether the target was met, computed from the measured value (a figure that cannot fail is not a benchmark).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Stat = Literal["median", "p99", "max"]
NOT_AVAILABLE = "not available yet"


@dataclass(frozen=True)
class Summary:
    """Statistics of one figure's samples (in the figure's unit)."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """Nearest-rank 99th percentile: with fewer than 100 samples it is the maximum."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        low, _, high = statistics.quantiles(self.samples, n=4, method="inclusive")
        return low, high

    def stat(self, name: Stat) -> float:
        if name == "median":
            return self.median
        if name == "p99":
            return self.p99
        return max(self.samples)

    def spread(self) -> dict[str, float]:
        p25, p75 = self.quartiles
        return {
            "min": min(self.samples),
            "p25": p25,
            "median": self.median,
            "p75": p75,
            "p99": self.p99,
            "max": max(self.samples),
        }


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("a figure needs at least one sample")
    return Summary(tuple(samples))


@dataclass(frozen=True)
class Target:
    """`stat` of the samples must be `op` `limit` (in the figure's unit)."""

    op: Literal["<=", ">="]
    limit: float
    stat: Stat = "median"

    def met(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def describe(self, unit: str) -> str:
        return f"{self.stat} {self.op} {self.limit:g} {unit}"


@dataclass(frozen=True)
class Baseline:
    """The same statistic of a baseline measured in the same run, on the same machine and disk."""

    name: str
    summary: Summary


@dataclass
class Result:
    name: str
    title: str
    unit: str
    definition: str
    target: Target
    summary: Summary | None = None
    baseline: Baseline | None = None
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why there is no value: not available yet, or the error that stopped the measurement

    @property
    def value(self) -> float | None:
        return None if self.summary is None else self.summary.stat(self.target.stat)

    @property
    def met(self) -> bool:
        value = self.value
        return value is not None and self.target.met(value)

    @property
    def ratio(self) -> float | None:
        value = self.value
        if value is None or self.baseline is None:
            return None
        base = self.baseline.summary.stat(self.target.stat)
        return value / base if base else None

    @property
    def status(self) -> str:
        if self.summary is not None:
            return "measured"
        return NOT_AVAILABLE if self.reason.startswith(NOT_AVAILABLE) else "error"

    def to_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "definition": self.definition,
            "unit": self.unit,
            "status": self.status,
            "value": self.value,
            "stat": self.target.stat,
            "runs": 0 if self.summary is None else len(self.summary.samples),
            "spread": None if self.summary is None else self.summary.spread(),
            "samples": None if self.summary is None else list(self.summary.samples),
            "target": {
                "op": self.target.op,
                "limit": self.target.limit,
                "stat": self.target.stat,
                "text": self.target.describe(self.unit),
            },
            "met": self.met,
            "params": self.params,
            "details": self.details,
        }
        if self.baseline is not None:
            report["baseline"] = {
                "name": self.baseline.name,
                "value": self.baseline.summary.stat(self.target.stat),
                "spread": self.baseline.summary.spread(),
                "runs": len(self.baseline.summary.samples),
                "ratio": self.ratio,
            }
        if self.reason:
            report["reason"] = self.reason
        return report


@dataclass
class Bench:
    """What a figure gets: the mode, a scratch dir for its data, and run counts that shrink in quick mode."""

    quick: bool
    workdir: Path
    cache: dict[str, Any] = field(default_factory=dict)  # data built once per run and shared by figures

    def runs(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def items(self, full: int, quick: int) -> int:
        return quick if self.quick else full


Measure = Callable[[Bench], Coroutine[Any, Any, list[Result]]]


@dataclass(frozen=True)
class Figure:
    name: str
    measure: Measure
    results: tuple[tuple[str, str, str, str, Target], ...]  # (name, title, unit, definition, target) it reports

    def unmeasured(self, reason: str) -> list[Result]:
        """The figure's results with no value: met is false and the reason says why."""
        return [
            Result(n, title, unit, definition, target, reason=reason)
            for n, title, unit, definition, target in self.results
        ]


FIGURES: dict[str, Figure] = {}


def figure(name: str, *results: tuple[str, str, str, str, Target]) -> Callable[[Measure], Measure]:
    """Register a measurement under `name` (what `--only` selects), declaring the results it reports."""

    def register(measure: Measure) -> Measure:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is registered twice")
        FIGURES[name] = Figure(name, measure, results)
        return measure

    return register


def declared(name: str, result: str) -> Result:
    """A result of a registered figure, as declared, ready for samples."""
    for result_name, title, unit, definition, target in FIGURES[name].results:
        if result_name == result:
            return Result(result_name, title, unit, definition, target)
    raise KeyError(f"figure {name!r} declares no result {result!r}")


def measured(
    name: str,
    result: str,
    samples: Sequence[float],
    *,
    params: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    baseline: Baseline | None = None,
) -> Result:
    """A declared result filled with its samples."""
    filled = declared(name, result)
    filled.summary = summarize(samples)
    filled.params = params or {}
    filled.details = details or {}
    filled.baseline = baseline
    return filled


def unavailable(name: str, why: str) -> list[Result]:
    return FIGURES[name].unmeasured(f"{NOT_AVAILABLE}: {why}")
