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
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image

from daemon.server import LinkServer, Served, lan_address, new_token

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


def _fetch_blocking(port: int, path: str, method: str, host: str) -> Reply:
    # http.client sends the path exactly as given: no normalisation of '..' or '%2e'.
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


async def fetch(port: int, path: str, method: str = "GET", host: str = "127.0.0.1") -> Reply:
    return await asyncio.to_thread(_fetch_blocking, port, path, method, host)


@contextlib.asynccontextmanager
async def running(
    lookup: Callable[[str], Served | None], **kwargs: object
) -> AsyncIterator[tuple[LinkServer, int]]:
    kwargs.setdefault("bind", "127.0.0.1:0")
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
    """A stand-in for the journal: token -> Served, revocable."""

    def __init__(self) -> None:
        self.live: dict[str, Served] = {}
        self.asked: list[str] = []

    def __call__(self, token: str) -> Served | None:
        self.asked.append(token)
        return self.live.get(token)

    def add(self, path: Path, lifetime: float = 3590, title: str = "beach.jpg") -> str:
        token = new_token()
        self.live[token] = Served(path, "image/jpeg", NOW + lifetime, title)
        return token


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.metas: list[dict[str, str | None]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs))
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
        async with running(shares, clock=clock) as (_server, port):
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


def test_the_token_never_reaches_the_logs(photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    shares, clock = Shares(), Clock()
    token = shares.add(photo)

    async def scenario() -> None:
        async with running(shares, clock=clock) as (_server, port):
            await fetch(port, f"/{token}")
            await fetch(port, f"/{token}/photo.jpg")
            await fetch(port, f"/{token}?utm=1")
            await fetch(port, f"/{token}", "POST")
            clock.now = NOW + 10_000
            await fetch(port, f"/{token}")

    asyncio.run(scenario())
    ours = [r.getMessage() for r in caplog.records if r.name == "daemon.server"]
    assert any("page" in m and "200" in m for m in ours)
    assert any("image" in m and "200" in m for m in ours)
    assert any("404" in m for m in ours)
    assert token not in caplog.text
    assert token[:12] not in caplog.text


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
