"""The one backoff policy: its words and its formula agree (issue 11: the docstring said full jitter, it drew equal)."""

from __future__ import annotations

import pytest

from console.engine.backoff import Backoff
from console.engine.sync import MAX_DELAY, RESEND, backoff


def test_the_sync_backoff_says_the_jitter_it_draws() -> None:
    doc = (backoff.__doc__ or "").lower()
    assert "equal-jitter" in doc or "equal jitter" in doc
    assert "full" not in doc
    ceiling = min(MAX_DELAY, 0.5 * 2**4)
    samples = [backoff(5) for _ in range(4000)]
    assert all(ceiling / 2 <= s <= ceiling for s in samples)
    assert min(samples) < 0.55 * ceiling, "equal jitter reaches down to half the ceiling"


def test_the_sync_engine_paces_resends_with_the_shared_policy() -> None:
    assert isinstance(RESEND, Backoff) and RESEND.spread == 0.5 and RESEND.cap == MAX_DELAY


@pytest.mark.parametrize(("spread", "low"), [(0.5, 0.5), (0.2, 0.8), (1.0, 0.0)])
def test_a_wait_lies_between_the_fixed_share_and_the_ceiling(spread: float, low: float) -> None:
    policy = Backoff(2.0, 60.0, spread=spread, max_exponent=3)
    assert [policy.ceiling(n) for n in (0, 1, 2, 3, 4, 5, 9)] == [2.0, 2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    assert Backoff(2.0, 10.0).ceiling(30) == 10.0
    samples = [policy.delay(4) for _ in range(2000)]
    assert all(low * 16.0 <= s <= 16.0 for s in samples)
    assert len(set(samples)) > 1500, "jittered: many consoles must not retry in step"
