"""The embedded link server: one small page and one image per live share, a plain 404 otherwise.

It runs inside the daemon's asyncio loop and never touches the journal: the daemon hands it a
`lookup(token)` function, called on every request, so a revocation or an expiry shows on the very
next request, and two callbacks that record what viewers do (`reveal` spends a view-once link,
`viewed` reports a normal link's first real view). Everything that is not a live share gets the
same 404, byte for byte, so a stranger cannot tell an expired token from one that never existed.
The token is a secret: it is never logged (aiohttp's access log, which prints the path, is off).

View-once links: the page never carries the photo, only a button (a plain form POST). The POST
spends the view and answers 303 with a cookie bound to that reveal; with it, this one browser sees
the photo until the window closes. No GET or HEAD of any kind can spend the view or fetch the
photo, so chat-app previews are harmless without having to recognise them.

The sender's own link carries `?k=<sender key>`: recognised by its hash, shown like any page,
never counted and never spending a view.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import hmac
import html
import ipaddress
import logging
import math
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web

from daemon.durations import format_duration
from daemon.previews import preview_agent
from daemon.ratelimit import MissLimiter

log = logging.getLogger("daemon.server")

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
_IMAGE_STEM = "photo"
SENDER_PARAM = "k"  # ?k=<sender key>: the sender's own link
_VIEW_COOKIE = "fadelink_view"
# Where a viewer is, coarsely: all a receipt ever says about them.
NET_LAN = "same network"
NET_INTERNET = "internet"
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/avif": ".avif",
}

# Static, so the CSP can allow exactly this script by hash instead of 'unsafe-inline'.
_SCRIPT = """(function () {
  var el = document.getElementById("left");
  var left = Number(el.getAttribute("data-left"));
  var start = Date.now();
  function fmt(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) {
      var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return m ? h + " h " + m + " min" : h + " h";
    }
    var d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600);
    return hh ? d + " d " + hh + " h" : d + " d";
  }
  function tick() {
    var s = Math.round(left - (Date.now() - start) / 1000);
    if (s <= 0) {
      var img = document.getElementById("photo");
      if (img) img.remove();
      el.textContent = "This photo has disappeared.";
      return;
    }
    el.textContent = "Disappears in " + fmt(s);
    setTimeout(tick, 1000);
  }
  tick();
})();"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# On every response, 404s included, so a 404 looks the same whatever caused it.
_COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": _CSP,
    "Cross-Origin-Resource-Policy": "same-origin",
    "Server": "fadelink",
}

_STYLE = (
    "body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;"
    "justify-content:center;background:#111;color:#ddd;font:16px system-ui,sans-serif}"
    "img{max-width:100vw;max-height:85vh;object-fit:contain}p{margin:1em;text-align:center}"
    "button{font:inherit;font-size:1.2em;padding:.6em 1.4em;border:0;border-radius:.4em;"
    "background:#3a7bd5;color:#fff;cursor:pointer}.note{color:#999;font-size:.9em}"
)


def _html(title: str, body: str) -> bytes:
    """A whole page; `title` and `body` must already be HTML-escaped."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow, noarchive">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n"
        f"<body>{body}</body></html>\n"
    ).encode()


_NOT_FOUND_BODY = _html(
    "Nothing here", "<p>Nothing here. This link has expired, was removed, or never existed.</p>"
)
_NOT_ALLOWED_BODY = _html("Not allowed", "<p>Only viewing is allowed here.</p>")
_UNAVAILABLE_BODY = _html(
    "Try again", "<p>Something went wrong on this end. Try again in a moment.</p>"
)
_TOO_MANY_BODY = _html(
    "Slow down", "<p>Too many links that do not exist were asked for from here. Wait a minute.</p>"
)


@dataclass(frozen=True)
class Served:
    path: Path  # the prepared file to serve
    mime: str  # "image/jpeg"
    expires_at: float  # wall-clock epoch seconds (UTC)
    title: str  # what the page says the photo is, e.g. "photo.jpg" (may be a random name)
    once: bool = False  # a view-once link
    revealed_at: float | None = None  # when its one view was spent (view-once only)
    sender_key_hash: str | None = None  # sender_key_hash(key) of the sender's own key


# reveal(token, viewer network, until) spends a view-once link, its photo viewable until `until`
# at the latest; returns the share as it is now, or None when it could not be spent (already
# spent, gone). viewed(token, viewer network): a normal link's photo was fetched by a viewer.
Reveal = Callable[[str, str | None, float], Awaitable[Served | None]]
Viewed = Callable[[str, str | None], Awaitable[None]]


def sender_key_hash(key: str) -> str:
    """What the journal keeps of the sender's key: the key itself never leaves the notification."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_token() -> str:
    """192 random bits, URL-safe: the only thing protecting a share."""
    return secrets.token_urlsafe(24)


