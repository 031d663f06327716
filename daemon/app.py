"""The daemon: folder → settle → prepare → upload → link → clipboard/notify → expire.

One asyncio loop owns the flow; blocking work (Pillow, file copies, backend calls, the clipboard)
runs in a small thread pool so a big photo never delays a revocation or a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
import time
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from daemon import clipboard, scheduler
from daemon.backends import Backend
from daemon.backends.local import MIME, LocalBackend, link_key
from daemon.durations import format_duration
from daemon.errors import (
    BadImage,
    FadelinkError,
    IncompleteImage,
    NotAnImage,
    PermanentError,
    TransientError,
)
from daemon.journal import Journal, Share, State
from daemon.lock import DaemonLock
from daemon.notify import Notifier
from daemon.pipeline import Paths, Pipeline
from daemon.server import LinkServer, Served
from daemon.settings import Settings
from daemon.settle import Settler
from daemon.watcher import QUICK_KINDS, SCANNED, FolderWatcher, scan

log = logging.getLogger(__name__)

MAX_PARALLEL = 4
JOURNAL_POLL = 0.5  # how soon the daemon notices what the CLI wrote
INCOMPLETE_GIVE_UP = 20  # checks of an undecodable, unchanging file before saying so
META_BASE_URL = "local_base_url"


def make_backends(settings: Settings, paths: Paths, base_url: Callable[[], str | None]):
    cache: dict[str, Backend] = {}

    def get(name: str) -> Backend:
        if name not in cache:
            if name == "local":
                cache[name] = LocalBackend(paths.served, base_url)
            else:
                raise PermanentError(f"the {name} backend is not available in this version")
        return cache[name]

    return get


class Daemon:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.paths = Paths(settings.state_dir)
        self.lock = DaemonLock(settings.state_dir)
        self.pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="fadelink")
        self.notifier = Notifier()
        self.server: LinkServer | None = None
        self.journal: Journal
        self.pipeline: Pipeline
        self.share_dir: Path
        self._events: asyncio.Queue[tuple[Path, str]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._settler = Settler(settings.settle_seconds)
        self._slots = asyncio.Semaphore(MAX_PARALLEL)
        self._incomplete: dict[str, int] = {}
        self._told: set[str] = set()  # paths we already explained, so no message storms
        self._tasks: set[asyncio.Task] = set()

    # -- helpers --------------------------------------------------------------------------

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _base_url(self) -> str | None:
        return self.server.base_url if self.server else None

    def _lookup(self, token: str) -> Served | None:
        share = self.journal.by_link_key(link_key(token))
        if share is None or share.state is not State.LIVE or share.remote_path is None:
            return None
        if share.expires_at is None or share.expires_at <= self.clock():
            return None
        path = self.paths.served / share.remote_path
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        return Served(path=path, mime=mime, expires_at=share.expires_at, title=share.name)

    def _tell_once(self, key: str, message: str) -> None:
        if key not in self._told:
            self._told.add(key)
            log.warning("%s", message)

    # -- start-up -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.lock.acquire()  # raises AlreadyRunning with the holder's pid
        try:
            await self._run(stop)
        finally:
            self.lock.release()

    async def _run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self.paths.make()
        self.journal = Journal(s.journal_path)
        first_run = self.journal.created
        self.pipeline = Pipeline(
            self.journal,
            make_backends(s, self.paths, self._base_url),
            self.paths,
            backend_name=s.backend,
            max_dimension=s.max_dimension,
            clock=self.clock,
        )
        await self.notifier.start()
        # Overdue links die before anything else can serve them.
        await self._revoke_overdue_at_start()
        await self._blocking(self.pipeline.sweep_orphans)

        if s.backend == "local":
            self.server = LinkServer(
                self._lookup, bind=s.local_bind, public_url=s.local_public_url, clock=self.clock
            )
            await self.server.start()
            self.journal.set_meta(META_BASE_URL, self.server.base_url)

        s.share_dir.mkdir(parents=True, exist_ok=True)
        self.share_dir = s.share_dir.resolve()  # the folder itself may be a symlink
        loop = asyncio.get_running_loop()

        def emit(path: Path, kind: str) -> None:  # called on watchdog's thread
            loop.call_soon_threadsafe(self._events.put_nowait, (path, kind))

        # Watch first, then scan: a file landing in between is seen twice, never missed.
        watcher = FolderWatcher(self.share_dir, emit)
        watcher.start()
        entries = await self._blocking(lambda: list(scan(self.share_dir)))
        if first_run:
            self.journal.mark_present(
                [(str(e.path), e.size, e.mtime_ns) for e in entries], self.clock()
            )
            log.info("first run: %d files already in the folder are left unshared", len(entries))
        else:
            for e in entries:
                self._events.put_nowait((e.path, SCANNED))
        for share in self.journal.shares([State.PENDING, State.UPLOADING]):
            self._spawn(self._drive(share, announce=True))
        for share in self.journal.shares([State.LIVE]):
            if not share.announced:  # crashed between the link and the hand-out
                self._spawn(self._announce(share))

        where = self.server.base_url if self.server else s.backend
        reach = f"; {self.server.reachability}" if self.server else ""
        print(
            f"ready: watching {self.share_dir}, links at {where}{reach}",
            file=sys.stderr,
            flush=True,
        )

        workers = [
            asyncio.create_task(self._intake()),
            asyncio.create_task(self._expiry()),
            asyncio.create_task(self._journal_poll()),
        ]
        try:
            await stop.wait()
        finally:
            for w in workers:
                w.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*workers, *self._tasks, return_exceptions=True)
            watcher.stop()
            if self.server:
                await self.server.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.journal.close()

    async def _revoke_overdue_at_start(self) -> None:
        now = self.clock()
        overdue = [s for s in self.journal.due(now) if s.state is State.LIVE]
        stuck = [s for s in self.journal.shares([State.REVOKING])]
        for share in overdue + stuck:
            await self._revoke(share, "expired while fadelink was not running", notify=False)
        if overdue:
            names = ", ".join(s.name for s in overdue[:5]) + ("…" if len(overdue) > 5 else "")
            late = max(now - (s.expires_at or now) for s in overdue)
            await self.notifier.show(
                f"{len(overdue)} link{'s' if len(overdue) > 1 else ''} vanished late",
                f"{names}: the deadline passed while fadelink was not running "
                f"(up to {format_duration(late)} late). They are revoked now.",
            )

    # -- intake: events → settled candidates → shares --------------------------------------

    async def _intake(self) -> None:
        while True:
            timeout = self._settler.next_check(self.clock())
            try:
                if timeout is None:
                    item = await self._events.get()
                else:
                    item = await asyncio.wait_for(self._events.get(), timeout)
            except TimeoutError:
                item = None
            batch = [item] if item else []
            while not self._events.empty():
                batch.append(self._events.get_nowait())
            for path, kind in batch:
                self._observe(path, kind)
            for ready in self._settler.ready(self.clock()):
                self._spawn(self._take(Path(ready)))

    def _observe(self, path: Path, kind: str) -> None:
        if kind == "folder":
            for e in scan(path) if path.is_dir() and not path.is_symlink() else ():
                self._observe(e.path, SCANNED)
            return
        try:
            st = os.lstat(path)
        except OSError:
            self._settler.forget(str(path))  # gone again (a temp file, a move away)
            return
        if stat.S_ISLNK(st.st_mode):
            self._tell_once(
                f"link:{path}", f"skipping {path}: it is a symlink, and fadelink never follows one"
            )
            return
        if not stat.S_ISREG(st.st_mode):
            return  # FIFOs, sockets, devices: never opened
        seen = self.journal.seen(str(path))
        if seen == (st.st_size, st.st_mtime_ns):
            return
        self._settler.observe(
            str(path), st.st_size, st.st_mtime_ns, self.clock(), quick=kind in QUICK_KINDS
        )

    async def _take(self, path: Path) -> None:
        async with self._slots:
            try:
                share = await self._blocking(
                    self.pipeline.take, path, self.settings.lifetime_seconds
                )
            except FileNotFoundError:
                return
            except NotAnImage as exc:
                self._tell_once(f"notimage:{path}", str(exc))
                return
            except OSError as exc:
                self._tell_once(f"os:{path}", f"cannot read {path}: {exc.strerror}")
                return
            if share is None:
                return
            await self._drive(share, announce=True, slot_held=True)

    async def _drive(self, share: Share, *, announce: bool, slot_held: bool = False) -> None:
        if not slot_held:
            async with self._slots:
                return await self._drive(share, announce=announce, slot_held=True)
        path = Path(share.source)
        try:
            share = await self._blocking(self.pipeline.process, share)
        except IncompleteImage:
            n = self._incomplete.get(str(path), 0) + 1
            self._incomplete[str(path)] = n
            if n >= INCOMPLETE_GIVE_UP:
                self._tell_once(
                    f"incomplete:{path}",
                    f"{path.name} does not decode completely; if it is finished, save it again",
                )
                return
            self._events.put_nowait((path, SCANNED))  # look again after the settle interval
            return
        except (PermanentError, BadImage) as exc:
            log.error("%s: %s", path.name, exc)
            await self.notifier.show("Could not share a photo", f"{path.name}: {exc}")
            return
        except TransientError as exc:
            log.warning("%s: %s; will retry", path.name, exc)
            await asyncio.sleep(scheduler.retry_delay(1))
            self._spawn(self._drive(share, announce=announce))
            return
        self._incomplete.pop(str(path), None)
        self._wake.set()  # a new deadline
        if announce and share.state is State.LIVE:
            await self._announce(share)

    # -- hand-out ------------------------------------------------------------------------

    async def _announce(self, share: Share) -> None:
        assert share.url
        copied = await self._blocking(clipboard.copy, share.url)
        thumb = None
        if share.remote_path and share.backend == "local":
            with contextlib.suppress(Exception):
                from daemon import prepare

                thumb = await self._blocking(
                    prepare.thumbnail,
                    self.paths.served / share.remote_path,
                    self.paths.thumb_for(share.id),
                )
        left = format_duration((share.expires_at or 0) - self.clock())
        where = self._where()
        if copied.ok:
            body = f"Link copied to the clipboard. Disappears in {left}. {where}"
        else:
            body = f"{share.url}\n(not copied: {copied.reason}) Disappears in {left}. {where}"
        url = share.url
        await self.notifier.show(
            f"Link ready: {share.name}",
            body,
            image=thumb,
            on_clicked=lambda: self._open(url),
        )
        if not copied.ok and not self.notifier.verified:
            # The URL is a secret: it reaches the log only when nothing else could carry it.
            log.warning(
                "link for %s (clipboard and notifications unavailable): %s", share.name, url
            )
        self.journal.mark_announced(share.id)
        log.info("shared %s as %s, disappears in %s", share.name, share.id, left)

    def _where(self) -> str:
        if self.server is None:
            return ""
        if self.settings.local_public_url:
            return "Works wherever your public URL is reachable, while this computer is awake."
        if self.server.reachability.startswith("reachable only"):
            return "Works only on this computer."
        return "Works on this network while this computer is awake."

    def _open(self, url: str) -> None:
        self.pool.submit(webbrowser.open, url)

    # -- expiry --------------------------------------------------------------------------

    async def _expiry(self) -> None:
        while True:
            now = self.clock()
            for share in self.journal.due(now):
                await self._revoke(share, "its lifetime ended")
            delay = scheduler.sleep_for(self.clock(), self.journal.next_deadline())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _revoke(self, share: Share, reason: str, *, notify: bool = True) -> None:
        try:
            done = await self._blocking(self.pipeline.revoke, share, reason)
        except (TransientError, OSError, FadelinkError) as exc:
            now = self.clock()
            fresh = self.journal.get(share.id) or share
            attempts = self.journal.revoke_failed(
                share.id, str(exc), now + scheduler.retry_delay(fresh.attempts + 1), now
            )
            log.warning("could not revoke %s yet (attempt %d): %s", share.name, attempts, exc)
            if attempts == 1:
                await self.notifier.show(
                    f"Could not revoke {share.name} yet",
                    f"{exc}. fadelink keeps retrying; `fadelink list` shows it.",
                )
            return
        if done.state is State.GONE:
            log.info("%s (%s) vanished: %s", share.name, share.id, reason)
            if notify and share.state is State.LIVE:
                await self.notifier.show(
                    f"Vanished: {share.name}", "Its link no longer works and the copy is deleted."
                )

    async def _journal_poll(self) -> None:
        version = self.journal.data_version()
        while True:
            await asyncio.sleep(JOURNAL_POLL)
            current = self.journal.data_version()
            if current != version:
                version = current
                self._wake.set()


def run(settings: Settings) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Daemon(settings).run(stop)

    asyncio.run(main())
    return 0
