"""Save→clipboard latency of the running daemon, next to the in-process floor, in one run.

    .venv/bin/python bench/latency.py [--photos 20]

Starts a private desktop (Xvfb, D-Bus, dunst, xclip) and `fadelink run` on the local backend,
saves photos one after another into the share folder as a photo app does (write a temporary name,
rename into place), and measures until the link is on the clipboard. The floor is the same
preparation, copy into the served folder and HTTP fetch of the served image, called directly in
one process with no watching, no journal and no clipboard.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bench.saving import pct, save_and_time, screenshot  # noqa: E402
from daemon import clipboard, prepare  # noqa: E402
from daemon.server import LinkServer, Served, new_token  # noqa: E402
from tests.daemon_proc import DaemonProcess, Home  # noqa: E402
from tests.desktop import start_desktop  # noqa: E402

PHONE = ROOT.parent / "shared" / "testdata" / "photos" / "jpg_mobile_jolla.jpg"


def phone_photo(path: Path, seed: int) -> Path:
    if PHONE.exists():
        # Distinct content each time (a comment segment): the same photo again would rightly
        # get its live link back without any work.
        data = PHONE.read_bytes()
        text = f"latency photo {seed}".encode()
        com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        path.write_bytes(data[:2] + com + data[2:])
    else:  # a fresh clone without ../shared: a synthetic 8 MP photo
        Image.effect_noise((3264, 2448), 40 + seed).convert("RGB").save(path, quality=90)
    return path


def make_photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(screenshot(folder / f"photo{i:02d}.png", seed=i))
        else:
            out.append(phone_photo(folder / f"photo{i:02d}.jpg", i))
    return out


def measure_daemon(photos: list[Path], work: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {".png": [], ".jpg": []}
    with start_desktop() as desktop:
        home = Home(work / "home", desktop.env)
        daemon = DaemonProcess(home, FADELINK_LIFETIME="1h")
        try:
            daemon.wait_ready()
            last = ""
            for photo in photos:
                ms, last = save_and_time(photo, home.share_dir, desktop, daemon, last, "http")
                times[photo.suffix].append(ms)
        finally:
            daemon.stop()
    return times


def measure_floor(photos: list[Path], work: Path) -> tuple[dict[str, list[float]], list[float]]:
    served_dir = work / "floor"
    served_dir.mkdir()
    table: dict[str, Served] = {}
    server = LinkServer(table.get, bind="127.0.0.1:0")
    times: dict[str, list[float]] = {".png": [], ".jpg": []}
    clip: list[float] = []

    async def run() -> None:
        await server.start()
        try:
            for photo in photos:
                t0 = time.perf_counter()
                name = new_token()
                result = await asyncio.to_thread(
                    prepare.prepare, photo, served_dir, name, max_dimension=2560
                )
                table[name] = Served(result.path, result.mime, time.time() + 3600, photo.name)
                page = await asyncio.to_thread(_get, server.link_for(name))
                image = await asyncio.to_thread(_get, f"{server.link_for(name)}/photo{result.ext}")
                assert page and image
                times[photo.suffix].append((time.perf_counter() - t0) * 1000)
        finally:
            await server.stop()

    asyncio.run(run())
    for _ in range(5):
        t0 = time.perf_counter()
        clipboard.copy("http://example.invalid/x")
        clip.append((time.perf_counter() - t0) * 1000)
    return times, clip


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fl-bench-") as tmp:
        work = Path(tmp)
        photos = make_photos(work / "src", args.photos)
        daemon = measure_daemon(photos, work)
        with start_desktop() as desktop:
            os.environ.update(desktop.env)
            floor, clip = measure_floor(photos, work)
    print(f"save→clipboard latency, {args.photos} photos saved one after another (ms)")
    print(f"{'case':<34}{'n':>4}{'p50':>9}{'p95':>9}")
    rows = [
        ("daemon: PNG screenshot 1920x1080", daemon[".png"]),
        ("daemon: phone JPEG 3264x2448", daemon[".jpg"]),
        ("daemon: all", daemon[".png"] + daemon[".jpg"]),
        ("floor: PNG (prepare+serve)", floor[".png"]),
        ("floor: JPEG (prepare+serve)", floor[".jpg"]),
        ("floor: all", floor[".png"] + floor[".jpg"]),
        ("clipboard copy + read-back", clip),
    ]
    for label, values in rows:
        print(f"{label:<34}{len(values):>4}{pct(values, 50):>9.1f}{pct(values, 95):>9.1f}")
    overhead = statistics.median(daemon[".png"] + daemon[".jpg"]) - statistics.median(
        floor[".png"] + floor[".jpg"]
    )
    print(f"daemon overhead over the floor at p50: {overhead:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