def lan_address() -> str:
    """The IPv4 address other machines on the LAN would use to reach this one."""
    return _local_address(socket.AF_INET) or "127.0.0.1"


def _local_address(family: socket.AddressFamily) -> str | None:
    # Connecting a UDP socket only picks the route and source address; no packet is sent.
    # The targets are documentation addresses (TEST-NET-1, 2001:db8::/32), never real hosts.
    target = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            address = sock.getsockname()[0]
    except OSError:
        return None
    return None if _is_unspecified(address) else address


def _is_unspecified(host: str) -> bool:
    return host in ("0.0.0.0", "::")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _parse_bind(bind: str) -> tuple[str, int]:
    example = 'use "host:port", e.g. "0.0.0.0:8787", "127.0.0.1:8787" or "[::1]:8787"'
    text = bind.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not host:
            raise ValueError(f"bind address {bind!r} is not valid: {example}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bind address {bind!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"bind address {bind!r} has no port: {example}")
        if ":" in host:
            raise ValueError(
                f"bind address {bind!r}: put IPv6 addresses in brackets, e.g. [::1]:8787"
            )
        if not host:
            raise ValueError(
                f"bind address {bind!r} has no host: use 0.0.0.0:{port_text} for every "
                f"network interface or 127.0.0.1:{port_text} for this machine only"
            )
        if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
            raise ValueError(f"bind address {bind!r}: {host!r} is not a host name or address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bind address {bind!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def _parse_public_url(public_url: str) -> tuple[str, str]:
    """(base URL without trailing slash, raw path prefix such as "/pics" or "")."""
    url = public_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"public URL {public_url!r} is not valid: it must start with https:// or http://, "
            "e.g. https://photos.example.com or https://example.com/pics"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"public URL {public_url!r} must not contain '?' or '#'")
    return url, parts.path


def _disposition(title: str, ext: str) -> str:
    # The served type can differ from the original's (a HEIC served as JPEG): keep the name,
    # use the served extension.
    stem = Path(title).stem or _IMAGE_STEM
    name = stem + ext
    ascii_name = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    value = f'inline; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


class LinkServer:
    """Serves live shares over HTTP from the daemon's event loop."""

    def __init__(
        self,
        lookup: Callable[[str], Served | None],
        *,
        bind: str,
        public_url: str | None = None,
        clock: Callable[[], float] = time.time,
        reveal: Reveal | None = None,
        viewed: Viewed | None = None,
        once_window: float = 30.0,
        trust_proxy: bool = False,
        limiter: MissLimiter | None = None,
    ) -> None:
        self._lookup = lookup
        self._reveal = reveal
        self._viewed = viewed
        self._once_window = once_window
        self._trust_proxy = trust_proxy
        self._limiter = limiter if limiter is not None else MissLimiter()
        # Signs the reveal cookies; per process, so a restart ends any open viewing window.
        self._secret = secrets.token_bytes(32)
        self._bind = bind
        self._host, self._port = _parse_bind(bind)
        self._public_url, self._prefix = _parse_public_url(public_url) if public_url else (None, "")
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the link server is already running")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # access_log=None: aiohttp's access log would print the path, i.e. the secret token.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise self._bind_error(exc) from exc
        self._runner = runner
        self._bound_port = runner.addresses[0][1]
        log.info(
            "link server listening on %s:%d; links start with %s; %s",
            _url_host(self._host),
            self._bound_port,
            self.base_url,
            self.reachability,
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("link server stopped")

    @property
    def base_url(self) -> str:
        """What links start with, no trailing slash."""
        if self._public_url is not None:
            return self._public_url
        port = self._bound_port if self._bound_port is not None else self._port
        if port == 0:
            raise RuntimeError("the link server picks its port when started: start it first")
        return f"http://{_url_host(self._advertised_host())}:{port}"

    @property
    def reachability(self) -> str:
        """One sentence for people: who can open the links."""
        if self._public_url is not None:
            return f"reachable at the public URL {self._public_url} (behind your proxy or tunnel)"
        if _is_loopback(self._host):
            return f"reachable only from this machine (bound to {self._host})"
        host = self._advertised_host()
        if _is_loopback(host):
            return (
                f"reachable only from this machine for now: no network found "
                f"(bound to {self._host})"
            )
        return f"reachable from this network ({host})"

    def link_for(self, token: str) -> str:
        return f"{self.base_url}/{token}"

    def _advertised_host(self) -> str:
        if self._host == "0.0.0.0":
            return lan_address()
        if self._host == "::":
            # asyncio binds "::" IPv6-only, so advertise an IPv6 address.
            return _local_address(socket.AF_INET6) or "::1"
        return self._host

    def _bind_error(self, exc: OSError) -> OSError:
        where = f"cannot listen on {self._bind}"
        if exc.errno == errno.EADDRINUSE:
            message = (
                f"{where}: the port is already in use (is fadelink already running?); "
                "choose another port or stop the other program"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = f"{where}: this machine has no such address"
        elif exc.errno == errno.EACCES:
            message = f"{where}: permission denied (ports below 1024 need privileges)"
        elif isinstance(exc, socket.gaierror):
            message = f"{where}: cannot resolve host {self._host!r}"
        else:
            message = f"{where}: {exc.strerror or exc}"
        error = OSError(message)
        error.errno = exc.errno
        return error

    # --- requests -------------------------------------------------------------------------

    def _route(self, raw_path: str) -> tuple[str, str, str]:
        """(kind, token, image name) from the raw, still percent-encoded path.

        The raw path is matched against a strict pattern instead of being decoded and normalised,
        so '..', '%2e%2e' and '%2F' simply never match a token.
        """
        path = raw_path.split("?", 1)[0]
        if self._prefix and path.startswith(self._prefix + "/"):
            path = path[len(self._prefix) :]  # the proxy passed the prefix through
        parts = path.split("/")
        if len(parts) in (2, 3) and parts[0] == "" and _TOKEN.fullmatch(parts[1]):
            if len(parts) == 2:
                return "page", parts[1], ""
            return "image", parts[1], parts[2]
        return "other", "", ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind, token, image_name = self._route(request.raw_path)
        client = self._client(request)
        if request.method not in ("GET", "HEAD", "POST"):
            # Decided before any lookup: known and unknown tokens answer the same.
            response: web.StreamResponse = _page_response(
                _NOT_ALLOWED_BODY, status=405, Allow="GET, HEAD, POST"
            )
            reason = "method not allowed"
        else:
            asked = _Asked(
                method=request.method,
                kind=kind,
                token=token,
                image_name=image_name,
                agent=preview_agent(request.headers.get("User-Agent")),
                sender_key=request.query.get(SENDER_PARAM) if kind != "other" else None,
                view_cookie=request.cookies.get(_VIEW_COOKIE),
                viewer=self._viewer_net(client),
            )
            response, reason = await self._answer(asked)
        if response.status == 404:
            # Only misses count, and only misses are throttled: a valid link always answers.
            retry_after = self._limiter.miss(client, self._clock())
            if retry_after is not None:
                response = _page_response(
                    _TOO_MANY_BODY, status=429, **{"Retry-After": str(retry_after)}
                )
                reason = "too many misses from this address"
        log.info("%s %s -> %d%s", request.method, kind, response.status, reason and f" ({reason})")
        return response

    def _client(self, request: web.Request) -> str:
        """The requester's address: the peer, or with a trusted proxy the address it saw."""
        peer = request.remote or ""
        if self._trust_proxy:
            hops = [
                hop.strip()
                for value in request.headers.getall("X-Forwarded-For", [])
                for hop in value.split(",")
            ]
            # The last entry is the one our proxy added; earlier ones are whatever the client
            # chose to send.
            if hops and _is_ip(hops[-1]):
                return hops[-1]
        return peer

    def _viewer_net(self, client: str) -> str | None:
        """ "same network" or "internet": all a receipt says about who opened a link."""
        try:
            ip = ipaddress.ip_address(client)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_loopback and self._public_url is not None and not self._trust_proxy:
            return None  # the proxy or tunnel itself: the viewer could be anywhere
        return NET_INTERNET if ip.is_global else NET_LAN

    async def _answer(self, asked: _Asked) -> tuple[web.StreamResponse, str]:
        if asked.kind == "other" or (asked.method == "POST" and asked.kind != "page"):
            return _not_found(), ""
        token = asked.token
        try:
            served = self._lookup(token)
        except Exception as exc:  # the journal failed: say so in the log, never the token
            log.error(
                "share lookup failed: %s: %s", type(exc).__name__, str(exc).replace(token, "…")
            )
            # Not a 404: the share may well exist; the viewer should try again, not give up.
            return _page_response(_UNAVAILABLE_BODY, status=503), "lookup failed"
        if served is None:
            return _not_found(), "unknown or revoked"
        now = self._clock()
        if served.expires_at <= now:
            return _not_found(), "expired"
        sender = _is_sender(served, asked.sender_key)
        if served.once:
            return await self._answer_once(asked, served, sender, now)
        ext = _EXTENSIONS.get(served.mime, "")
        if asked.method == "POST":
            return _not_found(), "not a view-once link"
        if asked.kind == "page":
            key = asked.sender_key if sender else None
            return _page(token, served, ext, served.expires_at - now, sender_key=key), ""
        if asked.image_name != _IMAGE_STEM + ext:
            return _not_found(), ""
        if asked.agent is not None and not sender:
            # The page may be previewed, the photo not: it would stay on the chat's servers.
            return _not_found(), f"photo refused to a link preview ({asked.agent})"
        response = await _image(served, ext)
        if response.status == 200 and asked.method == "GET" and not sender and self._viewed:
            await self._viewed(token, asked.viewer)
        return response, "" if response.status == 200 else "file missing"

    async def _answer_once(
        self, asked: _Asked, served: Served, sender: bool, now: float
    ) -> tuple[web.StreamResponse, str]:
        token = asked.token
        ext = _EXTENSIONS.get(served.mime, "")
        mine = served.revealed_at is not None and asked.view_cookie is not None
        mine = mine and hmac.compare_digest(
            asked.view_cookie or "", self._view_cookie(token, served.revealed_at or 0.0)
        )
        if asked.kind == "image":
            if asked.image_name != _IMAGE_STEM + ext or not (sender or mine):
                return _not_found(), "view-once photo not revealed here"
            response = await _image(served, ext)
            return response, "" if response.status == 200 else "file missing"
        key = asked.sender_key if sender else None
        if asked.method != "POST":
            if sender or mine:
                return _page(token, served, ext, served.expires_at - now, sender_key=key), ""
            if served.revealed_at is not None:
                return _not_found(), "view-once link already viewed"
            return _once_page(self._once_window, served.expires_at - now), ""
        # POST: the view itself.
        if sender or mine:
            # The sender never spends the view; a re-sent form changes nothing.
            return _see_other(token, sender_key=key), ""
        if asked.agent is not None:
            return _not_found(), f"reveal refused to a link preview ({asked.agent})"
        if served.revealed_at is not None or self._reveal is None:
            return _not_found(), "view-once link already viewed"
        revealed = await self._reveal(token, asked.viewer, now + self._once_window)
        if revealed is None or revealed.revealed_at is None:
            return _not_found(), "view-once link already viewed"
        response = _see_other(token)
        max_age = max(1, math.ceil(min(revealed.expires_at - now, self._once_window)))
        response.headers["Set-Cookie"] = (
            f"{_VIEW_COOKIE}={self._view_cookie(token, revealed.revealed_at)}; "
            f"Max-Age={max_age}; Path={self._prefix}/{token}; HttpOnly; SameSite=Strict"
            + ("; Secure" if (self._public_url or "").startswith("https:") else "")
        )
        return response, "view-once link revealed"

    def _view_cookie(self, token: str, revealed_at: float) -> str:
        # Bound to this link and this reveal: useless on any other link, or after a restart.
        message = f"{token}\n{revealed_at!r}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class _Asked:
    """What a request asks for, read once from the HTTP request."""

    method: str
    kind: str  # "page", "image" or "other"
    token: str
    image_name: str
    agent: str | None  # a recognised link-preview agent
    sender_key: str | None  # ?k=…, unchecked
    view_cookie: str | None
    viewer: str | None  # NET_LAN, NET_INTERNET or None (unknown)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_sender(served: Served, key: str | None) -> bool:
    if not key or served.sender_key_hash is None:
        return False
    return hmac.compare_digest(sender_key_hash(key), served.sender_key_hash)


async def _image(served: Served, ext: str) -> web.Response:
    try:
        # Prepared photos are small (resized); reading them whole keeps "file gone" a 404.
        data = await asyncio.to_thread(served.path.read_bytes)
    except OSError:
        return _not_found()
    headers = {
        **_COMMON_HEADERS,
        "Content-Type": served.mime,
        "Content-Disposition": _disposition(served.title, ext),
    }
    return web.Response(body=data, headers=headers)


def _see_other(token: str, sender_key: str | None = None) -> web.Response:
    # Relative to the page URL (".../<token>"): right under a proxy's path prefix too.
    location = token + (f"?{SENDER_PARAM}={quote(sender_key, safe='')}" if sender_key else "")
    return web.Response(status=303, headers={**_COMMON_HEADERS, "Location": location})


def _page_response(body: bytes, status: int = 200, **extra_headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        headers={**_COMMON_HEADERS, **extra_headers},
        content_type="text/html",
        charset="utf-8",
    )


def _not_found() -> web.Response:
    return _page_response(_NOT_FOUND_BODY, status=404)


def _page(
    token: str, served: Served, ext: str, left: float, *, sender_key: str | None = None
) -> web.Response:
    title = html.escape(served.title)
    # Relative to the page URL (".../<token>"), so it also works under a proxy's path prefix.
    src = f"{token}/{_IMAGE_STEM}{ext}"
    note = ""
    if sender_key is not None:
        # The sender's own page: the photo fetch carries the key too, so it is never counted.
        src += f"?{SENDER_PARAM}={quote(sender_key, safe='')}"
        note = (
            '<p class="note">Your own link: opening it here never counts as a view. '
            "Do not pass this address on; share the link fadelink copied.</p>"
        )
    seconds = max(1, int(left))
    body = _html(
        title,
        f'<img id="photo" src="{html.escape(src)}" alt="{title}">'
        f'<p id="left" data-left="{seconds}">Disappears in {format_duration(seconds)}</p>'
        f"{note}<script>{_SCRIPT}</script>",
    )
    return _page_response(body)


def _once_page(window: float, left: float) -> web.Response:
    """A view-once link before its view: what it is and one button, never the photo."""
    body = _html(
        "A photo that disappears after you view it",
        "<p>Someone sent you a photo that disappears after you view it.</p>"
        f"<p>You can look at it once, for {format_duration(window)}, in this browser. "
        "Then it is gone, for everyone.</p>"
        '<form method="post"><button type="submit" id="reveal">View the photo</button></form>'
        f'<p class="note">Unless viewed, it disappears in {format_duration(left)}.</p>',
    )
    return _page_response(body)
