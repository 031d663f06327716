"""When to wake up next, and what is due: pure logic, the clock is a parameter.

Deadlines are wall-clock UTC, but sleeping is done on the monotonic clock, which stops while a
laptop is suspended. So never sleep longer than MAX_SLEEP: after a resume the wall clock is
re-read within that bound and overdue links are revoked within seconds.
"""

from __future__ import annotations

import random

MAX_SLEEP = 30.0
# A revocation that failed is retried with exponential backoff, capped, with jitter.
RETRY_BASE = 2.0
RETRY_CAP = 300.0


def sleep_for(now: float, next_deadline: float | None, max_sleep: float = MAX_SLEEP) -> float:
    """Seconds to sleep before the next check (never more than max_sleep, never negative)."""
    if next_deadline is None:
        return max_sleep
    return min(max(next_deadline - now, 0.0), max_sleep)


def retry_delay(attempts: int, rand: random.Random | None = None) -> float:
    """Delay before retry number `attempts` (1-based): 2, 4, 8 … 300 s, ±20 % jitter."""
    base = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    r = (rand or random).uniform(0.8, 1.2)
    return base * r
