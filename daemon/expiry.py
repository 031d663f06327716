"""Expiry: sleep until the next deadline (never more than 30 s), then revoke what is due."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from daemon import scheduler
from daemon.durations import format_duration
from daemon.errors import FadelinkError, NeedsSignIn, TransientError, Unreachable
from daemon.handout import Handout
from daemon.journal import Share, State
from daemon.runtime import Runtime

log = logging.getLogger(__name__)

JOURNAL_POLL = 0.5  # how soon the daemon notices what the CLI wrote


class Expiry:
    def __init__(self, rt: Runtime, handout: Handout) -> None:
        self.rt = rt
        self.handout = handout

    async def revoke_overdue_at_start(self) -> None:
        """Before anything else: links whose deadline passed while fadelink was not running."""
        rt = self.rt
        now = rt.clock()
        overdue = [s for s in rt.journal.due(now) if s.state is State.LIVE]
        stuck = rt.journal.shares([State.REVOKING])
        for share in overdue + stuck:
            await self.revoke(share, "expired while fadelink was not running", notify=False)
        if overdue:
            names = ", ".join(s.name for s in overdue[:5]) + ("…" if len(overdue) > 5 else "")
            late = max(now - (s.expires_at or now) for s in overdue)
            plural = "s" if len(overdue) > 1 else ""
            await self.handout.error(
                f"{len(overdue)} link{plural} vanished late",
                f"{names}: the deadline passed while fadelink was not running "
                f"(up to {format_duration(late)} late). They are revoked now.",
            )

    async def run(self) -> None:
        rt = self.rt
        while True:
            due = rt.journal.due(rt.clock())
            vanished = [s for s in due if await self.revoke(s, "its lifetime ended", notify=False)]
            await self.handout.vanished([s for s in vanished if s.state is State.LIVE])
            delay = scheduler.sleep_for(rt.clock(), rt.journal.next_deadline())
            rt.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.wake.wait(), delay)

    async def revoke(self, share: Share, reason: str, *, notify: bool = True) -> bool:
        """Revoke one share; True when it is gone. Failures are recorded and retried later."""
        rt = self.rt
        try:
            done = await rt.blocking(rt.pipeline.revoke, share, reason)
        except (FadelinkError, OSError) as exc:
            now = rt.clock()
            fresh = rt.journal.get(share.id) or share
            delay = scheduler.retry_delay(fresh.attempts + 1)
            if isinstance(exc, TransientError) and exc.retry_after:
                delay = max(delay, exc.retry_after)  # Retry-After: never sooner
            attempts = rt.journal.revoke_failed(share.id, str(exc), now + delay, now)
            log.warning("could not revoke %s yet (attempt %d): %s", share.name, attempts, exc)
            if isinstance(exc, NeedsSignIn | Unreachable) and not rt.gate.waiting(share.backend):
                # Retried the moment the backend is back (the gate says so once).
                rt.spawn(rt.gate.wait(share.backend, exc))
            if attempts == 1 and not isinstance(exc, NeedsSignIn):
                await self.handout.error(
                    f"Could not revoke {share.name} yet",
                    f"{exc}. fadelink keeps retrying; `fadelink list` shows it.",
                    group="revoke",
                    many="{n} links could not be revoked yet",
                )
            return False
        if done.state is not State.GONE:
            return False
        log.info("%s (%s) vanished: %s", share.name, share.id, reason)
        if notify and share.state is State.LIVE:
            await self.handout.vanished([share])
        return True

    async def revoke_now(self, share_id: str) -> None:
        """The Revoke now button: the same revocation as at the deadline, for this share."""
        share = self.rt.journal.get(share_id)
        if share is None or share.state is not State.LIVE:
            await self.handout.gone_already(share_id, share)
            return
        await self.revoke(share, "revoked by you")
        self.rt.wake.set()

    async def extend(self, share_id: str, seconds: int) -> None:
        """The +1 hour button: the deadline moves later, in the journal (and at the backend,
        for one that keeps its own expiry)."""
        rt = self.rt
        share = rt.journal.get(share_id)
        if share is None or not self.handout.is_live(share):
            await self.handout.gone_already(share_id, share)
            return
        assert share.expires_at is not None and share.remote_path is not None
        # Optional for a backend: only one whose links expire server-side needs it.
        move = getattr(rt.pipeline.backend_for(share.backend), "extend_link", None)
        if move is not None:
            try:
                await rt.blocking(move, share.remote_path, share.url, share.expires_at + seconds)
            except (FadelinkError, OSError) as exc:
                await self.handout.error(f"Could not extend {share.name}", str(exc))
                return
        if rt.journal.extend(share_id, seconds, rt.clock()) is None:
            await self.handout.gone_already(share_id, share)
            return
        rt.wake.set()  # the expiry loop re-reads the next deadline
        extended = rt.journal.get(share_id)
        assert extended is not None
        await self.handout.extended(extended)

    async def watch_journal(self) -> None:
        """The CLI writes to the journal; data_version tells us, and deadlines are re-read."""
        rt = self.rt
        version = rt.journal.data_version()
        while True:
            await asyncio.sleep(JOURNAL_POLL)
            current = rt.journal.data_version()
            if current != version:
                version = current
                rt.wake.set()
