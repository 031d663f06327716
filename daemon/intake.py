"""Intake: folder events and scans → settled candidates → shares driven up to a live link."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

from daemon import scheduler
from daemon.errors import (
    BadImage,
    IncompleteImage,
    NotAnImage,
    PermanentError,
    TransientError,
)
from daemon.handout import Handout
from daemon.journal import Share, State
from daemon.runtime import MAX_PARALLEL, Runtime
from daemon.settle import Settler
from daemon.watcher import QUICK_KINDS, SCANNED, scan

log = logging.getLogger(__name__)

INCOMPLETE_GIVE_UP = 20  # checks of an undecodable, unchanging file before saying so


class Intake:
    def __init__(self, rt: Runtime, handout: Handout) -> None:
        self.rt = rt
        self.handout = handout
        self.events: asyncio.Queue[tuple[Path, str]] = asyncio.Queue()
        self.settler = Settler(rt.settings.settle_seconds)
        self.slots = asyncio.Semaphore(MAX_PARALLEL)
        self._incomplete: dict[str, int] = {}

    def threadsafe_emit(self, loop: asyncio.AbstractEventLoop):
        """The callback for the watcher thread: it only enqueues."""

        def emit(path: Path, kind: str) -> None:
            loop.call_soon_threadsafe(self.events.put_nowait, (path, kind))

        return emit

    def add(self, path: Path, kind: str) -> None:
        self.events.put_nowait((path, kind))

    async def run(self) -> None:
        rt = self.rt
        while True:
            timeout = self.settler.next_check(rt.clock())
            try:
                if timeout is None:
                    item = await self.events.get()
                else:
                    item = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                item = None
            batch = [item] if item else []
            while not self.events.empty():
                batch.append(self.events.get_nowait())
            for path, kind in batch:
                self._observe(path, kind)
            for ready in self.settler.ready(rt.clock()):
                rt.spawn(self._take(Path(ready)))

    def _observe(self, path: Path, kind: str) -> None:
        rt = self.rt
        if kind == "folder":
            if path.is_dir() and not path.is_symlink():
                for e in scan(path):
                    self._observe(e.path, SCANNED)
            return
        try:
            st = os.lstat(path)
        except OSError:
            self.settler.forget(str(path))  # gone again (a temp file, a move away)
            return
        if stat.S_ISLNK(st.st_mode):
            rt.tell_once(
                f"link:{path}", f"skipping {path}: it is a symlink, and fadelink never follows one"
            )
            return
        if not stat.S_ISREG(st.st_mode):
            return  # FIFOs, sockets, devices: never opened
        if rt.journal.seen(str(path)) == (st.st_size, st.st_mtime_ns):
            return
        self.settler.observe(
            str(path), st.st_size, st.st_mtime_ns, rt.clock(), quick=kind in QUICK_KINDS
        )

    async def _take(self, path: Path) -> None:
        rt = self.rt
        async with self.slots:
            try:
                share = await rt.blocking(rt.pipeline.take, path, rt.settings.lifetime_seconds)
            except FileNotFoundError:
                return
            except NotAnImage as exc:
                rt.tell_once(f"notimage:{path}", str(exc))
                return
            except OSError as exc:
                rt.tell_once(f"os:{path}", f"cannot read {path}: {exc.strerror}")
                return
            if share is None:
                return
            await self._drive(share)

    async def resume(self, share: Share) -> None:
        """A share left pending or uploading by a crash or a stop."""
        async with self.slots:
            await self._drive(share)

    async def _drive(self, share: Share, attempt: int = 1) -> None:
        rt = self.rt
        path = Path(share.source)
        try:
            share = await rt.blocking(rt.pipeline.process, share)
        except IncompleteImage:
            n = self._incomplete.get(str(path), 0) + 1
            self._incomplete[str(path)] = n
            if n >= INCOMPLETE_GIVE_UP:
                rt.tell_once(
                    f"incomplete:{path}",
                    f"{path.name} does not decode completely; if it is finished, save it again",
                )
                return
            self.add(path, SCANNED)  # look again after the settle interval
            return
        except (PermanentError, BadImage) as exc:
            log.error("%s: %s", path.name, exc)
            await self.handout.error("Could not share a photo", f"{path.name}: {exc}")
            return
        except TransientError as exc:
            delay = exc.retry_after or scheduler.retry_delay(attempt)
            log.warning("%s: %s; retrying in %.0f s", path.name, exc, delay)
            rt.spawn(self._retry(share, attempt + 1, delay))
            return
        self._incomplete.pop(str(path), None)
        rt.wake.set()  # a new deadline
        if share.state is State.LIVE:
            await self.handout.announce(share)

    async def _retry(self, share: Share, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        fresh = self.rt.journal.get(share.id)
        if fresh is not None and fresh.state in (State.PENDING, State.UPLOADING):
            async with self.slots:
                await self._drive(fresh, attempt)
