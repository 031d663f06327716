"""Where the log goes. Under systemd: plain lines on stderr, which the journal stores with its
own timestamps and our level as priority ("<4>" prefixes). Otherwise stderr as well, and, for
the daemon, a rotating file in the platform's log dir that `fadelink service logs` shows."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

import platformdirs

from daemon.settings import APP

FILE_BYTES = 1_000_000
FILE_BACKUPS = 3
NOISY = ("watchdog", "asyncio", "PIL", "aiohttp.access")

# syslog priorities, which journald reads from a "<N>" line prefix (SyslogLevelPrefix=yes).
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def under_systemd() -> bool:
    """Started by systemd, with stderr going to the journal."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def log_file() -> Path:
    return Path(platformdirs.user_log_dir(APP)) / "fadelink.log"


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>{record.levelname.lower()}: {super().format(record)}"


def setup(verbose: bool) -> None:
    """Logging for every command: stderr, without timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    if under_systemd():
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("fadelink: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "fadelink", False)]:
        root.removeHandler(old)  # set up again: replace ours, leave others' handlers alone
    handler.fadelink = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_file() -> Path | None:
    """The daemon's rotating log file (not under systemd: the journal keeps that log).
    Returns its path, or None when it is not used or cannot be opened."""
    if under_systemd():
        return None
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The log names files and shares: private to the user, like the journal.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=FILE_BYTES, backupCount=FILE_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file (%s): %s", path, exc)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return path
