"""How the engine figures (Temporal, Airflow) measure a Session over a real engine: polls until every waiting request
is stored, then idle polls, each with its client CPU and the bytes on the wire."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from console.engine.session import Session
from tests.bench.fixtures import WireBytes
from tests.bench.harness import Result, measured


async def poll_until_stored(session: Session, count: int, pause: float = 0.0) -> int:
    """Poll until the store holds `count` items (`pause` seconds between polls); how many polls it took."""
    polls = 0
    while session.store.queue.count() < count:
        await session.poll_once()
        polls += 1
        if pause:
            await asyncio.sleep(pause)
    return polls


async def idle_polls(session: Session, source: str, count: int, runs: int) -> tuple[list[float], list[float]]:
    """`runs` polls with nothing changed at the engine: the client CPU of each (ms) and its bytes on the wire.
    Fails if the queue changed meanwhile (the polls were not idle)."""
    wire = WireBytes()
    wire.attach(session.sources[source])
    cpu: list[float] = []
    sent: list[float] = []
    for _ in range(runs):
        before = wire.bytes
        begun = time.process_time()
        await session.poll_once()
        cpu.append((time.process_time() - begun) * 1000)
        sent.append(float(wire.bytes - before))
    if session.store.queue.count() != count:
        raise RuntimeError(f"the queue changed during idle polls: {session.store.queue.count()} of {count}")
    return cpu, sent


def engine_figures(
    engine: str, visible: float, polls: int, cpu: list[float], sent: list[float], params: dict[str, Any]
) -> list[Result]:
    """The three figures of an engine: `{engine}_500_visible`, `{engine}_idle_poll_bytes`, `{engine}_idle_poll_cpu`."""
    return [
        measured(engine, f"{engine}_500_visible", [visible], params=params, details={"polls": polls}),
        measured(engine, f"{engine}_idle_poll_bytes", sent, params=params),
        measured(engine, f"{engine}_idle_poll_cpu", cpu, params=params),
    ]
