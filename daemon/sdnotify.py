"""systemd's notify protocol in a few lines of stdlib: READY=1 when the daemon really works,
WATCHDOG=1 while its event loop runs, STOPPING=1 on the way out. Without $NOTIFY_SOCKET (not
started by systemd with Type=notify) every call does nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one state message ("READY=1", "STATUS=..."); True when it was sent."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind we do not speak (vsock)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("could not tell systemd %r: %s", message, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec=), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by the service's process)
    return int(usec) / 1_000_000 / 2


async def watchdog() -> None:
    """Ping while the event loop runs: a loop that hangs stops pinging, and systemd restarts
    the service."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
