"""The buttons on a "link ready" notification, pressed on a notification server of our own
(dunst cannot press buttons from the command line) while the daemon runs as a subprocess on a
private Xvfb and D-Bus: each button acts on the share it was shown for, and only on that one."""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.handout import ErrorGroups
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.desktop import Desktop, start_desktop
from tests.images import make_jpeg
from tests.notification_server import WITHOUT_ACTIONS, NotificationServer, Shown
from tests.test_dropbox_e2e import dropbox_env

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="D-Bus notifications")

BUTTONS = ["Copy link", "Revoke now", "+1 hour"]


@pytest.fixture
def bare_desktop() -> Iterator[Desktop]:
    """Xvfb and a session bus, without dunst: the test's own server answers instead."""
    with start_desktop(dunst=False) as running:
        yield running


@pytest.fixture
def server(bare_desktop: Desktop) -> Iterator[NotificationServer]:
    with NotificationServer(bare_desktop.bus_address) as running:
        yield running


@pytest.fixture
def home(tmp_path: Path, bare_desktop: Desktop) -> Home:
    return Home(tmp_path, bare_desktop.env)


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def listed(home: Home, *args: str) -> dict[str, dict]:
    """Shares by file name."""
    out = home.cli("list", "--json", *args)
    assert out.returncode == 0, out.stderr
    return {Path(s["source"]).name: s for s in json.loads(out.stdout)}


def epoch(iso: str) -> float:
    return datetime.strptime(iso + "+0000", "%Y-%m-%dT%H:%M:%SZ%z").timestamp()


def save(home: Home, name: str) -> Path:
    """Write a photo beside the folder and rename it in, as a photo app does. Each name gets
    its own size, so two photos are never the same content (which would be shared once)."""
    width = 600 + sum(map(ord, name)) % 200
    tmp = make_jpeg(home.root / f"{name}.tmp", (width, 480))
    dest = home.share_dir / name
    os.replace(tmp, dest)
    return dest


def share_two(home: Home, server: NotificationServer) -> tuple[Shown, Shown, dict[str, dict]]:
    """Two live links, a.jpg then b.jpg, each with its notification on screen."""
    save(home, "a.jpg")
    a = server.wait_summary("Link ready: a.jpg")
    save(home, "b.jpg")
    b = server.wait_summary("Link ready: b.jpg")
    shares = listed(home)
    assert {name: s["state"] for name, s in shares.items()} == {"a.jpg": "live", "b.jpg": "live"}
    return a, b, shares


def test_ready_notification_has_the_buttons_and_the_time_left(home, server, bare_desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="2h")
    try:
        daemon.wait_ready()
        save(home, "a.jpg")
        shown = server.wait_summary("Link ready: a.jpg")
        assert list(shown.buttons) == BUTTONS
        assert "default" in shown.actions  # a click on the body opens the link
        assert "Disappears in 2 h" in shown.body
        assert Path(shown.hints["image-path"].removeprefix("file://")).is_file()  # thumbnail
    finally:
        assert daemon.stop() == 0


def test_revoke_now_revokes_that_share_and_no_other(home, server, bare_desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="1h")
    try:
        daemon.wait_ready()
        a, b, shares = share_two(home, server)
        # The first notification's button, pressed after the second was shown.
        server.press(a, "Revoke now")
        wait_for(lambda: listed(home, "--all")["a.jpg"]["state"] == "gone", 15, "a.jpg gone")
        assert status(shares["a.jpg"]["url"]) == 404
        assert listed(home)["b.jpg"]["state"] == "live"
        assert status(shares["b.jpg"]["url"]) == 200
        server.wait_summary("Vanished: a.jpg")
        assert not [s for s in server.all() if s.summary == "Vanished: b.jpg"]
    finally:
        assert daemon.stop() == 0


def test_copy_link_puts_that_link_on_the_clipboard(home, server, bare_desktop):
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        a, b, shares = share_two(home, server)
        bare_desktop.wait_clipboard(lambda text: text == shares["b.jpg"]["url"])
        bare_desktop.set_clipboard("something else entirely")
        assert bare_desktop.clipboard() == "something else entirely"

        server.press(a, "Copy link")
        bare_desktop.wait_clipboard(lambda text: text == shares["a.jpg"]["url"], timeout=10)
        assert {name: s["state"] for name, s in listed(home).items()} == {
            "a.jpg": "live",
            "b.jpg": "live",
        }
    finally:
        assert daemon.stop() == 0


def test_plus_one_hour_moves_that_deadline(home, server, bare_desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="10m")
    try:
        daemon.wait_ready()
        a, b, shares = share_two(home, server)
        server.press(a, "+1 hour")
        extended = server.wait_summary("Link extended: a.jpg")
        assert "Disappears in 1 h 10 min" in extended.body or "1 h 9 min" in extended.body
        assert list(extended.buttons) == BUTTONS  # the fresh notification can be pressed again

        after = listed(home)
        moved = epoch(after["a.jpg"]["expires_at"]) - epoch(shares["a.jpg"]["expires_at"])
        assert moved == 3600
        assert after["b.jpg"]["expires_at"] == shares["b.jpg"]["expires_at"]
        assert status(shares["a.jpg"]["url"]) == 200
    finally:
        assert daemon.stop() == 0


def test_plus_one_hour_on_a_vanished_link_says_so(home, server, bare_desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="2s")
    try:
        daemon.wait_ready()
        save(home, "a.jpg")
        a = server.wait_summary("Link ready: a.jpg")
        server.wait_summary("Vanished: a.jpg")
        server.press(a, "+1 hour")
        server.wait_summary("Already vanished: a.jpg")
        assert listed(home, "--all")["a.jpg"]["state"] == "gone"
    finally:
        assert daemon.stop() == 0


