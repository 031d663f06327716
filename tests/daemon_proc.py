"""Run `fadelink run` as a real subprocess, the way a user or a service manager does."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    """Poll until predicate() is truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # poll


@dataclass
class Home:
    """A user's world in a temp dir: HOME, XDG dirs, share folder, settings."""

    root: Path
    base_env: dict[str, str]
    port: int = field(default_factory=free_port)

    @property
    def share_dir(self) -> Path:
        return self.root / "share"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def env(self, **extra: str) -> dict[str, str]:
        e = {k: v for k, v in self.base_env.items() if not k.startswith("FADELINK_")}
        for k in ("FADELINK_REQUIRE_DESKTOP", "FADELINK_REQUIRE_TESTDATA"):
            if k in self.base_env:
                e[k] = self.base_env[k]
        e.update(
            HOME=str(self.root / "home"),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_STATE_HOME=str(self.root / "xdg-state"),
            FADELINK_SHARE_DIR=str(self.share_dir),
            FADELINK_STATE_DIR=str(self.state_dir),
            FADELINK_LOCAL_BIND=f"127.0.0.1:{self.port}",
            PYTHONUNBUFFERED="1",
        )
        e.update(extra)
        return e

    def cli(self, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class DaemonProcess:
    def __init__(self, home: Home, **extra: str) -> None:
        self.home = home
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            env=home.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr
        for line in self.proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_line(self, text: str, timeout: float = 30) -> str:
        def find() -> str | None:
            if self.proc.poll() is not None and text not in self.output():
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.output()}")
            with self._lock:
                return next((ln for ln in self.lines if text in ln), None)

        return wait_for(find, timeout, f"daemon line {text!r}\n{self.output()}")

    def wait_ready(self, timeout: float = 30) -> str:
        return self.wait_line("ready:", timeout)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._kill_group()

    def wait_killed(self, timeout: float = 60) -> int:
        """For crash tests: the daemon kills itself at a crash point."""
        try:
            return self.proc.wait(timeout)
        finally:
            self._kill_group()

    def _kill_group(self) -> None:
        # Clipboard helpers (xclip) outlive us in our session: end them with the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(timeout=5)
