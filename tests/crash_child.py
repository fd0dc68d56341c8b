"""The console's storage and sync code in a process of its own, for tests/test_crash.py to SIGKILL at random moments.

It polls the fleet, decides every pending item it sees (approve or reject at random) and syncs, all at once and
forever. After each decision is durably recorded it prints `decided <id>`: what the operator would have been told.

    python -m tests.crash_child DATA_DIR FLEET_URL SEED
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from console.engine.config import Config, SourceConfig
from console.engine.session import Session
from storage.db import DecisionRefused
from storage.records import Verdict

SOURCE = "fleet"


async def run(data_dir: Path, url: str, seed: int) -> None:
    config = Config(
        operator="alice",
        sources=(SourceConfig(name=SOURCE, url=url, poll_interval=0.1, long_poll=0.0, timeout=2.0),),
        undo_seconds=0.0,  # due at once: the kill should land while sending, not while waiting
    )
    session = Session(config, data_dir, token_for=lambda _name: None)
    rng = random.Random(seed)
    print("ready", flush=True)

    async def decide() -> None:
        while True:
            await session.poll_once()
            for row in session.store.queue.rows(0, 50):
                found = session.store.items.get(row.source, row.id)
                if found is None or found[1] != "pending":
                    continue
                reject = rng.random() < 0.3
                try:
                    decision = session.decide(
                        found[0],
                        Verdict.reject if reject else Verdict.approve,
                        reason_code="unsafe" if reject else None,
                    )
                except DecisionRefused:
                    continue
                print(f"decided {decision.id}", flush=True)
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)

    async def sync() -> None:
        while True:
            if not await session.sync_once():
                await asyncio.sleep(0.005)

    await asyncio.gather(decide(), sync())


if __name__ == "__main__":
    asyncio.run(run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
