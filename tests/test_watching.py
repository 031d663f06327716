"""However a photo lands in the share folder, it is shared exactly once, only when complete,
and nothing outside the folder leaves the machine. The daemon runs as a real subprocess with the
real observer on a real directory; "not shared" is always checked behind a barrier: a sentinel
photo saved afterwards must be shared first."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import make_jpeg
from tests.test_end_to_end import fetch, image_url


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


def shares(home: Home, *args: str) -> list[dict]:
    out = home.cli("list", "--json", "--all", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def names(home: Home) -> list[str]:
    return sorted(Path(s["source"]).name for s in shares(home))


def shared(home: Home, name: str, timeout: float = 20) -> dict:
    def find():
        return next(
            (s for s in shares(home) if Path(s["source"]).name == name and s["state"] == "live"),
            None,
        )

    return wait_for(find, timeout, f"{name} to be shared")


def started(home: Home, **env: str) -> DaemonProcess:
    d = DaemonProcess(home, **env)
    d.wait_ready()
    return d


SLOW_WRITER = """
import sys, time
src, dest, chunk, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(src, "rb").read()
with open(dest, "wb") as f:
    for i in range(0, len(data), chunk):
        f.write(data[i:i + chunk])
        f.flush()
        time.sleep(pause)  # a slow camera import: the writer's pace, not a test wait
