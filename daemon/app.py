"""The daemon: folder → settle → prepare → upload → link → clipboard/notify → expire.

One asyncio loop owns the flow; blocking work (Pillow, file copies, backend calls, the clipboard)
runs in a small thread pool so a big photo never delays a revocation or a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from daemon import sdnotify
from daemon.backends.local import META_BASE_URL
from daemon.expiry import Expiry
from daemon.folders import ONCE, make_starter_folders
from daemon.gate import warm_up
from daemon.handout import Handout
from daemon.intake import Intake
from daemon.journal import Journal, State
from daemon.lock import DaemonLock
from daemon.notify import Notifier
from daemon.pipeline import Paths, Pipeline
from daemon.runtime import Runtime
from daemon.server import LinkServer
from daemon.settings import Settings
from daemon.views import LinkShares
from daemon.watcher import SCANNED

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, clock: Callable[[], float]) -> Runtime:
    paths = Paths(settings.state_dir)
    paths.make()
    journal = Journal(settings.journal_path)
    pipeline = Pipeline.from_settings(settings, journal, clock)
    rt = Runtime(
        settings=settings,
        clock=clock,
        paths=paths,
        journal=journal,
        pipeline=pipeline,
        notifier=Notifier(),
        # Workers prepare at most max_parallel photos at once; two more threads keep the
        # clipboard and revocations from waiting behind a big TIFF.
        pool=ThreadPoolExecutor(
            max_workers=settings.max_parallel + 2, thread_name_prefix="fadelink"
        ),
    )
    return rt


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
        s.share_dir.mkdir(parents=True, exist_ok=True)
        share_dir = s.share_dir.resolve()  # the folder itself may be a symlink: resolved once
        intake = Intake(rt, handout, share_dir)
        workers: list[asyncio.Task] = []
        try:
            await rt.notifier.start()
            # Overdue links die before anything else can serve them.
            await expiry.revoke_overdue_at_start()
            await rt.blocking(rt.pipeline.sweep_orphans)
            if s.backend != "local":
                rt.spawn(warm_up(rt, s.backend))  # sign in now, not at the first photo

            if s.backend == "local":
                links = LinkShares(rt, on_first_view=handout.viewed)
                rt.server = LinkServer(
                    links.lookup,
                    reveal=links.reveal,
                    viewed=links.viewed,
                    once_window=s.once_window_seconds,
                    trust_proxy=s.local_trust_proxy,
                    bind=s.local_bind,
                    public_url=s.local_public_url,
                    clock=rt.clock,
                )
                await rt.server.start()
                rt.journal.set_meta(META_BASE_URL, rt.server.base_url)

            # Watch first, then scan: a file landing in between is seen twice, never missed.
            intake.start_watching()
            await self._catch_up(rt, intake, first_run)
            if first_run:
                make_starter_folders(share_dir)
                (share_dir / ONCE).mkdir(exist_ok=True)  # view-once links
            for share in rt.journal.shares([State.LIVE]):
                if not share.announced:  # crashed between the link and the hand-out
                    rt.spawn(handout.announce(share))

            where = rt.server.base_url if rt.server else s.backend
            reach = f"; {rt.server.reachability}" if rt.server else ""
            print(
                f"ready: watching {share_dir}, links at {where}{reach}", file=sys.stderr, flush=True
            )
            # systemd (Type=notify): only now is a saved photo picked up and its link served.
            sdnotify.notify(f"READY=1\nSTATUS=watching {share_dir}")
            workers = [
                asyncio.create_task(intake.run()),
                asyncio.create_task(intake.supervise()),
                asyncio.create_task(expiry.run()),
                asyncio.create_task(expiry.watch_journal()),
                asyncio.create_task(sdnotify.watchdog()),
            ]
            await stop.wait()
        finally:
            sdnotify.notify("STOPPING=1")
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await rt.cancel_tasks()
            intake.stop_watching()
            if rt.server:
                await rt.server.stop()
            await rt.notifier.close()
            rt.pool.shutdown(wait=True, cancel_futures=True)
            rt.journal.close()

    async def _catch_up(self, rt: Runtime, intake: Intake, first_run: bool) -> None:
        entries = await rt.blocking(intake.scan_entries)
        if first_run:
            rt.journal.mark_present(
                [(str(e.path), e.size, e.mtime_ns) for e in entries], rt.clock()
            )
            log.info("first run: %d files already in the folder are left unshared", len(entries))
        else:
            # Files removed while stopped are forgotten: one saved again later is new.
            await rt.blocking(rt.journal.forget_missing, {str(e.path) for e in entries}, rt.clock())
            for e in entries:
                intake.add(e.path, SCANNED)
        for share in rt.journal.shares([State.PENDING, State.UPLOADING]):
            rt.spawn(intake.resume(share))


def _limit_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena, so a few image-decoding threads make a
    long-running daemon hold several times the memory it uses (measured: 708 → 420 MB peak
    in bench/burst.py). Two arenas are plenty for a handful of worker threads."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX


def run(settings: Settings) -> int:
    _limit_malloc_arenas()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Daemon(settings).run(stop)

    asyncio.run(main())
    return 0
