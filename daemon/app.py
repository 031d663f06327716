"""The daemon: folder → settle → prepare → upload → link → clipboard/notify → expire.

One asyncio loop owns the flow; blocking work (Pillow, file copies, backend calls, the clipboard)
runs in a small thread pool so a big photo never delays a revocation or a notification.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from daemon.backends.local import META_BASE_URL, MIME, link_key
from daemon.backends.registry import make_backends
from daemon.expiry import Expiry
from daemon.handout import Handout
from daemon.intake import Intake
from daemon.journal import Journal, State
from daemon.lock import DaemonLock
from daemon.notify import Notifier
from daemon.pipeline import Paths, Pipeline
from daemon.runtime import MAX_PARALLEL, Runtime
from daemon.server import LinkServer, Served
from daemon.settings import Settings
from daemon.watcher import SCANNED, FolderWatcher, scan

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, clock: Callable[[], float]) -> Runtime:
    paths = Paths(settings.state_dir)
    paths.make()
    journal = Journal(settings.journal_path)
    pipeline = Pipeline(
        journal,
        make_backends(settings, paths, journal),
        paths,
        backend_name=settings.backend,
        max_dimension=settings.max_dimension,
        keep_metadata=settings.keep_metadata,
        keep_location=settings.keep_location,
        keep_names=settings.keep_names,
        share_any=settings.share_any,
        clock=clock,
    )
    rt = Runtime(
        settings=settings,
        clock=clock,
        paths=paths,
        journal=journal,
        pipeline=pipeline,
        notifier=Notifier(),
        pool=ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="fadelink"),
    )
    return rt


def lookup_for(rt: Runtime) -> Callable[[str], Served | None]:
    """What the link server asks on every request: is this token a live, unexpired share?"""

    def lookup(token: str) -> Served | None:
        share = rt.journal.by_link_key(link_key(token))
        if share is None or share.state is not State.LIVE or share.remote_path is None:
            return None
        if share.expires_at is None or share.expires_at <= rt.clock():
            return None
        path = rt.paths.served / share.remote_path
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        return Served(path=path, mime=mime, expires_at=share.expires_at, title=share.name)

    return lookup


class Daemon:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.lock = DaemonLock(settings.state_dir)

    async def run(self, stop: asyncio.Event) -> None:
        self.lock.acquire()  # raises AlreadyRunning with the holder's pid
        try:
            await self._run(stop)
        finally:
            self.lock.release()

    async def _run(self, stop: asyncio.Event) -> None:
        s = self.settings
        rt = build_runtime(s, self.clock)
        first_run = rt.journal.created
        handout = Handout(rt)
        expiry = Expiry(rt, handout)
        handout.actions = expiry  # the notification buttons act through expiry
        intake = Intake(rt, handout)
        watcher: FolderWatcher | None = None
        workers: list[asyncio.Task] = []
        try:
            await rt.notifier.start()
            # Overdue links die before anything else can serve them.
            await expiry.revoke_overdue_at_start()
            await rt.blocking(rt.pipeline.sweep_orphans)

            if s.backend == "local":
                rt.server = LinkServer(
                    lookup_for(rt), bind=s.local_bind, public_url=s.local_public_url, clock=rt.clock
                )
                await rt.server.start()
                rt.journal.set_meta(META_BASE_URL, rt.server.base_url)

            s.share_dir.mkdir(parents=True, exist_ok=True)
            share_dir = s.share_dir.resolve()  # the folder itself may be a symlink
            # Watch first, then scan: a file landing in between is seen twice, never missed.
            watcher = FolderWatcher(share_dir, intake.threadsafe_emit(asyncio.get_running_loop()))
            watcher.start()
            await self._catch_up(rt, intake, share_dir, first_run)
            for share in rt.journal.shares([State.LIVE]):
                if not share.announced:  # crashed between the link and the hand-out
                    rt.spawn(handout.announce(share))

            where = rt.server.base_url if rt.server else s.backend
            reach = f"; {rt.server.reachability}" if rt.server else ""
            print(
                f"ready: watching {share_dir}, links at {where}{reach}", file=sys.stderr, flush=True
            )
            workers = [
                asyncio.create_task(intake.run()),
                asyncio.create_task(expiry.run()),
                asyncio.create_task(expiry.watch_journal()),
            ]
            await stop.wait()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await rt.cancel_tasks()
            if watcher is not None:
                watcher.stop()
            if rt.server:
                await rt.server.stop()
            await rt.notifier.close()
            rt.pool.shutdown(wait=True, cancel_futures=True)
            rt.journal.close()

    async def _catch_up(self, rt: Runtime, intake: Intake, share_dir: Path, first_run: bool):
        entries = await rt.blocking(lambda: list(scan(share_dir)))
        if first_run:
            rt.journal.mark_present(
                [(str(e.path), e.size, e.mtime_ns) for e in entries], rt.clock()
            )
            log.info("first run: %d files already in the folder are left unshared", len(entries))
        else:
            for e in entries:
                intake.add(e.path, SCANNED)
        for share in rt.journal.shares([State.PENDING, State.UPLOADING]):
            rt.spawn(intake.resume(share))


def run(settings: Settings) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Daemon(settings).run(stop)

    asyncio.run(main())
    return 0
