"""The one retry pacing of the engine: the sync engine's resends and the poller's polls of a failing source use it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with equal jitter (when `spread` is 0.5).

    Attempt n (from 1) waits `ceiling(n) = min(cap, base * 2 ** (n - 1))` scaled by a random factor in
    `[1 - spread, 1]`: the fixed part keeps a retry from coming at once, the random part spreads many consoles' retries
    so they do not come in step.
    """

    base: float
    cap: float
    spread: float = 0.5  # the random share of each wait; 0.5 is "equal jitter", 1.0 would be "full jitter"
    max_exponent: int = 64  # doublings stop here (a short base would otherwise grow without a bound of its own)

    def ceiling(self, attempts: int) -> float:
        return min(self.cap, self.base * 2.0 ** min(max(0, attempts - 1), self.max_exponent))

    def delay(self, attempts: int) -> float:
        ceiling = self.ceiling(attempts)
        return random.uniform(ceiling * (1 - self.spread), ceiling)  # noqa: S311 - jitter, not crypto
