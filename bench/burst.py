"""A burst of phone photos dropped at once, and the cost of sitting idle on a big folder.

    .venv/bin/python bench/burst.py [--photos 200] [--idle 60] [--idle-files 10000]

Drain: N distinct phone photos are copied into the share folder at once; time until every one
is live, and the daemon's peak RSS — next to a baseline measured in the same run: the same
preparation and local upload done by a plain sequential loop in a fresh process, no watching.
Idle: CPU seconds the daemon uses over --idle seconds with --idle-files files in the folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests.daemon_proc import DaemonProcess, Home  # noqa: E402

PHONE = ROOT.parent / "shared" / "testdata" / "photos" / "jpg_mobile_jolla.jpg"

BASELINE = """
import os, resource, secrets, sys, time
from pathlib import Path
from daemon import prepare
src, out = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
for photo in sorted(src.iterdir()):
    result = prepare.prepare(photo, out, secrets.token_urlsafe(12), max_dimension=2560)
    os.replace(result.path, out / ("served-" + result.path.name))
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def phone_photos(folder: Path, n: int) -> None:
    """n distinct phone JPEGs: the same picture with a different comment segment each."""
    folder.mkdir(parents=True)
    if PHONE.exists():
        data = PHONE.read_bytes()
    else:  # no ../shared: a synthetic 8 MP photo
        tmp = folder / "base.jpg"
        Image.effect_noise((3264, 2448), 40).convert("RGB").save(tmp, quality=90)
        data = tmp.read_bytes()
        tmp.unlink()
    for i in range(n):
        text = f"burst photo {i}".encode()
        com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        (folder / f"IMG_{i:04d}.jpg").write_bytes(data[:2] + com + data[2:])


def live_count(journal: Path) -> int:
    if not journal.exists():
        return 0
    with sqlite3.connect(journal) as conn:
        return conn.execute("SELECT COUNT(*) FROM shares WHERE state='live'").fetchone()[0]


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # kB
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def headless_env() -> dict[str, str]:
    # The burst is about the pipeline; no desktop, so no clipboard or notification costs.
    drop = ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS")
    return {k: v for k, v in os.environ.items() if k not in drop}


def drain(work: Path, n: int) -> tuple[float, float]:
    src = work / "burst-src"
    home = Home(work / "drain", headless_env())
    daemon = DaemonProcess(home, FADELINK_LIFETIME="1h")
    try:
        daemon.wait_ready()
        t0 = time.perf_counter()
        for photo in sorted(src.iterdir()):
            shutil.copy(photo, home.share_dir / photo.name)
        journal = home.state_dir / "journal.sqlite3"
        while live_count(journal) < n:
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"drain stuck at {live_count(journal)}/{n}")
            time.sleep(0.05)  # poll
        elapsed = time.perf_counter() - t0
        peak_mb = proc_status(daemon.proc.pid, "VmHWM") / 1024
    finally:
        daemon.stop()
    return elapsed, peak_mb


def baseline(work: Path) -> tuple[float, float]:
    out = work / "baseline-out"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", BASELINE, str(work / "burst-src"), str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    seconds, maxrss_kb = result.stdout.split()
    return float(seconds), int(maxrss_kb) / 1024


def idle(work: Path, files: int, seconds: float) -> float:
    home = Home(work / "idle", headless_env())
    home.share_dir.mkdir(parents=True)
    with Image.new("RGB", (8, 8)) as im:
        im.save(work / "tiny.png")
    tiny = (work / "tiny.png").read_bytes()
    for i in range(files):
        (home.share_dir / f"f{i:05d}.png").write_bytes(tiny)
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready(timeout=120)
        before = cpu_seconds(daemon.proc.pid)
        time.sleep(seconds)  # the measurement window itself
        return cpu_seconds(daemon.proc.pid) - before
    finally:
        daemon.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--idle-files", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fl-burst-") as tmp:
        work = Path(tmp)
        phone_photos(work / "burst-src", args.photos)
        base_s, base_mb = baseline(work)
        drain_s, drain_mb = drain(work, args.photos)
        idle_cpu = idle(work, args.idle_files, args.idle)
    n = args.photos
    print(f"{n} phone photos dropped at once")
    print(f"{'':<36}{'seconds':>10}{'photos/s':>10}{'peak RSS MB':>13}")
    print(f"{'baseline: sequential loop':<36}{base_s:>10.1f}{n / base_s:>10.1f}{base_mb:>13.0f}")
    print(
        f"{'fadelink daemon (watch+journal)':<36}{drain_s:>10.1f}{n / drain_s:>10.1f}"
        f"{drain_mb:>13.0f}"
    )
    print(
        f"idle: {idle_cpu:.2f} CPU s over {args.idle:.0f} s with {args.idle_files} files "
        f"in the folder"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
