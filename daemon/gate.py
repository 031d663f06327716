"""Work that waits for its backend: signed out (NeedsSignIn) or unreachable (Unreachable).

Rather than retrying blindly, waiting work parks here. One small probe per backend and cause
asks, every PROBE_EVERY seconds and without touching the network for sign-in, whether it is
worth trying again (signed in again? answering again?); when it is, every waiter goes at once.
The user is told once per episode, not once per photo.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daemon.errors import NeedsSignIn, Unreachable

if TYPE_CHECKING:
    from daemon.runtime import Runtime

log = logging.getLogger(__name__)

PROBE_EVERY = 2.0  # seconds between two checks: cheap, and prompt once things are back


@dataclass
class _Episode:
    reopened: asyncio.Event = field(default_factory=asyncio.Event)
    told_photo: bool = False


class Gate:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._episodes: dict[tuple[str, str], _Episode] = {}

    def waiting(self, backend: str) -> bool:
        return any(b == backend and not e.reopened.is_set() for (b, _), e in self._episodes.items())

    async def wait(
        self, backend: str, cause: NeedsSignIn | Unreachable, photo: str | None = None
    ) -> None:
        """Return once `backend` is worth trying again. `photo`: the name of a photo that
        waits (said once per episode)."""
        kind = "sign-in" if isinstance(cause, NeedsSignIn) else "offline"
        key = (backend, kind)
        episode = self._episodes.get(key)
        if episode is None or episode.reopened.is_set():
            episode = self._episodes[key] = _Episode()
            self.rt.spawn(self._probe(backend, kind, episode))
            log.warning("%s: %s; waiting", backend, cause)
            if kind == "sign-in":
                await self._tell(
                    str(cause),
                    "Photos saved meanwhile wait: they are shared, and due links revoked, "
                    "once you have signed in.",
                )
        if photo is not None and kind == "offline" and not episode.told_photo:
            episode.told_photo = True
            await self._tell(
                f"Waiting to share {photo}",
                f"{cause.args[0] if cause.args else cause}. It goes as soon as the service "
                "answers again.",
            )
        await episode.reopened.wait()

    async def _tell(self, title: str, body: str) -> None:
        if "errors" in getattr(self.rt.settings, "notify_kinds", ("errors",)):
            await self.rt.notifier.show(title, body)

    async def _probe(self, backend_name: str, kind: str, episode: _Episode) -> None:
        rt = self.rt
        backend = rt.pipeline.backend_for(backend_name)
        check = getattr(backend, "signed_in" if kind == "sign-in" else "reachable", None)
        while True:
            await asyncio.sleep(PROBE_EVERY)
            if check is None:
                break
            try:
                if await rt.blocking(check):
                    break
            except Exception as exc:  # a probe that fails is a "not yet"
                log.debug("probe of %s failed: %s", backend_name, exc)
        log.info("%s: %s again; waiting work resumes", backend_name, kind.replace("-", " "))
        # Revocations waiting for a retry go now (the expiry loop is woken by the change).
        await rt.blocking(rt.journal.retry_revocations_now, backend_name, rt.clock())
        rt.wake.set()
        episode.reopened.set()


async def warm_up(rt: Runtime, backend_name: str) -> None:
    """At start: load the backend (the SDK import is slow) and sign in now, not at the first
    photo; a missing or revoked sign-in is told at once."""
    try:
        backend = await rt.blocking(rt.pipeline.backend_for, backend_name)
        warm = getattr(backend, "warm", None)
        if warm is not None:
            await rt.blocking(warm)
    except (NeedsSignIn, Unreachable) as exc:
        await rt.gate.wait(backend_name, exc)
    except Exception as exc:  # anything else: the first photo will say it
        log.info("%s not ready yet: %s", backend_name, exc)
