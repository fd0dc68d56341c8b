"""The feedback path of the sync engine: labels with a final outcome go to each configured sink, one at a time.

The rules are the decisions': a final answer is recorded once (sent, refused with the reason, kept local with the
reason); anything else is sent again under the same id, after the shared backoff or the tool's Retry-After, and a
refused key holds the sink (AUTH_HOLD) instead of hammering it. A sink that fails waits as a whole: its other labels
are not tried meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from console.engine.backoff import Backoff
from console.engine.feedback.base import FeedbackAnswer, FeedbackSink
from storage.feedback import FeedbackOutbox, FeedbackState, FeedbackUpdate
from storage.labels import Label

log = logging.getLogger(__name__)

IDLE = 2.0  # seconds between looks for newly settled labels when nothing is due


class FeedbackPusher:
    def __init__(
        self,
        outbox: FeedbackOutbox,
        sinks: Sequence[FeedbackSink],
        *,
        backoff: Backoff,
        auth_hold: float,
        batch: int = 50,
    ) -> None:
        self.outbox = outbox
        self.sinks = list(sinks)
        self.backoff = backoff
        self.auth_hold = auth_hold
        self.batch = batch
        self.waiting: dict[str, float] = {}  # sink -> wall time before which it is not tried (failing, or key refused)
        self.failures: dict[str, int] = {}  # sink -> failed sends in a row (its backoff)
        self.clock: Callable[[], float] = time.time

    async def run(self) -> None:
        """Rounds until cancelled; between rounds with nothing to send, sleep until a retry is due (at most IDLE:
        labels that settle meanwhile are found by the next round)."""
        while True:
            try:
                handled = await self.drain_once()
            except Exception:  # storage or a bug: log, wait, carry on; the labels stay due
                log.exception("feedback round failed")
                handled = 0
            if handled:
                continue
            due = await asyncio.to_thread(self.next_due_at)
            await asyncio.sleep(IDLE if due is None else min(IDLE, max(0.5, due - self.clock())))

    async def drain_once(self) -> int:
        """One round: a batch of due labels per sink that is not waiting. Returns how many were handled."""
        handled = 0
        for sink in self.sinks:
            name = sink.config.name
            if self.waiting.get(name, 0.0) > self.clock():
                continue
            batch = await asyncio.to_thread(self.outbox.due, name, self.batch, self.clock())
            scope = set(sink.config.sources)
            todo = [(None, label) for label in batch.retries] + [(seq, label) for seq, label in batch.fresh]
            updates: list[FeedbackUpdate] = []
            mark: int | None = None  # the last label of the settle log handled (answered, or out of scope)
            for seq, label in todo:
                handled += 1
                mark = seq if seq is not None else mark
                if scope and label.source not in scope:
                    continue
                update = self._update(name, label, await self._send(sink, label))
                updates.append(update)
                if update.state is FeedbackState.pending:
                    break  # the tool is failing or refuses the key: the rest wait with the sink
            if updates or mark is not None:
                await asyncio.to_thread(self.outbox.record, name, updates, mark)
        return handled

    def next_due_at(self) -> float | None:
        """When a waiting sink is tried again (labels that became due meanwhile are found by the engine's timer)."""
        times = [self.waiting[s.config.name] for s in self.sinks if s.config.name in self.waiting]
        retries = [t for s in self.sinks if (t := self.outbox.next_due_at(s.config.name)) is not None]
        return min(times + retries, default=None)

    async def _send(self, sink: FeedbackSink, label: Label) -> FeedbackAnswer:
        try:
            return await asyncio.to_thread(sink.send, label)
        except Exception as exc:  # an SDK or sink bug must not lose the label: it stays due
            log.exception("sending label %s to %s failed", label.label_id, sink.config.name)
            return FeedbackAnswer(None, f"internal error: {type(exc).__name__}")

    def _update(self, name: str, label: Label, answer: FeedbackAnswer) -> FeedbackUpdate:
        if answer.state is not None:
            self.failures.pop(name, None)
            self.waiting.pop(name, None)
            if answer.state is FeedbackState.refused:
                log.warning("%s refused label %s: %s", name, label.label_id, answer.detail)
            return FeedbackUpdate(label.label_id, answer.state, answer.detail)
        failures = self.failures[name] = self.failures.get(name, 0) + 1
        if answer.auth_refused:
            delay = self.auth_hold
        elif answer.retry_after is not None:
            delay = answer.retry_after
        else:
            delay = self.backoff.delay(failures)
        self.waiting[name] = self.clock() + delay
        log.warning("feedback to %s: %s; retry in %.1f s", name, answer.detail, delay)
        return FeedbackUpdate(label.label_id, FeedbackState.pending, answer.detail, self.clock() + delay)
