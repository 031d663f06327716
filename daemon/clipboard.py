"""Put a link on the desktop clipboard and check that it arrived.

pyperclip lives behind this module and runs in a short child process, because in-process it
(1) caches the backend it found first, so a DISPLAY that appears later is ignored;
(2) starts xclip with our own stdout/stderr, and xclip's selection-serving child keeps them
open, so `link=$(fadelink share x.jpg)` would hang; (3) can block forever in wl-copy.
The child copies, reads the clipboard back and reports; the parent compares, because xclip
"succeeds" silently when DISPLAY points at no X server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NO_BACKEND = "no clipboard backend (install xclip or wl-clipboard)"
MISMATCH = "clipboard read back a different text"
TIMED_OUT = "clipboard timed out"

# argv: pyperclip's import directory, report file. stdin: the text (UTF-8).
_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import pyperclip
text = sys.stdin.buffer.read().decode("utf-8")
try:
    pyperclip.copy(text)
    report = {"pasted": pyperclip.paste()}
except pyperclip.PyperclipException as exc:
    report = {"no_backend": str(exc)}
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(report, f)
"""


@dataclass(frozen=True)
class CopyResult:
    ok: bool
    reason: str | None  # why not, in words a person can read; None when ok


def copy(text: str, *, timeout: float = 3.0) -> CopyResult:
    """Copy text to the clipboard and read it back; never raises, returns within ~timeout."""
    try:
        return _copy(text, timeout)
    except Exception as exc:  # best effort by contract: a clipboard failure must not stop a share
        log.warning("clipboard copy failed", exc_info=True)
        return CopyResult(False, f"clipboard failed: {exc}")


def _copy(text: str, timeout: float) -> CopyResult:
    spec = importlib.util.find_spec("pyperclip")
    if spec is None or spec.origin is None:
        return CopyResult(False, "pyperclip is not installed")
    # The directory to import pyperclip from: its package's parent, or a lone module's own.
    origin = Path(spec.origin)
    import_dir = str(origin.parent.parent if spec.submodule_search_locations else origin.parent)
    with tempfile.TemporaryDirectory(prefix="fadelink-clip-") as tmp:
        report_path = Path(tmp) / "report.json"
        # -I -S: start fast and ignore the caller's cwd and PYTHON* variables.
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, import_dir, str(report_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,  # xclip's server inherits these: never our own
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own process group, so a hung wl-copy can be killed too
        )
        try:
            proc.communicate(text.encode("utf-8"), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            log.warning("clipboard helper did not finish within %.1f s", timeout)
            return CopyResult(False, TIMED_OUT)
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return CopyResult(False, f"clipboard helper failed (exit status {proc.returncode})")
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
