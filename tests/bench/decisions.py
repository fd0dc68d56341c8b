"""What a decision costs: key to durable commit, key to applied at the server, and draining a big outbox."""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from console.engine.session import Session
from console.engine.sync import SettledDecision
from storage.records import Decision, Item, SyncState, Verdict
from tests.bench.fixtures import (
    ChildFleet,
    RssSampler,
    Running,
    bench_config,
    copy_of,
    fleet_source,
    no_token,
    open_app,
    queue_dir,
)
from tests.bench.frames import key_for
from tests.bench.harness import Baseline, Bench, Result, Target, figure, measured, summarize
from tests.bench.proc import rss_kb
from tests.conftest import eventually

# After a decision the main screen ignores decision keys for 0.4 s (a bounce guard); wait it out between decisions.
GUARD = 0.5
DURABLE = (
    "from the approve key event (Pilot.press) to the return of Store.outbox.record: the durable transaction holding "
    "the decision and its audit record (WAL, synchronous=FULL), then the one taking the item out of the queue and "
    "writing its label (synchronous=NORMAL); app over 10k cached items, no sources, undo off"
)
APPLIED = (
    "from the approve key event to the sync engine reporting the demo fleet's `applied` answer for that decision "
    "(recorded locally with its audit record); fleet in a child process, long-poll on, undo off"
)
SYNC = (
    "10,000 decisions recorded while offline (through Session.decide), then SyncEngine.run drains the outbox to the "
    "demo fleet in a child process: decisions sent and their final answers recorded, per second"
)


async def _decide_shown(running: Running) -> tuple[Item, float] | None:
    """Press the approve (or accept) key on the shown item; (item, perf_counter at the key), or None if none."""
    bound = key_for(running.app, lambda action: action in ("approve", "accept"))  # an escalation is accepted
    shown = running.app.main.shown
    if bound is None or shown is None:
        return None
    pressed = time.perf_counter()
    await running.pilot.press(bound[0])
    return shown, pressed


def bare_commit_ms(directory: Path, count: int) -> list[float]:
    """A bare SQLite WAL commit with synchronous=FULL on the same disk: one small insert per transaction."""
    directory.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(directory / "bare.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS decisions(id TEXT PRIMARY KEY, body TEXT)")
        samples = []
        for index in range(count):
            begun = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO decisions VALUES (?, ?)", (f"d{index}-{time.monotonic_ns()}", "x" * 300))
            conn.execute("COMMIT")
            samples.append((time.perf_counter() - begun) * 1000)
        return samples
    finally:
        conn.close()


@figure("durable_commit", ("durable_commit", "decision key to durable commit", "ms", DURABLE, Target("<=", 5.0, "p99")))
async def durable_commit(bench: Bench) -> list[Result]:
    items = bench.items(10_000, 1_000)
    data_dir = copy_of(queue_dir(bench, items), "durable-commit")
    runs = bench.runs(120, 10)
    samples: list[float] = []
    storage_only: list[float] = []
    before_record: list[float] = []  # key to the decision reaching storage: the event loop, dispatch and checks
    async with open_app(data_dir, bench_config()) as running:
        store = running.app.session.store
        commits: list[tuple[float, float]] = []
        record = store.outbox.record

        def timed(decision: Decision, *args: Any, **kwargs: Any) -> None:
            begun = time.perf_counter()
            record(decision, *args, **kwargs)
            commits.append((begun, time.perf_counter()))

        store.outbox.record = timed  # type: ignore[method-assign]
        # The least urgent end of the queue: low risk, so one key approves (critical items may ask to confirm).
        last = key_for(running.app, lambda action: action == "cursor_last")
        if last is not None:
            await running.pilot.press(last[0])
        for _ in range(runs):
            await running.pilot.pause(GUARD)
            before = len(commits)
            decided = await _decide_shown(running)
            if decided is None or len(commits) == before:
                raise RuntimeError("the approve key recorded no decision")
            begun, done = commits[-1]
            samples.append((done - decided[1]) * 1000)
            storage_only.append((done - begun) * 1000)
            before_record.append((begun - decided[1]) * 1000)
        if store.outbox.waiting_count() != runs or not store.audit.verify().ok:
            raise RuntimeError("the decisions and their audit chain are not all in storage")
    bare = bare_commit_ms(data_dir / "bare", max(runs, 200))
    return [
        measured(
            "durable_commit",
            "durable_commit",
            samples,
            params={"items": items, "decisions": runs},
            details={
                "key_to_record_ms": summarize(before_record).spread(),
                "record_decision_only_ms": summarize(storage_only).spread(),
            },
            baseline=Baseline("bare SQLite insert + commit, WAL, synchronous=FULL, same directory", summarize(bare)),
        )
    ]


