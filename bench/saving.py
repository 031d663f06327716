"""What the latency benchmarks share: save a photo as a photo app does, time it to the clipboard."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from daemon import coalesce
from tests.daemon_proc import DaemonProcess
from tests.desktop import Desktop


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def save_and_time(
    photo: Path, share_dir: Path, desktop: Desktop, daemon: DaemonProcess, last: str, scheme: str
) -> tuple[float, str]:
    """Milliseconds from the rename into the folder to a new link on the clipboard, and it."""
    # A person saving one photo: more than three within two seconds would be a burst,
    # announced as a group on purpose (daemon/coalesce.py).
    time.sleep(coalesce.WINDOW + 0.1)
    tmp = share_dir / (photo.name + ".part")
    shutil.copyfile(photo, tmp)
    t0 = time.perf_counter()
    os.replace(tmp, share_dir / photo.name)
    while True:
        now = desktop.clipboard()
        if now.startswith(scheme) and now != last:
            return (time.perf_counter() - t0) * 1000, now
        if time.perf_counter() - t0 > 30:
            raise RuntimeError(f"no link for {photo.name}:\n{daemon.output()}")
