"""`serve` SIGKILLed while agents post items and operators decide them: after a restart nothing is lost and nothing is
applied twice.

Each round starts `approval-console serve` (the real command, in a child process) on the same data directory, lets an
agent post items and an operator decide them, each from its own threads, for a random while, and kills the server with
SIGKILL mid-traffic. After the restart: every item whose creation was answered is there, under the same id; every
decision answered `applied` is the item's decision; every request sent again under its key gets the answer it got
before (or, if it never got one, a final answer now); and the database holds one item per request id and at most one
decision per item. `make test` runs 8 rounds; APPROVAL_CONSOLE_CRASH_ROUNDS runs more.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from console.servers.serve.store import DB_NAME
from console.servers.serve.tokens import CONFIG_NAME
from tests.queue_servers import OPERATOR, ServeProcess, fixed_token, write_token_file
from tests.test_serve import AGENT, request_item

ROUNDS = int(os.environ.get("APPROVAL_CONSOLE_CRASH_ROUNDS", "8"))


class Traffic:
    """What the agent and the operator sent, and the answers they got (None: no answer, the server died)."""

    def __init__(self) -> None:
        self.creates: dict[str, tuple[dict[str, Any], httpx.Response | None]] = {}  # request id -> (body, answer)
        self.decisions: dict[str, tuple[str, dict[str, Any], httpx.Response | None]] = {}  # key -> (item, body, answer)
        self.lock = threading.Lock()
        self.stop = threading.Event()


def _agent(url: str, traffic: Traffic, prefix: str, rng: random.Random) -> None:
    headers = {"Authorization": f"Bearer {fixed_token('agent', AGENT)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5) as http:
        n = 0
        while not traffic.stop.is_set():
            request_id, n = f"{prefix}-{n}", n + 1
            body = request_item(policy=f"request {request_id}", confidence=rng.random())
            with traffic.lock:
                traffic.creates[request_id] = (body, None)
            try:
                answer = http.post("/v1/items", json=body, headers={"Idempotency-Key": request_id})
            except httpx.HTTPError:
                return
            with traffic.lock:
                traffic.creates[request_id] = (body, answer)


def _operator(url: str, traffic: Traffic, rng: random.Random) -> None:
    headers = {"Authorization": f"Bearer {fixed_token('operator', OPERATOR)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5) as http:
        while not traffic.stop.is_set():
            try:
                items = http.get("/v1/items").json()["items"]
            except (httpx.HTTPError, ValueError, KeyError):
                return
            for item in items[:10]:
                verdict = "reject" if rng.random() < 0.3 else "approve"
                body = {
                    "verdict": verdict,
                    "item_digest": item["digest"],
                    "reason_code": "unsafe" if verdict == "reject" else None,
                }
                key = str(uuid.uuid4())
                with traffic.lock:
                    traffic.decisions[key] = (item["id"], body, None)
                try:
                    answer = http.post(f"/v1/items/{item['id']}/decision", json=body, headers={"Idempotency-Key": key})
                except httpx.HTTPError:
                    return
                with traffic.lock:
                    traffic.decisions[key] = (item["id"], body, answer)


def _check(url: str, traffic: Traffic, data_dir: Path, where: str) -> None:
    agent = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {fixed_token('agent', AGENT)}"}, timeout=10)
    operator = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {fixed_token('operator', OPERATOR)}"}, timeout=10
    )
    with agent, operator:
        for request_id, (body, answer) in traffic.creates.items():
            again = agent.post("/v1/items", json=body, headers={"Idempotency-Key": request_id})
            assert again.status_code == 201, f"{where}: {request_id} {again.status_code} {again.text}"
            if answer is not None:
                assert again.content == answer.content, f"{where}: {request_id} answered differently after the restart"
            traffic.creates[request_id] = (body, again)  # later rounds hold it to this answer
            outcome = agent.get(f"/v1/items/{again.json()['id']}/outcome")
            assert outcome.status_code == 200, f"{where}: {request_id}'s item is gone"
        for key, (item_id, body, answer) in traffic.decisions.items():
            again = operator.post(f"/v1/items/{item_id}/decision", json=body, headers={"Idempotency-Key": key})
            assert again.status_code in (200, 409, 410), f"{where}: {key} {again.status_code} {again.text}"
            if answer is not None:
                assert (again.status_code, again.content) == (answer.status_code, answer.content), f"{where}: {key}"
            traffic.decisions[key] = (item_id, body, again)
            if again.json()["outcome"] == "applied":
                outcome = agent.get(f"/v1/items/{item_id}/outcome").json()
                assert (outcome["state"], outcome["decision_id"]) == ("decided", key), f"{where}: {key} lost"
    with sqlite3.connect(data_dir / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), where
        decided = Counter(item_id for (item_id,) in db.execute("SELECT json_extract(body, '$.item_id') FROM decisions"))
        twice = [item_id for item_id, count in decided.items() if count > 1]
        assert not twice, f"{where}: decided more than once: {twice}"
        items = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert items == len(traffic.creates), f"{where}: {items} items for {len(traffic.creates)} request ids"


def test_sigkill_during_creation_and_decisions_loses_and_repeats_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("APPROVAL_CONSOLE_CRASH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    data_dir = tmp_path / "serve"
    data_dir.mkdir()
    write_token_file(data_dir / CONFIG_NAME, [AGENT], [OPERATOR])
    traffic = Traffic()
    cut_off = 0
    for round_number in range(ROUNDS):
        where = f"round {round_number} (seed {seed})"
        server = ServeProcess(data_dir)
        url = server.start()
        traffic.stop.clear()
        workers = [
            threading.Thread(target=_agent, args=(url, traffic, f"r{round_number}a{n}", random.Random(rng.random())))
            for n in range(2)
        ] + [threading.Thread(target=_operator, args=(url, traffic, random.Random(rng.random())))]
        for worker in workers:
            worker.start()
        time.sleep(rng.uniform(0.05, 0.6))
        server.kill()
        traffic.stop.set()
        for worker in workers:
            worker.join(timeout=30)
        cut_off += sum(answer is None for _, answer in traffic.creates.values())
        cut_off += sum(answer is None for _, _, answer in traffic.decisions.values())
        server = ServeProcess(data_dir)
        url = server.start()
        try:
            _check(url, traffic, data_dir, where)
        finally:
            server.kill()
    applied = sum(a is not None and a.status_code == 200 for _, _, a in traffic.decisions.values())
    assert len(traffic.creates) >= ROUNDS and applied >= 1, f"too little traffic to mean anything (seed {seed})"
    print(
        f"serve crash rounds {ROUNDS}: {len(traffic.creates)} items, {applied} decisions applied, "
        f"{cut_off} requests cut off by the kill"
    )
