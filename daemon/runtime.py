"""What the daemon's parts share while it runs: settings, clock, journal, pipeline, desktop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.journal import Journal
from daemon.notify import Notifier
from daemon.pipeline import Paths, Pipeline
from daemon.server import LinkServer
from daemon.settings import Settings

if TYPE_CHECKING:
    from daemon.gate import Gate

log = logging.getLogger("daemon")

T = TypeVar("T")
MAX_PARALLEL = 4


@dataclass
class Runtime:
    settings: Settings
    clock: Callable[[], float]
    paths: Paths
    journal: Journal
    pipeline: Pipeline
    notifier: Notifier
    pool: ThreadPoolExecutor
    server: LinkServer | None = None
    # Set when a deadline may have moved (a new link, a CLI change): the expiry loop re-reads.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _told: set[str] = field(default_factory=set)
    _gate: Gate | None = None

    @property
    def gate(self) -> Gate:
        """Where work waits while its backend is signed out or unreachable (daemon/gate.py)."""
        if self._gate is None:
            from daemon.gate import Gate

            self._gate = Gate(self)
        return self._gate

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (Pillow, file I/O, backend calls) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def tell_once(self, key: str, message: str) -> None:
        """Log a problem with a file once, not at every event: no message storms."""
        if key not in self._told:
            self._told.add(key)
            log.warning("%s", message)
