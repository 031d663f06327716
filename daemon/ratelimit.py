"""Slowing down link guessers: too many 404s from one address in a minute answer 429.

Pure logic; the clock is a parameter. Only misses are counted and only misses are throttled: a
valid link is served whatever its requester did before, so a scanner sharing an address with
a viewer (a proxy, a tunnel, a shared Wi-Fi) never locks the viewer out. Guessing a 192-bit token
is hopeless anyway; this keeps the noise down and tells the guesser to stop.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque

MISS_LIMIT = 40  # 404s per window allowed from one address: "a few dozen per minute"
MISS_WINDOW = 60.0  # seconds
MAX_ADDRESSES = 4096  # bounded memory whatever the number of addresses seen


def address_key(address: str) -> str:
    """What one client is: its IPv4 address, or its IPv6 /64 (one household, one phone)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class MissLimiter:
    """A sliding window of the last `limit` misses per address."""

    def __init__(
        self,
        limit: int = MISS_LIMIT,
        window: float = MISS_WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit and window must be positive")
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._misses: dict[str, deque[float]] = {}

    def miss(self, address: str, now: float) -> int | None:
        """Record a 404 for `address`; seconds to wait (Retry-After) when it has had more than
        `limit` within the window, else None. Throttled misses count too: hammering on keeps
        the address throttled."""
        key = address_key(address)
        times = self._misses.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit + 1)
            self._make_room(now)
        times.append(now)
        self._misses[key] = times  # re-inserted: the dict stays ordered by last miss
        if len(times) <= self.limit or now - times[0] >= self.window:
            return None
        # Allowed again once the oldest of the last `limit` misses leaves the window.
        return max(1, math.ceil(times[1] + self.window - now))

    def _make_room(self, now: float) -> None:
        if len(self._misses) < self.max_addresses:
            return
        for key in [k for k, t in self._misses.items() if now - t[-1] >= self.window]:
            del self._misses[key]
        while len(self._misses) >= self.max_addresses:
            del self._misses[next(iter(self._misses))]  # the address idle the longest
