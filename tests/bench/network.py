"""Keys while the network misbehaves: the operator's keys must never wait for a slow or failing agent service."""

from __future__ import annotations

import logging
import time

from storage.records import Verdict
from tests.bench.fixtures import ChildFleet, bench_config, fleet_source, open_app
from tests.bench.frames import key_for
from tests.bench.harness import Bench, Result, Target, declared, figure, measured
from tests.bench.screen import _time_key
from tests.servers import Fault, FaultyProxy, running

DRIP = Fault(200, b'{"items": []}' + b" " * 400, drip=0.005, path_prefix="/v1/items?")  # 400 bytes over 2 s
REFUSED = Fault(503, b"", {"Retry-After": "0.1"}, path_prefix="/v1/items/")  # decisions (and claims) answered 503
FAULTS = 5_000  # of each: more than a run can use up
DECIDED = 3  # decisions recorded first, so the sync engine retries against 503s throughout
KEYSTROKE_FAULTS = (
    "from the key event (Pilot.press) to the first frame handed to the terminal that shows the cursor moved and the "
    "detail following it; app over the demo fleet (a child process) through a fault proxy on loopback where every "
    "listing drips 400 bytes over 2 s and every decision and claim is answered 503 with Retry-After 0.1 s, with "
    f"{DECIDED} decisions retrying; 120x40"
)


@figure(
    "keystroke_faults",
    (
        "keystroke_faults_move",
        "keystroke: move, listing dripping and decisions 503",
        "ms",
        KEYSTROKE_FAULTS,
        Target("<=", 50.0),
    ),
)
async def keystroke_faults(bench: Bench) -> list[Result]:
    samples: list[float] = []
    quiet = logging.NullHandler()  # every 503 is logged as a warning: the run's table, not the retries, is the news
    logging.getLogger("console").addHandler(quiet)
    try:
        return await _measure(bench, samples)
    finally:
        logging.getLogger("console").removeHandler(quiet)


async def _measure(bench: Bench, samples: list[float]) -> list[Result]:
    with ChildFleet(initial=60) as fleet, running(FaultyProxy(fleet.url)) as proxy:
        source = fleet_source(proxy.url, long_poll=0.0, poll_interval=0.2, timeout=5.0)
        data_dir = bench.workdir / f"keystroke-faults-{time.monotonic_ns()}"
        async with open_app(data_dir, bench_config(source)) as app_running:
            app = app_running.app
            proxy.inject(*[DRIP] * FAULTS, *[REFUSED] * FAULTS)
            store = app.session.store
            for row in store.queue.rows(0, DECIDED * 3):
                found = store.items.get(row.source, row.id)
                if found is not None and found[0].allows(Verdict.approve) and store.outbox.waiting_count() < DECIDED:
                    app.session.decide(found[0], Verdict.approve)
            bound = key_for(app, lambda action: action == "cursor_down")
            if bound is None:
                result = declared("keystroke_faults", "keystroke_faults_move")
                result.reason = "no binding on the main screen whose action is cursor_down"
                return [result]
            for _ in range(bench.runs(40, 8)):
                sample = await _time_key(app_running, "keystroke_move", bound[0])
                if sample is not None:
                    samples.append(sample)
            requests = len(proxy.requests)
    if not samples:
        result = declared("keystroke_faults", "keystroke_faults_move")
        result.reason = f"pressing {bound[0]!r} changed nothing on screen within 2 s"
        return [result]
    return [
        measured(
            "keystroke_faults",
            "keystroke_faults_move",
            samples,
            params={"key": bound[0], "decisions_retrying": DECIDED},
            details={"requests_during_run": requests},
        )
    ]
