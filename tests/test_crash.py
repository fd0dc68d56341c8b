"""Crashes lose nothing and duplicate nothing: SIGKILL the console's storage and sync code at random moments, restart.

Each round starts tests/crash_child.py against the demo fleet (here, in the test process), lets it poll, decide and
sync for a random while (from "still opening the database" to "mid-batch"), kills it with SIGKILL, and checks:
the database passes `PRAGMA integrity_check`; the audit chain verifies; every decision the child reported as recorded
is in the database; and against the fleet's own record, every decision is either waiting in the outbox or applied
exactly once, and nothing was applied that the database does not hold.

`make test` runs 25 rounds; `make soak` runs 500 (APPROVAL_CONSOLE_CRASH_ROUNDS).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

from console.engine.config import Config, SourceConfig
from console.engine.session import DB_NAME, Session
from console.servers.fleet import Fleet
from storage.db import Store
from storage.records import SyncState
from tests.conftest import eventually
from tests.servers import FaultyProxy

ROUNDS = int(os.environ.get("APPROVAL_CONSOLE_CRASH_ROUNDS", "25"))
_ROOT = Path(__file__).resolve().parent.parent


def _server_applied(fleet: Fleet) -> Counter[str]:
    """How often the fleet applied each of our decisions (decisions made "elsewhere" are the fleet's own)."""
    return Counter(d["decision_id"] for d in fleet.applied_decisions() if not d["decision_id"].startswith("elsewhere-"))


def _check(data_dir: Path, fleet: Fleet, told: set[str], where: str) -> dict[str, SyncState]:
    store = Store(data_dir / DB_NAME)
    try:
        assert store.integrity_check() == "ok", where
        verification = store.audit.verify()
        assert verification.ok, f"{where}: {verification.problem}"
        local = {row.decision.id: row.sync_state for row in store.outbox.decisions(limit=1_000_000)}
        # What follows from a decision (its label, its item out of the queue) is there, or derived again on opening.
        unlabelled, still_queued = store.db.conn.execute(
            "SELECT sum(NOT EXISTS (SELECT 1 FROM labels l WHERE l.decision_id = d.id)),"
            " sum(EXISTS (SELECT 1 FROM items i WHERE i.source = d.source AND i.id = d.item_id"
            " AND i.digest = d.item_digest AND i.state = 'pending'))"
            " FROM decisions d WHERE d.sync_state IN ('pending', 'sending')"
        ).fetchone()
        assert not unlabelled and not still_queued, f"{where}: {unlabelled} unlabelled, {still_queued} still queued"
    finally:
        store.close()
    lost = told - local.keys()
    assert not lost, f"{where}: decisions reported as recorded are gone: {sorted(lost)}"
    applied = _server_applied(fleet)
    assert not applied.keys() - local.keys(), f"{where}: the fleet applied decisions this console never recorded"
    twice = [key for key, count in applied.items() if count > 1]
    assert not twice, f"{where}: applied more than once: {twice}"
    for decision_id, state in local.items():
        if state is SyncState.applied:
            assert applied[decision_id] == 1, (
                f"{where}: {decision_id} recorded applied, fleet has it {applied[decision_id]}x"
            )
        elif state in (SyncState.conflict, SyncState.failed):
            assert applied[decision_id] == 0, f"{where}: {decision_id} is a conflict here but applied there"
        else:
            assert state in (SyncState.pending, SyncState.sending), f"{where}: {decision_id} is {state}"
    return local


class _Lines:
    """The child's output lines as they arrive, read in a thread, so the test can wait for the child's progress."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.seen.append(line)
                self._changed.notify_all()

    def wait_for(self, decided: int) -> None:
        """Until the child is ready and has reported `decided` decisions; at most a while (the fleet may have fewer
        pending items than asked for: decided elsewhere or expired by this round's stir)."""
        with self._changed:
            self._changed.wait_for(
                lambda: "ready\n" in self.seen and sum(line.startswith("decided ") for line in self.seen) >= decided,
                timeout=10.0,
            )

    def join(self) -> None:
        self._thread.join()


def _stir(fleet: Fleet, rng: random.Random) -> None:
    """New work each round, and now and then a conflict: decided elsewhere, expired, changed under the console."""
    for _ in range(rng.randint(2, 5)):
        fleet.add_item()
    pending = [item["id"] for item in fleet.pending()]
    if pending and rng.random() < 0.3:
        fleet.decide_elsewhere(rng.choice(pending), by="bob")
    pending = [item["id"] for item in fleet.pending()]
    if pending and rng.random() < 0.2:
        fleet.expire(rng.choice(pending))
    pending = [item["id"] for item in fleet.pending()]
    if pending and rng.random() < 0.2:
        fleet.change_item(rng.choice(pending), policy=f"tightened {rng.random()}")


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("APPROVAL_CONSOLE_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    fleet = Fleet(seed=seed, interval=None, initial=8, expire_check=0.2)
    fleet.start()
    # A little latency on every answer, after the fleet acted: kills often land between "applied there" and
    # "recorded here", the window that idempotency keys exist for.
    proxy = FaultyProxy(fleet.url, latency=0.02)
    url = proxy.start()
    told: set[str] = set()
    in_flight_at_kill: set[str] = set()
    try:
        for round_number in range(ROUNDS):
            where = f"round {round_number} (seed {seed})"
            _stir(fleet, rng)
            child = subprocess.Popen(
                [sys.executable, "-m", "tests.crash_child", str(data_dir), url, str(rng.randrange(1 << 30))],
                cwd=_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            # Now and then while it is still opening the database; mostly while deciding and syncing: after it has
            # reported a few decisions (counted, not timed, so a busy machine kills at the same points), and a moment.
            assert child.stdout is not None
            lines = _Lines(child.stdout)
            if rng.random() < 0.15:
                time.sleep(rng.uniform(0.0, 0.3))
            else:
                lines.wait_for(decided=rng.randint(1, 3))
                time.sleep(rng.uniform(0.0, 0.35))
            child.send_signal(signal.SIGKILL)
            _, err = child.communicate(timeout=30)
            lines.join()
            assert child.returncode == -signal.SIGKILL, f"{where}: the child ended by itself:\n{err[-3000:]}"
            told |= {line.split()[1] for line in lines.seen if line.startswith("decided ")}
            local = _check(data_dir, fleet, told, where)
            applied = _server_applied(fleet)
            in_flight_at_kill |= {
                key for key, state in local.items() if state in (SyncState.pending, SyncState.sending) and applied[key]
            }

        # Afterwards one calm run sends whatever waits: each decision ends applied exactly once or as a conflict.
        config = Config(
            operator="alice", sources=(SourceConfig(name="fleet", url=fleet.url, long_poll=0.0),), undo_seconds=0
        )
        session = Session(config, data_dir, token_for=lambda _n: None)

        async def drain() -> None:
            engine = asyncio.create_task(session.sync.run())  # the real engine, retries and all
            try:
                await eventually(
                    lambda: session.store.outbox.waiting_count() == 0, timeout=60, what="the outbox drained"
                )
            finally:
                engine.cancel()
                await session.aclose()

        asyncio.run(drain())
        local = _check(data_dir, fleet, told, f"after the calm run (seed {seed})")
        assert all(state not in (SyncState.pending, SyncState.sending) for state in local.values())
        applied = _server_applied(fleet)
        assert {key for key, state in local.items() if state is SyncState.applied} == set(applied)
        assert len(told) >= ROUNDS, f"too few decisions made to mean anything ({len(told)}, seed {seed})"
        killed_between = len(in_flight_at_kill)
        print(f"crash rounds {ROUNDS}: {len(told)} decisions, {killed_between} killed between applied and recorded")
    finally:
        proxy.stop()
        fleet.stop()
