"""The link reaches the real clipboard, and every way of failing says so instead of hanging."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.clipboard import MISMATCH, NO_BACKEND, TIMED_OUT, CopyResult, copy
from tests.desktop import Desktop, require_binaries

LINK = "https://192.168.1.20:8443/s/Zq3xT9v/IMG_2041.jpg"

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="X11/Wayland clipboard")


def use_display(monkeypatch: pytest.MonkeyPatch, display: str | None) -> None:
    for name in ("WAYLAND_DISPLAY", "XAUTHORITY"):
        monkeypatch.delenv(name, raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        monkeypatch.setenv("DISPLAY", display)


def test_copied_link_is_on_the_clipboard(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> None:
    use_display(monkeypatch, desktop.display)
    assert copy(LINK) == CopyResult(True, None)
    assert desktop.clipboard() == LINK


def test_display_without_x_server_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    require_binaries("xclip")
    number = next(n for n in range(917, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    use_display(monkeypatch, f":{number}")
    result = copy(LINK)
    assert not result.ok
    assert result.reason == MISMATCH


def test_no_display_means_no_backend_until_one_appears(
    desktop: Desktop, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_display(monkeypatch, None)
    assert copy(LINK) == CopyResult(False, NO_BACKEND)
    # The daemon may start before the session: a DISPLAY set later is used.
    use_display(monkeypatch, desktop.display)
    assert copy(LINK).ok
    assert desktop.clipboard() == LINK


def test_captured_output_does_not_hang(desktop: Desktop) -> None:
    # `link=$(fadelink share x.jpg)`: xclip's server must not hold our stdout open.
    code = "from daemon.clipboard import copy; print(copy('x').ok)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=desktop.env, capture_output=True, text=True, timeout=20
    )
    assert done.stdout == "True\n", done.stderr
    # ...and the clipboard outlives the process that copied.
    assert desktop.clipboard() == "x"


def test_hanging_clipboard_tool_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # wl-copy can hang on GNOME; stand-ins that never finish play it here.
    pids = tmp_path / "pids"
    for tool in ("wl-copy", "wl-paste"):
        script = tmp_path / tool
        script.write_text(
            f"#!{sys.executable}\nimport os, time\n"
            f"with open({str(pids)!r}, 'a') as f: f.write(f'{{os.getpid()}}\\n')\n"
            "time.sleep(60)\n"
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-test")

    started = time.monotonic()
    result = copy(LINK, timeout=1.0)
    elapsed = time.monotonic() - started

    assert result == CopyResult(False, TIMED_OUT)
    assert elapsed < 3.0
    # Killed at once; poll only because /proc shows the death a moment later.
    deadline = time.monotonic() + 2.0
    while any(_alive(int(pid)) for pid in pids.read_text().split()):
        assert time.monotonic() < deadline, "the hung clipboard tool was left running"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
