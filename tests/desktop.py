"""A real, private desktop for tests: Xvfb, a D-Bus session bus and dunst.

Nothing is shared with the machine's own session: the X display is a free one, the bus has
no service files (nothing gets D-Bus-activated behind our back), and dunst reads only our
config, in which notifications never expire.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

# dunstctl is a shell script: it needs dbus-send, and busctl (systemd) for `history`.
BINARIES = ("Xvfb", "dbus-daemon", "dunst", "dunstctl", "dbus-send", "busctl", "xclip")

START_TIMEOUT = 10.0
POLL = 0.02

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# override_dbus_timeout = 0: notifications stay until closed, whatever timeout they ask for.
# stack_duplicates off: two identical notifications count as two.
_DUNSTRC = """[global]
    override_dbus_timeout = 0
    stack_duplicates = false
"""


def require(reason: str, env_var: str = "FADELINK_REQUIRE_DESKTOP") -> NoReturn:
    """Skip the test for want of `reason`, or fail it when env_var=1 says it must run."""
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{reason} (and {env_var}=1)", pytrace=False)
    pytest.skip(reason)


def require_binaries(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        require(f"missing {', '.join(missing)} (needed by this test)")


@dataclass
class Desktop:
    """A running test desktop; run programs in it with `env`."""

    env: dict[str, str]
    display: str
    bus_address: str

    def run(self, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def _checked(self, *args: str) -> str:
        done = self.run(*args)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def clipboard(self) -> str:
        """The CLIPBOARD selection's text ("" when empty)."""
        return self.run("xclip", "-o", "-selection", "clipboard").stdout

    def set_clipboard(self, text: str) -> None:
        """Another program takes the clipboard (xclip keeps serving it in the background,
        so its output goes nowhere: a pipe would never close)."""
        subprocess.run(
            ["xclip", "-selection", "clipboard"],
            input=text.encode(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=True,
        )

    def wait_clipboard(self, expected: Callable[[str], bool], timeout: float = 5.0) -> str:
        return _poll(self.clipboard, expected, timeout, "clipboard")

    def notification_count(self, kind: str = "displayed") -> int:
        """dunst's count of notifications: "displayed", "waiting" or "history"."""
        return int(self._checked("dunstctl", "count", kind))

    def wait_notifications(self, n: int, timeout: float = 5.0) -> int:
        """Wait until at least n notifications are displayed; returns how many are."""
        return _poll(self.notification_count, lambda count: count >= n, timeout, "displayed")

    def click_first(self) -> None:
        """Click the body of the first displayed notification (its default action)."""
        # `dunstctl action` succeeds silently when nothing is displayed.
        if self.notification_count() == 0:
            raise AssertionError("no notification displayed to click")
        self._checked("dunstctl", "action", "0")

    def close_all(self) -> None:
        self._checked("dunstctl", "close-all")

    def history(self) -> list[dict[str, Any]]:
        """Closes every notification, then lists them newest first as plain dicts
        (summary, body, appname, icon_path, ...): dunst's history holds only closed ones."""
        self.close_all()
        reply = json.loads(self._checked("dunstctl", "history"))
        return [{key: value["data"] for key, value in n.items()} for n in reply["data"][0]]


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still {value!r} after {timeout} s")
        time.sleep(POLL)


def _read_line(fd: int, proc: subprocess.Popen[bytes], what: str) -> str:
    """Read the line a starting daemon writes on fd once it is ready."""
    data = b""
    deadline = time.monotonic() + START_TIMEOUT
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 256)
            if not chunk:
                raise RuntimeError(f"{what} exited while starting (status {proc.poll()})")
            data += chunk
    return data.decode().strip()


def _start_reporting(args: list[str], what: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a daemon that writes one line (display, address) on an fd when ready."""
    read_fd, write_fd = os.pipe()
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [arg.replace("{fd}", str(write_fd)) for arg in args],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: killed whole at teardown
            )
        os.close(write_fd)
        write_fd = -1
        return proc, _read_line(read_fd, proc, what)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def start_bus(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A bare D-Bus session bus with no activatable services; returns (process, address)."""
    config = tmp / "bus.conf"
    config.write_text(_BUS_CONFIG.format(dir=tmp))
    return _start_reporting(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address={fd}"],
        "dbus-daemon",
        tmp / "dbus.log",
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process started with start_new_session, with everything in its group."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
            return


@contextlib.contextmanager
def bare_bus() -> Iterator[str]:
    """A D-Bus session bus on which nothing answers; yields its address."""
    require_binaries("dbus-daemon")
    # A short path: unix socket paths are limited to ~100 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="fl-bus-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, address = start_bus(tmp)
        yield address
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def start_desktop(*, dunst: bool = True) -> Iterator[Desktop]:
    """Xvfb + D-Bus session bus + dunst, torn down on exit. dunst=False leaves the bus without
    a notification server, for a test that brings its own (tests/notification_server.py)."""
    require_binaries(*(BINARIES if dunst else ("Xvfb", "dbus-daemon", "xclip")))
    tmp = Path(tempfile.mkdtemp(prefix="fl-desk-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        xvfb, number = _start_reporting(
            ["Xvfb", "-displayfd", "{fd}", "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
            "Xvfb",
            tmp / "xvfb.log",
        )
        procs.append(xvfb)
        bus, address = start_bus(tmp)
        procs.append(bus)

        env = dict(os.environ, DISPLAY=f":{number}", DBUS_SESSION_BUS_ADDRESS=address)
        env.pop("WAYLAND_DISPLAY", None)
        env.pop("XAUTHORITY", None)  # Xvfb was started without access control
        desktop = Desktop(env=env, display=env["DISPLAY"], bus_address=address)
        if not dunst:
            yield desktop
            return
        dunstrc = tmp / "dunstrc"
        dunstrc.write_text(_DUNSTRC)
        with (tmp / "dunst.log").open("wb") as out:
            dunst_proc = subprocess.Popen(
                ["dunst", "-config", str(dunstrc)],
                env=dict(env, XDG_CONFIG_HOME=str(tmp)),  # no drop-ins from the user's config
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(dunst_proc)
        _wait_dunst(desktop, dunst_proc, tmp / "dunst.log")
        yield desktop
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_dunst(desktop: Desktop, dunst: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while desktop.run("dunstctl", "count", "displayed").returncode != 0:
        if dunst.poll() is not None:
            raise RuntimeError(f"dunst exited ({dunst.returncode}): {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"dunst did not answer within {START_TIMEOUT} s")
        time.sleep(POLL)
