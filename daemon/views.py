"""What the link server asks of the journal: is this token a live share, spend a view-once link,
count a view. The server knows HTTP, the journal knows shares; this joins them in the daemon.

A reveal is one conditional journal update (it succeeds exactly once), which also brings the
link's deadline forward to the end of the viewing window: from there the ordinary expiry loop
revokes the link and deletes the copy, after a crash or a restart too. The first view of any link
raises a receipt. Nothing about the viewer is kept beyond "same network" or "internet".
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from daemon.backends.local import MIME, link_key
from daemon.journal import Journal, Share, State
from daemon.runtime import Runtime
from daemon.server import SENDER_PARAM, Served, sender_key_hash

log = logging.getLogger(__name__)


class SenderLinks:
    """The sender's own links (`?k=…`): never counted, never spending a view-once link.

    One key per share for the life of the process, so every notification about a share opens
    the same link; the journal keeps only its hash, so only whoever holds the URL (the sender's
    notifications) is recognised. After a restart a share gets a new key (the old
    notifications' clicks died with the old process anyway).
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._links: dict[str, str] = {}

    def for_share(self, share: Share) -> str:
        assert share.url
        if share.backend != "local":
            return share.url  # served elsewhere: nothing there knows the key
        link = self._links.get(share.id)
        if link is None:
            key = secrets.token_urlsafe(24)
            self._journal.set_sender_key(share.id, sender_key_hash(key))
            link = self._links[share.id] = f"{share.url}?{SENDER_PARAM}={key}"
        return link


class LinkShares:
    """The link server's callbacks: lookup (every request), reveal and viewed."""

    def __init__(self, rt: Runtime, on_first_view: Callable[[Share], Awaitable[None]]) -> None:
        self.rt = rt
        self._on_first_view = on_first_view

    def _share(self, token: str) -> Share | None:
        share = self.rt.journal.by_link_key(link_key(token))
        if share is None or share.state is not State.LIVE or share.remote_path is None:
            return None
        return share

    def lookup(self, token: str) -> Served | None:
        """Is this token a live, unexpired share? Asked on every request."""
        share = self._share(token)
        if share is None or share.expires_at is None:
            return None
        expires_at = share.expires_at
        if share.once and share.revealed_at is not None:
            # Whatever moved the deadline since (a "+1 hour" press), a revealed photo is seen
            # for the window only.
            expires_at = min(expires_at, share.revealed_at + self.rt.settings.once_window_seconds)
        if expires_at <= self.rt.clock():
            return None
        path = self.rt.paths.served / share.remote_path
        return Served(
            path=path,
            mime=MIME.get(path.suffix.lower(), "application/octet-stream"),
            expires_at=expires_at,
            # The viewer never learns the sender's file name (it can say when, where or what)
            # unless FADELINK_KEEP_NAMES asked for it: then it is the sanitised served name.
            title=share.remote_path if self.rt.settings.keep_names else "Photo",
            once=bool(share.once),
            revealed_at=share.revealed_at,
            sender_key_hash=share.sender_key,
        )

    async def reveal(self, token: str, viewer: str | None, until: float) -> Served | None:
        """Spend a view-once link (the viewer pressed the button)."""
        rt = self.rt
        share = self._share(token)
        if share is None or not share.once:
            return None
        spent = await rt.blocking(rt.journal.reveal, share.id, rt.clock(), until, viewer)
        if not spent:
            return None  # someone else was first, or it just expired
        rt.wake.set()  # its deadline moved to the end of the window: the expiry loop re-reads
        log.info("view-once link of %s (%s) revealed", share.name, share.id)
        fresh = rt.journal.get(share.id)
        if fresh is not None:
            rt.spawn(self._on_first_view(fresh))
        return self.lookup(token)

    async def viewed(self, token: str, viewer: str | None) -> None:
        """A viewer (not the sender, not a preview agent) fetched a normal link's photo."""
        share = self._share(token)
        if share is not None:
            # Counted off the request's path: the photo need not wait for the journal's fsync.
            self.rt.spawn(self._count(share, viewer, self.rt.clock()))

    async def _count(self, share: Share, viewer: str | None, now: float) -> None:
        rt = self.rt
        first = await rt.blocking(rt.journal.record_view, share.id, now, viewer)
        if first:
            fresh = rt.journal.get(share.id)
            if fresh is not None:
                rt.spawn(self._on_first_view(fresh))
