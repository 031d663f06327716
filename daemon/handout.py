"""Handing a link to the user: clipboard (read back) and a notification that opens it, with
buttons (Copy link, Revoke now, +1 hour) that act on that one share; vanished links and
failures are told too, failures grouped so a burst makes one notification."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import webbrowser
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from daemon import clipboard, prepare, qr
from daemon.durations import format_duration
from daemon.journal import Share, State
from daemon.notify import ButtonSpec
from daemon.runtime import Runtime
from daemon.server import NET_INTERNET, NET_LAN
from daemon.views import SenderLinks

log = logging.getLogger(__name__)

EXTEND_BY = 3600  # the "+1 hour" button
# Failures this close together are one notification; none waits longer than ERRORS_LONGEST.
ERRORS_QUIET = 1.0
ERRORS_LONGEST = 10.0
ERRORS_LISTED = 3  # a grouped notification names this many and counts the rest


class Actions(Protocol):
    """What the buttons ask of the expiry side (daemon/expiry.py)."""

    def revoke_now(self, share_id: str) -> Awaitable[None]: ...

    def extend(self, share_id: str, seconds: int) -> Awaitable[None]: ...


@dataclass
class ErrorGroups:
    """Failures grouped by kind: pure logic, the clock is a parameter. A group is released
    once no failure joined it for `quiet` seconds, or `longest` after its first one."""

    quiet: float = ERRORS_QUIET
    longest: float = ERRORS_LONGEST
    # key → (first at, last at, [(title, message)]), in arrival order
    _held: dict[str, tuple[float, float, list[tuple[str, str]]]] = field(default_factory=dict)

    def add(self, key: str, title: str, message: str, now: float) -> None:
        first, _, items = self._held.get(key, (now, now, []))
        items.append((title, message))
        self._held[key] = (first, now, items)

    def due(self, now: float) -> list[tuple[str, list[tuple[str, str]]]]:
        out = []
        for key, (first, last, items) in list(self._held.items()):
            if now - last >= self.quiet or now - first >= self.longest:
                del self._held[key]
                out.append((key, items))
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until due() may release something; None when nothing is held."""
        if not self._held:
            return None
        return max(
            0.0,
            min(
                min(last + self.quiet, first + self.longest)
                for first, last, _ in self._held.values()
            )
            - now,
        )


