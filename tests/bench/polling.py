"""What an idle console costs the network and the CPU: one poll of a big queue where nothing changed."""

from __future__ import annotations

import time

from console.engine.session import Session
from tests.bench.fixtures import ChildFleet, bench_config, fleet_source, no_token
from tests.bench.harness import Bench, Result, Target, figure, measured

IDLE = (
    "one Session.poll_once of a native source whose queue holds N pending items, all already stored (after the "
    "initial snapshot), nothing changed; long-poll off"
)


@figure(
    "idle_poll",
    (
        "idle_poll_bytes",
        "idle poll of 100k pending items: bytes",
        "B",
        IDLE + "; bytes counted on the wire by a TCP relay in front of the fleet (requests and answers with headers)",
        Target("<=", 2048.0),
    ),
    (
        "idle_poll_cpu",
        "idle poll of 100k pending items: client CPU",
        "ms",
        IDLE + "; time.process_time of the console process around the poll (all its threads)",
        Target("<=", 10.0),
    ),
)
async def idle_poll(bench: Bench) -> list[Result]:
    count = bench.items(100_000, 10_000)
    wire: list[float] = []
    cpu: list[float] = []
    with ChildFleet(initial=count) as fleet:
        config = bench_config(fleet_source(fleet.relay_url, long_poll=0.0))
        session = Session(config, bench.workdir / "idle-poll", token_for=no_token)
        try:
            started = time.perf_counter()
            await session.poll_once()  # the initial snapshot: not measured
            snapshot_seconds = time.perf_counter() - started
            stored = session.store.queue.count()
            if stored < count * 0.9:  # the fleet's items expire meanwhile, a few
                raise RuntimeError(f"the snapshot stored {stored} of {count} items")
            busy = 0  # polls that carried a change (an item expiring at the fleet): not idle, not counted
            while len(cpu) < bench.runs(30, 5) and busy < 100:
                sent = fleet.wire_bytes()
                begun = time.process_time()
                await session.poll_once()
                spent = (time.process_time() - begun) * 1000
                if session.store.queue.count() != stored:
                    stored, busy = session.store.queue.count(), busy + 1
                    continue
                cpu.append(spent)
                wire.append(float(fleet.wire_bytes() - sent))
        finally:
            await session.aclose()
    params = {"items": count}
    details = {"initial_snapshot_s": round(snapshot_seconds, 2), "polls_with_changes_skipped": busy}
    return [
        measured("idle_poll", "idle_poll_bytes", wire, params=params, details=details),
        measured("idle_poll", "idle_poll_cpu", cpu, params=params, details=details),
    ]
