"""View-once links in a real browser (headless Chromium driven by selenium), served by the daemon
running as a subprocess under the test desktop (dunst shows the view receipts)."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

from tests.browser import binaries, chromium, photo_width, screenshot
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import make_jpeg

WINDOW = 15  # seconds a revealed photo stays viewable: room for a loaded CI machine
JPEG_MAGIC = b"\xff\xd8\xff"
PREVIEW_UAS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "WhatsApp/2",
    "facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "TelegramBot (like TwitterBot)",
]


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    binaries()  # skip (or fail) before starting anything
    return Home(tmp_path, desktop.env)


def fetch(url: str, method: str = "GET", ua: str = "") -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, method=method, headers={"User-Agent": ua})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def listed(home: Home) -> list[dict]:
    out = home.cli("list", "--all", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def receipts(desktop) -> list[str]:
    return [n["summary"] for n in desktop.history() if "was opened" in n["summary"]]


def imgs(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.TAG_NAME, "img")


def test_view_once_link_in_a_real_browser(home, desktop) -> None:
    from selenium.webdriver.common.by import By

    daemon = DaemonProcess(home, FADELINK_ONCE_WINDOW=f"{WINDOW}s")
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "once" / "secret.jpg", (800, 600))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)

        # Chat previews and plain requests before the view: no photo bytes, nothing spent.
        for ua in [*PREVIEW_UAS, ""]:
            for method in ("GET", "HEAD"):
                status, body, _ = fetch(url, method, ua)
                assert status == 200 and b"<img" not in body
                status, body, _ = fetch(url + "/photo.jpg", method, ua)
                assert status == 404 and JPEG_MAGIC not in body
        assert listed(home)[0]["views"] == 0

        with chromium() as viewer, chromium() as other:
            viewer.get(url)
            assert imgs(viewer) == []  # the page never carries the photo
            (button,) = viewer.find_elements(By.CSS_SELECTOR, "form[method=post] button")
            assert "disappears after you view it" in viewer.page_source
            screenshot(viewer, "view-once-before")
            assert receipts(desktop) == []

            pressed = time.monotonic()
            button.click()  # the view
            wait_for(lambda: photo_width(viewer) > 0, 10, "the revealed photo to load")
            screenshot(viewer, "view-once-revealed")
            reload_at = time.monotonic() - pressed
            # A machine this slow cannot tell "within the window" from "after it": say so.
            assert reload_at < WINDOW - 2, f"reloading {reload_at:.1f} s after the view"
            viewer.refresh()  # within the window: still there
            wait_for(lambda: photo_width(viewer) > 0, 10, "the photo after a reload")
            assert "Disappears in" in viewer.find_element(By.ID, "left").text

            other.get(url)  # a second browser, a fresh profile: gone for it
            assert other.title == "Nothing here" and imgs(other) == []

            wait_for(lambda: receipts(desktop), 10, "the view receipt")
            wait_for(lambda: listed(home)[0]["state"] == "gone", WINDOW + 20, "the revocation")
            viewer.refresh()  # after the window: gone for the viewer too
            assert viewer.title == "Nothing here" and imgs(viewer) == []
            screenshot(viewer, "view-once-after")

        (share,) = listed(home)
        assert share["views"] == 1 and share["first_view_at"]
        assert list((home.state_dir / "served").iterdir()) == []
        (receipt,) = receipts(desktop)  # on the first view, and only then
        after = re.fullmatch(r"Your photo secret\.jpg was opened, (\d+) s after sharing", receipt)
        assert after, receipt
        # The list's times are whole seconds: the receipt's count may differ by one.
        assert abs(int(after.group(1)) - seconds_between(share)) <= 1
    finally:
        assert daemon.stop() == 0


def seconds_between(share: dict) -> float:
    """From the link's creation to its first view, by the journal's (whole-second) times."""

    def ts(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return ts(share["first_view_at"]) - ts(share["shared_at"])


def test_guessing_slows_down_the_guesser_but_not_a_valid_link(home, desktop) -> None:
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "beach.jpg", (800, 600))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        base = url.rsplit("/", 1)[0]

        # This address asks for made-up links until it is told to slow down.
        for _ in range(100):
            status, _, headers = fetch(f"{base}/{secrets.token_urlsafe(24)}")
            if status == 429:
                break
            assert status == 404
        assert status == 429 and int(headers["Retry-After"]) > 0

        with chromium() as browser:
            browser.get(url)  # the valid link from the same, throttled address
            wait_for(lambda: photo_width(browser) > 0, 10, "the photo")
            assert browser.title == "Photo" and "beach" not in browser.page_source
        assert fetch(url)[0] == 200 and fetch(url + "/photo.jpg")[0] == 200
        assert fetch(f"{base}/{secrets.token_urlsafe(24)}")[0] == 429  # the guesser still is
    finally:
        assert daemon.stop() == 0
