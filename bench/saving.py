"""What the benchmarks share: screenshot-like test images, and timing a save to the clipboard."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

from PIL import Image, ImageDraw

from daemon import coalesce
from tests.daemon_proc import DaemonProcess
from tests.desktop import Desktop


def screenshot(path: Path, size: tuple[int, int] = (1920, 1080), seed: int = 0) -> Path:
    """A screenshot-like PNG: flat panels, lines of text-like strokes, one photo in a window."""
    w, h = size
    k = w / 1920  # everything scales with the screen
    rnd = random.Random(seed)
    im = Image.new("RGB", size, (246, 246, 246))
    d = ImageDraw.Draw(im)
    for _ in range(round(40 * k)):
        x, y = rnd.randrange(int(w * 0.94)), rnd.randrange(int(h * 0.93))
        d.rectangle(
            (
                x,
                y,
                x + rnd.randrange(int(40 * k), int(400 * k)),
                y + rnd.randrange(10, int(200 * k)),
            ),
            fill=tuple(rnd.randrange(256) for _ in range(3)),
        )
    for row in range(0, h, 18):
        d.text(
            (20, row),
            "".join(rnd.choice("abcdefgh ijkl") for _ in range(int(120 * k))),
            fill=(0, 0, 0),
        )
    im.paste(Image.effect_noise((w // 4, h * 8 // 27), 60).convert("RGB"), (w * 2 // 3, h * 5 // 9))
    im.save(path)
    return path


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
