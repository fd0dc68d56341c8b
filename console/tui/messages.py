"""The engine's events as Textual messages: a session observer posts them to the main screen, which handles them;
they then bubble to the app (alerts, toasts).

Posting is safe from any thread, and repeats of a change waiting in a message queue collapse into one (`can_replace`):
a burst of polls costs one re-read of the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.message import Message
from textual.message_pump import MessagePump

from console.engine.sync import SettledDecision


@dataclass
class QueueChanged(Message):
    """Storage changed under the queue (a poll brought changes, a claim's holder was learned)."""

    source: str = ""  # the source that changed, when one did

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QueueChanged)


@dataclass
class OutcomesArrived(Message):
    """The sources answered these decisions for good (applied, conflict, failed)."""

    outcomes: Sequence[SettledDecision]


@dataclass(frozen=True)
class PostedEvents:
    """A session observer (console.engine.session.SessionEvents) that posts each event to `target` as a message."""

    target: MessagePump

    def queue_changed(self, source: str) -> None:
        self.target.post_message(QueueChanged(source))

    def outcomes_settled(self, outcomes: Sequence[SettledDecision]) -> None:
        self.target.post_message(OutcomesArrived(outcomes))