@figure(
    "decision_applied", ("decision_applied", "decision key to applied (demo fleet)", "ms", APPLIED, Target("<=", 50.0))
)
async def decision_applied(bench: Bench) -> list[Result]:
    runs = bench.runs(30, 5)
    samples: list[float] = []
    answered: dict[str, tuple[float, SyncState]] = {}

    def heard(outcomes: Sequence[SettledDecision]) -> None:
        now = time.perf_counter()
        for outcome in outcomes:
            answered[outcome.decision.item_id] = (now, outcome.result.state or SyncState.pending)

    with ChildFleet(initial=runs * 3) as fleet:
        async with open_app(bench.workdir / "decision-applied", bench_config(fleet_source(fleet.url))) as running:
            running.app.session.on_outcomes(heard)
            for _ in range(runs):
                await running.pilot.pause(GUARD)
                await _select_plain_approval(running)
                decided = await _decide_shown(running)
                if decided is None:
                    raise RuntimeError("nothing to approve")
                item, pressed = decided
                # The answer's time is taken by the listener, not by this wait.
                await eventually(
                    partial(operator.contains, answered, item.id), timeout=10, what=f"the answer on {item.id}"
                )
                when, state = answered.get(item.id, (0.0, SyncState.pending))
                if state is not SyncState.applied:
                    raise RuntimeError(f"decision on {item.id} ended {state.value}, not applied")
                samples.append((when - pressed) * 1000)
        applied_ids = [d["item_id"] for d in fleet.applied()]
    if len(applied_ids) != runs or len(set(applied_ids)) != runs:
        raise RuntimeError(f"the fleet applied {len(applied_ids)} decisions for {runs} key presses")
    return [measured("decision_applied", "decision_applied", samples, params={"decisions": runs})]


async def _select_plain_approval(running: Running) -> None:
    """Move to an item one key approves: approve allowed and not critical (critical may ask for confirmation)."""
    down = key_for(running.app, lambda action: action == "cursor_down")
    for _ in range(100):
        shown = running.app.main.shown
        if shown is not None and shown.allows(Verdict.approve) and shown.risk.value != "critical":
            return
        if down is None:
            break
        await running.pilot.press(down[0])
        await running.pilot.pause()
    raise RuntimeError("no item in the queue can be approved with one key")


@figure(
    "sync_throughput",
    ("sync_throughput", "sync of 10,000 waiting decisions", "decisions/s", SYNC, Target(">=", 1000.0)),
    (
        "sync_memory_growth",
        "sync of 10,000 waiting decisions: memory growth",
        "MB",
        "largest resident memory of the console process while the outbox drains minus its resident memory just before "
        "(sampled every 50 ms); flat means it does not grow with the number of decisions",
        Target("<=", 16.0, "max"),
    ),
)
async def sync_throughput(bench: Bench) -> list[Result]:
    count = bench.items(10_000, 1_000)
    rates: list[float] = []
    growth: list[float] = []
    outcomes: dict[str, int] = {}
    for run in range(bench.runs(3, 1)):
        with ChildFleet(initial=count) as fleet:
            session = Session(
                bench_config(fleet_source(fleet.url, long_poll=0.0)), bench.workdir / f"sync-{run}", token_for=no_token
            )
            try:
                await _fill_outbox(session, count)
                rate, grew, states = await _drain(session, count)
            finally:
                await session.aclose()
            applied = len(fleet.applied())
        if applied != states.get(SyncState.applied.value, 0):
            raise RuntimeError(f"the fleet applied {applied}, the console recorded {states}")
        rates.append(rate)
        growth.append(grew)
        for state, number in states.items():
            outcomes[state] = outcomes.get(state, 0) + number
    params = {"decisions": count}
    return [
        measured("sync_throughput", "sync_throughput", rates, params=params, details={"outcomes": outcomes}),
        measured("sync_throughput", "sync_memory_growth", growth, params=params),
    ]


async def _fill_outbox(session: Session, count: int) -> None:
    await session.poll_once()
    store = session.store
    if store.queue.count() != count:
        raise RuntimeError(f"listed {store.queue.count()} items, the fleet holds {count}")
    # Setup only: this figure measures sending, not 10,000 durable commits (durable_commit measures those).
    store.db.execute("PRAGMA synchronous=OFF")
    for row in store.queue.rows(0, count):
        found = store.items.get(row.source, row.id)
        assert found is not None
        item = found[0]
        verdict = next(v for v in (Verdict.approve, Verdict.reject) if item.allows(v))
        session.decide(item, verdict)
    store.db.execute("PRAGMA synchronous=FULL")
    if store.outbox.waiting_count() != count:
        raise RuntimeError(f"{store.outbox.waiting_count()} decisions wait, wanted {count}")


async def _drain(session: Session, count: int) -> tuple[float, float, dict[str, int]]:
    """(decisions per second, memory growth in MB, final states) of the sync engine draining the outbox."""
    states: dict[str, int] = {}
    finished = asyncio.Event()

    def heard(outcomes: Sequence[SettledDecision]) -> None:
        for outcome in outcomes:
            state = (outcome.result.state or SyncState.pending).value
            states[state] = states.get(state, 0) + 1
        if sum(states.values()) >= count:
            finished.set()

    session.on_outcomes(heard)
    sampler = RssSampler()
    before = rss_kb()
    sampling = asyncio.create_task(sampler.run())
    started = time.perf_counter()
    syncing = asyncio.create_task(session.sync.run())
    try:
        await asyncio.wait_for(finished.wait(), timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        for task in (syncing, sampling):
            task.cancel()
        await asyncio.gather(syncing, sampling, return_exceptions=True)
    return count / elapsed, (max(sampler.samples) - before) / 1024, states
