"""Deciding when a file in the share folder is complete enough to try: pure logic.

A candidate is ready when its size is non-zero and size and mtime_ns have not changed for the
settle interval. A file that appeared by a rename or was closed after writing needs no wait: the
decode check that follows proves it is whole (and if it is not, a later event brings it back).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Entry:
    size: int
    mtime_ns: int
    since: float
    quick: bool


@dataclass
class Settler:
    interval: float
    _pending: dict[str, _Entry] = field(default_factory=dict)

    def observe(self, path: str, size: int, mtime_ns: int, now: float, *, quick: bool) -> None:
        """Record what a stat of `path` showed. quick: a rename or a close-after-write."""
        old = self._pending.get(path)
        if old is not None and (old.size, old.mtime_ns) == (size, mtime_ns):
            old.quick = old.quick or quick
            return
        self._pending[path] = _Entry(size, mtime_ns, now, quick)

    def forget(self, path: str) -> None:
        self._pending.pop(path, None)

    def ready(self, now: float) -> list[str]:
        """Paths ready to try now, in the order they were first seen; they leave the settler."""
        out = []
        for path, e in list(self._pending.items()):
            if e.size > 0 and (e.quick or now - e.since >= self.interval):
                out.append(path)
                del self._pending[path]
        return out

    def next_check(self, now: float) -> float | None:
        """Seconds until some pending file may become ready, None when none can."""
        # An empty file waits for its next event rather than a timer: no spinning on it.
        waits = [
            0.0 if e.quick else max(0.0, e.since + self.interval - now)
            for e in self._pending.values()
            if e.size > 0
        ]
        return min(waits) if waits else None

    def __len__(self) -> int:
        return len(self._pending)