def test_without_actions_the_notification_is_plain(bare_desktop, tmp_path):
    with NotificationServer(bare_desktop.bus_address, WITHOUT_ACTIONS) as server:
        home = Home(tmp_path, bare_desktop.env)
        daemon = DaemonProcess(home)
        try:
            daemon.wait_ready()
            save(home, "a.jpg")
            shown = server.wait_summary("Link ready: a.jpg")
            assert shown.buttons == {}
            assert "Link copied to the clipboard" in shown.body
        finally:
            assert daemon.stop() == 0


def test_fadelink_notify_selects_the_kinds_shown(home, server, bare_desktop):
    daemon = DaemonProcess(home, FADELINK_LIFETIME="2s", FADELINK_NOTIFY="vanished")
    try:
        daemon.wait_ready()
        save(home, "a.jpg")
        url = bare_desktop.wait_clipboard(lambda text: text.startswith("http://"), timeout=15)
        server.wait_summary("Vanished: a.jpg")
        # The link still reached the clipboard; no "ready" notification was shown.
        assert url == listed(home, "--all")["a.jpg"]["url"]
        assert [s.summary for s in server.all()] == ["Vanished: a.jpg"]
    finally:
        assert daemon.stop() == 0


def png_bomb(path: Path, width: int) -> Path:
    """A tiny PNG claiming width x 30000 pixels: refused at once as a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, 30000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_a_hundred_failures_make_one_notification_with_a_count(home, server, bare_desktop):
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        staging = home.root / "staging"
        staging.mkdir()
        for i in range(100):
            bomb = png_bomb(staging / f"bomb{i:03}.png", 30000 + i)  # each one different
            os.replace(bomb, home.share_dir / bomb.name)
        wait_for(
            lambda: sum(s["state"] == "failed" for s in listed(home, "--all").values()) == 100,
            60,
            "a hundred failures",
        )
        grouped = server.wait_for(lambda s: "100" in s.summary, 15, "the grouped failure")
        assert grouped.summary == "Could not share a photo (100 times)"
        assert "and 97 more" in grouped.body
        # Barrier: a photo shared after the burst; by then no other failure notification came.
        save(home, "after.jpg")
        server.wait_summary("Link ready: after.jpg")
        failures = [s for s in server.all() if "Could not share" in s.summary]
        assert failures == [grouped]
    finally:
        assert daemon.stop() == 0
        shutil.rmtree(home.share_dir, ignore_errors=True)


def test_error_groups_release_after_a_quiet_spell_or_at_the_longest():
    groups = ErrorGroups(quiet=1.0, longest=10.0)
    groups.add("share", "Could not share a photo", "a.png: too big", now=100.0)
    assert groups.next_due(100.0) == 1.0 and groups.due(100.5) == []
    groups.add("share", "Could not share a photo", "b.png: too big", now=100.5)
    groups.add("revoke", "Could not revoke c.jpg yet", "disk full", now=100.6)
    assert groups.due(101.4) == []  # both groups still within their quiet second
    assert groups.due(101.5) == [
        (
            "share",
            [
                ("Could not share a photo", "a.png: too big"),
                ("Could not share a photo", "b.png: too big"),
            ],
        )
    ]
    assert groups.due(101.6) == [("revoke", [("Could not revoke c.jpg yet", "disk full")])]
    assert groups.next_due(101.6) is None
    # A steady trickle is released at the longest wait, not held forever.
    released = []
    for i in range(20):
        now = 200.0 + i * 0.9
        released += groups.due(now)
        groups.add("share", "Could not share a photo", f"{i}.png", now=now)
    assert [len(items) for _, items in released] == [12]  # 200.0 … 209.9


def test_clicking_a_notification_opens_its_own_link(home, server, bare_desktop, tmp_path):
    opened = tmp_path / "opened"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    daemon = DaemonProcess(home, BROWSER=str(browser))
    try:
        daemon.wait_ready()
        a, b, shares = share_two(home, server)
        server.click(a)  # the older one, clicked after the newer one was shown
        wait_for(lambda: opened.exists() and opened.read_text().strip(), 10, "the browser")
        # The sender's own link to that photo (it may carry a key: the sender's views
        # never count as the recipient's).
        (url,) = opened.read_text().split()
        assert url.split("?")[0] == shares["a.jpg"]["url"]
    finally:
        assert daemon.stop() == 0


def test_plus_one_hour_moves_dropbox_server_side_expiry_too(
    home, server, bare_desktop, fake_dropbox
):
    daemon = DaemonProcess(home, **dropbox_env(fake_dropbox, FADELINK_LIFETIME="10m"))
    try:
        daemon.wait_ready()
        save(home, "a.jpg")
        shown = server.wait_summary("Link ready: a.jpg", timeout=30)
        (link,) = fake_dropbox.live_links()
        before, deadline = link.expires, listed(home)["a.jpg"]["expires_at"]
        assert before is not None  # Dropbox holds the deadline as the link's expiry

        server.press(shown, "+1 hour")
        server.wait_summary("Link extended: a.jpg")
        assert epoch(listed(home)["a.jpg"]["expires_at"]) - epoch(deadline) == 3600
        (link,) = fake_dropbox.live_links()
        assert (link.expires - before).total_seconds() == 3600
    finally:
        assert daemon.stop() == 0
