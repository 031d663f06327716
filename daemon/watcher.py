"""Watching the share folder (watchdog) and scanning it: only candidates come out of here.

The handler runs on watchdog's single dispatch thread, so it only filters and hands off. Nothing
here decides that a file is ready; see settle.py.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

# Names a browser, editor or screenshot tool uses while a file is still being written.
TEMP_SUFFIXES = (
    ".part",
    ".crdownload",
    ".download",
    ".tmp",
    "~",
    ".swp",
    ".partial",
    ".opdownload",
)

POLL_INTERVAL = 2.0  # seconds between polls where inotify is unavailable (network drives)

# Event kinds handed to the consumer. "quick": the file arrived complete (rename or close).
CREATED, MODIFIED, MOVED, CLOSED, SCANNED = "created", "modified", "moved", "closed", "scanned"
QUICK_KINDS = frozenset({MOVED, CLOSED})


def is_temporary(name: str) -> bool:
    lower = name.lower()
    return lower.startswith(".") or lower.endswith(TEMP_SUFFIXES)


def hidden_part(root: Path, path: Path) -> bool:
    """True if any component below root is hidden (e.g. share/.shared/…)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return True
    return any(part.startswith(".") for part in rel.parts[:-1])


def is_candidate_name(root: Path, path: Path) -> bool:
    return not is_temporary(path.name) and not hidden_part(root, path)


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    mtime_ns: int


def scan(root: Path, *, recursive: bool = True) -> Iterator[Entry]:
    """Regular files under root, never following a symlink (to a file or a folder)."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("cannot read folder %s: %s", folder, exc.strerror)
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                log.warning("skipping %s: it is a symlink, and fadelink never follows one", path)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    stack.append(path)
            elif stat.S_ISREG(st.st_mode) and not is_temporary(entry.name):
                yield Entry(path, st.st_size, st.st_mtime_ns)


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, emit: Callable[[Path, str], None]) -> None:
        self.root = root
        self.emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Enqueue only: a slow or failing handler would stall or kill the observer thread.
        try:
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    # A folder moved or created in: its files produce no events of their own.
                    target = Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))
                    # .shared/ and other hidden folders are never looked into.
                    if not hidden_part(self.root, target / "x") and self.root != target:
                        self.emit(target, "folder")
                return
            if isinstance(event, FileMovedEvent):
                path, kind = Path(os.fsdecode(event.dest_path)), MOVED
            elif isinstance(event, FileClosedEvent):
                path, kind = Path(os.fsdecode(event.src_path)), CLOSED
            elif isinstance(event, FileCreatedEvent):
                path, kind = Path(os.fsdecode(event.src_path)), CREATED
            elif isinstance(event, FileModifiedEvent):
                path, kind = Path(os.fsdecode(event.src_path)), MODIFIED
            else:
                return
            if is_candidate_name(self.root, path):
                self.emit(path, kind)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("ignored a folder event that could not be handled")


class _OverflowSignal(logging.Handler):
    """watchdog only logs an inotify queue overflow; events were lost, so rescan."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


class FolderWatcher:
    """The observer on the share folder, falling back to polling where inotify cannot work.

    on_doubt is called whenever events may have been lost (queue overflow, a restarted
    observer): the consumer then rescans the folder.
    """

    def __init__(
        self,
        root: Path,
        emit: Callable[[Path, str], None],
        *,
        recursive: bool = True,
        polling: bool = False,
        on_doubt: Callable[[], None] = lambda: None,
    ) -> None:
        self.root = root
        self.emit = emit
        self.recursive = recursive
        self.polling = polling
        self.on_doubt = on_doubt
        self._overflow = _OverflowSignal(on_doubt)
        self._observer: BaseObserver | None = None

    def _make(self, polling: bool) -> BaseObserver:
        observer = PollingObserver(timeout=POLL_INTERVAL) if polling else Observer()
        observer.schedule(_Handler(self.root, self.emit), str(self.root), recursive=self.recursive)
        return observer

    def start(self) -> None:
        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).addHandler(self._overflow)
        try:
            self._observer = self._make(self.polling)
            self._observer.start()
        except OSError as exc:
            if self.polling:
                raise
            # ENOSPC/EMFILE: the inotify watch or instance limit is reached.
            log.warning(
                "cannot watch %s with inotify (%s); polling every %.0f s instead. Raise "
                "fs.inotify.max_user_watches or set FADELINK_POLLING=true to silence this",
                self.root,
                exc.strerror or exc,
                POLL_INTERVAL,
            )
            self.polling = True
            self._observer = self._make(True)
            self._observer.start()

    def alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def restart(self) -> None:
        """After the observer thread died: watch again, and tell the consumer to rescan."""
        log.warning("the folder watcher stopped unexpectedly; watching %s again", self.root)
        self.stop()
        self.start()
        self.on_doubt()

    def stop(self) -> None:
        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).removeHandler(self._overflow)
        if self._observer is not None:
            self._observer.stop()
            if self._observer.is_alive():
                self._observer.join(timeout=5)
            self._observer = None
