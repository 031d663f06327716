"""Put a link on the desktop clipboard and check that it arrived.

pyperclip lives behind this module and runs in a helper child process, because in-process it
(1) caches the backend it found first, so a DISPLAY that appears later is ignored;
(2) starts xclip with our own stdout/stderr, and xclip's selection-serving child keeps them
open, so `link=$(fadelink share x.jpg)` would hang; (3) can block forever in wl-copy.
The helper copies, reads the clipboard back and reports; we compare, because xclip
"succeeds" silently when DISPLAY points at no X server.

A service started before the desktop session has no DISPLAY of its own; the session imports
it into the user manager later (`systemctl --user import-environment`), so each copy without
a display asks the user manager for it: the clipboard works once the session is there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NO_BACKEND = "no clipboard backend (install xclip or wl-clipboard)"
MISMATCH = "clipboard read back a different text"
TIMED_OUT = "clipboard timed out"

# What a desktop session passes to the programs it starts, and a service may lack.
SESSION_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY")
PROBE = "fadelink clipboard check"

# A long-lived helper: starting Python and importing pyperclip cost ~30 ms, on every link.
# argv: pyperclip's import directory, the fd for answers. stdin: one JSON request a line.
_WORKER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import pyperclip
answers = os.fdopen(int(sys.argv[2]), "w", encoding="utf-8", buffering=1)
for line in sys.stdin:
    request = json.loads(line)
    text, restore = request["text"], request["restore"]
    try:
        before = pyperclip.paste() if restore else ""
        pyperclip.copy(text)
        # xclip returns before its server owns the selection: the previous owner may still
        # answer for a moment. Read again until the text is there, for up to a second.
        deadline = time.monotonic() + 1.0
        pasted = pyperclip.paste()
        while pasted.rstrip("\\n") != text.rstrip("\\n") and time.monotonic() < deadline:
            time.sleep(0.02)
            pasted = pyperclip.paste()
        report = {"pasted": pasted}
        if before:
            pyperclip.copy(before)
    except pyperclip.PyperclipException as exc:
        report = {"no_backend": str(exc)}
    answers.write(json.dumps(report) + "\\n")
"""


@dataclass(frozen=True)
class CopyResult:
    ok: bool
    reason: str | None  # why not, in words a person can read; None when ok


def copy(text: str, *, timeout: float = 3.0) -> CopyResult:
    """Copy text to the clipboard and read it back; never raises, returns within ~timeout."""
    try:
        return _copy(text, timeout, restore=False)
    except Exception as exc:  # best effort by contract: a clipboard failure must not stop a share
        log.warning("clipboard copy failed", exc_info=True)
        return CopyResult(False, f"clipboard failed: {exc}")


def round_trip(*, timeout: float = 3.0) -> CopyResult:
    """Check the clipboard (`fadelink doctor`): copy a probe, read it back, and put back the
    text that was there before."""
    try:
        return _copy(PROBE, timeout, restore=True)
    except Exception as exc:
        return CopyResult(False, f"clipboard failed: {exc}")


def session_env(timeout: float = 2.0) -> dict[str, str]:
    """Our environment, plus the display variables the user manager has (systemd) when we
    have none: a service started before the desktop session learns them this way."""
    env = dict(os.environ)
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or shutil.which("systemctl") is None:
        return env
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return env
    if done.returncode != 0:
        return env
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        if name in SESSION_VARIABLES and value:
            env[name] = value
    return env


class _Worker:
    """The helper process, restarted whenever the environment it needs changed (a DISPLAY
    that appeared, another PATH) or it timed out (a hung wl-copy is killed with it)."""

    def __init__(self, env: dict[str, str]) -> None:
        spec = importlib.util.find_spec("pyperclip")
        if spec is None or spec.origin is None:
            raise RuntimeError("pyperclip is not installed")
        # The directory to import pyperclip from: its package's parent, or a lone module's own.
        origin = Path(spec.origin)
        import_dir = origin.parent.parent if spec.submodule_search_locations else origin.parent
        self.env = env
        read_fd, write_fd = os.pipe()
        try:
            # -I -S: start fast and ignore the caller's cwd and PYTHON* variables.
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WORKER, str(import_dir), str(write_fd)],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # xclip's server inherits these: never our own
                stderr=subprocess.DEVNULL,
                pass_fds=(write_fd,),  # answers come here; xclip (close_fds) never gets it
                start_new_session=True,  # own process group, so a hung wl-copy can be killed
            )
        finally:
            os.close(write_fd)
        self._answers = read_fd
        self._buffer = b""

    def ask(self, text: str, restore: bool, timeout: float) -> dict | None:
        """The helper's report, or None when it did not answer in time (then it is gone)."""
        assert self.proc.stdin is not None
        request = json.dumps({"text": text, "restore": restore}) + "\n"
        deadline = time.monotonic() + timeout
        try:
            self.proc.stdin.write(request.encode("utf-8"))
            self.proc.stdin.flush()
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                    self.close()
                    return None
                chunk = os.read(self._answers, 65536)
                if not chunk:  # the helper died
                    self.close()
                    return None
                self._buffer += chunk
        except OSError:
            self.close()
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        _kill_group(self.proc)
        with contextlib.suppress(OSError):
            os.close(self._answers)


_lock = threading.Lock()
_worker: _Worker | None = None


def _copy(text: str, timeout: float, *, restore: bool) -> CopyResult:
    global _worker
    env = session_env(timeout / 2)
    with _lock:  # one request at a time: the helper answers in order
        if _worker is not None and (_worker.env != env or not _worker.alive()):
            _worker.close()
            _worker = None
        if _worker is None:
            _worker = _Worker(env)
        report = _worker.ask(text, restore, timeout)
        if report is None:
            _worker = None
            log.warning("clipboard helper did not finish within %.1f s", timeout)
            return CopyResult(False, TIMED_OUT)
    if "no_backend" in report:
        log.info("no clipboard backend: %s", report["no_backend"].splitlines()[0])
        return CopyResult(False, NO_BACKEND)
    # wl-paste -n and some backends drop a trailing newline.
    if report["pasted"].rstrip("\n") != text.rstrip("\n"):
        return CopyResult(False, MISMATCH)
    return CopyResult(True, None)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The group is the helper and whatever it started (wl-copy, xclip); on timeout the copy
    # failed anyway, so nothing worth keeping is in it.
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)
