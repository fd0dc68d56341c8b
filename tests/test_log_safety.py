"""console.log gets the screen's safe-text treatment: a hostile server's text never reaches the file as terminal bytes.

A proxy in front of the fleet answers decisions with a redirect whose Location carries C1 controls (as obs-text in the
header) and then with a conflict whose `decided_by` carries OSC 52, CSI 2J and U+202E; it answers one listing with
the same redirect. Whatever the console logs about them, `tail -f console.log` must replay nothing.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from pathlib import Path

import pytest

from console.engine.session import Session, setup_logging
from console.servers.fleet import Fleet
from storage.db import DecisionRefused
from storage.records import SyncState, Verdict
from tests.conftest import SOURCE, eventually, make_config, read_log
from tests.servers import Fault, FaultyProxy, running

HOSTILE_BY = "bob\x1b]52;c;cm0gLXJmIC8K\x07\x1b[2J\x1b[H\u202eexe.txt\u202c\n2026-01-01 INFO forged: all clear"
C1_LOCATION = "http://127.0.0.1:1/moved\x9b2J\x85\x90next"


def _terminal_unsafe(text: str) -> list[str]:
    """Characters a terminal would act on or hide: C0 (but newline and tab), DEL, C1, format characters (bidi)."""
    return sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if (c not in "\n\t" and unicodedata.category(c) == "Cc") or unicodedata.category(c) in ("Cf", "Cs")
        }
    )


@pytest.mark.usefixtures("isolated_log")
async def test_hostile_server_text_reaches_the_log_cleaned(data_dir: Path) -> None:
    fleet = Fleet(seed=5, interval=None, initial=0)
    fleet.start()
    try:
        plain = fleet.add_item(id="refund-7", risk="low")["id"]
        fleet.add_item(id="inv-\u202efdp.exe", risk="low")  # listed or quarantined: either way its id is logged
        with running(FaultyProxy(fleet.url)) as proxy:
            setup_logging(data_dir)
            config = make_config(proxy.url, operator="erin", long_poll=0.0, poll_interval=0.1, timeout=2.0)
            session = Session(config, data_dir, token_for=lambda _n: None)
            conflict = json.dumps({"outcome": "conflict", "decided_by": HOSTILE_BY, "verdict": "approve"}).encode()
            redirect = Fault(302, b"", {"Location": C1_LOCATION}, path_prefix="/v1/items/")
            proxy.inject(
                Fault(302, b"", {"Location": C1_LOCATION}, path_prefix="/v1/items?"),  # one listing redirected
                redirect,  # the first decision is redirected, then answered with the hostile conflict
                *[Fault(409, conflict, {"Content-Type": "application/json"}, path_prefix="/v1/items/")] * 4,
            )
            running_session = asyncio.create_task(session.run())
            try:
                await eventually(lambda: session.store.items.get(SOURCE, plain) is not None, what="the item listed")
                decided = []
                for row in session.store.queue.rows(0, 10):
                    found = session.store.items.get(row.source, row.id)
                    if found is not None:
                        try:
                            decided.append(session.decide(found[0], Verdict.approve).id)
                        except DecisionRefused:
                            continue
                assert decided

                def settled() -> bool:
                    states = {r.decision.id: r.sync_state for r in session.store.outbox.decisions()}
                    return all(states.get(i) is SyncState.conflict for i in decided)

                await eventually(settled, what="the decisions answered with the hostile conflict")
            finally:
                running_session.cancel()
                await asyncio.gather(running_session, return_exceptions=True)
                await session.aclose()
    finally:
        fleet.stop()
    text = read_log(data_dir)
    # The hostile text was logged (as visible stand-ins), and nothing a terminal would act on reached the file.
    assert "␛]52;c;cm0gLXJmIC8K␇␛[2J" in text
    assert "⟨U+202E⟩" in text
    assert "⟨U+009B⟩2J⟨U+0085⟩" in text
    assert _terminal_unsafe(text) == []
    # A newline in server text cannot forge a record of its own.
    assert not any(line.startswith("2026-01-01 INFO forged") for line in text.splitlines())
