"""The sync engine: the only code that sends decisions.

It drains the outbox in storage: each decision goes out under its own id as the idempotency key, so a retry (after a
timeout, a crash or a restart) can never apply it twice. Final answers are recorded with an audit record; answers that
retrying might fix are retried with capped, jittered exponential backoff (or when Retry-After says).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from console.engine.backoff import Backoff
from console.engine.feedback.pusher import FeedbackPusher
from console.engine.sources.base import DecisionAnswer, LabelAnswer, LabelSink, Source
from storage.db import DecisionSyncUpdate, Store
from storage.labels import Label, LabelOutbox, LabelSyncState, LabelSyncUpdate
from storage.records import Decision, console_outcome

log = logging.getLogger(__name__)

BASE_DELAY = 0.5
MAX_DELAY = 60.0
AUTH_HOLD = 30.0  # a source that refused our credentials is asked again this often, not hammered
RESEND = Backoff(BASE_DELAY, MAX_DELAY)


def backoff(attempts: int) -> float:
    """Equal-jitter exponential backoff: between half and all of min(MAX_DELAY, BASE_DELAY * 2 ** (attempts - 1)).

    The random half spreads retries so that many consoles do not retry in step; the fixed half keeps them apart.
    """
    return RESEND.delay(attempts)


@dataclass(frozen=True)
class SettledDecision:
    """A decision whose source gave a final answer (applied, conflict, failed), recorded and told to observers."""

    decision: Decision
    result: DecisionAnswer


class SyncEngine:
    def __init__(
        self,
        store: Store,
        sources: Mapping[str, Source],
        on_outcome: Callable[[Sequence[SettledDecision]], None] | None = None,
        *,
        batch: int = 256,
        # Requests in flight at once. Few connections go further than many: each request costs client CPU and the
        # connection pool's bookkeeping grows with its size (measured on loopback: 4 -> ~1,100 decisions/s,
        # 16 -> ~650/s). It also keeps a console from hammering an agent service that is catching up.
        concurrency: int = 4,
        labels: LabelOutbox | None = None,
        label_batch: int = 100,
        feedback: FeedbackPusher | None = None,
    ) -> None:
        self.store = store
        self.sources = sources
        self.on_outcome = on_outcome
        self.batch = batch
        self._gate = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.held: dict[str, float] = {}  # source -> monotonic time until which its decisions wait (auth refused)
        self.attempts: dict[str, int] = {}
        self.labels = labels
        self.label_batch = label_batch
        self.label_failures: dict[str, int] = {}  # source -> failed label batches in a row (its backoff)
        self.clock: Callable[[], float] = time.time  # wall time of retry schedules; tests simulate it
        self.feedback = feedback  # labels to the team's tracing tools ([[feedback]] sinks), beside the sources

    def kick(self) -> None:
        """A decision was just recorded: send it now rather than at the next timer."""
        self._wake.set()

    def _active_sources(self) -> list[str]:
        now = time.monotonic()
        return [name for name in self.sources if self.held.get(name, 0.0) <= now]

    async def run(self) -> None:
        # Feedback sinks in a task of their own: a slow or unreachable tracing tool never holds up a decision.
        pushing = None if self.feedback is None else asyncio.create_task(self.feedback.run(), name="feedback sinks")
        try:
            await self._run_sources()
        finally:
            if pushing is not None:
                pushing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pushing

    async def _run_sources(self) -> None:
        while True:
            try:
                sent = await self.drain_once()
                sent += await self.drain_labels_once()
            except Exception:  # storage or a bug: log, wait, carry on; the outbox keeps everything
                log.exception("sync round failed")
                sent = 0
                await asyncio.sleep(1.0)
            if sent:
                continue
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        self._wake.clear()
        due = await asyncio.to_thread(self.store.outbox.next_due_at, self._active_sources())
        if self.labels is not None:
            label_due = await asyncio.to_thread(self.labels.next_due_at, self._label_sinks())
            due = min((t for t in (due, label_due) if t is not None), default=None)
        delay = 5.0 if due is None else max(0.0, due - self.clock())
        if self.held:
            delay = min(delay, max(0.0, min(self.held.values()) - time.monotonic()))
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=min(delay, 5.0))

    async def drain_once(self) -> int:
        """Send one batch of due decisions and record the answers. Returns how many were sent."""
        due = await asyncio.to_thread(self.store.outbox.due, self.batch, self._active_sources(), self.clock())
        if not due:
            return 0
        await asyncio.to_thread(self.store.outbox.mark_sending, [d.id for d in due])
        sent = await asyncio.gather(*(self._send(d) for d in due))
        # The protocol's `expired` is kept and shown as `timed_out` (storage.records.console_outcome).
        results = [dataclasses.replace(r, outcome=console_outcome(r.outcome)) for r in sent]
        rows = [self._to_row(d, r) for d, r in zip(due, results, strict=True)]
        recorded = set(await asyncio.to_thread(self.store.outbox.record_results, rows))
        finals = [SettledDecision(d, r) for d, r in zip(due, results, strict=True) if d.id in recorded]
        for outcome in finals:
            log.info(
                "decision %s on %s/%s: %s (%s)",
                outcome.decision.id,
                outcome.decision.source,
                outcome.decision.item_id,
                outcome.result.outcome,
                outcome.result.detail,
            )
        if finals and self.on_outcome is not None:
            self.on_outcome(finals)
        return len(due)

    async def _send(self, decision: Decision) -> DecisionAnswer:
        async with self._gate:
            try:
                result = await self.sources[decision.source].send_decision(decision)
            except Exception as exc:  # an adapter bug must not lose the decision: it stays in the outbox
                log.exception("sending decision %s failed", decision.id)
                return DecisionAnswer(None, "error", f"internal error: {type(exc).__name__}")
        if result.auth_refused:
            self.held[decision.source] = time.monotonic() + AUTH_HOLD
        return result

    def _label_sinks(self) -> list[str]:
        return [name for name in self._active_sources() if isinstance(self.sources[name], LabelSink)]

    async def drain_labels_once(self) -> int:
        """Send one round of due labels, a batch per source, and record the answers. Returns how many were sent.

        Labels go after decisions and never hold them up; a batch's idempotency key is derived from its label ids, so
        a batch resent after a crash or a restart is a replay the source answers from its record.
        """
        if self.labels is None:
            return 0
        by_source: dict[str, list[Label]] = {}
        for name in self._label_sinks():  # a batch per source: a long backlog at one source does not starve another
            batch = await asyncio.to_thread(self.labels.due, self.label_batch, [name], self.clock())
            if batch:
                by_source[name] = batch
        answers = await asyncio.gather(*(self._send_labels(name, batch) for name, batch in by_source.items()))
        rows = [
            row
            for name, batch, answer in zip(by_source, by_source.values(), answers, strict=True)
            for row in self._label_rows(name, batch, answer)
        ]
        if rows:
            await asyncio.to_thread(self.labels.record, rows)
        return sum(len(batch) for batch in by_source.values())

    async def _send_labels(self, source: str, batch: list[Label]) -> LabelAnswer:
        sink = self.sources[source]
        assert isinstance(sink, LabelSink)
        async with self._gate:
            try:
                result = await sink.send_labels(batch)
            except Exception as exc:  # an adapter bug must not lose labels: they stay pending
                log.exception("sending %d labels to %s failed", len(batch), source)
                return LabelAnswer(detail=f"internal error: {type(exc).__name__}")
        if result.auth_refused:
            self.held[source] = time.monotonic() + AUTH_HOLD
        return result

    def _label_rows(self, source: str, batch: list[Label], result: LabelAnswer) -> list[LabelSyncUpdate]:
        rows = [LabelSyncUpdate(i, LabelSyncState.sent, result.detail) for i in sorted(result.sent)]
        rows += [LabelSyncUpdate(i, LabelSyncState.refused, why) for i, why in sorted(result.refused.items())]
        if result.refused:
            log.warning("%s refused %d labels: %s", source, len(result.refused), result.detail)
        rest = [label.label_id for label in batch if label.label_id not in result.sent | result.refused.keys()]
        if not rest:
            self.label_failures.pop(source, None)
            return rows
        if result.retry_after is not None:
            delay = result.retry_after
        else:
            failures = self.label_failures[source] = self.label_failures.get(source, 0) + 1
            delay = AUTH_HOLD if result.auth_refused else backoff(failures)
        if delay:
            log.warning("labels for %s: %s; retry in %.1f s", source, result.detail, delay)
        return rows + [LabelSyncUpdate(i, None, result.detail, self.clock() + delay) for i in rest]

    def _to_row(self, decision: Decision, result: DecisionAnswer) -> DecisionSyncUpdate:
        if result.state is not None:
            self.attempts.pop(decision.id, None)
            return DecisionSyncUpdate(decision.id, result.state, result.outcome, result.detail, result.response)
        attempts = self.attempts[decision.id] = self.attempts.get(decision.id, 0) + 1
        if result.auth_refused:
            delay = AUTH_HOLD
        elif result.retry_after is not None:
            delay = result.retry_after
        else:
            delay = backoff(attempts)
        log.warning("decision %s: %s; retry in %.1f s", decision.id, result.detail, delay)
        return DecisionSyncUpdate(
            decision.id, None, result.outcome, result.detail, result.response, self.clock() + delay
        )
