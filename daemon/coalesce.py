"""Grouping announcements in a burst: pure logic, the clock is a parameter.

The first photo after a quiet spell is announced at once (a single save must feel instant).
Photos that follow within WINDOW seconds are held; when the burst pauses (QUIET) or the oldest
held one has waited MAX_HOLD, they are released: one by one if the burst has at most THRESHOLD
photos, else as one group ("12 photos shared"), so hundreds of photos are not hundreds of
notifications and clipboard copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

WINDOW = 2.0
QUIET = 0.5
MAX_HOLD = 3.0
THRESHOLD = 3


@dataclass
class Release(Generic[T]):
    items: list[T]
    grouped: bool


@dataclass
class Coalescer(Generic[T]):
    window: float = WINDOW
    quiet: float = QUIET
    max_hold: float = MAX_HOLD
    threshold: int = THRESHOLD
    _last: float | None = None
    _burst: int = 0  # photos in the current burst, released or held
    _held: list[tuple[float, T]] = field(default_factory=list)

    def add(self, item: T, now: float) -> Release[T] | None:
        """A photo is ready: released at once (the first of a burst) or held (None)."""
        in_burst = self._last is not None and now - self._last < self.window
        self._last = now
        if not in_burst:
            self._burst = 1
            if self._held:  # cannot happen if due() is honoured, but never lose one
                self._held.append((now, item))
                return None
            return Release([item], grouped=False)
        self._burst += 1
        self._held.append((now, item))
        return None

    def due(self, now: float) -> Release[T] | None:
        """What to release now, if anything."""
        if not self._held:
            return None
        assert self._last is not None
        if now - self._last < self.quiet and now - self._held[0][0] < self.max_hold:
            return None
        items = [item for _, item in self._held]
        self._held.clear()
        return Release(items, grouped=self._burst > self.threshold)

    def next_due(self, now: float) -> float | None:
        """Seconds until due() may release something; None when nothing is held."""
        if not self._held:
            return None
        assert self._last is not None
        return max(0.0, min(self._last + self.quiet, self._held[0][0] + self.max_hold) - now)