class Handout:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.sender_links = SenderLinks(rt.journal)
        # What the buttons call; set by the daemon once expiry exists (it needs us first).
        self.actions: Actions | None = None
        self._errors = ErrorGroups()
        self._many: dict[str, str] = {}
        self._flusher: asyncio.Task | None = None

    def wants(self, kind: str) -> bool:
        """FADELINK_NOTIFY: ready, vanished, viewed, errors."""
        return kind in self.rt.settings.notify_kinds

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
        if rt.settings.notify_qr:
            # A QR code of the link instead of the photo: a phone nearby opens it by camera.
            # Written over the thumbnail's file, so it is deleted with the share.
            with contextlib.suppress(Exception):
                thumb = await rt.blocking(qr.png, share.url, rt.paths.thumb_for(share.id))
        left = format_duration((share.expires_at or 0) - rt.clock())
        where = self.where()
        if copied.ok:
            body = f"Link copied to the clipboard. Disappears in {left}. {where}"
        else:
            body = f"{share.url}\n(not copied: {copied.reason}) Disappears in {left}. {where}"
        shown = self.wants("ready")
        if shown:
            await self.show_link(share, f"Link ready: {share.name}", body, thumb)
        if not copied.ok and not (shown and rt.notifier.verified):
            # The URL is a secret: it reaches the log only when nothing else could carry it.
            log.warning(
                "link for %s (clipboard and notifications unavailable): %s", share.name, share.url
            )
        rt.journal.mark_announced(share.id)
        log.info("shared %s as %s, disappears in %s", share.name, share.id, left)

    async def show_link(
        self, share: Share, title: str, body: str, thumb: Path | None = None
    ) -> None:
        """A notification for one live link: a click opens it, the buttons act on it."""
        # The sender's own link: opening it never counts as a view nor spends a view-once.
        url = self.sender_links.for_share(share)
        await self.rt.notifier.show(
            title,
            body,
            image=thumb,
            on_clicked=lambda: self.open(url),
            buttons=self.buttons_for(share.id),
        )

    def buttons_for(self, share_id: str) -> list[ButtonSpec]:
        # Each callback closes over this call's share_id: a press acts on the share its
        # notification was shown for, however many came after it.
        def press(action: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
            def pressed() -> None:
                self.rt.spawn(action())  # presses arrive in the loop; the work runs as a task

            return pressed

        return [
            ("Copy link", press(lambda: self.copy_link(share_id))),
            ("Revoke now", press(lambda: self._act("revoke_now", share_id))),
            ("+1 hour", press(lambda: self._act("extend", share_id, EXTEND_BY))),
        ]

    async def _act(self, what: str, share_id: str, *args: int) -> None:
        if self.actions is None:  # not wired (yet): nothing to act with
            log.warning("button pressed for %s, but nothing can act on it", share_id)
            return
        await getattr(self.actions, what)(share_id, *args)

    async def copy_link(self, share_id: str) -> None:
        """The Copy link button: the link goes on the clipboard again (read back)."""
        rt = self.rt
        share = rt.journal.get(share_id)
        if share is None or not self.is_live(share):
            await self.gone_already(share_id, share)
            return
        assert share.url
        copied = await rt.blocking(clipboard.copy, share.url)
        if copied.ok:
            log.info("link for %s (%s) copied again", share.name, share.id)
            return
        # The notification carries the link instead; it is a secret, so only there.
        await rt.notifier.show(
            f"Not copied: {share.name}", f"{share.url}\n({copied.reason})", buttons=()
        )
        if not rt.notifier.verified:
            log.warning(
                "link for %s (clipboard and notifications unavailable): %s", share.name, share.url
            )

    def is_live(self, share: Share) -> bool:
        return share.state is State.LIVE and (share.expires_at or 0) > self.rt.clock()

    async def gone_already(self, share_id: str, share: Share | None) -> None:
        name = share.name if share is not None else share_id
        log.info("button pressed for %s, which is no longer live", name)
        await self.rt.notifier.show(
            f"Already vanished: {name}", "Its link no longer works.", buttons=()
        )

    async def extended(self, share: Share) -> None:
        """The deadline moved (+1 hour): a fresh notification with the new time left."""
        left = format_duration((share.expires_at or 0) - self.rt.clock())
        log.info("%s (%s) now disappears in %s", share.name, share.id, left)
        if self.wants("ready"):
            thumb = self.rt.paths.thumb_for(share.id)
            await self.show_link(
                share,
                f"Link extended: {share.name}",
                f"Disappears in {left}. {self.where()}",
                thumb if thumb.exists() else None,
            )

    async def announce_many(self, shares: list[Share]) -> None:
        """A burst: one notification for all of them; the clipboard holds the last link."""
        rt = self.rt
        last = shares[-1]
        assert last.url
        copied = await rt.blocking(clipboard.copy, last.url)
        left = format_duration(min(s.expires_at or 0 for s in shares) - rt.clock())
        carried = "The last link is on the clipboard" if copied.ok else f"Last link: {last.url}"
        body = f"{carried}; `fadelink list` shows them all. Disappear in {left}. {self.where()}"
        ids = [s.id for s in shares]

        def on_all(what: str, *args: int) -> Callable[[], None]:
            async def act() -> None:
                for share_id in ids:  # the ids of this notification, bound now
                    await self._act(what, share_id, *args)

            return lambda: rt.spawn(act()) and None

        url = self.sender_links.for_share(last)  # the sender's own: never counted as a view
        if self.wants("ready"):
            await rt.notifier.show(
                f"{len(shares)} photos shared",
                body,
                on_clicked=lambda: self.open(url),
                buttons=[
                    ("Copy last link", lambda: rt.spawn(self.copy_link(last.id)) and None),
                    ("Revoke all", on_all("revoke_now")),
                    ("+1 hour", on_all("extend", EXTEND_BY)),
                ],
            )
        if not copied.ok and not (self.wants("ready") and rt.notifier.verified):
            log.warning("last link of %d shared (clipboard unavailable): %s", len(shares), last.url)
        for share in shares:
            rt.journal.mark_announced(share.id)
        log.info("shared %d photos in a burst, disappearing in %s", len(shares), left)

    async def already_shared(self, share: Share) -> None:
        """The same photo saved again while its link lives: no new upload, the link again."""
        rt = self.rt
        assert share.url
        copied = await rt.blocking(clipboard.copy, share.url)
        left = format_duration((share.expires_at or 0) - rt.clock())
        carried = "Link copied again" if copied.ok else share.url
        if self.wants("ready"):
            await self.show_link(
                share, f"Already shared: {share.name}", f"{carried}; {left} left. {self.where()}"
            )
        log.info("%s is already shared as %s, %s left", share.name, share.id, left)

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

    async def viewed(self, share: Share) -> None:
        """The view receipt: a link was opened for the first time (the sender never counts)."""
        if not self.wants("viewed"):
            return
        shared_at = share.shared_at or share.created_at
        after = format_duration((share.first_view_at or self.rt.clock()) - shared_at)
        where = {NET_LAN: "From this network.", NET_INTERNET: "From the internet."}
        body = where.get(share.viewer_net or "", "")
        if share.once:
            left = format_duration((share.expires_at or 0) - self.rt.clock())
            body += f" It was a view-once link: the photo disappears in {left}."
        log.info("%s (%s) was opened, %s after sharing", share.name, share.id, after)
        mine = self.sender_links.for_share(share)  # a click shows it to the sender, uncounted
        await self.rt.notifier.show(
            f"Your photo {share.name} was opened, {after} after sharing",
            body.strip(),
            on_clicked=lambda: self.open(mine),
        )

    async def vanished(self, shares: list[Share]) -> None:
        if not shares or not self.wants("vanished"):
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

    async def error(
        self, title: str, message: str, *, group: str | None = None, many: str | None = None
    ) -> None:
        """Tell about a failure. Failures of one group (default: same title) arriving close
        together become one notification; `many` is its title, with {n} for the count."""
        if not self.wants("errors"):
            return
        key = group or title
        self._many[key] = many or f"{title} ({{n}} times)"
        self._errors.add(key, title, message, self.rt.clock())
        if self._flusher is None or self._flusher.done():
            self._flusher = self.rt.spawn(self._flush_errors())

    async def _flush_errors(self) -> None:
        while (wait := self._errors.next_due(self.rt.clock())) is not None:
            await asyncio.sleep(wait)
            for key, items in self._errors.due(self.rt.clock()):
                await self.rt.notifier.show(*self._error_text(key, items), buttons=())

    def _error_text(self, key: str, items: list[tuple[str, str]]) -> tuple[str, str]:
        if len(items) == 1:
            return items[0]
        lines = [message for _, message in items[:ERRORS_LISTED]]
        if len(items) > ERRORS_LISTED:
            lines.append(
                f"…and {len(items) - ERRORS_LISTED} more; `fadelink list --all` shows them."
            )
        return self._many[key].format(n=len(items)), "\n".join(lines)