"""


def noise_png(path: Path, side: int) -> Path:
    bands = [Image.effect_noise((side, side), 80 + 20 * i) for i in range(3)]
    Image.merge("RGB", bands).save(path, compress_level=0)
    return path


def test_slow_40mb_write_is_shared_once_after_completion(home, tmp_path):
    big = noise_png(tmp_path / "big.png", 3700)  # ~41 MB, barely compressible
    assert big.stat().st_size > 40_000_000
    daemon = started(home, FADELINK_MAX_DIMENSION="0")
    try:
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SLOW_WRITER,
                str(big),
                str(home.share_dir / "big.png"),
                str(1 << 20),
                "0.08",
            ]
        )
        assert writer.wait(timeout=60) == 0
        row = shared(home, "big.png", timeout=60)
        assert len(shares(home)) == 1  # never a half-written copy first
        status, body, _ = fetch(image_url(row["url"], fetch(row["url"])[1]))
        assert status == 200
        served = Image.open(io.BytesIO(body))
        with Image.open(big) as original:
            assert served.size == original.size
            assert served.convert("RGB").tobytes() == original.convert("RGB").tobytes()
    finally:
        daemon.stop()


def test_downloads_renames_and_atomic_saves(home, tmp_path):
    daemon = started(home)
    try:
        # A browser: an empty placeholder, the data under .crdownload, then a rename over it.
        (home.share_dir / "dl.jpg").touch()
        part = home.share_dir / "dl.jpg.crdownload"
        make_jpeg(part, (640, 480))
        os.replace(part, home.share_dir / "dl.jpg")
        shared(home, "dl.jpg")

        # An editor: the new version written to a hidden temp file, renamed over the original.
        tmp = home.share_dir / ".edit.jpg.tmp"
        make_jpeg(tmp, (300, 300))
        os.replace(tmp, home.share_dir / "edit.jpg")
        first = shared(home, "edit.jpg")
        make_jpeg(tmp, (320, 320))
        os.replace(tmp, home.share_dir / "edit.jpg")
        wait_for(lambda: names(home).count("edit.jpg") == 2, 20, "the edited version")

        make_jpeg(home.share_dir / "sentinel.jpg", (200, 200))
        shared(home, "sentinel.jpg")
        listed = shares(home)
        assert sorted(Path(s["source"]).name for s in listed) == [
            "dl.jpg",
            "edit.jpg",
            "edit.jpg",
            "sentinel.jpg",
        ]
        assert first["url"] != [s for s in listed if s["source"].endswith("edit.jpg")][1]["url"]
    finally:
        daemon.stop()


def test_burst_of_500_is_shared_once_each_and_grouped(home, tmp_path, desktop):
    staging = tmp_path / "staging"
    staging.mkdir()
    for i in range(500):  # distinct content: identical photos would rightly share one link
        Image.new("RGB", (48, 32), (i % 256, i // 256 * 60, 7)).save(staging / f"p{i:03d}.png")
    daemon = started(home)
    try:
        for f in sorted(staging.iterdir()):
            shutil.copy(f, home.share_dir / f.name)
        wait_for(lambda: sum(s["state"] == "live" for s in shares(home)) == 500, 180, "500 shares")
        listed = shares(home)
        assert len(listed) == 500
        assert len({s["source"] for s in listed}) == 500
        assert len({s["url"] for s in listed}) == 500
        # Not 500 notifications: the burst was announced in groups.
        desktop.close_all()
        history = desktop.history()
        assert any("photos shared" in n["summary"] for n in history)
        assert len(history) < 50, len(history)
        assert desktop.clipboard() in {s["url"] for s in listed}
    finally:
        daemon.stop()


def test_first_run_leaves_50_existing_files_alone(home):
    home.share_dir.mkdir(parents=True)
    for i in range(50):
        make_jpeg(home.share_dir / f"old{i:02d}.jpg", (64, 64))
    daemon = started(home)
    try:
        make_jpeg(home.share_dir / "sentinel.jpg", (64, 64))
        shared(home, "sentinel.jpg")
        assert names(home) == ["sentinel.jpg"]
        # The duration folders exist, so users discover them.
        assert all((home.share_dir / d).is_dir() for d in ("10m", "1h", "1d"))
    finally:
        daemon.stop()


def test_catch_up_after_a_stop(home):
    daemon = started(home)
    make_jpeg(home.share_dir / "kept.jpg", (64, 64))
    make_jpeg(home.share_dir / "removed.jpg", (64, 64), gps=False)
    shared(home, "kept.jpg")
    shared(home, "removed.jpg")
    assert daemon.stop() == 0

    # While stopped: one new file, one changed file, one removed then saved again unchanged
    # later... and one file removed for good.
    make_jpeg(home.share_dir / "new.jpg", (64, 64), gps=False, quality=80)
    make_jpeg(home.share_dir / "kept.jpg", (96, 96))  # new content at the same path
    (home.share_dir / "removed.jpg").unlink()
    daemon = started(home)
    try:
        wait_for(lambda: len(shares(home)) == 4, 20, "catch-up shares")
        assert names(home) == ["kept.jpg", "kept.jpg", "new.jpg", "removed.jpg"]
    finally:
        daemon.stop()


def test_symlinks_fifos_and_folders_outside_are_never_read(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    make_jpeg(outside / "secret.jpg", (64, 64))
    daemon = started(home)
    try:
        (home.share_dir / "link.jpg").symlink_to(outside / "secret.jpg")
        (home.share_dir / "linked-folder").symlink_to(outside, target_is_directory=True)
        os.mkfifo(home.share_dir / "pipe.jpg")
        make_jpeg(home.share_dir / "sentinel.jpg", (64, 64))
        shared(home, "sentinel.jpg")
        assert names(home) == ["sentinel.jpg"]
        daemon.wait_line("link.jpg: it is a symlink")
        # Responsive after the FIFO: another photo is shared too.
        make_jpeg(home.share_dir / "after.jpg", (64, 64), gps=False)
        shared(home, "after.jpg")
    finally:
        daemon.stop()


def test_same_photo_again_reuses_the_live_link(home, desktop, tmp_path):
    photo = make_jpeg(tmp_path / "p.jpg", (320, 240))
    daemon = started(home)
    try:
        shutil.copy(photo, home.share_dir / "a.jpg")
        first = shared(home, "a.jpg")
        desktop.wait_clipboard(lambda t: t == first["url"], timeout=10)
        # Something else takes the clipboard (xclip's server child must not hold our pipes).
        subprocess.run(
            ["xclip", "-selection", "clipboard"],
            input=b"other",
            env=desktop.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=True,
        )
        desktop.wait_clipboard(lambda t: t == "other", timeout=5)

        shutil.copy(photo, home.share_dir / "again.jpg")  # same content, same folder
        desktop.wait_clipboard(lambda t: t == first["url"], timeout=15)
        shutil.copy(photo, home.share_dir / "10m" / "a.jpg")  # another lifetime folder
        other = wait_for(
            lambda: next(
                (s for s in shares(home) if "/10m/" in s["source"] and s["state"] == "live"), None
            ),
            20,
            "the 10m share",
        )
        assert other["url"] != first["url"] and other["lifetime_s"] == 600
        assert len(shares(home)) == 2  # again.jpg made no share of its own
        desktop.close_all()
        assert any(n["summary"] == "Already shared: a.jpg" for n in desktop.history())
    finally:
        daemon.stop()


@pytest.mark.parametrize("policy", ["move", "delete"])
def test_after_share_moves_or_deletes_the_original(home, policy):
    daemon = started(home, FADELINK_AFTER_SHARE=policy)
    try:
        make_jpeg(home.share_dir / "1h" / "x.jpg", (64, 64))
        row = shared(home, "x.jpg")
        assert row["lifetime_s"] == 3600
        wait_for(lambda: not (home.share_dir / "1h" / "x.jpg").exists(), 10, "the original to go")
        moved = home.share_dir / ".shared" / "1h" / "x.jpg"
        assert moved.exists() == (policy == "move")
        make_jpeg(home.share_dir / "sentinel.jpg", (64, 64), gps=False)
        shared(home, "sentinel.jpg")
        assert names(home) == ["sentinel.jpg", "x.jpg"]  # the moved copy is not shared again
    finally:
        daemon.stop()


def test_not_recursive_ignores_subfolders(home):
    daemon = started(home, FADELINK_RECURSIVE="false")
    try:
        (home.share_dir / "trip").mkdir()
        make_jpeg(home.share_dir / "trip" / "deep.jpg", (64, 64))
        make_jpeg(home.share_dir / "sentinel.jpg", (64, 64))
        shared(home, "sentinel.jpg")
        assert names(home) == ["sentinel.jpg"]
    finally:
        daemon.stop()


def test_polling_mode_still_shares(home):
    daemon = started(home, FADELINK_POLLING="true")
    try:
        make_jpeg(home.share_dir / "polled.jpg", (64, 64))
        shared(home, "polled.jpg")
    finally:
        daemon.stop()
