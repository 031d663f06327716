"""The link server, run for real on 127.0.0.1 and fetched over HTTP with raw paths."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ipaddress
import logging
import re
import socket
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from daemon.previews import preview_agent
from daemon.ratelimit import MissLimiter, address_key
from daemon.server import LinkServer, Served, lan_address, new_token, sender_key_hash

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def comparable(self) -> tuple[int, dict[str, str], bytes]:
        """Everything but the Date header, which only says when it was sent."""
        return self.status, {k: v for k, v in self.headers.items() if k != "date"}, self.body


def _fetch_blocking(
    port: int, path: str, method: str, host: str, headers: dict[str, str] | None = None
) -> Reply:
    # http.client sends the path exactly as given: no normalisation of '..' or '%2e'.
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


async def fetch(
    port: int,
    path: str,
    method: str = "GET",
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> Reply:
    return await asyncio.to_thread(_fetch_blocking, port, path, method, host, headers)


@contextlib.asynccontextmanager
async def running(
    lookup: Callable[[str], Served | None], **kwargs: object
) -> AsyncIterator[tuple[LinkServer, int]]:
    kwargs.setdefault("bind", "127.0.0.1:0")
    if isinstance(lookup, Shares):
        kwargs.setdefault("reveal", lookup.reveal)
        kwargs.setdefault("viewed", lookup.viewed)
    server = LinkServer(lookup, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, local_port(server)
    finally:
        await server.stop()


def local_port(server: LinkServer) -> int:
    # With a public URL, base_url no longer shows the local port: ask the runner.
    runner = server._runner
    assert runner is not None
    return int(runner.addresses[0][1])


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "prepared.jpg"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(path, "JPEG")
    return path


class Shares:
    """A stand-in for the journal: token -> Served, revocable; records reveals and views."""

    def __init__(self, clock: Callable[[], float] = lambda: NOW) -> None:
        self.live: dict[str, Served] = {}
        self.asked: list[str] = []
        self.clock = clock
        self.reveals: list[tuple[str, str | None]] = []
        self.views: list[tuple[str, str | None]] = []

    def __call__(self, token: str) -> Served | None:
        self.asked.append(token)
        return self.live.get(token)

    def add(
        self,
        path: Path,
        lifetime: float = 3590,
        title: str = "beach.jpg",
        *,
        once: bool = False,
        sender_key: str | None = None,
    ) -> str:
        token = new_token()
        key_hash = sender_key_hash(sender_key) if sender_key else None
        self.live[token] = Served(path, "image/jpeg", NOW + lifetime, title, once, None, key_hash)
        return token

    async def reveal(self, token: str, viewer: str | None, until: float) -> Served | None:
        # Like the journal: succeeds once, and the window caps the lifetime.
        served = self.live.get(token)
        if served is None or not served.once or served.revealed_at is not None:
            return None
        now = self.clock()
        served = replace(served, revealed_at=now, expires_at=min(served.expires_at, until))
        self.live[token] = served
        self.reveals.append((token, viewer))
        return served

    async def viewed(self, token: str, viewer: str | None) -> None:
        self.views.append((token, viewer))


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []
        self.forms: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "form":
            self.forms.append(dict(attrs))
        elif tag == "button":
            self.buttons.append(dict(attrs))
        elif tag == "meta":
            self.metas.append(dict(attrs))


def visible_text(html_text: str) -> str:
    without_script = re.sub(r"<script>.*?</script>", "", html_text, flags=re.S)
    return re.sub(r"<[^>]+>", " ", without_script)


def test_page_shows_the_photo_and_time_left(photo: Path) -> None:
    shares, clock = Shares(), Clock()
    token = shares.add(photo, lifetime=3590, title="beach.jpg")

    async def scenario() -> None:
        async with running(shares, clock=clock) as (server, port):
            link = server.link_for(token)
            assert link == f"{server.base_url}/{token}"
            page = await fetch(port, urlsplit(link).path)
            assert page.status == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            text = page.body.decode("utf-8")
            assert "Disappears in 59 min" in visible_text(text)  # works without JS
            assert "beach.jpg" in text

            (img,) = Page(text).imgs
            image_url = urljoin(link, img["src"] or "")
            image = await fetch(port, urlsplit(image_url).path)
            assert image.status == 200
            assert image.headers["content-type"] == "image/jpeg"
            assert image.headers["content-disposition"].startswith("inline")
            assert image.body == photo.read_bytes()

    asyncio.run(scenario())


def test_page_keeps_the_photo_out_of_link_previews_and_search(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            page = await fetch(port, f"/{token}")
            metas = Page(page.body.decode()).metas
            props = [(m.get("property") or m.get("name") or "").lower() for m in metas]
            assert not [p for p in props if p.startswith(("og:", "twitter:"))]
            by_name = {m.get("name"): m.get("content") or "" for m in metas}
            assert "noindex" in by_name["robots"]
            assert by_name["referrer"] == "no-referrer"
            assert "noindex" in page.headers["x-robots-tag"]

    asyncio.run(scenario())


def test_head_answers_like_get_without_a_body(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            for path in (f"/{token}", f"/{token}/photo.jpg", "/nothing-here"):
                got = await fetch(port, path)
                head = await fetch(port, path, "HEAD")
                assert head.body == b""
                assert head.comparable()[:2] == got.comparable()[:2]
                assert int(head.headers["content-length"]) == len(got.body)

    asyncio.run(scenario())


def test_everything_that_is_not_a_live_share_gets_the_same_404(photo: Path, tmp_path: Path) -> None:
    shares, clock = Shares(), Clock()
    live = shares.add(photo)
    expired = shares.add(photo, lifetime=-1)
    revoked = shares.add(photo)
    del shares.live[revoked]
    vanished = new_token()
    shares.live[vanished] = Served(tmp_path / "gone.jpg", "image/jpeg", NOW + 600, "gone.jpg")
    paths = [
        f"/{new_token()}",
        f"/{new_token()}/photo.jpg",
        f"/{expired}",
        f"/{expired}/photo.jpg",
        f"/{revoked}",
        f"/{revoked}/photo.jpg",
        f"/{vanished}/photo.jpg",
        "/",
        "/favicon.ico",
        "/robots.txt",
        "/abc",  # malformed token
        f"/{live}/",
        f"/{live}/other.jpg",
        f"/{live}/photo.jpg/",
        f"//{live}",
        f"/{live}/../{live}",
        f"/x/../{live}",
        f"/%2e%2e/{live}",
        f"/{live}%2Fphoto.jpg",
        f"/{live}/%2e%2e/%2e%2e/etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/{photo.parent}/{photo.name}",
        f"/{live[:-1]}%41",
    ]

    async def scenario() -> None:
        # More misses than the guessing limit allows: this test is about the 404 itself.
        limiter = MissLimiter(limit=10_000)
        async with running(shares, clock=clock, limiter=limiter) as (_server, port):
            assert (await fetch(port, f"/{live}")).status == 200
            reference = (await fetch(port, "/nothing")).comparable()
            assert reference[0] == 404
            for path in paths:
                reply = await fetch(port, path)
                assert reply.comparable() == reference, path
                head = await fetch(port, path, "HEAD")
                assert head.comparable() == (*reference[:2], b""), path
            # Other methods: one answer, whether the token is live or not.
            post_live = await fetch(port, f"/{live}", "POST")
            post_unknown = await fetch(port, f"/{new_token()}", "POST")
            assert post_live.status in (404, 405)
            assert post_live.comparable() == post_unknown.comparable()

    asyncio.run(scenario())
    # Only well-formed tokens ever reach the journal.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", t) for t in shares.asked)


def test_expiry_follows_the_clock_even_before_the_daemon_revokes(photo: Path) -> None:
    shares, clock = Shares(), Clock()
    token = shares.add(photo, lifetime=60)

    async def scenario() -> None:
        async with running(shares, clock=clock) as (_server, port):
            page = await fetch(port, f"/{token}")
            assert "Disappears in 1 min" in visible_text(page.body.decode())
            clock.now = NOW + 59
            page = await fetch(port, f"/{token}")
            assert "Disappears in 1 s" in visible_text(page.body.decode())
            clock.now = NOW + 60  # the lookup still returns the share
            assert (await fetch(port, f"/{token}")).status == 404
            assert (await fetch(port, f"/{token}/photo.jpg")).status == 404

    asyncio.run(scenario())


def test_revocation_takes_effect_on_the_next_request(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            assert (await fetch(port, f"/{token}/photo.jpg")).status == 200
            del shares.live[token]
            assert (await fetch(port, f"/{token}/photo.jpg")).status == 404
            assert (await fetch(port, f"/{token}")).status == 404

    asyncio.run(scenario())


def test_public_url_with_a_path_prefix(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        public = "https://photos.example.com/pics/"
        async with running(shares, clock=Clock(), public_url=public) as (server, port):
            assert server.base_url == "https://photos.example.com/pics"
            link = server.link_for(token)
            assert link == f"https://photos.example.com/pics/{token}"
            assert "https://photos.example.com/pics" in server.reachability
            # A proxy may pass the prefix through or strip it: both must work.
            for page_path in (urlsplit(link).path, f"/{token}"):
                page = await fetch(port, page_path)
                assert page.status == 200, page_path
                (img,) = Page(page.body.decode()).imgs
                # The browser resolves src against the public link: it must stay under /pics.
                image_url = urljoin(link, img["src"] or "")
                assert image_url.startswith(f"{server.base_url}/{token}/")
                image_path = urlsplit(image_url).path
                for path in (image_path, image_path.removeprefix("/pics")):
                    image = await fetch(port, path)
                    assert image.status == 200, path
                    assert image.body == photo.read_bytes()
            assert (await fetch(port, "/pics")).status == 404
            assert (await fetch(port, "/pics/")).status == 404

    asyncio.run(scenario())


def test_every_response_forbids_caching_and_indexing(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            for path, method in [
                (f"/{token}", "GET"),
                (f"/{token}/photo.jpg", "GET"),
                (f"/{token}", "HEAD"),
                ("/nope", "GET"),
                (f"/{token}", "DELETE"),
            ]:
                headers = (await fetch(port, path, method)).headers
                assert headers["cache-control"] == "no-store", (path, method)
                assert "noindex" in headers["x-robots-tag"]
                assert headers["referrer-policy"] == "no-referrer"
                assert headers["x-content-type-options"] == "nosniff"
                assert "default-src 'none'" in headers["content-security-policy"]

    asyncio.run(scenario())


def test_no_secret_reaches_the_logs(photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    shares = Shares(clock)
    token = shares.add(photo)
    key = new_token()
    once = shares.add(photo, once=True, sender_key=key)

    async def scenario() -> str:
        async with running(shares, clock=clock) as (_server, port):
            await fetch(port, f"/{token}")
            await fetch(port, f"/{token}/photo.jpg")
            await fetch(port, f"/{token}?utm=1")
            await fetch(port, f"/{token}", "POST")
            await fetch(port, f"/{once}?k={key}")
            cookie, _ = cookie_of(await fetch(port, f"/{once}", "POST"))
            await fetch(port, f"/{once}/photo.jpg", headers={"Cookie": cookie})
            clock.now = NOW + 10_000
            await fetch(port, f"/{token}")
            return cookie

    cookie = asyncio.run(scenario())
    ours = [r.getMessage() for r in caplog.records if r.name == "daemon.server"]
    assert any("page" in m and "200" in m for m in ours)
    assert any("image" in m and "200" in m for m in ours)
    assert any("404" in m for m in ours)
    assert any("303" in m and "revealed" in m for m in ours)
    for secret in (token, once, key, cookie.split("=", 1)[1]):
        assert secret not in caplog.text
        assert secret[:12] not in caplog.text


def test_query_strings_from_messengers_do_not_break_links(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            assert (await fetch(port, f"/{token}?fbclid=abc")).status == 200

    asyncio.run(scenario())


def test_stop_closes_the_port(photo: Path) -> None:
    async def scenario() -> int:
        async with running(Shares(), clock=Clock()) as (_server, port):
            return port

    port = asyncio.run(scenario())
    with pytest.raises(ConnectionRefusedError):
        _fetch_blocking(port, "/", "GET", "127.0.0.1")


@pytest.mark.parametrize(
    ("bind", "words"),
    [
        ("8787", "no port"),
        ("localhost", "no port"),
        (":8787", "no host"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
        ("::1:8787", "brackets"),
        ("[::1]8787", "not valid"),
        ("[nope]:8787", "not an IPv6 address"),
        ("exa mple:80", "not a host name"),
    ],
)
def test_bad_bind_values_are_explained(bind: str, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        LinkServer(Shares(), bind=bind)
    assert repr(bind) in str(caught.value)


def test_bad_public_url_is_explained() -> None:
    with pytest.raises(ValueError, match="https://"):
        LinkServer(Shares(), bind="127.0.0.1:0", public_url="photos.example.com")


def test_a_taken_port_gives_a_readable_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            server = LinkServer(Shares(), bind=f"127.0.0.1:{port}")
            with pytest.raises(OSError, match="already in use") as caught:
                await server.start()
            assert f"127.0.0.1:{port}" in str(caught.value)
            await server.stop()  # harmless after a failed start

        asyncio.run(scenario())


def test_loopback_bind_says_only_this_machine() -> None:
    async def scenario() -> None:
        async with running(Shares()) as (server, port):
            assert server.base_url == f"http://127.0.0.1:{port}"
            assert "only from this machine" in server.reachability
            assert "127.0.0.1" in server.reachability

    asyncio.run(scenario())


def test_all_interfaces_bind_advertises_the_lan_address() -> None:
    # Not started: the port is known from the setting, no socket is opened.
    server = LinkServer(Shares(), bind="0.0.0.0:8787")
    address = lan_address()
    ipaddress.IPv4Address(address)
    assert server.base_url == f"http://{address}:8787"
    if not ipaddress.ip_address(address).is_loopback:
        assert server.reachability == f"reachable from this network ({address})"


def test_ipv6_loopback(photo: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        try:
            server = LinkServer(shares, bind="[::1]:0", clock=Clock())
            await server.start()
        except OSError as exc:
            pytest.skip(f"cannot listen on ::1: {exc}")
        try:
            assert re.fullmatch(r"http://\[::1\]:\d+", server.base_url)
            port = int(server.base_url.rsplit(":", 1)[1])
            reply = await fetch(port, f"/{token}/photo.jpg", host="::1")
            assert reply.body == photo.read_bytes()
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    allowed = set(string.ascii_letters + string.digits + "-_")
    for token in tokens:
        assert len(token) == 32  # 24 bytes = 192 bits
        assert set(token) <= allowed


# --- view-once links ---------------------------------------------------------------------------

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
PREVIEW_UAS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "TelegramBot (like TwitterBot)",
    "WhatsApp/2.23.20.0 A",
    "WhatsApp/2",  # Signal
    "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


def cookie_of(reply: Reply) -> tuple[str, dict[str, str]]:
    """("name=value", {attribute: value}) of the one Set-Cookie header."""
    first, *attributes = [part.strip() for part in reply.headers["set-cookie"].split(";")]
    attrs = {}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        attrs[name.lower()] = value
    return first, attrs


def test_view_once_page_offers_a_button_never_the_photo(photo: Path) -> None:
    shares, clock = Shares(), Clock()
    token = shares.add(photo, once=True)

    async def scenario() -> None:
        async with running(shares, clock=clock) as (_server, port):
            unknown = (await fetch(port, f"/{new_token()}/photo.jpg")).comparable()
            for ua in [BROWSER_UA, *PREVIEW_UAS, ""]:
                for method in ("GET", "HEAD"):
                    page = await fetch(port, f"/{token}", method, headers={"User-Agent": ua})
                    assert page.status == 200, ua
                    assert "set-cookie" not in page.headers
                    image = await fetch(
                        port, f"/{token}/photo.jpg", method, headers={"User-Agent": ua}
                    )
                    assert image.comparable()[0] == 404, (ua, method)
                    assert image.body != photo.read_bytes()
            text = (await fetch(port, f"/{token}")).body.decode()
            parsed = Page(text)
            assert parsed.imgs == []
            assert "photo.jpg" not in text and "beach" not in text  # not even its name
            assert "a photo that disappears after you view it" in visible_text(text).lower()
            (form,) = parsed.forms
            assert form["method"] == "post" and not form.get("action")
            assert len(parsed.buttons) == 1
            assert b"<script" not in (await fetch(port, f"/{token}")).body.split(b"<form")[1]
            # None of that spent the view.
            assert shares.reveals == [] and shares.views == []
            assert (await fetch(port, f"/{new_token()}/photo.jpg")).comparable() == unknown

    asyncio.run(scenario())


def test_the_reveal_shows_the_photo_in_one_browser_for_the_window(photo: Path) -> None:
    clock = Clock()
    shares = Shares(clock)
    token = shares.add(photo, once=True)

    async def scenario() -> None:
        async with running(shares, clock=clock, once_window=30) as (server, port):
            link = server.link_for(token)
            reference = (await fetch(port, f"/{new_token()}")).comparable()
            revealed = await fetch(port, f"/{token}", "POST", headers={"User-Agent": BROWSER_UA})
            assert revealed.status == 303
            assert urljoin(link, revealed.headers["location"]) == link  # back to the same URL
            cookie, attrs = cookie_of(revealed)
            assert attrs["path"] == f"/{token}" and attrs["max-age"] == "30"
            assert "httponly" in attrs and attrs["samesite"] == "Strict"
            assert "secure" not in attrs  # plain http on the LAN
            assert shares.reveals == [(token, "same network")]

            mine = {"Cookie": cookie, "User-Agent": BROWSER_UA}
            page = await fetch(port, f"/{token}", headers=mine)
            (img,) = Page(page.body.decode()).imgs
            assert "Disappears in 30 s" in visible_text(page.body.decode())
            image = await fetch(port, urlsplit(urljoin(link, img["src"] or "")).path, headers=mine)
            assert image.status == 200 and image.body == photo.read_bytes()

            # Anyone else, or a second reveal, gets the plain 404 of an unknown link.
            assert (await fetch(port, f"/{token}")).comparable() == reference
            assert (await fetch(port, f"/{token}", "POST")).comparable() == reference
            forged = {"Cookie": f"fadelink_view={'0' * 64}"}
            assert (await fetch(port, f"/{token}/photo.jpg", headers=forged)).status == 404
            assert shares.reveals == [(token, "same network")]

            clock.now = NOW + 29  # a reload within the window
            assert (await fetch(port, f"/{token}", headers=mine)).status == 200
            clock.now = NOW + 30  # and after it: gone, cookie or not
            assert (await fetch(port, f"/{token}", headers=mine)).comparable() == reference
            assert (await fetch(port, f"/{token}/photo.jpg", headers=mine)).status == 404

    asyncio.run(scenario())


def test_the_lifetime_stays_an_upper_bound_of_the_window(photo: Path) -> None:
    clock = Clock()
    shares = Shares(clock)
    token = shares.add(photo, lifetime=10, once=True)

    async def scenario() -> None:
        async with running(shares, clock=clock, once_window=30) as (_server, port):
            revealed = await fetch(port, f"/{token}", "POST")
            cookie, attrs = cookie_of(revealed)
            assert attrs["max-age"] == "10"
            clock.now = NOW + 10
            assert (await fetch(port, f"/{token}", headers={"Cookie": cookie})).status == 404

    asyncio.run(scenario())


def test_preview_agents_cannot_spend_a_view(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo, once=True)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            for ua in PREVIEW_UAS:
                reply = await fetch(port, f"/{token}", "POST", headers={"User-Agent": ua})
                assert reply.status == 404 and "set-cookie" not in reply.headers, ua
            assert shares.reveals == []
            assert (await fetch(port, f"/{token}", "POST")).status == 303

    asyncio.run(scenario())


def test_the_sender_key_shows_the_photo_without_counting_or_spending(photo: Path) -> None:
    shares = Shares()
    key = new_token()
    once = shares.add(photo, once=True, sender_key=key)
    normal = shares.add(photo, sender_key=key)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (server, port):
            for token in (once, normal):
                link = f"{server.link_for(token)}?k={key}"
                page = await fetch(port, urlsplit(link).path + f"?k={key}")
                assert page.status == 200
                assert "never counts as a view" in visible_text(page.body.decode())
                (img,) = Page(page.body.decode()).imgs
                image_url = urljoin(link, img["src"] or "")
                assert f"k={key}" in image_url  # the photo fetch is the sender's too
                parts = urlsplit(image_url)
                image = await fetch(port, f"{parts.path}?{parts.query}")
                assert image.status == 200 and image.body == photo.read_bytes()
            # A wrong key is just a visitor.
            assert Page((await fetch(port, f"/{once}?k={new_token()}")).body.decode()).forms
            assert (await fetch(port, f"/{once}/photo.jpg?k={new_token()}")).status == 404
            # The sender's POST never spends the view either.
            assert (await fetch(port, f"/{once}?k={key}", "POST")).status == 303
            assert shares.reveals == [] and shares.views == []
            assert (await fetch(port, f"/{once}", "POST")).status == 303
            assert len(shares.reveals) == 1

    asyncio.run(scenario())


def test_normal_links_refuse_the_photo_to_preview_agents_and_report_real_views(
    photo: Path,
) -> None:
    shares = Shares()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=Clock()) as (_server, port):
            for ua in PREVIEW_UAS:
                headers = {"User-Agent": ua}
                assert (await fetch(port, f"/{token}", headers=headers)).status == 200
                image = await fetch(port, f"/{token}/photo.jpg", headers=headers)
                assert image.status == 404 and image.body != photo.read_bytes(), ua
            await fetch(port, f"/{token}/photo.jpg", "HEAD", headers={"User-Agent": BROWSER_UA})
            assert shares.views == []  # no bytes, no view
            image = await fetch(port, f"/{token}/photo.jpg", headers={"User-Agent": BROWSER_UA})
            assert image.status == 200 and image.body == photo.read_bytes()
            assert shares.views == [(token, "same network")]

    asyncio.run(scenario())


def test_view_once_behind_a_proxy_prefix(photo: Path) -> None:
    shares = Shares()
    token = shares.add(photo, once=True)

    async def scenario() -> None:
        public = "https://photos.example.com/pics"
        async with running(shares, clock=Clock(), public_url=public) as (server, port):
            link = server.link_for(token)
            revealed = await fetch(port, f"/pics/{token}", "POST")
            assert urljoin(link, revealed.headers["location"]) == link
            cookie, attrs = cookie_of(revealed)
            assert attrs["path"] == f"/pics/{token}" and "secure" in attrs
            # Without a trusted proxy, every viewer seems to be the proxy: unknown network.
            assert shares.reveals == [(token, None)]
            assert (await fetch(port, f"/{token}", headers={"Cookie": cookie})).status == 200

    asyncio.run(scenario())


# --- guessing ----------------------------------------------------------------------------------


def test_misses_beyond_the_limit_get_429_but_valid_links_still_answer(photo: Path) -> None:
    shares, clock = Shares(), Clock()
    token = shares.add(photo)

    async def scenario() -> None:
        limiter = MissLimiter(limit=5, window=60)
        async with running(shares, clock=clock, limiter=limiter) as (_server, port):
            for _ in range(5):
                assert (await fetch(port, f"/{new_token()}")).status == 404
            throttled = await fetch(port, f"/{new_token()}")
            assert throttled.status == 429 and int(throttled.headers["retry-after"]) == 60
            assert throttled.headers["cache-control"] == "no-store"
            assert (await fetch(port, "/favicon.ico")).status == 429
            # The same address still gets its valid link, page and photo.
            assert (await fetch(port, f"/{token}")).status == 200
            assert (await fetch(port, f"/{token}/photo.jpg")).body == photo.read_bytes()
            clock.now = NOW + 61
            assert (await fetch(port, f"/{new_token()}")).status == 404

    asyncio.run(scenario())


def test_forwarded_for_is_trusted_only_when_configured(photo: Path) -> None:
    shares, clock = Shares(), Clock()
    token = shares.add(photo)
    attacker = {"X-Forwarded-For": "9.9.9.9"}
    viewer = {"X-Forwarded-For": "6.6.6.6, 1.1.1.1"}  # the proxy added the last one

    async def scenario() -> None:
        limiter = MissLimiter(limit=3, window=60)
        async with running(shares, clock=clock, limiter=limiter, trust_proxy=True) as (_, port):
            for _ in range(3):
                await fetch(port, f"/{new_token()}", headers=attacker)
            assert (await fetch(port, f"/{new_token()}", headers=attacker)).status == 429
            assert (await fetch(port, f"/{new_token()}", headers=viewer)).status == 404
            assert (await fetch(port, f"/{token}/photo.jpg", headers=viewer)).status == 200
            assert shares.views == [(token, "internet")]

        limiter = MissLimiter(limit=3, window=60)
        async with running(shares, clock=clock, limiter=limiter) as (_, port):
            for i in range(3):  # a different made-up address each time: ignored
                await fetch(port, f"/{new_token()}", headers={"X-Forwarded-For": f"9.9.9.{i}"})
            spoofed = {"X-Forwarded-For": "8.8.8.8"}
            assert (await fetch(port, f"/{new_token()}", headers=spoofed)).status == 429

    asyncio.run(scenario())


def test_miss_limiter_is_a_sliding_window() -> None:
    limiter = MissLimiter(limit=3, window=60)
    assert [limiter.miss("203.0.113.5", t) for t in (0, 10, 20)] == [None, None, None]
    assert limiter.miss("203.0.113.5", 30) == 40  # fine again at 70, when the one at 10 is old
    assert limiter.miss("198.51.100.1", 30) is None  # another address is not affected
    assert limiter.miss("203.0.113.5", 69) == 11  # hammering on keeps it throttled
    # Quiet for a window: welcome again.
    assert limiter.miss("203.0.113.5", 130) is None


def test_miss_limiter_groups_ipv6_by_64_and_bounds_its_memory() -> None:
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    limiter = MissLimiter(limit=2, window=60, max_addresses=10)
    for i in range(1000):
        limiter.miss(f"10.0.{i // 256}.{i % 256}", float(i))
    assert len(limiter._misses) <= 10
    limiter.miss("2001:db8:1:2::1", 2000)
    limiter.miss("2001:db8:1:2::2", 2001)
    assert limiter.miss("2001:db8:1:2::3", 2002) is not None


@pytest.mark.parametrize("ua", PREVIEW_UAS)
def test_preview_agents_are_recognised(ua: str) -> None:
    assert preview_agent(ua) is not None


@pytest.mark.parametrize(
    "ua",
    [
        BROWSER_UA,
        "Mozilla/5.0 (Linux; Android 9; CUBOT P20) AppleWebKit/537.36 Chrome/120 Mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        "",
    ],
)
def test_browsers_are_not_taken_for_preview_agents(ua: str) -> None:
    assert preview_agent(ua) is None
