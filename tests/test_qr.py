"""QR codes of links: what the terminal shows and the notification's picture must scan back to
the very link (read by zbarimg, see tests/qrread.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from daemon import qr
from tests.daemon_proc import DaemonProcess, Home
from tests.images import make_jpeg
from tests.qrread import read_terminal, scan

LINK = "http://192.168.1.20:8787/9fJ2kQ-xv_3LrT0aZ8mNc4HbWqYe1sDu"


def test_the_notification_picture_scans_to_the_link(tmp_path: Path) -> None:
    picture = qr.png(LINK, tmp_path / "qr.png")
    assert picture.stat().st_mode & 0o777 == 0o600  # it carries the link: a secret
    with Image.open(picture) as img:
        assert 200 <= img.width <= 300  # big enough for a notification to show
    assert scan(picture) == LINK


def test_the_terminal_code_in_colour_scans_to_the_link() -> None:
    text = qr.terminal(LINK)
    lines = text.splitlines()
    assert len(lines) <= 30 and all(line.count("▀") <= 80 for line in lines)  # fits a terminal
    assert read_terminal(text) == LINK


def test_the_plain_terminal_code_scans_to_the_link() -> None:
    text = qr.terminal(LINK, colour=False)
    assert "\x1b" not in text
    assert read_terminal(text) == LINK


@pytest.mark.parametrize("link", [LINK, "https://photos.example.com/pics/" + "x" * 32])
def test_links_of_every_kind_fit(link: str, tmp_path: Path) -> None:
    assert scan(qr.png(link, tmp_path / "qr.png")) == link


def test_link_ready_notification_can_carry_a_qr_code(tmp_path, desktop) -> None:
    home = Home(tmp_path, desktop.env)
    daemon = DaemonProcess(home, FADELINK_NOTIFY_QR="true")
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "beach.jpg", (800, 600))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        desktop.wait_notifications(1, timeout=10)
        (note,) = [n for n in desktop.history() if n["summary"] == "Link ready: beach.jpg"]
        assert scan(Path(note["icon_path"])) == url  # a phone's camera opens the link
    finally:
        daemon.stop()


def test_cli_share_prints_a_qr_code(tmp_path, desktop) -> None:
    home = Home(tmp_path, desktop.env)
    photo = make_jpeg(tmp_path / "cli.jpg", (640, 480))
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        out = home.cli("share", "--qr", str(photo))
        assert out.returncode == 0, out.stderr
        url, code = out.stdout.split("\n", 1)
        assert url.startswith("http://") and read_terminal(code) == url
    finally:
        daemon.stop()
