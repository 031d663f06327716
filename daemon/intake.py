"""Intake: folder events and scans → settled candidates → shares driven up to a live link.

The watcher thread only enqueues. One loop settles candidates; a fixed number of workers
(FADELINK_MAX_PARALLEL) take them in arrival order, so a burst of hundreds of files costs a
bounded amount of memory and CPU. Announcements in a burst are grouped (coalesce.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path

from daemon import scheduler
from daemon.aftershare import after_share
from daemon.coalesce import Coalescer, Release
from daemon.errors import (
    BadImage,
    IncompleteImage,
    NeedsSignIn,
    NotAnImage,
    PermanentError,
    TransientError,
    Unreachable,
)
from daemon.folders import placement
from daemon.handout import Handout
from daemon.journal import Share, State
from daemon.runtime import Runtime
from daemon.settle import Settler
from daemon.watcher import QUICK_KINDS, SCANNED, FolderWatcher, scan

log = logging.getLogger(__name__)

INCOMPLETE_GIVE_UP = 20  # checks of an undecodable, unchanging file before saying so
SUPERVISE_EVERY = 2.0  # seconds between checks that the observer thread is alive
RESCAN = "rescan"  # an event kind: events may have been lost, look at everything again


class Intake:
    def __init__(self, rt: Runtime, handout: Handout, root: Path) -> None:
        self.rt = rt
        self.handout = handout
        self.root = root
        self.events: asyncio.Queue[tuple[Path, str]] = asyncio.Queue()
        self.ready: asyncio.Queue[Path] = asyncio.Queue()
        self.settler = Settler(rt.settings.settle_seconds)
        self.coalescer: Coalescer[Share] = Coalescer()
        self._announce_wake = asyncio.Event()
        self._incomplete: dict[str, tuple[int, int]] = {}  # path → (size, checks)
        self._queued: set[str] = set()  # paths waiting for a worker: never queued twice
        self.watcher: FolderWatcher | None = None

    # -- watching ------------------------------------------------------------------------

    def start_watching(self) -> None:
        loop = asyncio.get_running_loop()

        def emit(path: Path, kind: str) -> None:  # on watchdog's thread: enqueue only
            loop.call_soon_threadsafe(self.events.put_nowait, (path, kind))

        self.watcher = FolderWatcher(
            self.root,
            emit,
            recursive=self.rt.settings.recursive,
            polling=self.rt.settings.polling,
            on_doubt=lambda: emit(self.root, RESCAN),
        )
        self.watcher.start()

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    async def supervise(self) -> None:
        """An observer thread that died silently is noticed within seconds and restarted."""
        while True:
            await asyncio.sleep(SUPERVISE_EVERY)
            if self.watcher is not None and not self.watcher.alive():
                await self.rt.blocking(self.watcher.restart)

    def add(self, path: Path, kind: str) -> None:
        self.events.put_nowait((path, kind))

    def scan_entries(self) -> list:
        return list(scan(self.root, recursive=self.rt.settings.recursive))

    # -- settling ------------------------------------------------------------------------

    async def run(self) -> None:
        """Settle candidates and hand ready ones to the workers, in arrival order."""
        rt = self.rt
        workers = [asyncio.create_task(self._worker()) for _ in range(rt.settings.max_parallel)]
        announcer = asyncio.create_task(self._announcer())
        try:
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
                    await self._observe(path, kind)
                for ready in self.settler.ready(rt.clock()):
                    if ready not in self._queued:
                        self._queued.add(ready)
                        self.ready.put_nowait(Path(ready))
        finally:
            for task in (*workers, announcer):
                task.cancel()
            await asyncio.gather(*workers, announcer, return_exceptions=True)

    async def _observe(self, path: Path, kind: str) -> None:
        rt = self.rt
        if kind == RESCAN or (kind == "folder" and path.is_dir() and not path.is_symlink()):
            top = self.root if kind == RESCAN else path
            entries = await rt.blocking(lambda: list(scan(top, recursive=rt.settings.recursive)))
            for e in entries:
                await self._observe(e.path, SCANNED)
            return
        if kind == "folder":
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
        if not self._inside(path):
            rt.tell_once(f"outside:{path}", f"skipping {path}: it is outside the share folder")
            return
        if rt.journal.seen(str(path)) == (st.st_size, st.st_mtime_ns):
            return
        self.settler.observe(
            str(path), st.st_size, st.st_mtime_ns, rt.clock(), quick=kind in QUICK_KINDS
        )

    def _inside(self, path: Path) -> bool:
        # A symlinked folder inside the share folder must not lead anywhere else.
        try:
            return path.parent.resolve().is_relative_to(self.root)
        except OSError:
            return False

    # -- taking and driving ----------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            path = await self.ready.get()
            self._queued.discard(str(path))
            try:
                await self._take(path)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one odd file must not stop a worker
                # The share stays in the journal and is resumed at the next start.
                log.exception("unexpected error while sharing %s", path)
                await self.handout.error(
                    "Could not share a photo", f"{path.name}: unexpected error ({exc})"
                )

    async def _take(self, path: Path) -> None:
        rt = self.rt
        place = placement(self.root, path, rt.settings.lifetime_seconds)
        try:
            taken = await rt.blocking(
                lambda: rt.pipeline.take(
                    path, place.lifetime_s, folder=place.folder, once=place.once
                )
            )
        except FileNotFoundError:
            return
        except NotAnImage as exc:
            rt.tell_once(f"notimage:{path}", str(exc))
            return
        except OSError as exc:
            rt.tell_once(f"os:{path}", f"cannot read {path}: {exc.strerror}")
            return
        if taken is None:
            return
        if taken.duplicate:
            if taken.share.state is State.LIVE:
                await self.handout.already_shared(taken.share)
            await self._after_share(path)
            return
        await self._drive(taken.share)

    async def resume(self, share: Share) -> None:
        """A share left pending or uploading by a crash or a stop."""
        await self._drive(share)

    async def _drive(self, share: Share, attempt: int = 1) -> None:
        rt = self.rt
        path = Path(share.source)
        try:
            share = await rt.blocking(rt.pipeline.process, share)
        except IncompleteImage:
            # Count checks of an unchanging file only: a slow writer making progress is fine.
            size = share.source_size
            last_size, n = self._incomplete.get(str(path), (size, 0))
            n = n + 1 if last_size == size else 1
            self._incomplete[str(path)] = (size, n)
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
        except (NeedsSignIn, Unreachable) as exc:
            # Stop uploading, keep the share: it goes once the backend is back.
            rt.spawn(self._after_wait(share, exc))
            return
        except TransientError as exc:
            delay = exc.retry_after or scheduler.retry_delay(attempt)
            log.warning("%s: %s; retrying in %.0f s", path.name, exc, delay)
            rt.spawn(self._retry(share, attempt + 1, delay))
            return
        self._incomplete.pop(str(path), None)
        rt.wake.set()  # a new deadline
        if share.state is State.LIVE:
            self._announce(share)
            await self._after_share(path)

    async def _retry(self, share: Share, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)
        fresh = self.rt.journal.get(share.id)
        if fresh is not None and fresh.state in (State.PENDING, State.UPLOADING):
            await self._drive(fresh, attempt)

    async def _after_wait(self, share: Share, cause: NeedsSignIn | Unreachable) -> None:
        await self.rt.gate.wait(share.backend, cause, photo=Path(share.source).name)
        fresh = self.rt.journal.get(share.id)
        if fresh is not None and fresh.state in (State.PENDING, State.UPLOADING):
            await self._drive(fresh)

    async def _after_share(self, path: Path) -> None:
        policy = self.rt.settings.after_share
        if policy != "keep" and path.is_relative_to(self.root):
            await self.rt.blocking(after_share, policy, self.root, path)

    # -- announcing ----------------------------------------------------------------------

    def _announce(self, share: Share) -> None:
        release = self.coalescer.add(share, self.rt.clock())
        if release is not None:
            self.rt.spawn(self._release(release))
        self._announce_wake.set()

    async def _announcer(self) -> None:
        rt = self.rt
        while True:
            self._announce_wake.clear()
            release = self.coalescer.due(rt.clock())
            if release is not None:
                await self._release(release)
            delay = self.coalescer.next_due(rt.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._announce_wake.wait(), delay)

    async def _release(self, release: Release[Share]) -> None:
        fresh = [self.rt.journal.get(s.id) or s for s in release.items]
        live = [s for s in fresh if s.state is State.LIVE]
        if release.grouped and len(live) > 1:
            await self.handout.announce_many(live)
        else:
            for share in live:
                await self.handout.announce(share)
