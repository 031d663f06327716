"""A user's day with the embedded link server, under a real X server, D-Bus, dunst and xclip.

The daemon runs as a subprocess with its own HOME and XDG dirs; photos are saved into the share
folder as a user would; links are read from the real clipboard and fetched over HTTP.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import is_upright, make_jpeg
from tests.photos import shared_photo

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def fetch(url: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def shares(home: Home, *args: str) -> list[dict]:
    out = home.cli("list", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def image_url(page_url: str, page: bytes) -> str:
    src = re.search(rb'<img[^>]+src="([^"]+)"', page)
    assert src, page
    return urllib.parse.urljoin(page_url, src.group(1).decode())


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


@pytest.fixture
def browser_log(tmp_path: Path) -> tuple[str, Path]:
    """A BROWSER command that records the URLs it is asked to open."""
    log = tmp_path / "browser.log"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


def save(src: Path, dest: Path) -> Path:
    """Save as a photo app does: write under a temporary name, then rename into place."""
    tmp = dest.with_name(dest.name + ".part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return dest


def test_gps_photo_shared_end_to_end_and_vanishes(home, desktop, browser_log, tmp_path):
    browser, opened = browser_log
    photo = shared_photo("jpg_gps_DSCN0010.jpg")
    with Image.open(photo) as original:
        assert GPS_IFD in original.getexif(), "the test photo must carry GPS"
        upright_size = ImageOps.exif_transpose(original).size

    daemon = DaemonProcess(home, FADELINK_LIFETIME="3s", BROWSER=browser)
    try:
        ready = daemon.wait_ready()
        assert str(home.share_dir) in ready and f"127.0.0.1:{home.port}" in ready
        save(photo, home.share_dir / "beach.jpg")

        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        assert url.startswith(f"http://127.0.0.1:{home.port}/")
        token = url.rsplit("/", 1)[1]
        assert len(token) >= 22  # ≥ 128 bits of randomness

        status, page, headers = fetch(url)
        assert status == 200 and b"og:image" not in page
        assert b"beach" not in page  # the sender's file name stays with the sender
        assert headers["Cache-Control"] == "no-store"
        status, body, headers = fetch(image_url(url, page))
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert "beach" not in headers.get("Content-Disposition", "")
        with Image.open(io.BytesIO(body)) as served:
            assert GPS_IFD not in served.getexif()
            assert ORIENTATION not in served.getexif()
            assert served.size == upright_size

        # The notification is on screen; clicking it opens the link.
        desktop.wait_notifications(1, timeout=10)
        desktop.click_first()
        wait_for(lambda: opened.exists() and url in opened.read_text(), 10, "BROWSER called")
        (note,) = [n for n in desktop.history() if n["summary"] == "Link ready: beach.jpg"]
        assert "Disappears in" in note["body"] and "only on this computer" in note["body"]
        assert url not in note["body"]  # it is on the clipboard; the screen need not show it
        assert note["icon_path"], "the notification shows the photo"

        # After its 3-second lifetime the link is dead and the copy deleted.
        wait_for(lambda: fetch(url)[0] == 404, 15, "the link to die")
        wait_for(lambda: shares(home, "--all")[0]["state"] == "gone", 10, "state gone")
        assert list((home.state_dir / "served").iterdir()) == []
        assert shares(home) == []  # no longer a current share
        assert token not in daemon.output()  # the secret never reached the log
    finally:
        assert daemon.stop() == 0


def test_photo_turned_by_exif_is_served_upright(home, desktop):
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        # A synthetic photo stored sideways with orientation 6 and a GPS block.
        make_jpeg(home.share_dir / "sideways.jpg", (800, 600), gps=True, orientation=6)
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        status, body, _ = fetch(image_url(url, fetch(url)[1]))
        with Image.open(io.BytesIO(body)) as served:
            assert status == 200 and served.size == (800, 600) and is_upright(served)
            assert GPS_IFD not in served.getexif() and ORIENTATION not in served.getexif()

        # A real camera file in orientation 6 comes out like the same scene in orientation 1.
        save(shared_photo("jpg_orientation_landscape_6.jpg"), home.share_dir / "real.jpg")
        url2 = desktop.wait_clipboard(lambda t: t.startswith("http://") and t != url, timeout=15)
        status, body, _ = fetch(image_url(url2, fetch(url2)[1]))
        with (
            Image.open(io.BytesIO(body)) as served,
            Image.open(shared_photo("jpg_orientation_landscape_1.jpg")) as reference,
        ):
            assert served.size == reference.size
            # The two files differ in colour profile and encoding, so compare relatively: the
            # served photo is far closer to the upright scene than to any turned version of it.
            upright = mean_diff(served, reference)
            turned = min(
                mean_diff(served, reference.transpose(t))
                for t in (Image.Transpose.ROTATE_180, Image.Transpose.FLIP_LEFT_RIGHT)
            )
            assert upright < turned / 2, (upright, turned)
    finally:
        daemon.stop()


def test_link_overdue_while_stopped_dies_at_start(home, desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="3s")
    daemon.wait_ready()
    make_jpeg(home.share_dir / "p.jpg", (800, 600))
    url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
    assert fetch(url)[0] == 200
    assert daemon.stop() == 0  # stopped before the deadline

    listed = shares(home)
    assert [s["state"] for s in listed] == ["live"]
    expires = listed[0]["expires_at"]
    from datetime import UTC, datetime

    deadline = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    wait_for(lambda: datetime.now(UTC).timestamp() > deadline + 1, 10, "the deadline to pass")

    desktop.close_all()
    again = DaemonProcess(home)
    try:
        again.wait_ready()
        # Revoked before the server even answered: at "ready" it is already gone.
        assert [s["state"] for s in shares(home, "--all")] == ["gone"]
        assert fetch(url)[0] == 404
        desktop.wait_notifications(1, timeout=10)
        desktop.close_all()
        late = [n for n in desktop.history() if "late" in n["summary"]]
        assert late and "not running" in late[0]["body"]
    finally:
        again.stop()


def test_symlinks_and_non_images_are_left_alone(home, desktop, tmp_path):
    secret = tmp_path / "outside.jpg"
    make_jpeg(secret, (300, 200))
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        (home.share_dir / "link.jpg").symlink_to(secret)
        (home.share_dir / "notes.txt").write_text("not a photo")
        # Barrier: a photo saved afterwards is shared; by then the others were looked at.
        make_jpeg(home.share_dir / "sentinel.jpg", (300, 200))
        wait_for(lambda: any(s["state"] == "live" for s in shares(home)), 15, "sentinel")
        assert [Path(s["source"]).name for s in shares(home, "--all")] == ["sentinel.jpg"]
        daemon.wait_line("link.jpg: it is a symlink")
        daemon.wait_line("notes.txt is not a photo")
    finally:
        daemon.stop()


def test_first_run_leaves_existing_files_and_catches_up_later(home, desktop):
    home.share_dir.mkdir(parents=True)
    for i in range(3):
        make_jpeg(home.share_dir / f"old{i}.jpg", (200, 200))
    daemon = DaemonProcess(home)
    daemon.wait_ready()
    make_jpeg(home.share_dir / "sentinel.jpg", (200, 200))
    wait_for(lambda: shares(home), 15, "sentinel shared")
    assert [Path(s["source"]).name for s in shares(home, "--all")] == ["sentinel.jpg"]
    assert daemon.stop() == 0

    make_jpeg(home.share_dir / "while_stopped.jpg", (210, 200))  # new content
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        wait_for(lambda: len(shares(home)) == 2, 15, "catch-up share")
        names = sorted(Path(s["source"]).name for s in shares(home, "--all"))
        assert names == ["sentinel.jpg", "while_stopped.jpg"]
    finally:
        daemon.stop()


def test_cli_share_list_revoke(home, desktop, tmp_path):
    photo = make_jpeg(tmp_path / "cli.jpg", (640, 480))
    refused = home.cli("share", str(photo))
    assert refused.returncode == 3 and "fadelink run" in refused.stderr

    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        out = home.cli("share", "--lifetime", "10m", str(photo))
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip()
        assert fetch(url)[0] == 200
        assert desktop.wait_clipboard(lambda t: t == url, timeout=10) == url
        (listed,) = shares(home)
        assert listed["url"] == url and listed["state"] == "live" and isinstance(listed["id"], str)
        table = home.cli("list")
        assert listed["id"] in table.stdout and "cli.jpg" in table.stdout

        revoked = home.cli("revoke", listed["id"])
        assert revoked.returncode == 0, revoked.stderr
        assert fetch(url)[0] == 404  # takes effect on the very next request
        assert shares(home) == []
        assert shares(home, "--all")[0]["state"] == "gone"
    finally:
        daemon.stop()


def test_second_daemon_says_who_holds_the_lock(home, desktop):
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        second = home.cli("run", timeout=30)
        assert second.returncode != 0
        assert f"pid {daemon.proc.pid}" in second.stderr
    finally:
        daemon.stop()


def test_failed_revocation_is_reported_and_retried(home, desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="3s")
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "stuck.jpg", (400, 300))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        (served,) = list((home.state_dir / "served").iterdir())
        # Make the copy impossible to delete: a non-empty folder in its place.
        served.unlink()
        served.mkdir()
        (served / "x").write_text("x")
        desktop.close_all()

        def stuck() -> dict | None:
            listed = shares(home)
            return listed[0] if listed and listed[0]["reason"] else None

        row = wait_for(stuck, 15, "the failed revocation to be recorded")
        assert row["state"] == "revoking"
        assert "revocation failed, retrying" in home.cli("list").stdout
        assert fetch(url)[0] == 404  # the link is dead even though the copy is not deleted yet
        # Failures are told grouped, a moment later; the link's own notification may come first.
        wait_for(
            lambda: any("Could not revoke stuck.jpg" in n["summary"] for n in desktop.history()),
            10,
            "the failed revocation's notification",
        )

        (served / "x").unlink()
        served.rmdir()
        wait_for(lambda: shares(home, "--all")[0]["state"] == "gone", 30, "the retry to succeed")
    finally:
        daemon.stop()
