"""Retry backoff: how long to wait before trying again (a failed job, a failed webhook)."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float, *, from_zero: bool = False) -> float:
    """Seconds to wait before retry number `attempt` (1-based; 0 or less: no wait): a random
    delay up to base * 2**(attempt - 1), capped at `cap`, and never below base / 2.

    The delay is drawn uniformly between base / 2 and that ceiling (webhook deliveries). With
    `from_zero` (job retries) it is drawn between 0 and the ceiling and raised to base / 2 when
    below it, so base / 2 itself comes up more often, and base / 2 wins over a smaller cap.
    """
    if attempt < 1:
        return 0.0
    ceiling = min(cap, base * 2 ** min(attempt - 1, 64))
    if from_zero:
        return max(base / 2, random.uniform(0, ceiling))
    return random.uniform(min(base / 2, ceiling), ceiling)
