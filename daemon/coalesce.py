"""Grouping announcements in a burst: pure logic, the clock is a parameter.

A photo is announced at once while at most THRESHOLD photos became ready in the last WINDOW
seconds (a single save, or two or three, must feel instant). Beyond that they are held; when
the burst pauses (QUIET) or the oldest held one has waited MAX_HOLD, the held ones are released
as one group ("12 photos shared"), so hundreds of photos are not hundreds of notifications and
clipboard copies.
"""

from __future__ import annotations

from collections import deque
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
    _recent: deque[float] = field(default_factory=deque)  # when photos became ready
    _held: list[tuple[float, T]] = field(default_factory=list)

    def add(self, item: T, now: float) -> Release[T] | None:
        """A photo is ready: released at once, or held for a group (None)."""
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        self._recent.append(now)
        if len(self._recent) <= self.threshold and not self._held:
            return Release([item], grouped=False)
        self._held.append((now, item))
        return None

    def due(self, now: float) -> Release[T] | None:
        """What to release now, if anything."""
        if not self._held:
            return None
        last = self._recent[-1]
        if now - last < self.quiet and now - self._held[0][0] < self.max_hold:
            return None
        items = [item for _, item in self._held]
        self._held.clear()
        return Release(items, grouped=len(items) > 1)

    def next_due(self, now: float) -> float | None:
        """Seconds until due() may release something; None when nothing is held."""
        if not self._held:
            return None
        last = self._recent[-1]
        return max(0.0, min(last + self.quiet, self._held[0][0] + self.max_hold) - now)
