"""The demo's pace: a busy shift, not a firehose.

`make demo` once added one item every 4 s: 156 pending after 18 minutes, 79% of them expired, toasts and bells all the
time. Here the fleet `approval-console demo` builds (its pacing and its item generator, deadlines included) runs over
simulated hours, unattended and with an operator at work, and the queue is counted minute by minute.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from console.cli.commands import demo_pace
from console.servers.fleet import Fleet
from console.servers.fleet.scenarios import Pacing, Scenarios

START = 1_800_000_000.0
SEEDS = [1, 2, 3, 4]


@dataclass
class Shift:
    arrivals: list[float] = field(default_factory=list)
    pending_by_minute: list[int] = field(default_factory=list)
    expired: int = 0
    decided: int = 0


def run_shift(pacing: Pacing, scenarios: Scenarios, minutes: int, decide_every: float | None = None) -> Shift:
    """Arrivals at the fleet's pace, each with the deadline the fleet gives it; an operator (if any) decides the item
    closest to its deadline every `decide_every` seconds."""
    shift = Shift()
    deadlines: list[float] = []
    next_arrival = START + pacing.next_gap()
    next_decision = START + (decide_every or 0.0)
    for second in range(1, minutes * 60 + 1):
        now = START + second
        while next_arrival <= now:
            item = scenarios.make(next_arrival)
            deadlines.append(datetime.fromisoformat(item["expires_at"].replace("Z", "+00:00")).timestamp())
            shift.arrivals.append(next_arrival)
            next_arrival += pacing.next_gap()
        live = [d for d in deadlines if d > now]
        shift.expired += len(deadlines) - len(live)
        deadlines = live
        if decide_every is not None and now >= next_decision:
            next_decision += decide_every
            if deadlines:
                deadlines.remove(min(deadlines))
                shift.decided += 1
        if second % 60 == 0:
            shift.pending_by_minute.append(len(deadlines))
    return shift


def bursts(arrivals: list[float], size: int = 5, within: float = 60.0) -> int:
    """How many times `size` items arrived within `within` seconds (each burst counted once)."""
    count, index = 0, 0
    while index + size <= len(arrivals):
        if arrivals[index + size - 1] - arrivals[index] <= within:
            count += 1
            index += size
        else:
            index += 1
    return count


def demo_fleet(seed: int) -> tuple[Pacing, Scenarios]:
    fleet = Fleet(seed=seed, interval=demo_pace(None), initial=0)  # what `approval-console demo` builds; not served
    assert fleet.pacing is not None, "the demo adds items on its own"
    return fleet.pacing, Scenarios(random.Random(seed))


@pytest.mark.parametrize("seed", SEEDS)
def test_an_unattended_demo_levels_off_at_a_few_dozen_pending_with_bursts(seed: int) -> None:
    pacing, scenarios = demo_fleet(seed)
    hours = 3
    shift = run_shift(pacing, scenarios, hours * 60)
    settled = shift.pending_by_minute[45:]  # after the first deadlines have come round
    assert min(settled) >= 10 and max(settled) <= 70, (min(settled), max(settled))
    assert 50 * hours <= len(shift.arrivals) <= 130 * hours, "a busy shift: dozens of items an hour"
    assert bursts(shift.arrivals) >= 2 * hours, "bursts now and then"
    busiest = max(sum(1 for t in shift.arrivals if start <= t < start + 600) for start in shift.arrivals)
    assert busiest <= 30, "never a firehose: at most 30 items in any ten minutes"


@pytest.mark.parametrize("seed", SEEDS)
def test_an_operator_at_work_decides_most_items_before_they_expire(seed: int) -> None:
    pacing, scenarios = demo_fleet(seed)
    shift = run_shift(pacing, scenarios, 3 * 60, decide_every=40.0)
    assert shift.decided >= 0.85 * len(shift.arrivals), (shift.decided, shift.expired, len(shift.arrivals))
    assert max(shift.pending_by_minute) <= 25


def test_the_pace_is_reproducible_by_seed_and_apart_from_the_contents() -> None:
    first, again = demo_fleet(7), demo_fleet(7)
    assert [first[0].next_gap() for _ in range(50)] == [again[0].next_gap() for _ in range(50)]
    paced = [(i["id"], i["agent"], i["action"]["name"]) for i in Fleet(seed=7, initial=5).pending()]
    unpaced = [(i["id"], i["agent"], i["action"]["name"]) for i in Fleet(seed=7, interval=None, initial=5).pending()]
    assert paced == unpaced, "the pace draws from its own random stream"
    assert Fleet(seed=7, interval=demo_pace(0.0)).pacing is None, "--interval 0: no new items"
