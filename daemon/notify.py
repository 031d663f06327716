"""Desktop notifications, best effort: desktop-notifier when a notification server answers,
plyer otherwise. Nothing here raises into the caller; failures are logged.

Use it from the running asyncio loop: desktop-notifier delivers clicks through that loop
(D-Bus signals read by dbus-fast), and on_clicked is called in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from desktop_notifier import Attachment, Button, Capability, DesktopNotifier, Notification

log = logging.getLogger(__name__)

BACKENDS = ("desktop-notifier", "plyer")
# A notification server started by D-Bus activation can take a moment to answer.
PROBE_TIMEOUT = 5.0
SHOW_TIMEOUT = 5.0
# Without a notification server, look for one again at most this often: a service started
# before the desktop session gets the session's server once it appears.
REPROBE_INTERVAL = 60.0

# A button: its title and what pressing it does (called in the loop).
ButtonSpec = tuple[str, Callable[[], None]]


class Notifier:
    """Shows notifications. `await start()` picks the backend (the first show() does it
    otherwise); it is kept until start() is called again.

    prefer="plyer" tries plyer first (for tests and odd desktops); the default tries
    desktop-notifier first, which alone supports clicks.
    """

    def __init__(self, app_name: str = "fadelink", *, prefer: str | None = None) -> None:
        if prefer is not None and prefer not in BACKENDS:
            raise ValueError(f"prefer must be one of {BACKENDS}, not {prefer!r}")
        self.app_name = app_name
        self.backend_name = "none"
        self.available = False
        # Why this backend: one line a person can read (for logs and `fadelink doctor`).
        self.detail = "not started"
        self._prefer = prefer
        self._desktop: DesktopNotifier | None = None
        self._capabilities: frozenset[Capability] = frozenset()
        self._plyer: Any = None
        self._started = False
        self._probed_at = 0.0

    @property
    def buttons(self) -> bool:
        """The notification server shows buttons and reports presses ("actions")."""
        return self._desktop is not None and Capability.BUTTONS in self._capabilities

    @property
    def capabilities(self) -> list[str]:
        """What the notification server supports, as names (for `fadelink doctor`)."""
        return sorted(c.name.lower() for c in self._capabilities)

    @property
    def verified(self) -> bool:
        """A notification server answered: what we show is seen (plyer cannot tell)."""
        return self.backend_name == "desktop-notifier"

    async def start(self) -> None:
        """Pick the backend. Calling it again re-detects (say, after the session started)."""
        self._started = True
        self._probed_at = time.monotonic()
        try:
            await self._start()
        except Exception:  # best effort by contract
            log.warning("notifications: start-up failed", exc_info=True)
            self._use_none("start-up failed")

    def _should_reprobe(self) -> bool:
        return (
            self._prefer is None
            and self._desktop is None
            and time.monotonic() - self._probed_at > REPROBE_INTERVAL
        )

    async def _start(self) -> None:
        await self.close()
        self._plyer = None
        order = ("plyer", "desktop-notifier") if self._prefer == "plyer" else BACKENDS
        problems: list[str] = []
        for name in order:
            if name == "desktop-notifier":
                problem = await self._probe_desktop()
            else:
                problem = self._probe_plyer()
            if problem is not None:
                problems.append(f"{name}: {problem}")
                continue
            self.backend_name, self.available = name, True
            # plyer cannot tell whether a notification showed, nor report clicks.
            limits = " (no clicks, failures not detectable)" if name == "plyer" else ""
            detail = "; ".join([f"using {name}{limits}", *problems])
            if detail != self.detail:  # a re-probe that finds the same says nothing
                level = logging.WARNING if problems else logging.INFO
                log.log(level, "notifications: %s", detail)
            self.detail = detail
            return
        self._use_none("; ".join(problems))

    def _use_none(self, why: str) -> None:
        self.backend_name, self.available = "none", False
        detail = f"no way to show notifications ({why})"
        if detail != self.detail:
            log.warning("notifications: %s", detail)
        self.detail = detail

    async def _probe_desktop(self) -> str | None:
        """Connects desktop-notifier if a notification server answers; returns why not."""
        notifier = DesktopNotifier(app_name=self.app_name, app_icon=None)
        try:
            capabilities = await asyncio.wait_for(notifier.get_capabilities(), PROBE_TIMEOUT)
        except Exception as exc:  # dbus-fast raises many kinds: no bus, no server, timeout
            await _disconnect(notifier)
            return f"no notification server answered ({type(exc).__name__}: {exc})"
        if not capabilities:
            await _disconnect(notifier)
            return "the notification server reports no capabilities"
        self._desktop, self._capabilities = notifier, capabilities
        return None

    def _probe_plyer(self) -> str | None:
        try:
            # plyer warns (UserWarning) when it settles for notify-send; we report it ourselves.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from plyer import notification
                from plyer.facades import Notification as Facade

                implementation = notification.__class__  # resolves plyer's lazy proxy
        except Exception as exc:
            return f"unusable ({exc})"
        if implementation is Facade:  # the bare facade: nothing on this platform
            return "no implementation for this platform"
        self._plyer = notification
        log.debug("plyer implementation: %s", implementation.__name__)
        return None

    async def show(
        self,
        title: str,
        message: str,
        *,
        image: Path | None = None,
        on_clicked: Callable[[], None] | None = None,
        buttons: Sequence[ButtonSpec] = (),
    ) -> None:
        """Show a notification; on_clicked runs (in the loop) when its body is clicked, a
        button's callback when it is pressed. Buttons are left out where the server has
        none: the notification is then a plain one."""
        if not self._started or self._should_reprobe():
            await self.start()
        try:
            if self._desktop is not None:
                await self._show_desktop(self._desktop, title, message, image, on_clicked, buttons)
            elif self._plyer is not None:
                await self._show_plyer(title, message, image)
            else:
                log.info("notification not shown (%s): %s", self.detail, title)
        except Exception:  # best effort by contract
            log.warning("notification %r failed", title, exc_info=True)

    async def _show_desktop(
        self,
        notifier: DesktopNotifier,
        title: str,
        message: str,
        image: Path | None,
        on_clicked: Callable[[], None] | None,
        buttons: Sequence[ButtonSpec],
    ) -> None:
        shown = (
            tuple(
                # A readable, stable key ("copy-link"): what the server reports on a press.
                Button(label, on_pressed=_guarded(callback, label), identifier=_key(label))
                for label, callback in buttons
            )
            if Capability.BUTTONS in self._capabilities
            else ()
        )
        notification = Notification(
            title,
            message,
            # An attachment is the "image-path" hint: shown as the picture. as_uri()
            # needs an absolute path (a relative one would drop the whole notification).
            attachment=Attachment(path=image.absolute()) if image is not None else None,
            on_clicked=_guarded(on_clicked, "on_clicked") if on_clicked is not None else None,
            buttons=shown,
        )
        # send_notification never raises; a failure shows up only as its own log warning.
        await asyncio.wait_for(notifier.send_notification(notification), SHOW_TIMEOUT)

    async def _show_plyer(self, title: str, message: str, image: Path | None) -> None:
        def notify() -> None:
            self._plyer.notify(
                title=title,
                message=message,
                app_name=self.app_name,
                app_icon=str(image.absolute()) if image is not None else "",
            )

        # plyer blocks (it runs notify-send on Linux) and cannot be cancelled: keep it off
        # the loop, and stop waiting for it after a while.
        await asyncio.wait_for(asyncio.to_thread(notify), SHOW_TIMEOUT)

    async def close(self) -> None:
        """Let go of the notification server connection (at shutdown)."""
        if self._desktop is not None:
            await _disconnect(self._desktop)
            self._desktop = None


def _key(label: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split()) or "button"


def _guarded(callback: Callable[[], None], what: str) -> Callable[[], None]:
    def call() -> None:
        try:
            callback()
        except Exception:  # a broken callback must not break the D-Bus signal handling
            log.warning("notification %s callback failed", what, exc_info=True)

    return call


async def _disconnect(notifier: DesktopNotifier) -> None:
    # desktop-notifier has no public way to close its D-Bus connection (the `bus` of its
    # Linux backend); without this, each re-detection would leak one.
    bus = getattr(getattr(notifier, "_backend", None), "bus", None)
    if bus is None:
        return
    with contextlib.suppress(Exception):
        bus.disconnect()
        await asyncio.wait_for(bus.wait_for_disconnect(), 1.0)
