"""Handing a link to the user: clipboard (read back) and a notification that opens it."""

from __future__ import annotations

import contextlib
import logging
import webbrowser

from daemon import clipboard, prepare
from daemon.durations import format_duration
from daemon.journal import Share
from daemon.runtime import Runtime

log = logging.getLogger(__name__)


class Handout:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def announce(self, share: Share) -> None:
        rt = self.rt
        assert share.url
        copied = await rt.blocking(clipboard.copy, share.url)
        thumb = None
        if share.remote_path and share.backend == "local":
            with contextlib.suppress(Exception):
                thumb = await rt.blocking(
                    prepare.thumbnail,
                    rt.paths.served / share.remote_path,
                    rt.paths.thumb_for(share.id),
                )
        left = format_duration((share.expires_at or 0) - rt.clock())
        where = self.where()
        if copied.ok:
            body = f"Link copied to the clipboard. Disappears in {left}. {where}"
        else:
            body = f"{share.url}\n(not copied: {copied.reason}) Disappears in {left}. {where}"
        url = share.url
        await rt.notifier.show(
            f"Link ready: {share.name}", body, image=thumb, on_clicked=lambda: self.open(url)
        )
        if not copied.ok and not rt.notifier.verified:
            # The URL is a secret: it reaches the log only when nothing else could carry it.
            log.warning(
                "link for %s (clipboard and notifications unavailable): %s", share.name, url
            )
        rt.journal.mark_announced(share.id)
        log.info("shared %s as %s, disappears in %s", share.name, share.id, left)

    def where(self) -> str:
        server = self.rt.server
        if server is None:
            return ""
        if self.rt.settings.local_public_url:
            return "Works wherever your public URL is reachable, while this computer is awake."
        if server.reachability.startswith("reachable only"):
            return "Works only on this computer."
        return "Works on this network while this computer is awake."

    def open(self, url: str) -> None:
        # webbrowser honours BROWSER; it may block while a browser starts: not on the loop.
        self.rt.pool.submit(webbrowser.open, url)

    async def vanished(self, shares: list[Share]) -> None:
        if not shares:
            return
        if len(shares) == 1:
            title = f"Vanished: {shares[0].name}"
        else:
            title = f"{len(shares)} photos vanished"
        await self.rt.notifier.show(
            title,
            "Their links no longer work and the copies are deleted."
            if len(shares) > 1
            else "Its link no longer works and the copy is deleted.",
        )

    async def error(self, title: str, message: str) -> None:
        await self.rt.notifier.show(title, message)
