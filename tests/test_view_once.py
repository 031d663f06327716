"""View-once links and view receipts: the journal's part, then the daemon's, over plain HTTP.

The real-browser walk through a view-once link is in test_browser.py; here the HTTP clients are
urllib's, which lets a test send exactly the requests a chat app's preview fetcher sends.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from daemon.journal import Journal, Share, iso
from tests.daemon_proc import DaemonProcess, Home, wait_for
from tests.images import make_jpeg

NOW = 1_800_000_000.0
JPEG_MAGIC = b"\xff\xd8\xff"

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
PREVIEW_UAS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "TelegramBot (like TwitterBot)",
    "WhatsApp/2.23.20.0 A",
    "facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
]


# --- the journal ---------------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "j.sqlite3")


def live(journal: Journal, *, once: bool, lifetime: int = 3600) -> Share:
    taken = journal.add_pending(
        f"/share/{os.urandom(3).hex()}.jpg",
        10,
        1,
        backend="local",
        lifetime_s=lifetime,
        now=NOW,
        remember=False,
        once=once,
    )
    assert taken is not None
    share = taken[0]
    assert journal.set_prepared(share.id, "/prepared/x.jpg", "hash", NOW)
    assert journal.to_uploading(share.id, "served.jpg", NOW)
    assert journal.to_live(share.id, "http://h/t", f"key-{share.id}", NOW, NOW + lifetime)
    fresh = journal.get(share.id)
    assert fresh is not None
    return fresh


def test_a_view_once_link_is_revealed_exactly_once_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    share = live(Journal(path), once=True)
    results: list[bool] = []
    start = threading.Barrier(8)

    def viewer(i: int) -> None:
        journal = Journal(path)  # a connection of its own, like the daemon's threads and CLI
        start.wait()
        results.append(journal.reveal(share.id, NOW + 5 + i, NOW + 35 + i, "internet"))
        journal.close()

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    spent = Journal(path).get(share.id)
    assert spent is not None and spent.revealed_at is not None
    assert spent.expires_at == spent.revealed_at + 30  # the window is the new deadline
    assert (spent.views, spent.viewer_net) == (1, "internet")
    assert spent.first_view_at == spent.revealed_at


def test_the_lifetime_stays_an_upper_bound(journal: Journal) -> None:
    share = live(journal, once=True, lifetime=10)
    assert journal.reveal(share.id, NOW + 5, NOW + 35, "same network")
    spent = journal.get(share.id)
    assert spent is not None and spent.expires_at == NOW + 10


def test_a_viewed_view_once_link_cannot_be_extended(journal: Journal) -> None:
    share = live(journal, once=True)
    assert journal.extend(share.id, 3600, NOW + 1) == NOW + 7200  # unviewed: like any link
    assert journal.reveal(share.id, NOW + 2, NOW + 32, None)
    assert journal.extend(share.id, 3600, NOW + 3) is None  # "+1 hour" after the view: no
    spent = journal.get(share.id)
    assert spent is not None and spent.expires_at == NOW + 32


def test_only_live_view_once_links_can_be_revealed(journal: Journal) -> None:
    normal = live(journal, once=False)
    assert not journal.reveal(normal.id, NOW + 1, NOW + 31, None)
    expired = live(journal, once=True, lifetime=10)
    assert not journal.reveal(expired.id, NOW + 10, NOW + 40, None)
    revoked = live(journal, once=True)
    assert journal.to_revoking(revoked.id, "revoked by you", NOW + 1)
    assert not journal.reveal(revoked.id, NOW + 2, NOW + 32, None)
    for share in (normal, expired, revoked):
        fresh = journal.get(share.id)
        assert fresh is not None and fresh.views == 0 and fresh.revealed_at is None


def test_the_first_view_is_told_apart_and_listed(journal: Journal) -> None:
    share = live(journal, once=False)
    assert journal.record_view(share.id, NOW + 120, "same network")
    assert not journal.record_view(share.id, NOW + 130, "internet")
    listed = journal.get(share.id)
    assert listed is not None
    shown = listed.to_json()
    assert shown["views"] == 2
    assert shown["first_view_at"] == iso(NOW + 120)
    assert shown["viewer_net"] == "same network"  # the first viewer's, and nothing more
    assert journal.to_revoking(share.id, "expired", NOW + 200)
    assert not journal.record_view(share.id, NOW + 201, None)  # a dead link counts nothing


# --- the daemon, over HTTP --------------------------------------------------------------------


class Client:
    """An HTTP client with a cookie jar and a user agent, following redirects like a browser."""

    def __init__(self, user_agent: str = BROWSER_UA) -> None:
        self.user_agent = user_agent
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def fetch(self, url: str, method: str = "GET") -> tuple[int, bytes, str]:
        """(status, body, final URL)."""
        data = b"" if method == "POST" else None
        req = urllib.request.Request(
            url, data=data, method=method, headers={"User-Agent": self.user_agent}
        )
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, r.read(), r.geturl()
        except urllib.error.HTTPError as e:
            return e.code, e.read(), url


def image_of(page_url: str, page: bytes) -> str:
    src = re.search(rb'<img[^>]+src="([^"]+)"', page)
    assert src, page
    return urllib.parse.urljoin(page_url, src.group(1).decode().replace("&amp;", "&"))


def listed(home: Home, *args: str) -> list[dict]:
    out = home.cli("list", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def receipts(desktop, name: str) -> list[dict]:
    return [n for n in desktop.history() if n["summary"].startswith(f"Your photo {name} was")]


@pytest.fixture
def home(tmp_path, desktop) -> Home:
    return Home(tmp_path, desktop.env)


@pytest.fixture
def browser_log(tmp_path: Path) -> tuple[str, Path]:
    """A BROWSER command that records the URLs it is asked to open."""
    log = tmp_path / "browser.log"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {log}\n')
    script.chmod(0o755)
    return str(script), log


def click_link_ready(desktop, opened: Path, name: str) -> str:
    """Click the "Link ready" notification; the URL it opened (the sender's own link)."""
    desktop.wait_notifications(1, timeout=10)
    desktop.click_first()
    wait_for(lambda: opened.exists() and opened.read_text().strip(), 10, "BROWSER called")
    assert [n for n in desktop.history() if n["summary"] == f"Link ready: {name}"]
    return opened.read_text().strip()


def test_view_once_folder_end_to_end(home, desktop, browser_log) -> None:
    browser, opened = browser_log
    daemon = DaemonProcess(home, FADELINK_ONCE_WINDOW="4s", BROWSER=browser)
    try:
        daemon.wait_ready()
        assert (home.share_dir / "once").is_dir()  # created on the first run
        make_jpeg(home.share_dir / "once" / "secret.jpg", (800, 600))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        (share,) = listed(home)
        assert share["once"] is True and share["views"] == 0

        # The sender's own link shows the photo without spending the view.
        mine = click_link_ready(desktop, opened, "secret.jpg")
        assert mine.startswith(url + "?k=")
        sender = Client()
        status, page, _ = sender.fetch(mine)
        assert status == 200 and b"never counts as a view" in page
        status, body, _ = sender.fetch(image_of(mine, page))
        assert status == 200 and body.startswith(JPEG_MAGIC)

        # Previews and plain GET/HEAD: the page with its button, never the photo.
        for ua in [*PREVIEW_UAS, BROWSER_UA, "curl/8.0"]:
            for method in ("GET", "HEAD"):
                status, body, _ = Client(ua).fetch(url, method)
                assert status == 200 and b"<img" not in body, (ua, method)
                status, body, _ = Client(ua).fetch(url + "/photo.jpg", method)
                assert status == 404 and JPEG_MAGIC not in body, (ua, method)
        for ua in PREVIEW_UAS:  # a preview fetcher that did POST would spend nothing either
            assert Client(ua).fetch(url, "POST")[0] == 404, ua
        assert listed(home)[0]["views"] == 0
        assert receipts(desktop, "secret.jpg") == []

        # The view: POST, 303 back to the link, and this client (its cookie) sees the photo.
        viewer = Client()
        status, page, final = viewer.fetch(url, "POST")
        assert status == 200 and final == url
        status, body, _ = viewer.fetch(image_of(url, page))
        assert status == 200 and body.startswith(JPEG_MAGIC)
        # Anyone else, and a second press, get the 404 of a link that never existed.
        stranger = Client()
        unknown = stranger.fetch(url.rsplit("/", 1)[0] + "/" + "x" * 32)
        assert stranger.fetch(url)[:2] == unknown[:2]
        assert stranger.fetch(url, "POST")[:2] == unknown[:2]

        wait_for(lambda: receipts(desktop, "secret.jpg"), 10, "the view receipt")

        # After the window: dead for the viewer too, the copy deleted.
        wait_for(lambda: listed(home, "--all")[0]["state"] == "gone", 20, "revocation")
        assert viewer.fetch(url)[0] == 404
        assert list((home.state_dir / "served").iterdir()) == []
        (done,) = listed(home, "--all")
        assert done["views"] == 1 and done["first_view_at"] and done["viewer_net"] == "same network"
        (receipt,) = receipts(desktop, "secret.jpg")  # one receipt: the view, only the view
        assert re.fullmatch(
            r"Your photo secret\.jpg was opened, \d+ s after sharing", receipt["summary"]
        )
        output = daemon.output()
        token = url.rsplit("/", 1)[1]
        assert token not in output and mine.split("?k=")[1] not in output
    finally:
        assert daemon.stop() == 0


def test_normal_link_receipt_comes_from_the_first_real_view(home, desktop, browser_log) -> None:
    browser, opened = browser_log
    daemon = DaemonProcess(home, BROWSER=browser)
    try:
        daemon.wait_ready()
        make_jpeg(home.share_dir / "beach.jpg", (800, 600))
        url = desktop.wait_clipboard(lambda t: t.startswith("http://"), timeout=15)
        for ua in PREVIEW_UAS:
            status, page, _ = Client(ua).fetch(url)
            assert status == 200 and b"og:image" not in page
            status, body, _ = Client(ua).fetch(image_of(url, page))
            assert status == 404 and JPEG_MAGIC not in body, ua
        mine = click_link_ready(desktop, opened, "beach.jpg")
        status, page, _ = Client().fetch(mine)
        assert Client().fetch(image_of(mine, page))[0] == 200
        Client().fetch(url + "/photo.jpg", "HEAD")
        assert listed(home)[0]["views"] == 0
        assert receipts(desktop, "beach.jpg") == []

        status, body, _ = Client().fetch(url + "/photo.jpg")
        assert status == 200 and body.startswith(JPEG_MAGIC)
        wait_for(lambda: receipts(desktop, "beach.jpg"), 10, "the view receipt")
        assert Client().fetch(url + "/photo.jpg")[0] == 200
        wait_for(lambda: listed(home)[0]["views"] == 2, 10, "the second view counted")
        assert listed(home)[0]["first_view_at"]
        assert "(opened 2×)" in home.cli("list").stdout
        assert len(receipts(desktop, "beach.jpg")) == 1  # the first view only
    finally:
        assert daemon.stop() == 0


def test_cli_shares_view_once(home, desktop, tmp_path) -> None:
    photo = make_jpeg(tmp_path / "cli.jpg", (640, 480))
    refused = home.cli("share", "--once", str(photo), FADELINK_BACKEND="dropbox")
    assert refused.returncode == 2 and "local backend" in refused.stderr
    daemon = DaemonProcess(home)
    try:
        daemon.wait_ready()
        out = home.cli("share", "--once", str(photo))
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip()
        (share,) = listed(home)
        assert share["url"] == url and share["once"] is True
        status, page, _ = Client().fetch(url)
        assert status == 200 and b'<form method="post">' in page and b"<img" not in page
        assert f"{url} (view once)" in home.cli("list").stdout
    finally:
        daemon.stop()
