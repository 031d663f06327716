"""Notifications reach a real notification server (dunst), clicks come back, and a desktop
without a server degrades to a log line instead of an error."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from daemon.notify import Notifier
from tests.desktop import Desktop, bare_bus, require_binaries
from tests.notification_server import WITHOUT_ACTIONS, NotificationServer

TITLE = "Link copied"
MESSAGE = "IMG_2041.jpg · expires in 1 hour"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="D-Bus notifications")


def use_desktop(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    # dbus-fast reads the bus address when it connects, plyer's notify-send when it runs.
    for name in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
        monkeypatch.setenv(name, env[name])


def photo(path: Path) -> Path:
    Image.new("RGB", (64, 48), (200, 40, 40)).save(path)
    return path


def test_notification_shows_image_and_reports_click(
    desktop: Desktop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_desktop(monkeypatch, desktop.env)
    image = photo(tmp_path / "IMG_2041.jpg")

    async def scenario() -> None:
        notifier = Notifier()
        await notifier.start()
        assert (notifier.backend_name, notifier.available) == ("desktop-notifier", True)
        clicked = asyncio.Event()
        await notifier.show(TITLE, MESSAGE, image=image, on_clicked=clicked.set)
        await asyncio.to_thread(desktop.wait_notifications, 1)
        await asyncio.to_thread(desktop.click_first)
        await asyncio.wait_for(clicked.wait(), timeout=5)
        await notifier.close()

    asyncio.run(scenario())
    assert desktop.notification_count() == 1
    [shown] = desktop.history()
    assert (shown["summary"], shown["body"], shown["appname"]) == (TITLE, MESSAGE, "fadelink")
    assert shown["icon_path"] == str(image)


def test_relative_image_path_still_shows(
    desktop: Desktop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # desktop-notifier drops the whole notification when the image path is relative.
    use_desktop(monkeypatch, desktop.env)
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "IMG_2041.jpg")

    async def scenario() -> None:
        notifier = Notifier()
        await notifier.show(TITLE, MESSAGE, image=Path("IMG_2041.jpg"))  # starts itself
        await notifier.close()

    asyncio.run(scenario())
    desktop.wait_notifications(1)
    [shown] = desktop.history()
    assert shown["icon_path"] == str(tmp_path / "IMG_2041.jpg")


def test_plyer_fallback_shows_in_dunst(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> None:
    require_binaries("notify-send")
    use_desktop(monkeypatch, desktop.env)

    async def scenario() -> None:
        notifier = Notifier(prefer="plyer")
        await notifier.start()
        assert (notifier.backend_name, notifier.available) == ("plyer", True)
        await notifier.show(TITLE, MESSAGE)

    asyncio.run(scenario())
    assert desktop.wait_notifications(1) == 1
    [shown] = desktop.history()
    assert (shown["summary"], shown["body"], shown["appname"]) == (TITLE, MESSAGE, "fadelink")


def test_bus_without_notification_server_falls_back_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    require_binaries("notify-send")
    caplog.set_level(logging.INFO, logger="daemon.notify")
    with bare_bus() as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)

        async def scenario() -> Notifier:
            notifier = Notifier()
            await notifier.start()
            await notifier.show(TITLE, MESSAGE, on_clicked=lambda: None)
            return notifier

        notifier = asyncio.run(scenario())
    assert notifier.backend_name == "plyer"
    assert "desktop-notifier: no notification server answered" in notifier.detail
    assert any(
        r.levelno == logging.WARNING and "no notification server answered" in r.getMessage()
        for r in caplog.records
    )


def test_nothing_to_show_with_is_unavailable_not_an_error(tmp_path: Path) -> None:
    # No server on the bus and no notify-send on PATH: plyer has nothing either.
    # In a child process, because plyer settles on its implementation once per process.
    code = """if True:
        import asyncio, json, logging
        from daemon.notify import Notifier
        logging.basicConfig(level=logging.INFO)
        async def main():
            notifier = Notifier()
            await notifier.show("t", "m")
            return notifier
        n = asyncio.run(main())
        print(json.dumps([n.backend_name, n.available, n.detail]))
    """
    with bare_bus() as address:
        env = {"PATH": str(tmp_path), "DBUS_SESSION_BUS_ADDRESS": address}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 0, done.stderr
    backend, available, detail = json.loads(done.stdout)
    assert (backend, available) == ("none", False)
    assert "no way to show notifications" in detail
    assert "no way to show notifications" in done.stderr  # logged


def test_buttons_reach_the_server_and_each_press_acts_on_its_own_notification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with bare_bus() as address, NotificationServer(address) as server:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        pressed: list[str] = []

        async def scenario() -> None:
            notifier = Notifier()
            await notifier.start()
            assert notifier.buttons and "buttons" in notifier.capabilities
            for name in ("first", "second"):
                await notifier.show(
                    f"Link ready: {name}",
                    MESSAGE,
                    buttons=[
                        ("Copy link", lambda name=name: pressed.append(f"copy {name}")),
                        ("+1 hour", lambda name=name: pressed.append(f"extend {name}")),
                    ],
                )
            first = server.wait_summary("Link ready: first")
            assert list(first.buttons) == ["Copy link", "+1 hour"]
            await asyncio.to_thread(server.press, first, "+1 hour")
            second = server.wait_summary("Link ready: second")
            await asyncio.to_thread(server.press, second, "Copy link")
            deadline = asyncio.get_running_loop().time() + 5
            while len(pressed) < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)  # the presses come back as D-Bus signals
            await notifier.close()

        asyncio.run(scenario())
    assert pressed == ["extend first", "copy second"]


def test_server_without_actions_gets_a_plain_notification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with bare_bus() as address, NotificationServer(address, WITHOUT_ACTIONS) as server:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)

        async def scenario() -> Notifier:
            notifier = Notifier()
            await notifier.show(TITLE, MESSAGE, buttons=[("Copy link", lambda: None)])
            await notifier.close()
            return notifier

        notifier = asyncio.run(scenario())
        shown = server.wait_summary(TITLE)
    assert not notifier.buttons and notifier.backend_name == "desktop-notifier"
    assert (shown.body, shown.buttons) == (MESSAGE, {})
