"""A notification server of our own on the test D-Bus: it records what fadelink asks to show
and presses buttons, which dunst cannot do from the command line.

It implements org.freedesktop.Notifications (the freedesktop notification spec) with
dbus-fast, in a thread with its own event loop, so a test drives it with plain calls while the
daemon under test runs as a subprocess on the same bus.
"""

# No `from __future__ import annotations`: dbus-fast reads the D-Bus signatures from the
# annotations at class creation.

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"

WITH_ACTIONS = ("actions", "body", "icon-static")
WITHOUT_ACTIONS = ("body", "icon-static")

# Reasons for NotificationClosed (the spec's numbers).
EXPIRED, DISMISSED, CLOSED_BY_CALL = 1, 2, 3


@dataclass
class Shown:
    """One Notify call, as the server received it."""

    id: int
    app_name: str
    summary: str
    body: str
    actions: dict[str, str]  # action key → button label ("default" is a click on the body)
    hints: dict[str, Any]
    closed: int | None = None  # the reason, once closed

    @property
    def buttons(self) -> dict[str, str]:
        """The buttons a user sees: label → key (the body click is not a button)."""
        return {label: key for key, label in self.actions.items() if key != "default"}


class _Interface(ServiceInterface):
    def __init__(self, server: "NotificationServer") -> None:
        super().__init__(NAME)
        self.server = server

    @dbus_method()
    def GetCapabilities(self) -> Annotated[list[str], DBusSignature("as")]:
        return list(self.server.capabilities)

    @dbus_method()
    def GetServerInformation(
        self,
    ) -> Annotated[tuple[str, str, str, str], DBusSignature("ssss")]:
        return ("fadelink-test-server", "fadelink tests", "1.0", "1.2")

    @dbus_method()
    def Notify(
        self,
        app_name: DBusStr,
        replaces_id: DBusUInt32,
        app_icon: DBusStr,
        summary: DBusStr,
        body: DBusStr,
        actions: Annotated[list[str], DBusSignature("as")],
        hints: Annotated[dict[str, Variant], DBusSignature("a{sv}")],
        expire_timeout: Annotated[int, DBusSignature("i")],
    ) -> DBusUInt32:
        return self.server._record(app_name, replaces_id, summary, body, actions, hints)

    @dbus_method()
    def CloseNotification(self, id: DBusUInt32) -> None:
        self.server._closed(id, CLOSED_BY_CALL)
        self.NotificationClosed(id, CLOSED_BY_CALL)

    @dbus_signal()
    def NotificationClosed(
        self, id: int, reason: int
    ) -> Annotated[tuple[int, int], DBusSignature("uu")]:
        return (id, reason)

    @dbus_signal()
    def ActionInvoked(self, id: int, key: str) -> Annotated[tuple[int, str], DBusSignature("us")]:
        return (id, key)


@dataclass
class NotificationServer:
    """Owns org.freedesktop.Notifications on `bus_address` while started."""

    bus_address: str
    capabilities: tuple[str, ...] = WITH_ACTIONS
    shown: list[Shown] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _interface: _Interface | None = None
    _bus: MessageBus | None = None

    def __enter__(self) -> "NotificationServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="notification-server", daemon=True)
        self._thread.start()
        self._call(self._connect())

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    async def _connect(self) -> None:
        bus = await MessageBus(bus_address=self.bus_address, bus_type=BusType.SESSION).connect()
        self._interface = _Interface(self)
        bus.export(PATH, self._interface)
        await bus.request_name(NAME)
        self._bus = bus

    def _call(self, coro: Any, timeout: float = 5.0) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def disconnect() -> None:
            if self._bus is not None:
                self._bus.disconnect()

        self._call(disconnect())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None

    # -- what the server was asked ---------------------------------------------------------

    def _record(
        self,
        app_name: str,
        replaces_id: int,
        summary: str,
        body: str,
        actions: list[str],
        hints: dict[str, Variant],
    ) -> int:
        with self._lock:
            nid = replaces_id or self._next_id
            self._next_id = max(self._next_id, nid) + 1
            self.shown.append(
                Shown(
                    id=nid,
                    app_name=app_name,
                    summary=summary,
                    body=body,
                    # The spec's flat list: key, label, key, label...
                    actions=dict(zip(actions[::2], actions[1::2], strict=True)),
                    hints={k: v.value for k, v in hints.items()},
                )
            )
        return nid

    def _closed(self, nid: int, reason: int) -> None:
        with self._lock:
            for shown in self.shown:
                if shown.id == nid:
                    shown.closed = reason

    def all(self) -> list[Shown]:
        with self._lock:
            return list(self.shown)

    def wait_for(
        self, match: Callable[[Shown], bool], timeout: float = 15.0, what: str = "notification"
    ) -> Shown:
        """The first notification that matches, waiting for it up to timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((s for s in self.all() if match(s)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                summaries = [s.summary for s in self.all()]
                raise AssertionError(f"no {what} within {timeout} s; shown: {summaries}")
            time.sleep(0.02)  # poll

    def wait_summary(self, summary: str, timeout: float = 15.0) -> Shown:
        return self.wait_for(lambda s: s.summary == summary, timeout, repr(summary))

    # -- what a user does ------------------------------------------------------------------

    def press(self, shown: Shown, label: str) -> None:
        """Press the button labelled `label` on that notification; the server then closes
        it, as notification servers do after an action."""
        key = shown.buttons[label]
        self._emit(shown.id, key)

    def click(self, shown: Shown) -> None:
        """Click the notification's body (its "default" action)."""
        assert "default" in shown.actions, shown.actions
        self._emit(shown.id, "default")

    def _emit(self, nid: int, key: str) -> None:
        async def emit() -> None:
            assert self._interface is not None
            self._interface.ActionInvoked(nid, key)
            self._interface.NotificationClosed(nid, DISMISSED)

        self._call(emit())
        self._closed(nid, DISMISSED)

    def close(self, shown: Shown, reason: int = DISMISSED) -> None:
        async def emit() -> None:
            assert self._interface is not None
            self._interface.NotificationClosed(shown.id, reason)

        self._call(emit())
        self._closed(shown.id, reason)
